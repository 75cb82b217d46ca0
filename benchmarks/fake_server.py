"""`python -m benchmarks.fake_server --port 0 --groups 1000,1000,1,1`: FakeGitHub on loopback TCP,
in a process of its own, for the many-scale-sets benchmark.

It creates every scale set up front (one group of sets per benchmark run, each set with a
label of its own: its name), then prints one JSON line: the base URL, the config URL,
the PAT and the set ids of each group. It serves until its stdin closes.

Two things are added around the fake, in this script only (the library is untouched):

* **A long poll that sleeps until its own set has news.** The fake's long poll re-checks its
  state every 50 ms, and each check walks every scale set: with 1,000 parked polls the fake,
  not the listener, would burn a core, and every enqueue would wake all 1,000 polls. Here a
  parked poll waits on an event of its own set (set by `/_bench/pickup`), re-checking once a
  second, as a real queue does not need to.
* **A clock that advances at most every 100 ms.** On every request the fake applies what
  the clock made due, walking every scale set (~2.5 ms with 2,000 sets), which would cap it
  near a few hundred requests a second. Here that walk runs at most every 100 ms, and at
  once when `/_bench/pickup` queues a job, so the job reaches its set without delay. Each
  pickup's job is dropped before the next, so the walk (which visits every job for every
  set) takes as long at the last pickup as at the first.
* **`/_bench/` endpoints** read by the benchmark over TCP:
  - `GET /_bench/parked?group=G`: how many of group G's sets have a `message` poll parked;
  - `POST /_bench/pickup?set=ID&wait=2&timeout=5`: waits (up to `wait` s) until that set's
    poll is parked, queues a job for it, and answers how long until its `acquirejobs`
    request arrived (null after `timeout` s). Both ends are timed here, on one clock.
  - `POST /_bench/burst?set=ID&jobs=5000&wait=2&timeout=120`: waits until that set's poll
    is parked, queues `jobs` jobs for it at once (routed in one walk), and answers how long
    until the last of them was acquired (the `acquirejobs` that took it answered), and how
    many were (`seconds` null after `timeout` s).

  The jobs a set was given by `pickup` or `burst` are dropped before its next one, so the
  fake's walks over every job take as long in the last round as in the first.

`--queue-url-query` makes session answers carry a queue URL with `?sessionId=…&api-version=…`,
which every call on the queue must keep (FakeGitHub's `queue_url_query`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast
from urllib.parse import parse_qs

import anyio
import anyio.to_thread

import actions_scaleset as asc
from actions_scaleset.testing import FakeGitHub
from actions_scaleset.testing import _actions as fake_actions
from actions_scaleset.testing._model import Job, JobState, ScaleSet

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

RECHECK = 1.0
"""Seconds between checks of a parked poll that nothing woke."""
TICK_EVERY = 0.1
"""Seconds between the fake's walks over every scale set (see the module's docstring)."""


class Ticks:
    """Makes `state.tick()` walk the state at most every `TICK_EVERY` s, unless `forced`."""

    def __init__(self, state: Any) -> None:
        self.real: Callable[[], None] = state.tick
        self.last = 0.0
        self.forced = False
        state.tick = self.tick

    def tick(self) -> None:
        now = time.monotonic()
        if self.forced or now - self.last >= TICK_EVERY:
            self.last = now
            self.real()


class Bench:
    """The state the `/_bench/` endpoints read: parked polls and acquire arrivals, by set id."""

    def __init__(self, fake: FakeGitHub, groups: list[list[int]], labels: dict[int, str]) -> None:
        self.fake = fake
        self.groups = groups
        self.labels = labels
        self.parked: Counter[int] = Counter()
        self.news: dict[int, anyio.Event] = {}
        self.acquired: dict[int, anyio.Event] = {}
        self.acquired_at: dict[int, float] = {}
        self.delivered_at: dict[int, float] = {}
        self.original_long_poll = vars(fake_actions)["long_poll"]
        self.ticks = Ticks(fake._core.state)
        self.given: dict[int, list[str]] = {}
        """Jobs queued by `pickup` or `burst`, by set: dropped before its next one."""
        self.bursting: dict[int, list[Job]] = {}
        """A running burst's jobs not acquired yet, by set."""
        self.burst_done: dict[int, anyio.Event] = {}
        self.burst_done_at: dict[int, float] = {}

    def event(self, table: dict[int, anyio.Event], set_id: int) -> anyio.Event:
        if set_id not in table:
            table[set_id] = anyio.Event()
        return table[set_id]

    async def long_poll(self, core: Any, hold: float, attempt: Callable[[], Any]) -> Any:
        set_id = _scale_set_id(attempt)
        if set_id is None:
            return await self.original_long_poll(core, hold, attempt)
        deadline = anyio.current_time() + hold
        core.state.tick()
        found = attempt()
        self.parked[set_id] += 1
        try:
            while found is None:
                remaining = deadline - anyio.current_time()
                if remaining <= 0:
                    return None
                with anyio.move_on_after(min(remaining, RECHECK)):
                    await self.event(self.news, set_id).wait()
                self.news.pop(set_id, None)
                found = attempt()
            self.delivered_at[set_id] = time.perf_counter()
            return found
        finally:
            self.parked[set_id] -= 1

    def parked_in(self, group: int) -> int:
        return sum(1 for set_id in self.groups[group] if self.parked[set_id] > 0)

    async def pickup(self, set_id: int, wait: float, timeout: float) -> dict[str, float | None]:
        await self.wait_parked(set_id, wait)
        self.drop_given(set_id)
        self.acquired.pop(set_id, None)
        done = self.event(self.acquired, set_id)
        started = time.perf_counter()
        self.ticks.forced = True  # route the job to its set now, whenever the last walk was
        try:
            self.given[set_id] = [
                self.fake.enqueue_job(labels=[self.labels[set_id]], repository="acme/app").job_id
            ]
        finally:
            self.ticks.forced = False
        queued = time.perf_counter()
        self.event(self.news, set_id).set()
        with anyio.move_on_after(timeout):
            await done.wait()
            return {
                "latency": self.acquired_at[set_id] - started,
                "queue": queued - started,
                "listener": self.acquired_at[set_id] - self.delivered_at[set_id],
            }
        return {"latency": None}

    def saw_acquire(self, set_id: int) -> None:
        self.acquired_at[set_id] = time.perf_counter()
        self.event(self.acquired, set_id).set()

    def drop_given(self, set_id: int) -> None:
        jobs = self.fake._core.state.jobs
        for job_id in self.given.pop(set_id, ()):
            jobs.pop(job_id, None)

    async def wait_parked(self, set_id: int, wait: float) -> None:
        with anyio.move_on_after(wait):
            while self.parked[set_id] <= 0:  # noqa: ASYNC110 - a counter, not an event
                await anyio.sleep(0.002)

    async def burst(self, set_id: int, count: int, wait: float, timeout: float) -> dict[str, float | None]:
        """Queue `count` jobs for one set at once; seconds until the last was acquired."""
        await self.wait_parked(set_id, wait)
        self.drop_given(set_id)
        state = self.fake._core.state
        label = [self.labels[set_id]]
        jobs = [
            state.enqueue(
                repository="acme/app",
                labels=label,
                display_name=f"burst {index}",
                workflow=".github/workflows/ci.yml",
                ref="refs/heads/main",
                event_name="push",
                duration=0.0,
                conclusion="succeeded",
                at=None,
            )
            for index in range(count)
        ]
        self.given[set_id] = [job.id for job in jobs]
        self.ticks.forced = True  # route every job to its set in one walk
        try:
            state.tick()
        finally:
            self.ticks.forced = False
        done = self.burst_done[set_id] = anyio.Event()
        self.bursting[set_id] = jobs
        started = time.perf_counter()
        self.event(self.news, set_id).set()
        with anyio.move_on_after(timeout):
            await done.wait()
        left = self.bursting.pop(set_id, [])
        finished = self.burst_done_at.pop(set_id, None)
        return {"seconds": None if finished is None else finished - started, "acquired": count - len(left)}

    def answered_acquire(self, set_id: int) -> None:
        """An `acquirejobs` was answered: is the set's burst all acquired now?"""
        left = self.bursting.get(set_id)
        if left is None:
            return
        left = [job for job in left if job.state in _NOT_ACQUIRED]
        self.bursting[set_id] = left
        if not left:
            self.burst_done_at[set_id] = time.perf_counter()
            self.burst_done[set_id].set()


