"""Parsing runner messages and job messages (docs/protocol.md, "Polling and runner messages",
"Acquire, renew, complete")."""

from __future__ import annotations

import base64
import contextlib
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actions_scaleset import InvalidResponseError, Secret
from actions_scaleset.runner._crypto import decrypt_message_body, encrypt_message_body
from actions_scaleset.runner._jobmessage import parse_job_message
from actions_scaleset.runner._messages import (
    BrokerMigration,
    ForceTokenRefresh,
    JobCancellation,
    PipelineJobRequest,
    RunnerJobRequest,
    RunnerRefresh,
    RunnerShutdown,
    UnknownMessage,
    parse_message,
    parse_timespan,
)
from tests.support import RUNNER_FIXTURES, load_fixture


def fixture(name: str) -> Any:
    return load_fixture(name, RUNNER_FIXTURES)


def test_a_runner_job_request_matches_its_decoded_body() -> None:
    message = parse_message(fixture("broker_message_runner_job_request.json"))
    decoded = fixture("broker_message_runner_job_request_body_decoded.json")

    assert message == RunnerJobRequest(**decoded, message_id=-1843302231)


def test_a_job_cancellation_carries_the_job_id_and_timeout() -> None:
    message = parse_message(fixture("broker_message_job_cancellation.json"))

    assert message == JobCancellation(
        job_id="8c1d2e3f-4a5b-5c6d-8e7f-9a0b1c2d3e4f", timeout=timedelta(minutes=5), message_id=1203334411
    )


def test_a_broker_migration_may_have_no_message_id() -> None:
    message = parse_message(fixture("broker_message_broker_migration.json"))

    assert message == BrokerMigration(broker_base_url="https://broker.actions.githubusercontent.com")


def test_force_token_refresh_has_an_empty_body() -> None:
    assert parse_message(fixture("broker_message_force_token_refresh.json")) == ForceTokenRefresh(
        message_id=78
    )


def test_a_runner_refresh_is_read_but_never_acted_on() -> None:
    message = parse_message(fixture("broker_message_runner_refresh.json"))

    assert isinstance(message, RunnerRefresh)
    assert message.target_version == "2.337.0"
    assert message.download_url.endswith("actions-runner-linux-x64-2.337.0.tar.gz")


def test_a_runner_shutdown_carries_its_reason() -> None:
    payload = {
        "messageId": 5,
        "messageType": "RunnerShutdown",
        "body": '{"reason":"OperatingSystemShutdown"}',
    }

    assert parse_message(payload) == RunnerShutdown(reason="OperatingSystemShutdown", message_id=5)


def test_an_unknown_type_is_kept_not_dropped() -> None:
    message = parse_message({"messageId": 9, "messageType": "SomethingNew", "body": "{}"})

    assert message == UnknownMessage("SomethingNew", 9, "{}")


def test_message_types_match_case_insensitively() -> None:
    assert isinstance(
        parse_message({"messageType": "jobcancellation", "body": '{"jobId":"x"}'}), JobCancellation
    )


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"messageType": 5},
        {"messageType": "RunnerJobRequest", "body": "not json"},
        {"messageType": "RunnerJobRequest", "body": "[]"},
        {"messageType": "RunnerJobRequest", "body": "{}"},
        {"messageType": "RunnerJobRequest", "body": '{"runner_request_id": 5}'},
        {"messageType": "JobCancellation", "body": '{"jobId":"x","timeout":"soon"}'},
        {"messageType": "PipelineAgentJobRequest", "body": "{"},
        {"messageType": "PipelineAgentJobRequest", "body": "{}"},
    ],
)
def test_a_bad_message_is_a_typed_error(payload: Any) -> None:
    with pytest.raises(InvalidResponseError):
        parse_message(payload)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:05:00", timedelta(minutes=5)),
        ("1.02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("00:00:01.5000000", timedelta(seconds=1.5)),
        ("-00:01:00", timedelta(minutes=-1)),
    ],
)
def test_dotnet_time_spans_parse(text: str, expected: timedelta) -> None:
    assert parse_timespan(text) == expected


