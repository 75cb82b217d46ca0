"""Cancelling a listener leaks nothing: no session, no runner registration, no job unreported.

A cancel that lands after the server acted but before its answer arrived is the hard case:
the session it created, or the runner it registered, exists only on the server. The tests
hold such answers on their way back (a slow network), in-process to pick the moment, and
over loopback TCP at random moments, on asyncio and trio (docs/protocol.md, "Listener semantics").
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest

import actions_scaleset as asc
from actions_scaleset._http import HTTPCore
from actions_scaleset.testing import FakeGitHub, JobState, RunnerFleet
from actions_scaleset.testing._transport import InProcessTransport

pytestmark = [
    pytest.mark.anyio,
    # 1024-bit runner keys keep JIT configs quick; the key size is not under test here
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]

FAST_BACKOFF = asc.RetryPolicy(max_attempts=1_000_000, initial_delay=0.01, max_delay=0.05, jitter=0.5)
ROUNDS = 80
SEED = 20_251_129


async def fast_sleep(seconds: float) -> None:
    """Real retry code paths, without their real waits."""
    await anyio.sleep(min(seconds, 0.01))


def creates_session(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/sessions")


def registers_runner(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/generatejitconfig")


class SlowWayBack(httpx.AsyncBaseTransport):
    """The server answers at once; the answer reaches the client late.

    `hold(request)` says which answer to hold until `release` is set (the first one;
    `held` is set when it is waiting); `latency(request)` gives every answer's delay.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        hold: Callable[[httpx.Request], bool] = lambda request: False,
        latency: Callable[[httpx.Request], float] = lambda request: 0.0,
    ) -> None:
        self.inner = inner
        self.hold = hold
        self.latency = latency
        self.held = anyio.Event()
        self.release = anyio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        if self.hold(request) and not self.held.is_set():
            self.held.set()
            await self.release.wait()
        delay = self.latency(request)
        if delay > 0:
            await anyio.sleep(delay)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def scale_set_client(fake: FakeGitHub, transport: SlowWayBack) -> AsyncIterator[asc.ScaleSetClient]:
    async with (
        httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(30.0)) as http,
        asc.ScaleSetClient(
            fake.config_url("acme"), fake.pat(), http=HTTPCore(http, sleep=fast_sleep)
        ) as client,
    ):
        yield client


def fleet(client: asc.ScaleSetClient, tg: anyio.abc.TaskGroup, scale_set_id: int) -> RunnerFleet:
    return RunnerFleet(client, tg, scale_set_id=scale_set_id, runner_options={"session_retry_interval": 0.05})


def session_left(fake: FakeGitHub) -> bool:
    return any(s.session_owner is not None for s in fake.snapshot().scale_sets)


async def eventually(condition: Callable[[], bool], *, timeout: float = 20) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - polling state the fake does not signal
            await anyio.sleep(0.01)


class NoRunners:
    async def handle_desired_runner_count(self, count: int) -> int:
        return 0

    async def handle_job_started(self, job: asc.JobStarted) -> None:
        pass

    async def handle_job_completed(self, job: asc.JobCompleted) -> None:
        pass


# ---------------------------------------------------------------- one moment, chosen


async def test_a_cancel_while_the_session_create_answer_is_on_its_way_leaves_no_session() -> None:
    fake = FakeGitHub(poll_hold=0.05)
    transport = SlowWayBack(InProcessTransport(fake.asgi), hold=creates_session)
    async with scale_set_client(fake, transport) as client:
        scale_set = await client.ensure_scale_set("linux", labels=["linux"])
        async with anyio.create_task_group() as tg:
            tg.start_soon(asc.Listener(client, scale_set.id, NoRunners(), reconnect_backoff=FAST_BACKOFF).run)
            await transport.held.wait()  # the server made the session; its answer is on the way
            assert session_left(fake)
            tg.cancel_scope.cancel()
            transport.release.set()
        assert not session_left(fake)
        async with client.session(scale_set.id, owner="next-listener") as session:  # no 409
            assert session.session_id is not None
    assert [r.status for r in fake.requests_to("session.create")] == [200, 200]


