"""Error mapping: a pure function from a response to the typed error (docs/protocol.md,
"Exception names in error bodies")."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import actions_scaleset as asc
from actions_scaleset.errors import error_from_response, parse_retry_after
from tests.support import RUNNER_FIXTURES, fixture_bytes

NOW = 1_777_889_641.0
URL = "https://broker.actions.githubusercontent.com/rest/_apis/runtime/runnerscalesets/7/sessions?api-version=6.0-preview"


def _map(
    status: int, body: bytes, headers: dict[str, str] | None = None, **kwargs: object
) -> asc.HTTPStatusError:
    return error_from_response(
        method="POST",
        url=URL,
        status_code=status,
        headers=httpx.Headers(headers or {}),
        body=body,
        now=NOW,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("fixture", "status", "cls"),
    [
        ("error_actions_session_conflict_409.json", 409, asc.SessionConflictError),
        ("error_actions_agent_exists_from_tests.json", 409, asc.RunnerExistsError),
        ("error_actions_job_still_running_from_tests.json", 400, asc.JobStillRunningError),
        ("error_actions_from_tests.json", 400, asc.BadRequestError),
        ("error_github_rest_404.json", 404, asc.NotFoundError),
    ],
)
def test_scaleset_error_fixtures_map_to_typed_errors(fixture: str, status: int, cls: type[Exception]) -> None:
    error = _map(
        status, fixture_bytes(fixture), {"ActivityId": "3f2a-11", "Content-Type": "application/json"}
    )
    assert type(error) is cls
    assert error.status_code == status
    assert error.activity_id == "3f2a-11"
    assert error.body == json.loads(fixture_bytes(fixture))
    assert "ActivityId 3f2a-11" in str(error)


def test_session_conflict_message_names_the_exception_and_the_request() -> None:
    error = _map(409, fixture_bytes("error_actions_session_conflict_409.json"))
    text = str(error)
    assert "already has an active session" in text
    assert "RunnerScaleSetSessionConflictException" in text
    assert "409 Conflict" in text
    assert (
        "request POST https://broker.actions.githubusercontent.com/rest/_apis/runtime/runnerscalesets/7/sessions"
        in text
    )


@pytest.mark.parametrize(
    ("type_name", "cls"),
    [
        (
            "GitHub.DistributedTask.WebApi.AgentNotFoundException, GitHub.DistributedTask.WebApi",
            asc.RunnerNotFoundError,
        ),
        ("RunnerScaleSetNotFoundException", asc.ScaleSetNotFoundError),
        (
            "GitHub.Actions.Runtime.WebApi.RunnerScaleSetNotFoundException, GitHub.Actions.Runtime.WebApi",
            asc.ScaleSetNotFoundError,
        ),
    ],
)
def test_type_name_is_matched_by_substring(type_name: str, cls: type[Exception]) -> None:
    # docs/protocol.md, "Exception names in error bodies": IsException uses strings.Contains, so short
    # names match qualified ones
    error = _map(404, json.dumps({"typeName": type_name, "message": "gone"}).encode())
    assert type(error) is cls


def test_unknown_type_name_falls_back_to_the_status_class() -> None:
    error = _map(409, json.dumps({"typeName": "SomethingElseException", "message": "m"}).encode())
    assert type(error) is asc.ConflictError


@pytest.mark.parametrize(
    ("fixture", "cls", "kind"),
    [
        ("broker_error_runner_session_invalid.json", asc.RunnerSessionInvalidError, "RunnerSessionInvalid"),
        (
            "broker_error_acknowledge_job_not_found.json",
            asc.AcknowledgeJobNotFoundError,
            "AcknowledgeJobNotFound",
        ),
    ],
)
def test_broker_errors_map_by_error_kind(fixture: str, cls: type[asc.BrokerError], kind: str) -> None:
    body = fixture_bytes(fixture, RUNNER_FIXTURES)
    error = _map(json.loads(body)["statusCode"], body)
    assert type(error) is cls
    assert isinstance(error, asc.BrokerError)
    assert error.error_kind == kind


def test_broker_runner_not_found_is_also_a_runner_not_found() -> None:
    body = json.dumps(
        {
            "source": "actions-broker-listener",
            "errorKind": "RunnerNotFound",
            "statusCode": 404,
            "errorMessage": "gone",
        }
    ).encode()
    error = _map(404, body)
    assert isinstance(error, asc.BrokerRunnerNotFoundError)
    assert isinstance(error, asc.RunnerNotFoundError)


def test_run_service_errors_are_typed() -> None:
    error = _map(404, fixture_bytes("run_service_error_not_found.json", RUNNER_FIXTURES))
    assert type(error) is asc.RunServiceError
    assert error.status_code == 404


def test_oauth_errors_keep_the_error_code() -> None:
    error = _map(400, fixture_bytes("oauth_token_error_lifetime.json", RUNNER_FIXTURES))
    assert isinstance(error, asc.OAuthError)
    assert error.error == "invalid_client"
    assert error.registration_deleted
    assert "lifetime" in str(error)


def test_message_queue_401_uses_the_class_the_caller_names() -> None:
    error = _map(401, b"", unauthorized=asc.MessageQueueTokenExpiredError)
    assert type(error) is asc.MessageQueueTokenExpiredError
    assert "empty response body" in str(error)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, asc.BadRequestError),
        (401, asc.AuthenticationError),
        (403, asc.PermissionDeniedError),
        (404, asc.NotFoundError),
        (409, asc.ConflictError),
        (422, asc.UnprocessableEntityError),
        (500, asc.ServerError),
        (503, asc.ServerError),
        (418, asc.HTTPStatusError),
    ],
)
def test_plain_statuses_map_to_their_class(status: int, cls: type[Exception]) -> None:
    assert type(_map(status, b"oops", {"Content-Type": "text/plain"})) is cls


def test_text_plain_body_is_kept_as_text_and_a_bom_is_dropped() -> None:
    error = _map(500, b"\xef\xbb\xbfbackend exploded", {"Content-Type": "text/plain"})
    assert error.body == "backend exploded"


def test_github_request_id_is_carried() -> None:
    error = _map(404, fixture_bytes("error_github_rest_404.json"), {"X-GitHub-Request-Id": "ABCD:1234"})
    assert error.github_request_id == "ABCD:1234"
    assert "X-GitHub-Request-Id ABCD:1234" in str(error)


# GitHub REST rate limits (docs/protocol.md, "Exception names in error bodies")


def test_primary_rate_limit_waits_until_reset() -> None:
    error = _map(
        403,
        b'{"message":"API rate limit exceeded for installation ID 1."}',
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 120)},
    )
    assert isinstance(error, asc.PrimaryRateLimitError)
    assert error.retry_after == pytest.approx(120)


def test_secondary_rate_limit_with_retry_after() -> None:
    error = _map(403, b'{"message":"You have exceeded a secondary rate limit."}', {"retry-after": "30"})
    assert isinstance(error, asc.SecondaryRateLimitError)
    assert error.retry_after == 30


def test_secondary_rate_limit_without_headers_waits_a_minute() -> None:
    error = _map(403, b'{"message":"You have exceeded a secondary rate limit. Please wait."}')
    assert isinstance(error, asc.SecondaryRateLimitError)
    assert error.retry_after == 60


def test_a_403_without_rate_limit_signs_is_permission_denied() -> None:
    error = _map(
        403, b'{"message":"Resource not accessible by integration"}', {"x-ratelimit-remaining": "4999"}
    )
    assert type(error) is asc.PermissionDeniedError


def test_a_429_is_always_a_rate_limit() -> None:
    assert isinstance(_map(429, b""), asc.RateLimitError)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True), 30.0),
        (format_datetime(datetime.fromtimestamp(NOW - 30, UTC), usegmt=True), 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_parses_seconds_and_http_dates(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == (pytest.approx(expected) if expected is not None else None)


@given(
    status=st.integers(min_value=400, max_value=599),
    body=st.binary(max_size=200)
    | st.builds(
        lambda d: json.dumps(d).encode(),
        st.dictionaries(
            st.sampled_from(["typeName", "message", "errorKind", "source", "error", "statusCode"]),
            st.one_of(st.text(max_size=20), st.integers(), st.none()),
        ),
    ),
    content_type=st.sampled_from(["application/json", "text/plain", ""]),
)
def test_any_error_response_maps_to_a_typed_error_without_crashing(
    status: int, body: bytes, content_type: str
) -> None:
    error = _map(status, body, {"Content-Type": content_type})
    assert isinstance(error, asc.HTTPStatusError)
    assert error.status_code == status
    str(error)


def test_secrets_in_a_body_or_url_never_reach_the_message() -> None:
    body = b'{"message":"bad token ghp_abcdefghijklmnopqrstuvwxyz0123 and eyJhbGciOi.eyJleHAiOjF9.c2ln"}'
    error = error_from_response(
        method="GET",
        url="https://user:hunter2pass@api.github.com/x?access_token=ghs_secretsecret1234&a=1",
        status_code=400,
        headers=httpx.Headers({}),
        body=body,
        now=NOW,
    )
    text = str(error) + repr(error)
    for secret in ("ghp_abcdefghij", "eyJhbGciOi.eyJleHAiOjF9", "hunter2pass", "ghs_secretsecret"):
        assert secret not in text
    assert "a=1" in text


def test_vss_errors_map_by_type_key() -> None:
    # docs/protocol.md, "Runner errors": `typeKey` selects the exception of a VSS body
    body = fixture_bytes("vss_wrapped_exception_error.json", RUNNER_FIXTURES)
    error = _map(404, body)
    assert isinstance(error, asc.RunnerSessionInvalidError)
    assert error.error_kind == "TaskAgentSessionExpiredException"


def test_redaction_keeps_prose_about_tokens() -> None:
    from actions_scaleset._redact import scrub_text

    assert (
        scrub_text("could not parse the OAuth token response") == "could not parse the OAuth token response"
    )
    assert "0123" not in scrub_text("Authorization: token 0123456789abcdef0123456789")
    assert scrub_text("Bearer abc.def.ghi-12345") == "Bearer REDACTED"


def test_errors_keep_response_headers_out_of_their_text() -> None:
    error = _map(403, b"denied", {"x-ms-error-code": "AuthenticationFailed", "Set-Cookie": "s=secretcookie"})
    assert error.headers["x-ms-error-code"] == "AuthenticationFailed"
    assert "secretcookie" not in str(error)
