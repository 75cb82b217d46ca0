"""Lock renewal, step reporting, logs and completion (docs/protocol.md, "Acquire, renew, complete",
"Results service and logs")."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from actions_scaleset import NotFoundError, PermissionDeniedError, RunServiceError, Secret, ServerError
from actions_scaleset.runner import Annotation, Job, RunnerClient, Step
from actions_scaleset.runner._jobmessage import parse_job_message
from actions_scaleset.runner._jobs import (
    complete_job_body,
    first_renewal,
    keep_lock,
    mask_line,
    renewal_delay,
    step_result_payload,
    step_update_payload,
)
from tests.runner.conftest import make_config
from tests.runner.fakes import BLOB, JOB_TOKEN, FakeBroker, job_request, runner_env
from tests.support import RUNNER_FIXTURES, FakeClock, load_fixture

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 6, 30, 15, 37, 11, tzinfo=UTC)


def fixture(name: str) -> Any:
    return load_fixture(name, RUNNER_FIXTURES)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --------------------------------------------------------------------------- pure payloads


def test_step_updates_match_the_results_fixture() -> None:
    expected = fixture("results_workflow_steps_update_request.json")["steps"]
    steps = [
        Step(
            external_id=raw["external_id"],
            number=raw["number"],
            name=raw["name"],
            status="completed",
            conclusion="succeeded" if raw["conclusion"] == 2 else "failed",
            started_at=ts(raw["started_at"]),
            completed_at=ts(raw["completed_at"]),
        )
        for raw in expected
    ]

    assert [step_update_payload(step) for step in steps] == expected


@pytest.mark.parametrize(
    ("status", "conclusion", "wire"),
    [
        ("pending", None, (5, 0)),
        ("inProgress", None, (3, 0)),
        ("completed", "succeeded", (6, 2)),
        ("completed", "failed", (6, 3)),
        ("completed", "canceled", (6, 4)),
        ("completed", "skipped", (6, 7)),
        ("completed", "succeededWithIssues", (6, 2)),
        # ResultsHttpClient.ConvertResultToConclusion has no case for Abandoned: ConclusionUnknown.
        ("completed", "abandoned", (6, 0)),
    ],
)
def test_step_states_map_to_the_results_enums(status: Any, conclusion: Any, wire: tuple[int, int]) -> None:
    payload = step_update_payload(Step("id", 1, "s", status=status, conclusion=conclusion))

    assert (payload["status"], payload["conclusion"]) == wire


def test_a_step_update_sends_timestamps_that_are_not_set_as_null() -> None:
    # Contracts.Step has StartedAt/CompletedAt as plain [DataMember] strings, and the
    # JsonMediaTypeFormatter writes nulls: the keys are there, with null.
    pending = step_update_payload(Step("id", 1, "s"))
    running = step_update_payload(Step("id", 1, "s").start(T0))

    assert pending["started_at"] is None
    assert pending["completed_at"] is None
    assert running["started_at"] == "2026-06-30T15:37:11.000Z"
    assert running["completed_at"] is None


def test_step_results_match_the_completejob_fixture() -> None:
    expected = fixture("run_completejob_request.json")["stepResults"]
    steps = []
    for raw in expected:
        annotations = tuple(
            Annotation(
                message=a["message"],
                level=a["level"],
                start_line=a["startLine"],
                end_line=a["endLine"],
                step_number=a["stepNumber"],
            )
            for a in raw["annotations"]
        )
        steps.append(
            Step(
                external_id=raw["external_id"],
                number=raw["number"],
                name=raw["name"],
                status=raw["status"],
                conclusion=raw["conclusion"],
                started_at=ts(raw["started_at"]),
                completed_at=ts(raw["completed_at"]),
                action_name=raw.get("action_name"),
                type=raw.get("type"),
                annotations=annotations,
            )
        )

    assert [step_result_payload(step) for step in steps] == expected


def test_the_complete_body_matches_the_fixture() -> None:
    expected = fixture("run_completejob_request.json")
    message = parse_job_message(
        fixture("run_acquirejob_response_job_message.json")
        | {"jobId": expected["jobId"], "plan": {"planId": expected["planId"]}}
    )

    body = complete_job_body(
        message,
        "failed",
        telemetry=expected["telemetry"],
        step_results=[],
    )

    assert body == expected | {"stepResults": []}


def test_secret_outputs_are_flagged() -> None:
    message = parse_job_message(fixture("run_acquirejob_response_job_message.json"))

    body = complete_job_body(message, "succeeded", outputs={"a": "1", "b": Secret("2")})

    assert body["outputs"] == {"a": {"value": "1", "isSecret": False}, "b": {"value": "2", "isSecret": True}}


def test_an_unknown_conclusion_is_refused() -> None:
    message = parse_job_message(fixture("run_acquirejob_response_job_message.json"))

    with pytest.raises(ValueError, match="conclusion must be one of"):
        complete_job_body(message, "success")  # type: ignore[arg-type]


def test_steps_start_and_finish() -> None:
    step = Step("id", 1, "Run it").start(T0).finish("succeeded", T0 + timedelta(seconds=2))

    assert (step.status, step.conclusion, step.started_at, step.completed_at) == (
        "completed",
        "succeeded",
        T0,
        T0 + timedelta(seconds=2),
    )


@given(st.lists(st.text(min_size=1, max_size=8), max_size=5), st.text(max_size=40))
@example(secrets=["0", "\x00"], line="0")  # a secret that was once the test's own stand-in for a mask
def test_masking_removes_every_secret(secrets: list[str], line: str) -> None:
    ordered = sorted(set(secrets), key=len, reverse=True)
    masked = mask_line(line, ordered)

    for secret in ordered:
        if "*" not in secret:
            assert all(secret not in piece for piece in masked.split("***"))


# --------------------------------------------------------------------------- renewal policy


@pytest.mark.parametrize(("failures", "low", "high"), [(1, 5, 15), (5, 5, 15), (6, 15, 30), (20, 15, 30)])
def test_renewal_delays_follow_the_runner(failures: int, low: float, high: float) -> None:
    assert renewal_delay(failures, 0.0) == low
    assert renewal_delay(failures, 1.0) == high


def renewer(
    *outcomes: datetime | Exception | None,
) -> tuple[Callable[[], Awaitable[datetime | None]], list[int]]:
    calls: list[int] = []
    queue = list(outcomes)

    async def renew() -> datetime | None:
        calls.append(1)
        outcome = queue.pop(0) if queue else queue_end()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def queue_end() -> Exception:
        return ServerError("down", status_code=500)

    return renew, calls


async def test_the_first_renewal_retries_five_times_then_raises() -> None:
    clock = FakeClock()
    renew, calls = renewer()

    with pytest.raises(ServerError):
        await first_renewal(renew, sleep=clock.sleep, random=lambda: 0.5)

    assert len(calls) == 5
    assert clock.slept == [5.5, 5.5, 5.5, 5.5]


async def test_the_first_renewal_gives_up_at_once_when_the_job_is_gone() -> None:
    clock = FakeClock()
    renew, calls = renewer(RunServiceError("gone", status_code=404))

    with pytest.raises(RunServiceError):
        await first_renewal(renew, sleep=clock.sleep, random=lambda: 0.0)

    assert len(calls) == 1


async def test_the_lock_is_renewed_every_minute() -> None:
    clock = FakeClock(T0.timestamp())
    until = T0 + timedelta(minutes=10)
    renew, calls = renewer(until, until, until)

    with anyio.move_on_after(1):
        # after three renewals the fourth fails until the lock has expired
        reason = await keep_lock(renew, until, sleep=clock.sleep, clock=clock, random=lambda: 0.0)

    assert clock.slept[:4] == [60.0, 60.0, 60.0, 60.0]
    assert "expired" in reason
    assert len(calls) > 3


async def test_a_404_stops_renewal_at_once() -> None:
    clock = FakeClock(T0.timestamp())
    renew, calls = renewer(RunServiceError("gone", status_code=404))

    reason = await keep_lock(renew, T0, sleep=clock.sleep, clock=clock, random=lambda: 0.0)

    assert reason == "the job no longer exists on the server"
    assert len(calls) == 1


async def test_v1_job_not_found_stops_renewal_at_once() -> None:
    clock = FakeClock(T0.timestamp())
    body = {"typeKey": "TaskAgentJobNotFoundException", "message": "gone"}
    renew, _ = renewer(NotFoundError("gone", status_code=404, body=body))

    assert "no longer exists" in await keep_lock(
        renew, T0, sleep=clock.sleep, clock=clock, random=lambda: 0.0
    )


async def test_failed_renewals_are_retried_until_five_minutes_after_locked_until() -> None:
    clock = FakeClock(T0.timestamp())
    renew, _ = renewer()  # every renewal fails

    reason = await keep_lock(
        renew, T0 + timedelta(minutes=1), sleep=clock.sleep, clock=clock, random=lambda: 0.0
    )

    assert "expired" in reason
    assert clock.now >= (T0 + timedelta(minutes=6)).timestamp()
    assert clock.slept[1:6] == [5.0] * 5
    assert clock.slept[6] == 15.0


async def test_a_success_after_failures_resets_the_deadline() -> None:
    clock = FakeClock(T0.timestamp())
    error = ServerError("down", status_code=500)
    renew, _ = renewer(error, error, T0 + timedelta(hours=1), error)

    with anyio.move_on_after(1):
        await keep_lock(renew, T0, sleep=clock.sleep, clock=clock, random=lambda: 0.0)

    assert clock.now >= (T0 + timedelta(hours=1, minutes=5)).timestamp()


# --------------------------------------------------------------------------- jobs over HTTP


async def acquired(runner: RunnerClient, broker: FakeBroker) -> Job:
    broker.push(job_request())
    async with contextlib.aclosing(runner.job_requests()) as requests:
        request = await requests.__anext__()
    return await runner.acquire_job(request)


async def test_a_job_exposes_what_a_worker_needs(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        job = await acquired(runner, broker)

        assert job.plan_id == "7a0b3ee8-049d-459e-9aab-a558d241b0fc"
        assert job.job_id == "0215aca7-e825-533a-9d67-e18a65311193"
        assert job.display_name == "smoke"
        assert job.token == Secret(JOB_TOKEN)
        assert job.run_service_url == "https://run-actions-1-azure-eastus.actions.githubusercontent.com/177/"
        assert job.results_url == "https://results-receiver.actions.githubusercontent.com/"
        assert job.steps[0].name == "Identify the machine"
        assert job.variables["system.github.job"].value == "smoke"
        assert job.mask[1].value == "SYNTHETIC-GITHUB-TOKEN"
        assert job.mask_line("token SYNTHETIC-GITHUB-TOKEN here") == "token *** here"
        assert JOB_TOKEN not in repr(job)
        await job.complete()


async def test_step_updates_go_to_the_results_service_with_the_job_token(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        job = await acquired(runner, broker)
        step = Step.of(job.steps[0], 1).start(T0)

        await job.update_steps([step])
        await job.update_steps([step.finish("succeeded", T0)])

        first, second = (json.loads(call.request.content) for call in broker.steps.calls)
        assert first["workflow_run_backend_id"] == job.plan_id
        assert first["workflow_job_run_backend_id"] == job.job_id
        assert (first["change_order"], second["change_order"]) == (1, 2)
        assert first["steps"][0] == {
            "external_id": "9fb90ead-8a9f-41e3-ba77-aa6cd9982aa8",
            "number": 1,
            "name": "Identify the machine",
            "status": 3,
            "conclusion": 0,
            "started_at": "2026-06-30T15:37:11.000Z",
            "completed_at": None,
        }
        assert broker.steps.calls.last.request.headers["authorization"] == f"Bearer {JOB_TOKEN}"
        await job.complete()


async def test_a_step_log_is_uploaded_masked_to_the_signed_url_without_a_token(
    rsa_key: RSAPrivateKey,
) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        job = await acquired(runner, broker)

        count = await job.upload_step_log("a1b2c3d4-0001", ["hello", "secret SYNTHETIC-GITHUB-TOKEN\n"])

        assert count == 2
        signed = json.loads(broker.log_url.calls.last.request.content)
        assert signed == {
            "workflow_run_backend_id": job.plan_id,
            "workflow_job_run_backend_id": job.job_id,
            "step_backend_id": "a1b2c3d4-0001",
        }
        put = broker.blob.calls.last.request
        assert str(put.url) == BLOB
        assert put.content == b"hello\nsecret ***\n"
        assert put.headers["x-ms-blob-type"] == "BlockBlob"  # the fixture's storage type is Azure
        assert put.headers["content-type"] == "text/plain"  # as ResultsHttpClient's custom header
        assert "authorization" not in put.headers
        metadata = json.loads(broker.log_metadata.calls.last.request.content)
        assert metadata == signed | {"uploaded_at": "2026-07-08T20:00:00.000Z", "line_count": 2}
        await job.complete()


@pytest.mark.parametrize("storage", [{"blob_storage_type": "BLOB_STORAGE_TYPE_UNSPECIFIED"}, {}])
async def test_a_step_log_goes_up_without_x_ms_blob_type_when_the_storage_is_not_azure_blob(
    rsa_key: RSAPrivateKey, storage: dict[str, str]
) -> None:
    # ResultsHttpClient.UploadBlockFileAsync adds x-ms-blob-type only for BLOB_STORAGE_TYPE_AZURE.
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        job = await acquired(runner, broker)
        broker.log_url.mock(return_value=httpx.Response(200, json={"logs_url": BLOB, **storage}))

        await job.upload_step_log("a1b2c3d4-0001", ["hello"])

        put = broker.blob.calls.last.request
        assert "x-ms-blob-type" not in put.headers
        assert put.headers["content-type"] == "text/plain"
        assert put.content == b"hello\n"
        await job.complete()


async def test_a_failed_blob_upload_is_a_typed_error_without_the_signature(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        job = await acquired(runner, broker)
        broker.blob.mock(
            return_value=httpx.Response(
                403, text="sig=SIGNATURE", headers={"x-ms-error-code": "AuthenticationFailed"}
            )
        )

        with pytest.raises(PermissionDeniedError, match="AuthenticationFailed") as caught:
            await job.upload_step_log("s", ["x"])

        assert "SIGNATURE" not in str(caught.value)
        await job.complete()


async def test_complete_is_not_retried_on_404_and_releases_the_job(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        job = await acquired(runner, broker)
        error = fixture("run_service_error_not_found.json")
        broker.complete.mock(return_value=httpx.Response(404, json=error))

        with pytest.raises(RunServiceError):
            await job.complete()

        assert broker.complete.call_count == 1
        assert runner.jobs == {}
        with pytest.raises(RuntimeError, match="already completed"):
            await job.complete()


async def test_complete_is_retried_on_5xx(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _), runner:
        job = await acquired(runner, broker)
        broker.complete.side_effect = [httpx.Response(503), httpx.Response(204)]

        await job.complete("succeeded")

        assert broker.complete.call_count == 2


async def test_a_lost_lock_cancels_the_job(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key), renew_interval=1.0) as (runner, broker, _, _), runner:
        job = await acquired(runner, broker)
        broker.renew.mock(return_value=httpx.Response(404, json=fixture("run_service_error_not_found.json")))

        with anyio.fail_after(5):
            await job.lock_lost.wait()

        assert job.cancelled.is_set()
        assert job.cancel_reason is not None
        assert "no longer exists" in job.cancel_reason
        await job.complete("abandoned")


async def test_completing_stops_renewal(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key), renew_interval=1.0) as (runner, broker, _, _), runner:
        job = await acquired(runner, broker)
        await job.complete()
        renewals = broker.renew.call_count

        for _ in range(50):
            await anyio.lowlevel.checkpoint()

        assert broker.renew.call_count == renewals
        assert not job.lock_lost.is_set()
