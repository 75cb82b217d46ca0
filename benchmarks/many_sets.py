"""Many scale sets in one process (issue 13): the SDK and a raw-httpx baseline, in one run.

`python -m benchmarks.many_sets --sets 1000` (or `python -m benchmarks --sets 1000`) starts
FakeGitHub in a process of its own (`benchmarks.fake_server`, loopback TCP), then one
listening process at a time (`benchmarks.many_listeners`): the SDK on N sets, the baseline
on N other sets, then each alone on one set. For each it reports:

* peak RSS of the listening process;
* idle CPU while the polls are parked (CPU time over wall time, in that process);
* polls parked, and the time from the process's start of listening until all were parked
  (the fake counts parked polls; a count that stops growing ends the wait);
* pickup latency of one set (the last one started): from the fake queuing a job to that
  set's `acquirejobs` arriving at the fake, both timed in the fake's process; with N-1
  sets idle, and alone.

Every wait is bounded: a listener that never parks all its polls is reported as such.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import anyio
import attrs
import httpx

from benchmarks._procs import start

TARGET_RSS_MB = 120.0
TARGET_IDLE_CPU = 0.02
TARGET_PICKUP_RATIO = 1.2


@attrs.frozen
class Side:
    """What one listening process did."""

    impl: str
    sets: int
    parked: int = 0
    park_seconds: float | None = None
    idle_cpu: float | None = None
    rss_mb: float | None = None
    pickups: tuple[float, ...] = ()
    """Seconds from the fake queuing a job to its `acquirejobs` arriving."""
    shares: tuple[float, ...] = ()
    """The listener's share of each: from the fake sending the message to `acquirejobs` arriving."""
    timeouts: int = 0

    @property
    def all_parked(self) -> bool:
        return self.parked == self.sets

    def pickup(self, quantile: int, *, share: bool = False) -> float | None:
        """Percentile `quantile` (50, 99) in ms; None when a pickup timed out or none ran."""
        values = self.shares if share else self.pickups
        if self.timeouts or not values:
            return None
        if len(values) == 1:
            return values[0] * 1e3
        return statistics.quantiles(values, n=100, method="inclusive")[quantile - 1] * 1e3


@attrs.frozen
class Settings:
    sets: int = 1000
    sdk_pool: int = 0
    """0: the SDK's own httpx client; > 0: an httpx client whose pool holds that many connections."""
    hold: float = 50.0
    idle_seconds: float = 10.0
    samples: int = 40
    park_timeout: float = 60.0
    stall: float = 5.0
    """Stop waiting for polls to park once the count has not grown for this long."""
    pickup_timeout: float = 3.0


async def run_side(
    impl: str,
    sets: list[int],
    server: dict[str, Any],
    group: int,
    admin: httpx.AsyncClient,
    settings: Settings,
    log: IO[bytes],
) -> Side:
    """One listening process on `sets`: park, idle CPU, pickups, peak RSS."""
    worker = await start("benchmarks.many_listeners", [], log)
    try:
        pool = settings.sdk_pool if impl == "sdk" else 0
        config = {
            "impl": impl,
            "config_url": server["config_url"],
            "pat": server["pat"],
            "sets": sets,
            "pool": pool,
        }
        await worker.send(json.dumps(config))
        await worker.line(60)  # "started": imports done, about to listen
        started = time.perf_counter()
        parked, park_seconds = await wait_parked(admin, group, len(sets), started, settings)
        note(f"{impl}, {len(sets)} sets: {parked} parked after {time.perf_counter() - started:.1f} s")
        idle_cpu = None
        if settings.idle_seconds > 0:
            idle_cpu = float(await worker.ask(f"cpu {settings.idle_seconds}", settings.idle_seconds + 30))
        pickups, shares, timeouts = await measure_pickups(admin, sets[-1], settings)
        rss = float(await worker.ask("rss", 30))
        note(f"{impl}, {len(sets)} sets: idle CPU, pickups and RSS measured; stopping")
        await worker.send("stop")
        return Side(
            impl, len(sets), parked, park_seconds, idle_cpu, rss, tuple(pickups), tuple(shares), timeouts
        )
    finally:
        await worker.finish(45)


def note(text: str) -> None:
    print(f"[many sets] {text}", file=sys.stderr, flush=True)


async def wait_parked(
    admin: httpx.AsyncClient, group: int, total: int, started: float, settings: Settings
) -> tuple[int, float | None]:
    """(polls parked, seconds until all were) once all park, the count stalls, or time runs out."""
    best, best_at = 0, started
    while True:
        now = time.perf_counter()
        parked = int((await admin.get("/_bench/parked", params={"group": group})).json()["parked"])
        if parked > best:
            best, best_at = parked, now
        if best >= total:
            return best, best_at - started
        if now - started > settings.park_timeout or (best and now - best_at > settings.stall):
            return best, None
        await anyio.sleep(0.02)


async def measure_pickups(
    admin: httpx.AsyncClient, set_id: int, settings: Settings
) -> tuple[list[float], list[float], int]:
    """Pickup latencies (s): queued → `acquirejobs`, and the listener's share (message sent → it)."""
    pickups: list[float] = []
    shares: list[float] = []
    timeouts = 0
    for index in range(settings.samples + 2):  # two warm-ups
        response = await admin.post(
            "/_bench/pickup",
            params={"set": set_id, "wait": 1.0, "timeout": settings.pickup_timeout},
            timeout=settings.pickup_timeout + 10,
        )
        answer = response.json()
        latency = answer["latency"]
        if latency is None:
            timeouts += 1
            if timeouts >= 2:
                break
        elif index >= 2:
            pickups.append(float(latency))
            shares.append(float(answer["listener"]))
        await anyio.sleep(0.01)
    return pickups, shares, timeouts


