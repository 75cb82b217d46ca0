"""RunnerClient against a scripted broker and run service (docs/protocol.md, "Sessions",
"Polling and runner messages", "Acquire, renew, complete")."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

from actions_scaleset import (
    BrokerRunnerNotFoundError,
    InvalidResponseError,
    OAuthError,
    RunnerSessionConflictError,
    RunServiceError,
    ServerError,
)
from actions_scaleset.runner import JobRequest, RunnerClient, RunnerJobRequest, RunnerRefresh
from tests.runner.conftest import make_config
from tests.runner.fakes import (
    JOB_TOKEN,
    REQUEST_ID,
    Sleeper,
    job_request,
    message,
    runner_env,
    wait_until,
)
from tests.support import RUNNER_FIXTURES, load_fixture

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

pytestmark = pytest.mark.anyio


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


async def next_request(runner: RunnerClient) -> JobRequest:
    async with contextlib.aclosing(runner.job_requests()) as requests:
        return await requests.__anext__()


async def test_entering_opens_a_broker_session_with_the_runners_identity(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _):
        async with runner:
            assert runner.session_id == "5e55e55e-0000-4000-8000-000000000001"
            request = broker.session.calls.last.request
            assert body(request) == load_fixture("broker_session_create_request.json", RUNNER_FIXTURES)
            assert request.headers["accept"] == "application/json"  # no api-version for the broker
            assert request.headers["authorization"] == "Bearer RUNNER-ACCESS-TOKEN-1"

        assert broker.delete_session.call_count == 1
        delete = broker.delete_session.calls.last.request
        assert delete.content == b""
        assert delete.url.query == b""  # the token names the session (docs/protocol.md, "Sessions")


async def test_a_job_flows_from_request_to_completion(rsa_key: RSAPrivateKey) -> None:
    async with (
        runner_env(make_config(rsa_key)) as (runner, broker, _, _),
        runner,
        contextlib.AsyncExitStack() as stack,
    ):
        broker.push(job_request())
        requests = await stack.enter_async_context(contextlib.aclosing(runner.job_requests()))
        request = await requests.__anext__()

        assert isinstance(request, RunnerJobRequest)
        assert request.runner_request_id == REQUEST_ID
        ack = broker.ack.calls.last.request
        assert body(ack) == load_fixture("broker_acknowledge_request.json", RUNNER_FIXTURES)["body"]
        assert dict(ack.url.params) == {
            "sessionId": "5e55e55e-0000-4000-8000-000000000001",
            "status": "Online",
            "runnerVersion": "2.336.0",
            "os": "Linux",
            "architecture": "X64",
        }
        assert dict(broker.polls[0].url.params) == {
            "sessionId": "5e55e55e-0000-4000-8000-000000000001",
            "status": "Online",
            "runnerVersion": "2.336.0",
            "os": "Linux",
            "architecture": "X64",
            "disableUpdate": "true",
        }

        job = await runner.acquire_job(request)

        acquire = broker.acquire.calls.last.request
        assert body(acquire) == load_fixture("run_acquirejob_request.json", RUNNER_FIXTURES)
        assert acquire.headers["authorization"] == "Bearer RUNNER-ACCESS-TOKEN-1"
        renew = broker.renew.calls.last.request
        assert body(renew) == {"planId": job.plan_id, "jobId": job.job_id}
        assert renew.headers["authorization"] == f"Bearer {JOB_TOKEN}"  # the job token, not the runner's
        assert job.locked_until is not None
        assert runner.status == "Busy"
        await wait_until(lambda: broker.last_status() == "Busy")

        broker.push(message("JobCancellation", {"jobId": job.job_id, "timeout": "00:05:00"}))
        with anyio.fail_after(5):
            await job.cancelled.wait()
        assert job.cancel_reason == "cancelled by the server"

        await job.complete("canceled", outputs={"answer": "42"})

        complete = broker.complete.calls.last.request
        assert complete.headers["authorization"] == f"Bearer {JOB_TOKEN}"
        assert body(complete) == {
            "planId": job.plan_id,
            "jobId": job.job_id,
            "conclusion": "canceled",
            "outputs": {"answer": {"value": "42", "isSecret": False}},
            "stepResults": [],
            "annotations": [],
            "telemetry": [],
            "billingOwnerId": "O_SYNTHETIC",
        }
        assert runner.jobs == {}
        assert str(runner.status) == "Online"
        # An ephemeral runner is done after its one job.
        with anyio.fail_after(5):
            assert [r async for r in requests] == []


async def test_a_request_that_need_not_be_acknowledged_is_not(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        broker.push(job_request(should_acknowledge=False))
        await next_request(runner)

        assert broker.ack.call_count == 0


async def test_a_failed_acknowledgement_is_logged_and_the_job_still_offered(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        broker.ack.mock(return_value=httpx.Response(500))
        broker.push(job_request())

        request = await next_request(runner)

        assert request.runner_request_id == REQUEST_ID
        assert broker.ack.call_count == 1  # best effort: never retried


async def test_acknowledge_job_not_found_ends_an_ephemeral_runner(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        error = load_fixture("broker_error_acknowledge_job_not_found.json", RUNNER_FIXTURES)
        broker.ack.mock(return_value=httpx.Response(404, json=error))
        broker.push(job_request())

        with anyio.fail_after(5):
            assert [r async for r in runner.job_requests()] == []


@pytest.mark.parametrize("status", [404, 409, 422])
async def test_acquire_404_409_422_are_typed_and_never_retried(rsa_key: RSAPrivateKey, status: int) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, sleeper), runner:
        error = load_fixture("run_service_error_not_found.json", RUNNER_FIXTURES) | {"statusCode": status}
        broker.acquire.mock(return_value=httpx.Response(status, json=error))
        broker.push(job_request())
        request = await next_request(runner)

        with pytest.raises(RunServiceError) as caught:
            await runner.acquire_job(request)

        assert caught.value.status_code == status
        assert broker.acquire.call_count == 1
        assert broker.renew.call_count == 0
        assert runner.status == "Online"
        broker.push(httpx.Response(202))  # the poll after the failure is throttled: 1 s, 2 s ... 60 s
        await wait_until(lambda: 1.0 in sleeper.slept)


async def test_acquire_without_a_run_service_body_is_still_a_run_service_error(
    rsa_key: RSAPrivateKey,
) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        broker.acquire.mock(return_value=httpx.Response(409))
        broker.push(job_request())
        request = await next_request(runner)

        with pytest.raises(RunServiceError, match="another runner already acquired the job"):
            await runner.acquire_job(request)


async def test_acquire_5xx_is_retried(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        broker.acquire.side_effect = [
            httpx.Response(503),
            httpx.Response(
                200, json=load_fixture("run_acquirejob_response_job_message.json", RUNNER_FIXTURES)
            ),
        ]
        broker.push(job_request())
        request = await next_request(runner)

        job = await runner.acquire_job(request)

        assert broker.acquire.call_count == 2
        await job.complete()


async def test_a_job_whose_first_renewal_fails_is_not_held(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, sleeper), runner:
        broker.renew.mock(return_value=httpx.Response(500))
        broker.push(job_request())
        request = await next_request(runner)

        with pytest.raises(ServerError):
            await runner.acquire_job(request)

        assert broker.renew.call_count == 5
        assert runner.jobs == {}
        assert sleeper.slept == [1.0, 1.0, 1.0, 1.0]


async def test_a_bad_acquire_body_is_a_typed_error(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        broker.acquire.mock(return_value=httpx.Response(200, json={"jobId": "x"}))
        broker.push(job_request())
        request = await next_request(runner)

        with pytest.raises(
            InvalidResponseError, match="the job message has no `SystemVssConnection`"
        ) as caught:
            await runner.acquire_job(request)

        assert "acquirejob" in str(caught.value)


async def test_a_409_on_session_create_is_retried_every_30_seconds(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, sleeper):
        session = load_fixture("broker_session_create_response.json", RUNNER_FIXTURES)
        broker.session.side_effect = [
            httpx.Response(409),
            httpx.Response(409),
            httpx.Response(201, json=session),
        ]

        async with runner:
            assert runner.session_id == session["sessionId"]

        assert sleeper.slept == [30.0, 30.0]


async def test_a_lasting_409_gives_up_after_four_minutes(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, sleeper):
        broker.session.mock(return_value=httpx.Response(409, json={"message": "session exists"}))

        with pytest.raises(RunnerSessionConflictError, match="already has an active session") as caught:
            await runner.__aenter__()

        assert sum(sleeper.slept) <= 240.0
        assert sum(sleeper.slept) >= 210.0
        assert "waited 4 min 0 s" in str(caught.value)
        assert broker.delete_session.call_count == 0


async def test_the_conflict_wait_is_configurable(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key), session_conflict_timeout=60.0) as (
        runner,
        broker,
        _,
        sleeper,
    ):
        broker.session.mock(return_value=httpx.Response(409))

        with pytest.raises(RunnerSessionConflictError):
            await runner.__aenter__()

        assert sleeper.slept == [30.0, 30.0]


async def test_a_deleted_registration_fails_session_create(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _):
        error = load_fixture("oauth_token_error_lifetime.json", RUNNER_FIXTURES)
        broker.token.side_effect = None
        broker.token.mock(return_value=httpx.Response(400, json=error))

        with pytest.raises(OAuthError) as caught:
            await runner.__aenter__()

        assert caught.value.registration_deleted


async def test_clock_skew_on_the_token_is_retried(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, sleeper):
        skew = {"error": "invalid_client", "error_description": "Current server time is 2026-06-30T15:37:11Z"}
        original: Any = broker.token.side_effect
        broker.token.side_effect = [httpx.Response(400, json=skew), original]

        async with runner:
            assert runner.session_id is not None

        assert sleeper.slept == [30.0]


async def test_runner_session_invalid_on_poll_recreates_the_session(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        error = load_fixture("broker_error_runner_session_invalid.json", RUNNER_FIXTURES)
        broker.push(httpx.Response(400, json=error), job_request())

        request = await next_request(runner)

        assert request.runner_request_id == REQUEST_ID
        assert broker.session.call_count == 2


async def test_runner_session_invalid_is_fatal_with_skip_session_recover(rsa_key: RSAPrivateKey) -> None:
    config = make_config(rsa_key, skip_session_recover=True)
    async with runner_env(config) as (runner, broker, _, _), runner:
        error = load_fixture("broker_error_runner_session_invalid.json", RUNNER_FIXTURES)
        broker.push(httpx.Response(400, json=error))

        with pytest.raises(Exception, match="RunnerSessionInvalid"):
            await next_request(runner)


async def test_runner_not_found_on_poll_is_raised_from_job_requests(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        error = {"source": "actions-broker-listener", "errorKind": "RunnerNotFound", "statusCode": 404}
        broker.push(httpx.Response(404, json=error))

        with pytest.raises(BrokerRunnerNotFoundError):
            await next_request(runner)


async def test_failed_polls_back_off_then_give_up(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key), max_poll_failures=3) as (runner, broker, _, sleeper), runner:
        for _ in range(3 * 5):
            broker.push(httpx.Response(502))

        with pytest.raises(ServerError):
            await next_request(runner)

        # each poll is retried 4 times (5-15 s), the listener waits 15-30 s between polls
        assert [s for s in sleeper.slept if s >= 15.0 and s not in (15.0,)] == []
        assert sleeper.slept.count(15.0) >= 2


async def test_empty_and_broken_poll_bodies_mean_no_message(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        broker.push(
            httpx.Response(202),
            httpx.Response(200),
            httpx.Response(200, content=b"{broken"),
            httpx.Response(200, json={"messageType": "RunnerJobRequest", "body": "{}"}),
            job_request(),
        )

        request = await next_request(runner)

        assert request.runner_request_id == REQUEST_ID
        assert len(broker.polls) >= 5


async def test_force_token_refresh_fetches_a_new_token(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        broker.push(message("ForceTokenRefresh", "", 78), job_request(should_acknowledge=False))
        await next_request(runner)

        assert broker.token.call_count == 2
        assert broker.polls[-1].headers["authorization"] == "Bearer RUNNER-ACCESS-TOKEN-2"


async def test_an_expiring_token_is_replaced_before_the_next_poll(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, sleeper):
        broker.token_lifetime = 600
        async with runner, contextlib.aclosing(runner.job_requests()) as requests:
            await wait_until(lambda: len(broker.polls) == 1)
            sleeper.now += 600
            broker.push(httpx.Response(202))
            await wait_until(lambda: len(broker.polls) == 2)
            broker.push(job_request(should_acknowledge=False))
            await requests.__anext__()

        assert [p.headers["authorization"] for p in broker.polls[:2]] == [
            "Bearer RUNNER-ACCESS-TOKEN-1",
            "Bearer RUNNER-ACCESS-TOKEN-2",
        ]


async def test_a_401_on_poll_refreshes_the_token_once(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        broker.push(httpx.Response(401), job_request(should_acknowledge=False))

        await next_request(runner)

        assert broker.token.call_count == 2


async def test_a_runner_refresh_is_reported_not_acted_on(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, router, _), runner:
        refresh = load_fixture("broker_message_runner_refresh.json", RUNNER_FIXTURES)
        broker.push(httpx.Response(200, json=refresh), job_request(should_acknowledge=False))

        await next_request(runner)

        assert isinstance(runner.update_offer, RunnerRefresh)
        assert runner.update_offer.target_version == "2.337.0"
        assert all("releases/download" not in str(call.request.url) for call in router.calls)


async def test_unknown_messages_are_skipped(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        broker.push(message("SomethingNew", {"x": 1}), job_request(should_acknowledge=False))

        assert (await next_request(runner)).runner_request_id == REQUEST_ID


async def test_a_broker_migration_moves_polling_to_the_new_broker(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, router, _), runner:
        answers = [job_request(False)]

        async def poll(request: httpx.Request) -> httpx.Response:
            if answers:
                return answers.pop()
            await anyio.sleep_forever()
            raise AssertionError

        other = router.get("https://broker2.example/message").mock(side_effect=poll)
        router.delete("https://broker2.example/session").mock(return_value=httpx.Response(204))
        broker.push(message("BrokerMigration", {"brokerBaseUrl": "https://broker2.example"}, None))

        request = await next_request(runner)

        assert request.runner_request_id == REQUEST_ID
        assert other.calls.last.request.url.params["sessionId"] == runner.session_id


async def test_runner_shutdown_ends_the_iterator_and_keeps_the_session(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _):
        async with runner:
            broker.push(message("RunnerShutdown", {"reason": "OperatingSystemShutdown"}))
            with anyio.fail_after(5):
                assert [r async for r in runner.job_requests()] == []
            assert runner.shutdown_reason == "OperatingSystemShutdown"

        assert broker.delete_session.call_count == 0


async def test_an_ephemeral_runner_leaves_a_second_job_request_alone(rsa_key: RSAPrivateKey) -> None:
    async with (
        runner_env(make_config(rsa_key)) as (runner, broker, _, _),
        runner,
        contextlib.AsyncExitStack() as stack,
    ):
        broker.push(job_request())
        requests = await stack.enter_async_context(contextlib.aclosing(runner.job_requests()))
        job = await runner.acquire_job(await requests.__anext__())
        await wait_until(lambda: broker.last_status() == "Busy")

        broker.push(job_request(request_id="second"))
        await wait_until(lambda: len(broker.polls) >= 3)

        assert broker.ack.call_count == 1
        await job.complete()
        with anyio.fail_after(5):
            assert [r async for r in requests] == []


async def test_a_long_lived_runner_keeps_offering_jobs(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key, ephemeral=False)) as (runner, broker, _, _), runner:
        broker.push(job_request(should_acknowledge=False), job_request(False, request_id="second"))
        seen = []
        async with contextlib.aclosing(runner.job_requests()) as requests:
            async for request in requests:
                job = await runner.acquire_job(request)
                await job.complete()
                seen.append(request.runner_request_id)
                if len(seen) == 2:
                    break

        assert seen == [REQUEST_ID, "second"]


async def test_the_callers_exception_propagates_and_the_session_is_deleted(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _):

        async def fail_inside() -> None:
            async with runner:
                broker.push(job_request(False))
                await next_request(runner)
                raise KeyError("boom")

        with pytest.raises(KeyError, match="boom"):
            await fail_inside()

        assert broker.delete_session.call_count == 1


async def test_a_failed_session_delete_is_logged_not_raised(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _):
        broker.delete_session.mock(return_value=httpx.Response(500))
        async with runner:
            pass

        assert broker.delete_session.call_count == 1


async def test_job_requests_need_the_context_manager(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, _, _, _):
        with pytest.raises(RuntimeError, match="async with"):
            runner.job_requests()


async def test_sleeper_parks_long_waits() -> None:
    sleeper = Sleeper()
    with anyio.move_on_after(0.01):
        await sleeper.sleep(60)
    assert sleeper.slept == [60]


async def test_a_cancellation_before_acquire_cancels_the_job_when_acquired(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        job_id = load_fixture("run_acquirejob_response_job_message.json", RUNNER_FIXTURES)["jobId"]
        broker.push(job_request(), message("JobCancellation", {"jobId": job_id}))
        request = await next_request(runner)
        await wait_until(lambda: len(broker.polls) >= 3)

        job = await runner.acquire_job(request)

        assert job.cancelled.is_set()
        await job.complete("canceled")


async def test_a_job_still_held_at_exit_is_failed_not_left_running(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _):
        async with runner:
            broker.push(job_request())
            await runner.acquire_job(await next_request(runner))

        completed = body(broker.complete.calls.last.request)
        assert completed["conclusion"] == "failed"
        assert completed["annotations"] == [
            {"level": "failure", "message": "The runner stopped before the job completed."}
        ]
        assert broker.delete_session.call_count == 1