async def test_a_cancel_while_scaling_at_start_leaves_no_runner_the_fleet_does_not_know() -> None:
    fake = FakeGitHub(poll_hold=0.05, runner_key_size=1024)
    transport = SlowWayBack(InProcessTransport(fake.asgi), hold=registers_runner)
    async with scale_set_client(fake, transport) as client:
        scale_set = await client.ensure_scale_set("linux", labels=["linux"])
        async with anyio.create_task_group() as runners:
            provisioner = fleet(client, runners, scale_set.id)
            async with anyio.create_task_group() as tg:
                listener = asc.Listener(client, scale_set.id, provisioner, min_runners=2, max_runners=2)
                tg.start_soon(listener.run)
                await transport.held.wait()  # the first runner is registered; the answer is on its way
                tg.cancel_scope.cancel()
                transport.release.set()
            assert provisioner.live == len(fake.snapshot().runners) == 2  # it finished scaling, then stopped
            await provisioner.handle_desired_runner_count(0)
            runners.cancel_scope.cancel()
    assert fake.snapshot().runners == ()
    assert not session_left(fake)


async def test_a_cancel_while_the_fleet_registers_a_runner_leaves_no_runner() -> None:
    # The fleet is safe on its own too, for a caller that does not shield it as the listener does.
    fake = FakeGitHub(poll_hold=0.05, runner_key_size=1024)
    transport = SlowWayBack(InProcessTransport(fake.asgi), hold=registers_runner)
    async with scale_set_client(fake, transport) as client:
        scale_set = await client.ensure_scale_set("linux", labels=["linux"])
        async with anyio.create_task_group() as runners:
            provisioner = fleet(client, runners, scale_set.id)
            async with anyio.create_task_group() as tg:
                tg.start_soon(provisioner.handle_desired_runner_count, 1)
                await transport.held.wait()  # runner-1 is registered; the answer is on its way
                tg.cancel_scope.cancel()
                transport.release.set()
            assert provisioner.live == 0
            runners.cancel_scope.cancel()
    assert fake.snapshot().runners == ()
    assert provisioner.removed == 1


# ---------------------------------------------------------------- random moments, over TCP


async def test_cancelling_a_listener_at_random_moments_over_tcp_leaks_nothing_and_loses_no_job() -> None:
    schedule = random.Random(SEED)
    network = random.Random(SEED + 1)

    def latency(request: httpx.Request) -> float:
        # every answer a little late; a new session's answer late enough for a cancel to land on it
        return network.uniform(0.0, 0.02 if creates_session(request) else 0.004)

    fake = FakeGitHub(runner_key_size=1024, poll_hold=0.05)
    transport = SlowWayBack(httpx.AsyncHTTPTransport(), latency=latency)
    jobs = []
    async with fake.serve(), scale_set_client(fake, transport) as client:
        scale_set = await client.ensure_scale_set("linux", labels=["linux"])
        async with anyio.create_task_group() as runners:
            provisioner = fleet(client, runners, scale_set.id)

            def listener(min_runners: int) -> asc.Listener:
                return asc.Listener(
                    client,
                    scale_set.id,
                    provisioner,
                    min_runners=min_runners,
                    max_runners=6,
                    reconnect_backoff=FAST_BACKOFF,
                )

            for _ in range(ROUNDS):
                for _ in range(schedule.choice([0, 0, 1, 2])):
                    jobs.append(fake.enqueue_job(labels=["linux"], repository="acme/app"))
                # half the cancels land while the listener starts (session, scaling), half later
                moment = schedule.uniform(0.0, schedule.choice([0.04, 0.25]))
                with anyio.fail_after(10):  # a cancelled listener stops promptly
                    with anyio.move_on_after(moment):
                        await listener(schedule.choice([0, 1, 2])).run()
                assert not session_left(fake), "a cancelled listener left its session behind"

            def all_done() -> bool:
                finished = {job.runner_request_id for job in fake.snapshot().jobs_in(JobState.COMPLETED)}
                reported = {job.runner_request_id for job in provisioner.completed}
                return len(finished) == len(jobs) and reported >= finished and provisioner.live == 0

            # then one listener that is not cancelled until every job ran, was reported, and the
            # fleet is idle
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener(0).run)
                await eventually(all_done)
                tg.cancel_scope.cancel()
            runners.cancel_scope.cancel()
        snapshot = fake.snapshot()
    assert len(jobs) > 10
    assert snapshot.runners == (), "runner registrations were left behind"
    assert not any(s.session_owner for s in snapshot.scale_sets)
    assert [job.result for job in snapshot.jobs] == ["succeeded"] * len(jobs)
    every_job = {job.runner_request_id for job in snapshot.jobs}
    assert {job.runner_request_id for job in provisioner.started} == every_job
    assert {job.runner_request_id for job in provisioner.completed} == every_job
    assert provisioner.failures == []