async def run(settings: Settings) -> tuple[Side, Side, Side, Side]:
    """SDK and baseline on `settings.sets` sets, then each alone on one set."""
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "children.log"
        with log_path.open("wb") as log:
            groups = f"{settings.sets},{settings.sets},1,1"
            server = await start(
                "benchmarks.fake_server", ["--groups", groups, "--hold", str(settings.hold)], log
            )
            try:
                note(f"starting the fake with {2 * settings.sets + 2} scale sets")
                info = json.loads(await server.line(300))
                async with httpx.AsyncClient(base_url=info["url"], timeout=30) as admin:
                    sdk = await run_side("sdk", info["groups"][0], info, 0, admin, settings, log)
                    raw = await run_side("raw", info["groups"][1], info, 1, admin, settings, log)
                    alone = attrs.evolve(settings, idle_seconds=0.0)
                    raw_1 = await run_side("raw", info["groups"][3], info, 3, admin, alone, log)
                    sdk_1 = await run_side("sdk", info["groups"][2], info, 2, admin, alone, log)
            except BaseException:
                log.flush()
                print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
                raise
            finally:
                await server.finish(15)
    return sdk, raw, sdk_1, raw_1


# --------------------------------------------------------------------------- the table


def _num(value: float | None, fmt: str = "{:.1f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def table(sides: tuple[Side, Side, Side, Side], settings: Settings) -> list[str]:
    sdk, raw, sdk_1, raw_1 = sides
    n = settings.sets
    pool = f"an httpx pool of {settings.sdk_pool}" if settings.sdk_pool else "the SDK's default httpx client"
    lines = [
        f"many scale sets: {n} sets in one process, FakeGitHub in another (loopback TCP, polls held "
        f"{settings.hold:g} s); SDK: {pool}; baseline: raw httpx + dicts, pool sized for its polls",
        f"  {'':44} {'sdk':>14} {'baseline':>14} {'ratio':>8}   target",
    ]

    def row(name: str, a: str, b: str, ratio: str, target: str = "") -> None:
        lines.append(f"  {name:44} {a:>14} {b:>14} {ratio:>8}   {target}")

    row(
        "peak RSS (MB)",
        _num(sdk.rss_mb),
        _num(raw.rss_mb),
        _ratio(sdk.rss_mb, raw.rss_mb),
        f"sdk <= {TARGET_RSS_MB:g} MB",
    )
    cpu = [None if s.idle_cpu is None else s.idle_cpu * 100 for s in (sdk, raw)]
    row(
        f"idle CPU, % of one core ({settings.idle_seconds:g} s)",
        _num(cpu[0], "{:.2f}"),
        _num(cpu[1], "{:.2f}"),
        _ratio(cpu[0], cpu[1]),
        f"sdk <= {TARGET_IDLE_CPU * 100:g} %",
    )
    row("polls parked", f"{sdk.parked} of {n}", f"{raw.parked} of {n}", "")
    row(
        "time until all parked (s)",
        _num(sdk.park_seconds, "{:.2f}") if sdk.all_parked else "never",
        _num(raw.park_seconds, "{:.2f}") if raw.all_parked else "never",
        _ratio(sdk.park_seconds, raw.park_seconds),
    )
    for share in (False, True):
        what = "listener part" if share else "pickup"
        for q in (50, 99):
            a, b = sdk.pickup(q, share=share), raw.pickup(q, share=share)
            a1, b1 = sdk_1.pickup(q, share=share), raw_1.pickup(q, share=share)
            row(
                f"{what} p{q}, 1 of {n} sets (ms)",
                _pickup(sdk, a, settings),
                _pickup(raw, b, settings),
                _ratio(a, b),
            )
            row(
                f"{what} p{q}, 1 set alone (ms)",
                _pickup(sdk_1, a1, settings),
                _pickup(raw_1, b1, settings),
                _ratio(a1, b1),
            )
            target = "" if share else f"sdk <= {TARGET_PICKUP_RATIO:g}x"
            row(f"{what} p{q}, {n} sets / alone", _ratio(a, a1), _ratio(b, b1), "", target)
    lines.append(
        f"  pickup: from the fake queuing a job to that set's acquirejobs arriving ({settings.samples} per "
        "side, one at a time, timed in the fake's process); the listener part starts when the fake "
        "sends the message"
    )
    return lines


def _pickup(side: Side, value: float | None, settings: Settings) -> str:
    if side.timeouts:
        return f"> {settings.pickup_timeout:g} s"
    return _num(value, "{:.2f}")


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(add_help=False)
    parse.add_argument("--sets", type=int, default=1000, help="scale sets in the listening process")
    parse.add_argument("--sdk-pool", type=int, default=0, help="give the SDK an httpx pool of this size")
    parse.add_argument("--hold", type=float, default=50.0, help="seconds the fake holds a poll")
    parse.add_argument("--idle", type=float, default=10.0, help="seconds over which idle CPU is measured")
    parse.add_argument("--samples", type=int, default=40, help="pickups measured per side")
    return parse


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        sets=args.sets, sdk_pool=args.sdk_pool, hold=args.hold, idle_seconds=args.idle, samples=args.samples
    )


async def main(argv: list[str] | None = None) -> None:
    args = argparse.ArgumentParser(prog="python -m benchmarks.many_sets", parents=[parser()]).parse_args(argv)
    settings = settings_from(args)
    for line in table(await run(settings), settings):
        print(line)


if __name__ == "__main__":
    anyio.run(main)
