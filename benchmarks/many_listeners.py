"""`python -m benchmarks.many_listeners`: one listening process, SDK or raw baseline.

Used by the many-scale-sets, burst and pickup benchmarks. It reads one JSON line on stdin
(`impl`: `sdk` or `raw`, `config_url`, `pat`, `sets`, optional `pool` and `max_runners`),
listens on every set in one task group, then answers commands, one a line:

* `cpu SECONDS`: the process's CPU time over that wall time, as a fraction of one core;
* `mark`: remembers the process's CPU time (user + system) now;
* `used`: the process's CPU seconds since the last `mark`;
* `rss`: the peak resident set size so far, in MB;
* `stop`: cancels the listeners (each deletes its session) and exits.

`sdk` runs one `asc.Listener` per set, all sharing one `ScaleSetClient` (with the SDK's own
httpx client unless `pool` > 0 sizes one). `raw` is the baseline (`benchmarks.raw_listener`):
a minimal listener written with httpx and dicts, speaking the same protocol, one coroutine
per set, its pool sized for its polls. Both scalers are instant: they start no runner.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

import anyio
import anyio.to_thread
import httpx

from benchmarks.raw_listener import RawListener, admin_connection

MAX_RUNNERS = 10
OPEN_CONCURRENCY = 10
"""Session creations in flight at once, as `asc.ListenerGroup`'s default."""


def max_runners(config: dict[str, Any]) -> int:
    return int(config.get("max_runners", MAX_RUNNERS))


def cpu_seconds() -> float:
    """User + system CPU of this process (`getrusage`), threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def sized_client(size: int) -> httpx.AsyncClient:
    """An httpx client whose pool holds `size` connections: one per poll plus headroom."""
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0, connect=10.0))


# --------------------------------------------------------------------------- the SDK


class NullScaler:
    """Counts what it is told; starts nothing."""

    def __init__(self) -> None:
        self.desired = 0
        self.started = 0

    async def handle_desired_runner_count(self, count: int) -> int:
        self.desired = count
        return count

    async def handle_job_started(self, job: object) -> None:
        self.started += 1

    async def handle_job_completed(self, job: object) -> None:
        pass


async def listen_sdk(config: dict[str, Any], ready: anyio.Event, stop: anyio.Event) -> None:
    import actions_scaleset as asc

    ready.set()
    pool = int(config.get("pool") or 0)
    http = sized_client(pool) if pool else None
    auth = asc.PersonalAccessToken(config["pat"])
    async with asc.ScaleSetClient(config["config_url"], auth, http_client=http) as client:
        group: asc.ListenerGroup[int] = asc.ListenerGroup()
        for scale_set_id in config["sets"]:
            group.add(
                scale_set_id,
                asc.Listener(client, scale_set_id, NullScaler(), 0, max_runners(config), owner="bench"),
            )
        async with anyio.create_task_group() as tg:
            tg.start_soon(group.run)
            await stop.wait()
            tg.cancel_scope.cancel()
    if http is not None:
        await http.aclose()


# --------------------------------------------------------------------------- the baseline


async def listen_raw(config: dict[str, Any], ready: anyio.Event, stop: anyio.Event) -> None:
    ready.set()
    sets: list[int] = config["sets"]
    async with sized_client(len(sets) + 20) as http:
        admin = await admin_connection(http, config["config_url"], config["pat"])
        limiter = anyio.CapacityLimiter(OPEN_CONCURRENCY)  # what asc.ListenerGroup does by default
        async with anyio.create_task_group() as tg:
            for set_id in sets:
                listener = RawListener(
                    http, admin, set_id, max_runners=max_runners(config), owner="bench", open_limiter=limiter
                )
                tg.start_soon(raw_listener, listener)
            await stop.wait()
            tg.cancel_scope.cancel()


async def raw_listener(listener: RawListener) -> None:
    """Listen on one set; on any HTTP or network error, wait a second and start again."""
    while True:
        try:
            await listener.run()
        except httpx.HTTPError:
            await anyio.sleep(1.0)


# --------------------------------------------------------------------------- the process


async def commands(ready: anyio.Event, stop: anyio.Event) -> None:
    await ready.wait()
    print("started", flush=True)
    marked = cpu_seconds()
    while True:
        line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        words = line.split()
        if not words or words[0] == "stop":
            stop.set()
            return
        if words[0] == "cpu":
            cpu, wall = time.process_time(), time.perf_counter()
            await anyio.sleep(float(words[1]))
            share = (time.process_time() - cpu) / (time.perf_counter() - wall)
            print(f"cpu {share:.6f}", flush=True)
        elif words[0] == "mark":
            marked = cpu_seconds()
            print("mark ok", flush=True)
        elif words[0] == "used":
            print(f"used {cpu_seconds() - marked:.6f}", flush=True)
        elif words[0] == "rss":
            print(f"rss {peak_rss_mb():.1f}", flush=True)


async def main() -> None:
    config = json.loads(sys.stdin.readline())
    ready, stop = anyio.Event(), anyio.Event()
    listen = listen_sdk if config["impl"] == "sdk" else listen_raw
    async with anyio.create_task_group() as tg:
        tg.start_soon(commands, ready, stop)
        await listen(config, ready, stop)
    print("stopped", flush=True)


if __name__ == "__main__":
    anyio.run(main)