_NOT_ACQUIRED = (JobState.SCHEDULED, JobState.QUEUED, JobState.AVAILABLE)


def _scale_set_id(attempt: Callable[[], Any]) -> int | None:
    """The scale set a `message` poll is for, read from the fake's `attempt` closure."""
    for cell in getattr(attempt, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if isinstance(value, ScaleSet):
            return int(value.id)
    return None


class Instrumented:
    """The fake's ASGI app, plus `/_bench/` and a note of every `acquirejobs` arrival."""

    def __init__(self, app: Any, bench: Bench) -> None:
        self.app = app
        self.bench = bench

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and path.startswith("/_bench/"):
            await self.admin(scope, send)
            return
        if scope["type"] == "http" and scope["method"] == "POST" and path.endswith("/acquirejobs"):
            set_id = int(path.rsplit("/", 2)[-2])
            self.bench.saw_acquire(set_id)
            await self.app(scope, receive, send)
            self.bench.answered_acquire(set_id)
            return
        await self.app(scope, receive, send)

    async def admin(self, scope: Scope, send: Send) -> None:
        query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        path = scope["path"]
        body: object
        if path == "/_bench/parked":
            body = {"parked": self.bench.parked_in(int(query["group"]))}
        elif path == "/_bench/burst":
            body = await self.bench.burst(
                int(query["set"]),
                int(query["jobs"]),
                float(query.get("wait", "2")),
                float(query.get("timeout", "120")),
            )
        elif path == "/_bench/pickup":
            body = await self.bench.pickup(
                int(query["set"]), float(query.get("wait", "2")), float(query.get("timeout", "5"))
            )
        else:
            body = {"error": "unknown"}
        payload = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


async def make_sets(fake: FakeGitHub, sizes: list[int], labels: dict[int, str]) -> list[list[int]]:
    groups: list[list[int]] = []
    async with (
        fake.http_client() as http,
        asc.ScaleSetClient(fake.config_url("acme"), fake.pat(), http_client=http) as client,
    ):
        for group, size in enumerate(sizes):
            ids = []
            for index in range(size):  # the label is the name: a job reaches exactly one set
                made = await client.create_scale_set(f"bench-g{group}-s{index}")
                labels[made.id] = made.name
                ids.append(made.id)
            groups.append(ids)
    return groups


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fake_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--groups", default="1000", help="sets per group, comma-separated")
    parser.add_argument("--hold", type=float, default=50.0, help="seconds a poll is held (GitHub: ~50)")
    parser.add_argument(
        "--queue-url-query", action="store_true", help="queue URLs carry ?sessionId=… that calls must keep"
    )
    args = parser.parse_args(argv)
    from hypercorn.config import Config

    Config.backlog = 4096  # hypercorn listens with a backlog of 100: 1,000 listeners connect at once
    fake = FakeGitHub(poll_hold=args.hold, session_timeout=3600.0, queue_url_query=args.queue_url_query)
    labels: dict[int, str] = {}
    groups = await make_sets(fake, [int(n) for n in args.groups.split(",") if n], labels)
    bench = Bench(fake, groups, labels)
    vars(fake_actions)["long_poll"] = bench.long_poll  # the `message` route looks it up here
    fake.asgi = cast(Any, Instrumented(fake.asgi, bench))
    async with fake.serve(args.host, args.port) as url:
        info = {"url": url, "config_url": fake.config_url("acme"), "pat": _pat(fake), "groups": groups}
        print(json.dumps(info), flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)  # until stdin closes


def _pat(fake: FakeGitHub) -> str:
    return fake.pat().token.get_secret_value()


if __name__ == "__main__":
    anyio.run(main)
