"""Figure 3, pickup latency: one job queued on an idle queue until its `acquirejobs` arrives.

Before each pickup the fake waits until the listener's long poll is parked (the queue is
idle); it then queues one job and times, in its own process, from queuing it until that
set's `acquirejobs` request arrives. Pickups alternate between the SDK's process and the
baseline's, one at a time. A round's p50, p95 and p99 are over its own pickups; the pooled
percentiles over all of them are given too. Target: SDK p99 ≤ 1.2x the baseline's.
"""

from __future__ import annotations

import math
import statistics

from benchmarks._harness import Row, note, order
from benchmarks._loopback import Loopback, Side

TARGET_P99 = 1.2
QUANTILES = (50, 95, 99)


def percentile(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def one_pickup(rig: Loopback, side: Side, timeout: float) -> float:
    """Milliseconds from queuing the job to its `acquirejobs` arriving."""
    answer = (
        await rig.admin.post(
            "/_bench/pickup",
            params={"set": side.set_id, "wait": 2.0, "timeout": timeout},
            timeout=timeout + 30,
        )
    ).json()
    if answer["latency"] is None:
        raise RuntimeError(f"{side.impl}: a job was not acquired within {timeout:g} s")
    return float(answer["latency"]) * 1e3


async def run(rig: Loopback, rounds: int, pickups: int, timeout: float = 5.0) -> tuple[list[Row], list[str]]:
    """Rows of per-round percentiles, and lines of the pooled ones."""
    sides = rig.sides
    per_round = max(1, math.ceil(pickups / rounds))
    for side in sides:  # warm-ups
        for _ in range(3):
            await one_pickup(rig, side, timeout)
    note(f"pickup: {rounds} rounds of {per_round} pickups per side, alternating")
    samples: list[list[list[float]]] = [[], []]  # side -> round -> ms
    for index in range(rounds):
        got: list[list[float]] = [[], []]
        first, second = order(index)
        for pick in range(per_round):
            for which in (first, second) if pick % 2 == 0 else (second, first):
                got[which].append(await one_pickup(rig, sides[which], timeout))
        for which in (0, 1):
            samples[which].append(got[which])
    rows = [
        Row(
            "3 pickup latency",
            f"p{q} (ms), {per_round} pickups a round",
            tuple(percentile(r, q) for r in samples[0]),
            tuple(percentile(r, q) for r in samples[1]),
            digits=2,
            target=TARGET_P99 if q == 99 else None,
        )
        for q in QUANTILES
    ]
    pooled = [[v for r in samples[which] for v in r] for which in (0, 1)]
    lines = [
        f"Pooled over all {len(pooled[0])} pickups per side: "
        + ", ".join(
            f"p{q} SDK {percentile(pooled[0], q):.2f} ms, baseline {percentile(pooled[1], q):.2f} ms "
            f"({percentile(pooled[0], q) / percentile(pooled[1], q):.2f}x)"
            for q in QUANTILES
        )
        + "."
    ]
    return rows, lines