def test_the_acquired_job_message_fixture_parses() -> None:
    job = parse_job_message(fixture("run_acquirejob_response_job_message.json"))

    assert job.plan_id == job.timeline_id == "7a0b3ee8-049d-459e-9aab-a558d241b0fc"
    assert job.job_id == "0215aca7-e825-533a-9d67-e18a65311193"
    assert job.job_display_name == "smoke"
    assert job.request_id == 0
    assert job.locked_until is None  # 0001-01-01T00:00:00
    assert job.job_token == Secret("SYNTHETIC-JOB-TOKEN")
    assert job.run_service_url == "https://run-actions-1-azure-eastus.actions.githubusercontent.com/177/"
    assert job.results_url == "https://results-receiver.actions.githubusercontent.com/"
    assert job.variables["github_token"].is_secret
    assert job.steps[0].id == "9fb90ead-8a9f-41e3-ba77-aa6cd9982aa8"
    assert job.steps[0].name == "Identify the machine"
    assert job.billing_owner_id == "O_SYNTHETIC"
    assert job.file_table == (".github/workflows/ci.yml",)
    assert set(job.secret_values) == {"SYNTHETIC-GITHUB-TOKEN", "SYNTHETIC-JOB-TOKEN"}


def test_a_job_message_repr_shows_no_secret() -> None:
    job = parse_job_message(fixture("run_acquirejob_response_job_message.json"))

    text = repr(job) + repr(job.variables) + repr(job.system_connection) + repr(job.mask)

    assert "SYNTHETIC-JOB-TOKEN" not in text
    assert "SYNTHETIC-GITHUB-TOKEN" not in text


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: m.pop("plan"), "no `plan.planId`"),
        (lambda m: m.pop("jobId"), "no `jobId`"),
        (lambda m: m["resources"].update(endpoints=[]), "no `SystemVssConnection`"),
        (lambda m: m["resources"]["endpoints"][0].update(authorization={}), "no job token"),
        (lambda m: m.update(requestId="x"), "`requestId` is not an integer"),
        (lambda m: m.update(lockedUntil="yesterday"), "`lockedUntil` is not a timestamp"),
        (lambda m: m.update(steps={}), "`steps` is not an array"),
    ],
)
def test_a_job_message_missing_what_the_protocol_needs_is_a_typed_error(mutate: Any, message: str) -> None:
    payload = fixture("run_acquirejob_response_job_message.json")
    mutate(payload)

    with pytest.raises(InvalidResponseError, match=message):
        parse_job_message(payload)


def test_a_v1_encrypted_job_request_decrypts_and_parses() -> None:
    key, iv = os.urandom(32), os.urandom(16)
    job = fixture("run_acquirejob_response_job_message.json") | {
        "requestId": 1234,
        "lockedUntil": "2026-06-30T15:47:10.9027894Z",
        "messageType": "PipelineAgentJobRequest",
    }
    shape = fixture("v1_message_pipeline_job_request_encrypted.json")
    payload = shape | {
        "iv": base64.b64encode(iv).decode(),
        "body": base64.b64encode(encrypt_message_body(key, iv, "\ufeff" + json.dumps(job))).decode(),
    }

    def decrypt(iv_text: str, body: str) -> str:
        return decrypt_message_body(key, base64.b64decode(iv_text), base64.b64decode(body))

    message = parse_message(payload, decrypt=decrypt)

    assert isinstance(message, PipelineJobRequest)
    assert message.message_id == 2
    assert message.job.request_id == 1234
    assert message.job.locked_until == datetime(2026, 6, 30, 15, 47, 10, 902789, tzinfo=UTC)


@given(
    st.dictionaries(st.text(max_size=10), st.none() | st.booleans() | st.integers() | st.text(max_size=10))
)
def test_any_json_object_body_parses_or_raises_a_typed_error(body: dict[str, Any]) -> None:
    for kind in ("RunnerJobRequest", "JobCancellation", "BrokerMigration", "RunnerRefresh", "RunnerShutdown"):
        with contextlib.suppress(InvalidResponseError):
            parse_message({"messageId": 1, "messageType": kind, "body": json.dumps(body)})


def test_secret_tokens_do_not_leak_through_unknown_message_reprs() -> None:
    message = parse_message({"messageType": "New", "body": '{"token":"hunter2"}'})

    assert "hunter2" not in repr(message)
