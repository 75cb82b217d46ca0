"""The HTTP core: retry policy, Retry-After, typed errors, BOM, User-Agent, logs."""

from __future__ import annotations

import logging
import platform
import ssl
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

import actions_scaleset as asc
from actions_scaleset._http import (
    ACTIONS_RETRY,
    NO_RETRY,
    POLL_TIMEOUT,
    REGISTRATION_RETRY,
    REST_RETRY,
    SINGLE_USE_RETRY,
    HTTPCore,
    PollPool,
    RetryPolicy,
    decode_json,
    pool_limit,
)
from tests.support import FakeClock

pytestmark = pytest.mark.anyio

URL = "https://pipelines.example/_apis/x"


def _core(clock: FakeClock, client: httpx.AsyncClient | None = None, **kwargs: object) -> HTTPCore:
    return HTTPCore(client, sleep=clock.sleep, clock=clock, random=lambda: 0.0, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the pure policy


def test_backoff_is_exponential_and_capped() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=5.0, jitter=0.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


@given(attempt=st.integers(1, 30), rnd=st.floats(0, 0.999))
def test_jitter_only_ever_shortens_the_wait(attempt: int, rnd: float) -> None:
    policy = RetryPolicy(jitter=0.25)
    full = policy.backoff(attempt, random=0.0)
    assert 0.75 * full <= policy.backoff(attempt, random=rnd) <= full <= policy.max_delay


def test_no_retry_after_the_last_attempt() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.delay_for_status(2, 503, httpx.Headers(), now=0) is not None
    assert policy.delay_for_status(3, 503, httpx.Headers(), now=0) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501])
def test_actions_policy_does_not_retry_client_errors_or_501(status: int) -> None:
    # docs/protocol.md, "Retries and timeouts": retry on 429 and >= 500 except 501, never on other 4xx
    assert ACTIONS_RETRY.delay_for_status(1, status, httpx.Headers(), now=0) is None


@pytest.mark.parametrize("status", [401, 403])
def test_registration_policy_retries_401_and_403(status: int) -> None:
    # docs/protocol.md, "From your credentials to the admin token": a new registration token is accepted
    # lazily
    assert REGISTRATION_RETRY.delay_for_status(1, status, httpx.Headers(), now=0) is not None


def test_user_decision_replaces_the_status_rule() -> None:
    policy = RetryPolicy(decide=lambda attempt, status, headers: 0.5 if status == 418 else None)
    assert policy.delay_for_status(1, 418, httpx.Headers(), now=0) == 0.5
    assert policy.delay_for_status(1, 503, httpx.Headers(), now=0) is None


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=2)


def test_certificate_errors_are_never_retried() -> None:
    exc = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    exc.__cause__ = ssl.SSLCertVerificationError("unknown authority")
    assert ACTIONS_RETRY.delay_for_exception(1, exc) is None


def test_single_use_calls_retry_only_what_was_never_sent() -> None:
    assert SINGLE_USE_RETRY.delay_for_exception(1, httpx.ConnectError("refused")) is not None
    assert SINGLE_USE_RETRY.delay_for_exception(1, httpx.ReadTimeout("slow")) is None
    assert SINGLE_USE_RETRY.delay_for_status(1, 500, httpx.Headers(), now=0) is None


