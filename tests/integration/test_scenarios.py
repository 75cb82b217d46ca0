"""End to end: the real clients (listener, session, runner) against FakeGitHub.

Each scenario runs in-process (ASGI transport) and over loopback TCP (hypercorn),
on asyncio and on trio. The provisioner under test starts one RunnerClient per
runner it is asked for, exactly as a VM or pod would run the official runner.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest
from anyio.abc import TaskGroup

import actions_scaleset as asc
from actions_scaleset._http import HTTPCore
from actions_scaleset.testing import FakeGitHub, JobState, RunnerFleet

pytestmark = [
    pytest.mark.anyio,
    # 1024-bit runner keys keep 100 JIT configs quick; the key size is not under test here
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]

FAST_BACKOFF = asc.RetryPolicy(max_attempts=1_000_000, initial_delay=0.01, max_delay=0.05, jitter=0.5)
SCENARIO_TIMEOUT = 60


async def fast_sleep(seconds: float) -> None:
    """Real retry code paths, without their real waits."""
    await anyio.sleep(min(seconds, 0.01))


@asynccontextmanager
async def connected(fake: FakeGitHub, transport: str) -> AsyncIterator[httpx.AsyncClient]:
    if transport == "tcp":
        async with fake.serve(), httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as http:
            yield http
    else:
        async with fake.http_client() as http:
            yield http


async def eventually(condition: Callable[[], bool], *, timeout: float = SCENARIO_TIMEOUT) -> None:
    """Wait until the fake's state (or the scaler's) says so; fail after `timeout` seconds."""
    with anyio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - polling state the fake does not signal
            await anyio.sleep(0.02)


async def run_until(
    condition: Callable[[], bool], listener: asc.Listener, tg: TaskGroup, *, timeout: float = SCENARIO_TIMEOUT
) -> None:
    tg.start_soon(listener.run)
    await eventually(condition, timeout=timeout)


def fleet(client: asc.ScaleSetClient, tg: TaskGroup, scale_set_id: int = 0) -> RunnerFleet:
    """The provisioner under test: in-process RunnerClients, as VMs would run the runner."""
    return RunnerFleet(client, tg, scale_set_id=scale_set_id, runner_options={"session_retry_interval": 0.05})


def scale_set_client(fake: FakeGitHub, http: httpx.AsyncClient) -> asc.ScaleSetClient:
    return asc.ScaleSetClient(fake.config_url("acme"), fake.pat(), http=HTTPCore(http, sleep=fast_sleep))


Scenario = Callable[[FakeGitHub, asc.ScaleSetClient, httpx.AsyncClient], Awaitable[None]]


@pytest.fixture(params=["in-process", "tcp"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def completed_jobs(fake: FakeGitHub) -> int:
    return len(fake.snapshot().jobs_in(JobState.COMPLETED))


async def test_a_hundred_jobs_all_complete_and_nothing_is_left_behind(transport: str) -> None:
    fake = FakeGitHub(runner_key_size=1024, poll_hold=0.05)
    async with connected(fake, transport) as http, scale_set_client(fake, http) as client:
        scale_set = await client.ensure_scale_set("linux", labels=["linux"])
        for _ in range(100):
            fake.enqueue_job(labels=["linux"], repository="acme/app")
        async with anyio.create_task_group() as tg:
            provisioner = fleet(client, tg, scale_set.id)
            listener = asc.Listener(
                client,
                scale_set.id,
                provisioner,
                min_runners=0,
                max_runners=20,
                reconnect_backoff=FAST_BACKOFF,
            )
            await run_until(lambda: len(provisioner.completed) == 100 and provisioner.live == 0, listener, tg)
            tg.cancel_scope.cancel()
    snapshot = fake.snapshot()
    assert [job.result for job in snapshot.jobs] == ["succeeded"] * 100
    assert [job.result for job in provisioner.completed] == ["succeeded"] * 100
    assert snapshot.runners == ()
    assert all(s.session_owner is None for s in snapshot.scale_sets)
    assert len(fake.requests_to("session.delete")) == 1
    assert max(s.max_capacity or 0 for s in snapshot.scale_sets) == 20
    assert provisioner.failures == []


async def test_a_stale_session_at_start_is_waited_out(transport: str) -> None:
    fake = FakeGitHub(runner_key_size=1024, poll_hold=0.05, session_timeout=0.5)
    async with connected(fake, transport) as http, scale_set_client(fake, http) as client:
        scale_set = await client.ensure_scale_set("linux", labels=["linux"])
        crashed = client.session(scale_set.id, owner="crashed-listener")
        await crashed.open()  # and never closed: a listener that died
        fake.enqueue_job(labels=["linux"], repository="acme/app")
        async with anyio.create_task_group() as tg:
            provisioner = fleet(client, tg, scale_set.id)
            listener = asc.Listener(
                client,
                scale_set.id,
                provisioner,
                max_runners=5,
                reconnect_backoff=FAST_BACKOFF,
                session_options={
                    "conflict_backoff": asc.RetryPolicy(initial_delay=0.1, max_delay=0.1, jitter=0)
                },
            )
            await run_until(lambda: completed_jobs(fake) == 1, listener, tg)
            tg.cancel_scope.cancel()
    conflicts = [r for r in fake.requests_to("session.create") if r.status == 409]
    assert conflicts, "the stale session was there when the listener started"
    assert fake.requests_to("session.create")[-1].status == 200


async def test_message_queue_token_expiry_mid_run_is_refreshed(transport: str) -> None:
    fake = FakeGitHub(runner_key_size=1024, poll_hold=0.05)
    async with connected(fake, transport) as http, scale_set_client(fake, http) as client:
        scale_set = await client.ensure_scale_set("linux", labels=["linux"])
        async with anyio.create_task_group() as tg:
            provisioner = fleet(client, tg, scale_set.id)
            listener = asc.Listener(
                client, scale_set.id, provisioner, max_runners=5, reconnect_backoff=FAST_BACKOFF
            )
            fake.enqueue_job(labels=["linux"], repository="acme/app")
            await run_until(lambda: completed_jobs(fake) == 1, listener, tg)
            fake.expire_tokens("message_queue")
            fake.enqueue_job(labels=["linux"], repository="acme/app")
            await eventually(lambda: completed_jobs(fake) == 2)
            tg.cancel_scope.cancel()
    # whichever queue call came first after the expiry (poll, ack or acquire) got the 401
    assert any(r.status == 401 and r.token == "message_queue" for r in fake.requests)
    assert [r.status for r in fake.requests_to("session.refresh")] == [200]
    assert len([r for r in fake.requests_to("session.create") if r.status == 200]) == 1


async def test_a_scale_set_deleted_mid_run_is_recreated(transport: str) -> None:
    fake = FakeGitHub(runner_key_size=1024, poll_hold=0.05)
    async with (
        connected(fake, transport) as http,
        scale_set_client(fake, http) as client,
        anyio.create_task_group() as tg,
    ):
        provisioner = fleet(client, tg)
        listener = asc.Listener(
            client,
            scaler=provisioner,
            max_runners=5,
            reconnect_backoff=FAST_BACKOFF,
            ensure=asc.EnsureScaleSet("linux", labels=["linux"]),
        )

        def scale_set_id() -> bool:
            provisioner.scale_set_id = listener.scale_set_id or 0
            return bool(listener.last_desired is not None and provisioner.scale_set_id)

        await run_until(scale_set_id, listener, tg)
        first = provisioner.scale_set_id
        fake.delete_scale_set(first)  # as GitHub does after 7 days without a listener
        fake.enqueue_job(labels=["linux"], repository="acme/app")
        await eventually(lambda: scale_set_id() and completed_jobs(fake) == 1)
        tg.cancel_scope.cancel()
    assert listener.scale_set_id is not None
    assert listener.scale_set_id != first
    assert [s.id for s in fake.snapshot().scale_sets] == [listener.scale_set_id]


async def test_five_xx_bursts_and_dropped_connections_lose_nothing(transport: str) -> None:
    fake = FakeGitHub(runner_key_size=1024, poll_hold=0.05)
    async with connected(fake, transport) as http, scale_set_client(fake, http) as client:
        scale_set = await client.ensure_scale_set("linux", labels=["linux"])
        for route, seed in [
            ("message", 1),
            ("message.delete", 2),
            ("acquire_jobs", 3),
            ("session.*", 4),
            ("broker.*", 5),
            ("run.*", 6),
            ("oauth.token", 7),
            ("jit_config", 8),
        ]:
            fake.faults.add(route=route, status=503, rate=0.1, times=None, seed=seed)
            fake.faults.add(route=route, drop=True, rate=0.05, times=None, seed=seed + 100)
        for _ in range(30):
            fake.enqueue_job(labels=["linux"], repository="acme/app")
        async with anyio.create_task_group() as tg:
            provisioner = fleet(client, tg, scale_set.id)
            listener = asc.Listener(
                client, scale_set.id, provisioner, max_runners=10, reconnect_backoff=FAST_BACKOFF
            )
            await run_until(lambda: completed_jobs(fake) == 30, listener, tg)
            tg.cancel_scope.cancel()
    assert any(r.status == 503 for r in fake.requests), "5xx answers were injected"
    assert any(r.status is None for r in fake.requests), "connections were dropped"
    assert [job.result for job in fake.snapshot().jobs] == ["succeeded"] * 30
