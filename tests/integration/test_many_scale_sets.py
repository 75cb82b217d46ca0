"""Many scale sets in one process: a `ListenerGroup` against FakeGitHub over loopback TCP.

One `ScaleSetClient` per config URL serves every set (one registration exchange each),
the client's long polls all park (httpx's default pool stops at 100 connections), and a
set whose scale set is deleted server-side does not stop the others (ARC #4169;
docs/protocol.md, "Listener semantics").
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

import anyio
import pytest

import actions_scaleset as asc
from actions_scaleset.testing import FakeGitHub, JobState

pytestmark = [
    pytest.mark.anyio,
    # 1024-bit runner keys keep 200 JIT configs quick; the key size is not under test here
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]

TIMEOUT = 40
QUICK_RESTARTS = asc.RetryPolicy(max_attempts=1_000_000, initial_delay=0.05, max_delay=0.2, jitter=0.25)


class JitScaler:
    """Registers a JIT runner per runner wanted (the fake runs them); records the job events."""

    def __init__(self, client: asc.ScaleSetClient, scale_set_id: int) -> None:
        self.client = client
        self.scale_set_id = scale_set_id
        self.made = 0
        self.started: list[asc.JobStarted] = []
        self.completed: list[asc.JobCompleted] = []

    async def handle_desired_runner_count(self, count: int) -> int:
        while self.made < count:
            self.made += 1
            await self.client.generate_jit_config(
                self.scale_set_id, name=f"runner-{self.scale_set_id}-{self.made}"
            )
        return count

    async def handle_job_started(self, job: asc.JobStarted) -> None:
        self.started.append(job)

    async def handle_job_completed(self, job: asc.JobCompleted) -> None:
        self.completed.append(job)


async def eventually(condition: Callable[[], bool], *, timeout: float = TIMEOUT) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - polling state the fake does not signal
            await anyio.sleep(0.05)


def completed_jobs(fake: FakeGitHub) -> int:
    return len(fake.snapshot().jobs_in(JobState.COMPLETED))


async def test_two_hundred_scale_sets_in_one_process_all_get_their_jobs() -> None:
    # Four fakes of 50 sets each: the fake's scheduler scans every set's jobs on every
    # request, so one fake with 200 sets and 200 jobs would measure the fake, not the SDK.
    fakes = [FakeGitHub(poll_hold=1.0, runner_key_size=1024, auto_start_runners=True) for _ in range(4)]
    orgs = ("acme", "globex")
    per_org = 25
    group: asc.ListenerGroup[str] = asc.ListenerGroup(open_concurrency=20, start_jitter=0.5)
    scalers: dict[str, JitScaler] = {}
    async with AsyncExitStack() as stack:
        for f, fake in enumerate(fakes):
            await stack.enter_async_context(fake.serve())
            for org in orgs:
                client = await stack.enter_async_context(asc.ScaleSetClient(fake.config_url(org), fake.pat()))
                for i in range(per_org):
                    name = f"{org}-{f}-{i}"
                    scale_set = await client.create_scale_set(name, labels=[name])
                    scalers[name] = scaler = JitScaler(client, scale_set.id)
                    group.add(name, asc.Listener(client, scale_set.id, scaler, max_runners=2))
        assert len(group) == 200
        async with anyio.create_task_group() as tg:
            tg.start_soon(group.run)
            await eventually(lambda: all(s.session_open for s in group.status().values()))
            for name in scalers:
                org, index, _ = name.split("-")
                fakes[int(index)].enqueue_job(labels=[name], repository=f"{org}/app")
            await eventually(lambda: all(s.completed for s in scalers.values()))
            tg.cancel_scope.cancel()
    assert sum(completed_jobs(fake) for fake in fakes) == 200
    assert all(len(s.started) == 1 and len(s.completed) == 1 for s in scalers.values())
    for fake in fakes:  # one registration exchange per config URL, however many sets
        assert len(fake.requests_to("runner_registration")) == len(orgs)
        assert all(s.session_owner is None for s in fake.snapshot().scale_sets)
    assert all(s.restarts == 0 and s.last_message_at is not None for s in group.status().values())


async def test_a_scale_set_deleted_server_side_does_not_stop_the_others() -> None:
    fake = FakeGitHub(poll_hold=0.5, runner_key_size=1024, auto_start_runners=True)
    async with fake.serve(), asc.ScaleSetClient(fake.config_url("acme"), fake.pat()) as client:
        group: asc.ListenerGroup[int] = asc.ListenerGroup(start_jitter=0.1, restart_backoff=QUICK_RESTARTS)
        scalers: dict[int, JitScaler] = {}
        for i in range(20):
            scale_set = await client.create_scale_set(f"set-{i}", labels=[f"set-{i}"])
            scalers[i] = scaler = JitScaler(client, scale_set.id)
            group.add(i, asc.Listener(client, scale_set.id, scaler, max_runners=2))
        async with anyio.create_task_group() as tg:
            tg.start_soon(group.run)
            await eventually(lambda: all(s.session_open for s in group.status().values()))
            fake.delete_scale_set(scalers[0].scale_set_id)
            await eventually(lambda: group.status()[0].restarts >= 2)
            for i in range(1, 20):
                fake.enqueue_job(labels=[f"set-{i}"], repository="acme/app")
            await eventually(lambda: all(scalers[i].completed for i in range(1, 20)))
            gone = group.status()[0]
            assert not gone.session_open
            assert gone.last_error is not None
            assert "ScaleSetNotFoundError" in gone.last_error
            assert all(group.status()[i].restarts == 0 for i in range(1, 20))
            tg.cancel_scope.cancel()
    assert completed_jobs(fake) == 19
    assert all(s.session_owner is None for s in fake.snapshot().scale_sets)


class InFlightPolls:
    """Wraps the fake's ASGI app: counts the long polls it holds at once."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.now = self.peak = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        poll = (
            scope.get("type") == "http"
            and scope.get("method") == "GET"
            and scope.get("path", "").endswith("/message")
        )
        if not poll:
            await self.app(scope, receive, send)
            return
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= 1


async def test_two_hundred_sessions_on_a_client_it_owns_all_park_their_long_polls() -> None:
    """httpx's default pool stops at 100 connections: the polls get a pool of their own."""
    # A hold far longer than a loaded 2-core machine needs to park all 200 (the check returns
    # as soon as they are): a pool of 100 would park 100, then the rest only a hold later.
    fake = FakeGitHub(poll_hold=20.0, runner_key_size=1024)
    polls = InFlightPolls(fake.asgi)
    fake.asgi = polls  # type: ignore[assignment]  # serve() serves whatever app is here
    async with fake.serve(), asc.ScaleSetClient(fake.config_url("acme"), fake.pat()) as client:
        ids = [(await client.create_scale_set(f"set-{i}")).id for i in range(200)]
        sessions = [client.session(i, owner="pool-test") for i in ids]
        async with anyio.create_task_group() as tg:
            for session in sessions:
                tg.start_soon(session.open)
        try:
            async with anyio.create_task_group() as tg:
                for session in sessions:
                    tg.start_soon(partial(session.get_message, max_capacity=1))
                # all 200 parked at once, within one hold (a pool of 100 would park 100, then 100)
                with anyio.move_on_after(18.0):
                    await eventually(lambda: polls.peak == 200)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                for session in sessions:
                    await session.close()
    assert polls.peak == 200, f"only {polls.peak} of 200 long polls were parked at once"