def test_rest_policy_waits_for_a_primary_rate_limit_reset_within_the_cap() -> None:
    headers = httpx.Headers({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1060"})
    assert (
        REST_RETRY.delay_for_status(1, 403, headers, b'{"message":"API rate limit exceeded"}', now=1000) == 60
    )
    far = httpx.Headers({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "9999"})
    assert REST_RETRY.delay_for_status(1, 403, far, b"{}", now=1000) is None
    assert REST_RETRY.delay_for_status(1, 403, httpx.Headers(), b'{"message":"Forbidden"}', now=1000) is None


def test_poll_timeout_exceeds_the_fifty_second_long_poll() -> None:
    # docs/protocol.md, "Retries and timeouts", "The long poll": the server holds a poll ~50 s before
    # answering 202
    assert POLL_TIMEOUT.read is not None
    assert POLL_TIMEOUT.read > 50


# ---------------------------------------------------------------- the I/O loop


@respx.mock
async def test_retries_a_5xx_burst_then_returns_the_success(clock: FakeClock) -> None:
    route = respx.get(URL).mock(
        side_effect=[httpx.Response(503), httpx.Response(502), httpx.Response(200, json={"ok": True})]
    )
    core = _core(clock)
    response = await core.request("GET", URL, policy=RetryPolicy(jitter=0))
    assert decode_json(response, "ok") == {"ok": True}
    assert route.call_count == 3
    assert clock.slept == [1.0, 2.0]
    await core.aclose()


@pytest.mark.parametrize(
    ("retry_after", "waited"),
    [
        ("2", [2.0]),
        (format_datetime(datetime.fromtimestamp(FakeClock().now + 7, UTC), usegmt=True), [7.0]),
        ("999", None),
        ("not-a-date", [1.0]),
    ],
)
async def test_retry_after_is_honoured_up_to_the_cap(
    clock: FakeClock, retry_after: str, waited: list[float] | None
) -> None:
    with respx.mock:
        route = respx.get(URL).mock(
            side_effect=[httpx.Response(503, headers={"Retry-After": retry_after}), httpx.Response(200)]
        )
        core = _core(clock)
        if waited is None:
            with pytest.raises(asc.ServerError) as info:
                await core.request("GET", URL, policy=RetryPolicy(jitter=0))
            assert info.value.status_code == 503
            assert route.call_count == 1
        else:
            await core.request("GET", URL, policy=RetryPolicy(jitter=0))
            assert clock.slept == pytest.approx(waited, abs=0.01)


@respx.mock
async def test_gives_up_with_the_typed_error_its_status_and_activity_id(clock: FakeClock) -> None:
    respx.get(URL).mock(return_value=httpx.Response(500, headers={"ActivityId": "act-1"}, text="boom"))
    core = _core(clock)
    with pytest.raises(asc.ServerError) as info:
        await core.request("GET", URL, policy=RetryPolicy(max_attempts=3, jitter=0))
    assert info.value.status_code == 500
    assert info.value.activity_id == "act-1"
    assert info.value.method == "GET"
    assert len(clock.slept) == 2


@respx.mock
async def test_transport_errors_are_retried_then_typed(clock: FakeClock) -> None:
    route = respx.get(URL).mock(side_effect=[httpx.ConnectError("refused"), httpx.Response(200)])
    core = _core(clock)
    await core.request("GET", URL, policy=ACTIONS_RETRY)
    assert route.call_count == 2

    respx.get(URL).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(asc.RequestTimeoutError):
        await core.request("GET", URL, policy=RetryPolicy(max_attempts=2))
    respx.get(URL).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(asc.NetworkError) as info:
        await core.request("GET", URL, policy=NO_RETRY)
    assert isinstance(info.value, asc.TransportError)


@respx.mock
async def test_a_2xx_outside_the_expected_statuses_is_an_invalid_response(clock: FakeClock) -> None:
    respx.post(URL).mock(return_value=httpx.Response(200, json={}))
    with pytest.raises(asc.InvalidResponseError, match="unexpected status 200"):
        await _core(clock).request("POST", URL, policy=NO_RETRY, expect=(201,))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "empty body"),
        (b"   ", "empty body"),
        (b"{not json", "malformed JSON"),
        (b"\xef\xbb\xbf", "empty body"),
    ],
)
async def test_unusable_bodies_raise_invalid_response(clock: FakeClock, body: bytes, problem: str) -> None:
    with respx.mock:
        respx.get(URL).mock(return_value=httpx.Response(200, content=body, headers={"ActivityId": "a-9"}))
        response = await _core(clock).request("GET", URL, policy=NO_RETRY)
    with pytest.raises(asc.InvalidResponseError, match=problem) as info:
        decode_json(response, "a scale set")
    assert info.value.activity_id == "a-9"
    assert info.value.status_code == 200


@respx.mock
async def test_a_leading_bom_is_stripped(clock: FakeClock) -> None:
    # docs/protocol.md, "Byte order marks": the Go clients strip a UTF-8 BOM before decoding
    respx.get(URL).mock(return_value=httpx.Response(200, content=b'\xef\xbb\xbf{"count":0}'))
    response = await _core(clock).request("GET", URL, policy=NO_RETRY)
    assert decode_json(response, "a list") == {"count": 0}


@respx.mock
async def test_user_agent_names_sdk_python_httpx_and_the_suffix(clock: FakeClock) -> None:
    route = respx.get(URL).mock(return_value=httpx.Response(200))
    await _core(clock, user_agent_suffix="my-listener/1.2").request("GET", URL, policy=NO_RETRY)
    ua = route.calls.last.request.headers["User-Agent"]
    assert ua == (
        f"actions-scaleset/{asc.__version__} (+python/{platform.python_version()}; "
        f"httpx/{httpx.__version__}) my-listener/1.2"
    )


