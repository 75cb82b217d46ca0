"""Figure 2, listener burst: `jobs` jobs queued at once on one scale set, all acquired.

The fake queues them in one go (each listener sees them as messages of 50 `JobAvailable`
events, the queue's cap) and times, in its own process, from then until the `acquirejobs`
that took the last of them was answered. The listening process measures its own CPU
(`getrusage`, user + system) from just before the burst until its poll is parked again
afterwards. Both scalers are instant: they start no runner (`X-ScaleSetMaxCapacity` 10).
SDK: `asc.Listener` on `asc.ScaleSetClient`; baseline: `benchmarks.raw_listener`.
Rounds alternate between the two processes. Target: SDK CPU ≤ 1.15x the baseline's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from benchmarks._harness import Row, interleave_async, note
from benchmarks._loopback import Loopback, Side

TARGET_CPU = 1.15


async def one_burst(rig: Loopback, side: Side, jobs: int, timeout: float) -> tuple[float, float]:
    """(seconds until all were acquired, listener CPU seconds) of one burst."""
    await side.worker.ask("mark", 30)
    answer = (
        await rig.admin.post(
            "/_bench/burst",
            params={"set": side.set_id, "jobs": jobs, "wait": 5, "timeout": timeout},
            timeout=timeout + 60,
        )
    ).json()
    await rig.wait_parked(side, 2.0)  # the listener is done with the last message
    used = float(await side.worker.ask("used", 30))
    if answer["seconds"] is None:
        raise RuntimeError(f"{side.impl}: {answer['acquired']} of {jobs} jobs acquired in {timeout:g} s")
    return float(answer["seconds"]), used


async def run(rig: Loopback, rounds: int, jobs: int, timeout: float = 120.0) -> list[Row]:
    sdk, raw = rig.sides
    warm = min(jobs, 500)
    for side in (sdk, raw):
        await one_burst(rig, side, warm, timeout)
    note(f"burst: {rounds} rounds of {jobs:,} jobs per side")
    walls: dict[str, list[float]] = {"sdk": [], "raw": []}

    def measure(side: Side) -> Callable[[], Awaitable[float]]:
        async def one_round() -> float:
            seconds, cpu = await one_burst(rig, side, jobs, timeout)
            walls[side.impl].append(seconds)
            note(f"burst: {side.impl} {jobs:,} jobs in {seconds:.2f} s, {cpu:.2f} CPU s")
            return cpu / jobs * 1000

        return one_round

    sdk_cpu, raw_cpu = await interleave_async(rounds, measure(sdk), measure(raw))
    return [
        Row(
            "2 listener burst",
            f"{jobs:,} jobs at once: seconds until all acquired",
            tuple(walls["sdk"]),
            tuple(walls["raw"]),
            digits=2,
        ),
        Row(
            "2 listener burst",
            "listener-process CPU seconds per 1,000 jobs",
            sdk_cpu,
            raw_cpu,
            digits=3,
            target=TARGET_CPU,
        ),
    ]
