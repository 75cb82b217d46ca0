"""The runner side against FakeGitHub: a RunnerClient from generate_jit_config, end to end.

docs/protocol.md, "The runner side" (the minimal runner algorithm), docs/protocol.md, "Wire format"
(renewal), docs/protocol.md, "Wire format"
(cancellation), docs/protocol.md, "User-Agent", "Retries and timeouts" (session conflicts),
docs/protocol.md, "Credentials and where they go" (OAuth token refresh).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

import actions_scaleset as asc
from actions_scaleset._http import HTTPCore
from actions_scaleset.runner import JitConfig, RunnerClient
from actions_scaleset.testing import FakeGitHub, JobState

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]


async def fast_sleep(seconds: float) -> None:
    await anyio.sleep(min(seconds, 0.01))


@asynccontextmanager
async def scale_set_with_a_job(
    fake: FakeGitHub,
) -> AsyncIterator[tuple[asc.ScaleSetClient, asc.JitRunnerConfig, asc.MessageSession]]:
    """A scale set whose listener acquired one job, and a JIT runner for it."""
    async with fake.http_client() as http:
        client = asc.ScaleSetClient(
            fake.config_url("acme"), fake.pat(), http=HTTPCore(http, sleep=fast_sleep)
        )
        scale_set = await client.ensure_scale_set("linux", labels=["linux"])
        fake.enqueue_job(labels=["linux"], repository="acme/app", display_name="build")
        async with client.session(scale_set.id, owner="listener") as session:
            message = await session.get_message(max_capacity=1)
            assert message is not None
            await session.acquire_jobs([job.runner_request_id for job in message.jobs_available])
            await session.delete_message(message.message_id)
            jit = await client.generate_jit_config(scale_set.id, name="runner-1")
            yield client, jit, session


def runner(
    fake: FakeGitHub, client: asc.ScaleSetClient, jit: asc.JitRunnerConfig, **options: float
) -> RunnerClient:
    return RunnerClient(JitConfig.decode(jit.encoded_jit_config), http=client.http, **options)  # type: ignore[arg-type]


async def test_a_jit_runner_takes_renews_and_completes_its_job_and_the_listener_sees_it() -> None:
    fake = FakeGitHub(runner_key_size=1024, poll_hold=0.05)
    async with scale_set_with_a_job(fake) as (client, jit, session), runner(fake, client, jit) as rc:
        async for request in rc.job_requests():
            job = await rc.acquire_job(request)
            assert job.display_name == "build"
            await job.complete("succeeded")
        events: list[str] = []
        last = 0
        with anyio.fail_after(10):
            while len(events) < 2:
                message = await session.get_message(last, max_capacity=1)
                if message is not None:
                    events += [type(e).__name__ for e in (*message.jobs_started, *message.jobs_completed)]
                    await session.delete_message(message.message_id)
                    last = message.message_id
    assert events == ["JobStarted", "JobCompleted"]
    assert [r.status for r in fake.requests_to("run.renew")][:1] == [200]  # the first renewal must succeed
    (finished,) = fake.snapshot().jobs
    assert finished.state is JobState.COMPLETED
    assert finished.result == "succeeded"


async def test_a_cancellation_reaches_the_job() -> None:
    fake = FakeGitHub(runner_key_size=1024, poll_hold=0.05)
    async with scale_set_with_a_job(fake) as (client, jit, _), runner(fake, client, jit) as rc:
        async for request in rc.job_requests():
            job = await rc.acquire_job(request)
            fake.cancel_job(fake.snapshot().jobs[0].job_id)
            with anyio.fail_after(10):
                await job.cancelled.wait()
            await job.complete("canceled")
    assert fake.snapshot().jobs[0].result == "canceled"


async def test_a_second_session_gets_409_then_succeeds_once_the_first_is_gone() -> None:
    fake = FakeGitHub(runner_key_size=1024, poll_hold=0.05)
    async with scale_set_with_a_job(fake) as (client, jit, _):
        first = runner(fake, client, jit)
        second = runner(fake, client, jit, session_retry_interval=0.05)
        entered = anyio.Event()

        async def enter_second() -> None:
            async with second:
                entered.set()

        async with anyio.create_task_group() as tg:
            async with first:
                tg.start_soon(enter_second)
                with anyio.fail_after(10):
                    while not any(r.status == 409 for r in fake.requests_to("broker.session.create")):  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                assert not entered.is_set()
            with anyio.fail_after(10):
                await entered.wait()
    statuses = [r.status for r in fake.requests_to("broker.session.create")]
    assert statuses[0] == 201
    assert 409 in statuses
    assert statuses[-1] == 201


async def test_runner_token_expiry_mid_job_is_survived() -> None:
    fake = FakeGitHub(runner_key_size=1024, poll_hold=0.05)
    async with scale_set_with_a_job(fake) as (client, jit, _), runner(fake, client, jit) as rc:
        async for request in rc.job_requests():
            job = await rc.acquire_job(request)
            fake.expire_tokens("runner")  # the OAuth token; the job token lives as long as the job
            await anyio.sleep(0.2)  # polls go on while the job is held
            await job.complete("succeeded")
    assert any(r.status == 401 and r.token == "runner" for r in fake.requests)
    assert len([r for r in fake.requests_to("oauth.token") if r.status == 200]) >= 2
    assert fake.snapshot().jobs[0].result == "succeeded"