@respx.mock
async def test_json_bodies_are_compact_and_typed(clock: FakeClock) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200))
    await _core(clock).request("POST", URL, policy=NO_RETRY, json=[7302, 7303])
    assert route.calls.last.request.content == b"[7302,7303]"
    assert route.calls.last.request.headers["Content-Type"] == "application/json"


async def test_a_user_client_is_used_and_not_closed(clock: FakeClock) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(204))
    async with httpx.AsyncClient(transport=transport) as client:
        core = _core(clock, client)
        response = await core.request("DELETE", URL, policy=NO_RETRY, expect=(204,))
        assert response.status_code == 204
        await core.aclose()
        assert not client.is_closed


@respx.mock
async def test_debug_logs_carry_timings_and_redacted_urls(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    secret_url = "https://user:pw@pipelines.example/_apis/x?sig=topsecret&api-version=6.0-preview"
    respx.get("https://pipelines.example/_apis/x").mock(
        side_effect=[httpx.Response(503), httpx.Response(200)]
    )
    with caplog.at_level(logging.DEBUG, logger="actions_scaleset"):
        await _core(clock).request("GET", secret_url, policy=RetryPolicy(jitter=0))
    messages = [r.getMessage() for r in caplog.records]
    assert any("-> 503 in" in m and "ms" in m for m in messages)
    assert any("retrying GET" in m for m in messages)
    assert all(hasattr(r, "elapsed_ms") for r in caplog.records if "->" in r.getMessage())
    joined = "\n".join(messages)
    assert "topsecret" not in joined
    assert "pw@" not in joined
    assert "api-version=6.0-preview" in joined


# ---------------------------------------------------------------- long polls get a pool of their own


async def test_a_core_that_makes_its_client_gives_long_polls_a_client_of_their_own() -> None:
    core = HTTPCore()
    polls = core.polls.client()
    assert polls is not core.client
    assert pool_limit(core.client) == 100  # httpx's default, for ordinary calls
    assert pool_limit(polls) is None  # unlimited: one connection per parked poll
    assert core.polls.client() is polls
    await core.aclose()
    assert polls.is_closed
    assert core.client.is_closed


async def test_long_polls_are_sent_on_the_poll_client() -> None:
    sent: list[str] = []

    def answer(name: str) -> httpx.MockTransport:
        def reply(request: httpx.Request) -> httpx.Response:
            sent.append(name)
            return httpx.Response(202)

        return httpx.MockTransport(reply)

    core = HTTPCore()
    await core.client.aclose()
    core.client = httpx.AsyncClient(transport=answer("ordinary"))
    core.polls = PollPool(core.client, owned=True)
    core.polls._own = httpx.AsyncClient(transport=answer("poll"))
    await core.request("GET", "https://x.example/q", policy=asc.NO_RETRY, expect=(202,), long_poll=True)
    await core.request("GET", "https://x.example/q", policy=asc.NO_RETRY, expect=(202,))
    assert sent == ["poll", "ordinary"]
    await core.aclose()


async def test_a_client_passed_in_carries_the_polls_and_warns_once_when_they_fill_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=3)) as client:
        core = HTTPCore(client)
        assert core.polls.client() is client
        with caplog.at_level(logging.WARNING, logger="actions_scaleset.http"):
            for _ in range(5):
                core.polls.hold()
        warnings = [r for r in caplog.records if "max_connections" in r.getMessage()]
        assert len(warnings) == 1
        assert "3 message sessions" in warnings[0].getMessage()
        for _ in range(6):
            core.polls.release()
        assert core.polls.held == 0
        await core.aclose()
        assert not client.is_closed  # the caller's to close


def test_pool_limit_reads_httpx_internals_defensively() -> None:
    class Broken:
        @property
        def _transport(self) -> object:
            raise RuntimeError("moved")

    assert pool_limit(Broken()) is None  # type: ignore[arg-type]
    assert pool_limit(httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))) is None
    assert pool_limit(httpx.AsyncClient(limits=httpx.Limits(max_connections=7))) == 7
    assert pool_limit(httpx.AsyncClient(limits=httpx.Limits(max_connections=None))) is None
