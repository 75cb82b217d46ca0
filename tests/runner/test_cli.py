"""`python -m actions_scaleset.runner`: one shell command as the job's only step."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

from actions_scaleset import RunnerSessionConflictError, ServerError
from actions_scaleset.errors import NetworkError, OAuthError
from actions_scaleset.runner._cli import cancel_grace, conclusion_for, exit_code_for, main, serve
from tests.runner.conftest import make_config
from tests.runner.fakes import broker_http, job_request, message, wait_until
from tests.support import RUNNER_FIXTURES, load_fixture

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

pytestmark = pytest.mark.anyio


def completed_body(broker: Any) -> Any:
    return json.loads(broker.complete.calls.last.request.content)


async def test_a_failing_command_fails_the_job_with_its_output_as_the_log(rsa_key: RSAPrivateKey) -> None:
    echoed: list[str] = []
    async with broker_http() as (http, broker, _):
        broker.push(job_request())

        code = await serve(
            make_config(rsa_key),
            "echo hello; echo oops >&2; echo SYNTHETIC-GITHUB-TOKEN; exit 3",
            echo=echoed.append,
            http=http,
        )

    assert code == 0
    assert echoed == ["hello", "oops", "***"]
    assert broker.blob.calls.last.request.content == b"hello\noops\n***\n"
    body = completed_body(broker)
    assert body["conclusion"] == "failed"
    (step,) = body["stepResults"]
    assert step["external_id"] == "9fb90ead-8a9f-41e3-ba77-aa6cd9982aa8"
    assert step["conclusion"] == "failed"
    assert step["completed_log_lines"] == 3
    assert step["annotations"] == [
        {"level": "failure", "message": "Process completed with exit code 3.", "stepNumber": 1}
    ]
    updates = [json.loads(c.request.content)["steps"][0]["status"] for c in broker.steps.calls]
    assert updates == [3, 6]
    assert broker.delete_session.call_count == 1


async def test_a_succeeding_command_succeeds_the_job(rsa_key: RSAPrivateKey) -> None:
    async with broker_http() as (http, broker, _):
        broker.push(job_request())

        assert await serve(make_config(rsa_key), "true", echo=lambda line: None, http=http) == 0

    assert completed_body(broker)["conclusion"] == "succeeded"


async def test_a_cancelled_job_stops_the_command(rsa_key: RSAPrivateKey) -> None:
    async with broker_http() as (http, broker, _):
        broker.push(job_request())
        job_id = load_fixture("run_acquirejob_response_job_message.json", RUNNER_FIXTURES)["jobId"]

        async def cancel_soon() -> None:
            await wait_until(lambda: broker.steps.call_count == 1, limit=100_000)
            broker.push(message("JobCancellation", {"jobId": job_id, "timeout": "00:05:00"}))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_soon)
                code = await serve(
                    make_config(rsa_key), "echo started; sleep 30", echo=lambda line: None, http=http
                )

    assert code == 0
    assert completed_body(broker)["conclusion"] == "canceled"


async def test_reporting_failures_do_not_stop_the_job(rsa_key: RSAPrivateKey) -> None:
    async with broker_http() as (http, broker, _):
        broker.push(job_request())
        broker.steps.mock(return_value=httpx.Response(404))
        broker.log_url.mock(return_value=httpx.Response(404))

        assert await serve(make_config(rsa_key), "true", echo=lambda line: None, http=http) == 0

    assert completed_body(broker)["conclusion"] == "succeeded"


async def test_a_job_that_cannot_be_taken_is_skipped(rsa_key: RSAPrivateKey) -> None:
    async with broker_http() as (http, broker, _):
        broker.acquire.side_effect = [
            httpx.Response(409),
            httpx.Response(
                200, json=load_fixture("run_acquirejob_response_job_message.json", RUNNER_FIXTURES)
            ),
        ]
        broker.push(job_request(), job_request())

        assert await serve(make_config(rsa_key), "true", echo=lambda line: None, http=http) == 0

    assert broker.complete.call_count == 1


async def test_a_deleted_registration_exits_1(rsa_key: RSAPrivateKey) -> None:
    async with broker_http() as (http, broker, _):
        broker.token.side_effect = None
        broker.token.mock(return_value=httpx.Response(400, json={"error": "invalid_client"}))

        assert await serve(make_config(rsa_key), "true", http=http) == 1


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (RunnerSessionConflictError("x", status_code=409), 5),
        (ServerError("x", status_code=502), 2),
        (NetworkError("x"), 2),
        (OAuthError("x", error="invalid_client", status_code=400), 1),
    ],
)
def test_exit_codes_follow_the_official_runner(error: Exception, code: int) -> None:
    assert exit_code_for(error) == code


def test_cancel_grace_and_conclusions() -> None:
    assert cancel_grace(None) == 45.0
    assert cancel_grace(timedelta(minutes=5)) == 285.0
    assert conclusion_for(0, cancelled=False) == "succeeded"
    assert conclusion_for(1, cancelled=False) == "failed"
    assert conclusion_for(0, cancelled=True) == "canceled"


def test_main_needs_a_jitconfig(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTIONS_RUNNER_INPUT_JITCONFIG", raising=False)

    with pytest.raises(SystemExit) as caught:
        main(["--exec", "true"])

    assert caught.value.code == 2


def test_main_reports_a_bad_jitconfig_without_quoting_it(caplog: pytest.LogCaptureFixture) -> None:
    assert main(["--jitconfig", "bm90IGpzb24=", "--exec", "true"]) == 1

    assert "outer layer is not valid JSON" in caplog.text
    assert "bm90IGpzb24" not in caplog.text


def test_the_module_runs_as_a_program() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "actions_scaleset.runner", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0
    assert "--jitconfig" in result.stdout
