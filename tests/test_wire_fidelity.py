"""The SDK speaks what GitHub's own clients speak (issue 9): queries kept, 401 rules, one refresh."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
import respx

import actions_scaleset as asc
from actions_scaleset._http import HTTPCore, combine_url, resolve_url, with_query
from actions_scaleset.errors import error_from_response
from tests.keys import pem
from tests.scaleset_mocks import API, admin_jwt, mock_exchange
from tests.support import FakeClock, load_fixture

pytestmark = pytest.mark.anyio

ADMIN = "https://pipelines.actions.example/tenant-1/_apis/runtime/runnerscalesets/117"
SESSIONS = f"{ADMIN}/sessions"
SESSION = load_fixture("session_create_response.json")
SESSION_ID = SESSION["sessionId"]
# The older pipelines shape of the queue URL, still possible on GHES: the query is part of it.
QUEUE = f"{ADMIN}/messages"
QUEUE_URL = f"{QUEUE}?sessionId={SESSION_ID}&api-version=6.0-preview"
MESSAGE = load_fixture("message_job_messages.json")

BODIES_OF_A_401: dict[str, Any] = {
    "broker": {"source": "actions-broker-listener", "errorKind": "Unauthorized", "errorMessage": "no"},
    "oauth": {"error": "invalid_token", "error_description": "the token has expired"},
    "actions": {
        "typeName": "Microsoft.VisualStudio.Services.WebApi.VssUnauthorizedException",
        "message": "x",
    },
    "vss-type-key": {"typeKey": "TaskAgentSessionExpiredException", "message": "expired"},
    "run-service": {"source": "actions-run-service", "statusCode": 401, "errorMessage": "no"},
    "text": "Unauthorized",
    "empty": None,
}


def _session(**changes: Any) -> dict[str, Any]:
    return {**SESSION, "messageQueueUrl": QUEUE_URL, **changes}


def _client(clock: FakeClock, *, user_agent: str | None = None, **options: Any) -> asc.ScaleSetClient:
    return asc.ScaleSetClient(
        "https://github.com/acme",
        asc.PersonalAccessToken("ghp_tok"),
        http=HTTPCore(sleep=clock.sleep, clock=clock, random=lambda: 0.0, user_agent_suffix=user_agent),
        **options,
    )


def _response_401(shape: str) -> httpx.Response:
    body = BODIES_OF_A_401[shape]
    if body is None:
        return httpx.Response(401)
    if isinstance(body, str):
        return httpx.Response(401, text=body, headers={"content-type": "text/plain"})
    return httpx.Response(401, json=body)


@pytest.fixture
def github(clock: FakeClock) -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        mock_exchange(router, exp=clock.now + 7200)
        router.post(url__startswith=SESSIONS).mock(return_value=httpx.Response(200, json=_session()))
        router.delete(url__startswith=f"{SESSIONS}/{SESSION_ID}").mock(return_value=httpx.Response(204))
        yield router


# ---------------------------------------------------------------- 1. a server-given URL keeps its query


def test_with_query_adds_to_the_query_a_url_already_has() -> None:
    url = httpx.URL(with_query(QUEUE_URL, {"lastMessageId": "5"}))
    assert dict(url.params) == {"sessionId": SESSION_ID, "api-version": "6.0-preview", "lastMessageId": "5"}
    assert httpx.URL(with_query(url, {"lastMessageId": "6"})).params.get_list("lastMessageId") == ["6"]


def test_with_query_keeps_the_urls_own_query_byte_for_byte_and_encodes_the_values() -> None:
    own = "https://broker.example/message?sessionId=a%2Fb&x=1+2&flag"
    url = with_query(own, {"name": "a b&c#d+e%zz/é", "on": True, "off": False, "none": None, "n": 7})
    assert url.startswith(own + "&")  # not re-encoded, as a server-given URL must be used as it comes
    params = httpx.URL(url).params
    assert params["name"] == "a b&c#d+e%zz/é"
    assert (params["on"], params["off"], params["none"], params["n"]) == ("true", "false", "", "7")
    assert with_query(own, {"x": "3"}) == "https://broker.example/message?sessionId=a%2Fb&flag&x=3"


async def test_every_poll_keeps_the_queue_urls_own_query(clock: FakeClock, github: respx.MockRouter) -> None:
    poll = github.get(url__startswith=QUEUE).mock(return_value=httpx.Response(200, json=MESSAGE))
    async with _client(clock).session(117, owner="me") as session:
        await session.get_message(max_capacity=3)
        await session.get_message(MESSAGE["messageId"], max_capacity=3)
    first, second = (call.request.url for call in poll.calls)
    assert first.params["sessionId"] == second.params["sessionId"] == SESSION_ID
    assert second.params["api-version"] == "6.0-preview"
    assert second.params["lastMessageId"] == str(MESSAGE["messageId"])


async def test_deleting_a_message_keeps_the_queue_urls_query(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    ack = github.delete(url__startswith=f"{QUEUE}/").mock(return_value=httpx.Response(204))
    async with _client(clock).session(117, owner="me") as session:
        await session.delete_message(42)
    url = ack.calls.last.request.url
    assert url.path.endswith("/messages/42")
    assert url.params["sessionId"] == SESSION_ID


# ---------------------------------------------------------------- 2. any 401 on the queue is an expired token


@pytest.mark.parametrize("shape", sorted(BODIES_OF_A_401))
def test_a_401_on_a_queue_call_is_an_expired_message_queue_token_whatever_its_body(shape: str) -> None:
    response = _response_401(shape)
    error = error_from_response(
        method="GET",
        url=QUEUE_URL,
        status_code=401,
        headers=response.headers,
        body=response.content,
        now=0.0,
        unauthorized=asc.MessageQueueTokenExpiredError,
    )
    assert type(error) is asc.MessageQueueTokenExpiredError


def test_a_broker_shaped_401_elsewhere_is_still_a_broker_error() -> None:
    response = _response_401("broker")
    error = error_from_response(
        method="GET", url=QUEUE_URL, status_code=401, headers=response.headers, body=response.content, now=0.0
    )
    assert isinstance(error, asc.BrokerError)


def _refreshes(router: respx.MockRouter) -> respx.Route:
    fresh = _session(messageQueueAccessToken=admin_jwt(2_000_000_000, "fresh"))
    return router.patch(url__startswith=f"{SESSIONS}/{SESSION_ID}").mock(
        return_value=httpx.Response(200, json=fresh)
    )


def _refused_until_refreshed(shape: str, ok: httpx.Response) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == f"Bearer {SESSION['messageQueueAccessToken']}":
            return _response_401(shape)
        return ok

    return answer


@pytest.mark.parametrize("shape", sorted(BODIES_OF_A_401))
async def test_a_401_of_any_shape_on_get_message_refreshes_the_session(
    clock: FakeClock, github: respx.MockRouter, shape: str
) -> None:
    patch = _refreshes(github)
    github.get(url__startswith=QUEUE).mock(side_effect=_refused_until_refreshed(shape, httpx.Response(202)))
    async with _client(clock).session(117, owner="me") as session:
        assert await session.get_message(max_capacity=1) is None
    assert patch.call_count == 1


@pytest.mark.parametrize("shape", sorted(BODIES_OF_A_401))
async def test_a_401_of_any_shape_on_delete_message_refreshes_the_session(
    clock: FakeClock, github: respx.MockRouter, shape: str
) -> None:
    patch = _refreshes(github)
    github.delete(url__startswith=f"{QUEUE}/").mock(
        side_effect=_refused_until_refreshed(shape, httpx.Response(204))
    )
    async with _client(clock).session(117, owner="me") as session:
        await session.delete_message(7)
    assert patch.call_count == 1


@pytest.mark.parametrize("shape", sorted(BODIES_OF_A_401))
async def test_a_401_of_any_shape_on_acquire_jobs_refreshes_the_session(
    clock: FakeClock, github: respx.MockRouter, shape: str
) -> None:
    patch = _refreshes(github)
    github.post(f"{ADMIN}/acquirejobs", params={"api-version": "6.0-preview"}).mock(
        side_effect=_refused_until_refreshed(shape, httpx.Response(200, json={"count": 1, "value": [5]}))
    )
    async with _client(clock).session(117, owner="me") as session:
        assert await session.acquire_jobs([5]) == [5]
    assert patch.call_count == 1


# ---------------------------------------------------------------- 4. a refresh reply without statistics


async def test_a_refresh_reply_without_statistics_is_accepted_and_the_last_statistics_kept(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    bare = {key: value for key, value in _session().items() if key not in ("statistics", "sessionId")}
    patch = github.patch(url__startswith=f"{SESSIONS}/{SESSION_ID}").mock(
        return_value=httpx.Response(200, json=bare)
    )
    async with _client(clock).session(117, owner="me") as session:
        before = session.statistics
        await session.refresh()
        assert session.statistics == before
        assert session.session_id == SESSION_ID
    assert patch.call_count == 1


@pytest.mark.parametrize(
    "changes",
    [{"messageQueueAccessToken": ""}, {"messageQueueUrl": "http://[::1/x"}, {"messageQueueUrl": "/relative"}],
    ids=["no-token", "bad-url", "relative-url"],
)
async def test_a_refresh_reply_without_a_token_or_usable_url_is_an_error(
    clock: FakeClock, github: respx.MockRouter, changes: dict[str, Any]
) -> None:
    github.patch(url__startswith=f"{SESSIONS}/{SESSION_ID}").mock(
        return_value=httpx.Response(200, json=_session(**changes))
    )
    async with _client(clock).session(117, owner="me") as session:
        with pytest.raises(asc.InvalidResponseError):
            await session.refresh()


# ---------------------------------------------------------------- 5. one refresh at a time, never a storm


async def test_a_hundred_concurrent_polls_after_a_revocation_make_one_refresh(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    patch = _refreshes(github)
    answer = _refused_until_refreshed("actions", httpx.Response(202))

    async def slow_answer(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(0.01)  # every poll is in flight with the revoked token at once
        return answer(request)  # type: ignore[no-any-return]

    github.get(url__startswith=QUEUE).mock(side_effect=slow_answer)
    async with _client(clock).session(117, owner="me") as session, anyio.create_task_group() as tasks:
        for _ in range(100):
            tasks.start_soon(lambda: session.get_message(max_capacity=1))
    assert patch.call_count == 1


@pytest.mark.parametrize("lifetime", [30.0, -600.0], ids=["shorter-than-the-margin", "skewed-clock"])
async def test_a_short_lived_or_skewed_admin_token_is_not_refreshed_on_every_call(
    clock: FakeClock, lifetime: float
) -> None:
    with respx.mock(assert_all_called=False) as router:
        _, exchange = mock_exchange(router, exp=clock.now + lifetime)
        router.get(url__startswith=ADMIN).mock(
            return_value=httpx.Response(200, json=SESSION["runnerScaleSet"])
        )
        client = _client(clock)
        for _ in range(10):
            await client.get_scale_set_by_id(117)
    assert exchange.call_count <= 2  # the first exchange and at most one refresh


@pytest.mark.parametrize("lifetime", [30.0, -600.0], ids=["shorter-than-the-margin", "skewed-clock"])
async def test_a_short_lived_or_skewed_message_queue_token_is_not_refreshed_on_every_call(
    clock: FakeClock, github: respx.MockRouter, lifetime: float
) -> None:
    token = admin_jwt(clock.now + lifetime, "short")
    github.post(url__startswith=SESSIONS).mock(
        return_value=httpx.Response(200, json=_session(messageQueueAccessToken=token))
    )
    patch = github.patch(url__startswith=f"{SESSIONS}/{SESSION_ID}").mock(
        return_value=httpx.Response(200, json=_session(messageQueueAccessToken=token))
    )
    github.get(url__startswith=QUEUE).mock(return_value=httpx.Response(202))
    async with _client(clock).session(117, owner="me") as session:
        for _ in range(10):
            await session.get_message(max_capacity=1)
    assert patch.call_count <= 1


# ---------------------------------------------------------------- 6. server-given ids are not paths


@pytest.mark.parametrize("session_id", ["../../5", "..", "a/b", "not-a-guid"])
async def test_a_session_id_that_is_not_a_guid_is_refused_and_never_sent_in_a_path(
    clock: FakeClock, github: respx.MockRouter, session_id: str
) -> None:
    github.post(url__startswith=SESSIONS).mock(
        return_value=httpx.Response(200, json=_session(sessionId=session_id))
    )
    with pytest.raises(asc.InvalidResponseError, match="sessionId"):
        async with _client(clock).session(117, owner="me"):
            pass
    sent = [str(call.request.url) for call in github.calls if call.request.method in ("DELETE", "PATCH")]
    assert sent == []


# ---------------------------------------------------------------- 7. identify as a scale-set client


async def test_actions_service_calls_send_the_json_user_agent_with_the_scale_set_id(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    poll = github.get(url__startswith=QUEUE).mock(return_value=httpx.Response(202))
    info = asc.SystemInfo(system="my-autoscaler", version="2.1.0", commit_sha="abc123", subsystem="listener")
    async with _client(clock, system_info=info, user_agent="team-x").session(117, owner="me") as session:
        await session.get_message(max_capacity=1)
    create = github.calls[2].request
    for request in (create, poll.calls.last.request):
        agent = json.loads(request.headers["User-Agent"])
        assert agent == {
            "system": "my-autoscaler",
            "version": "2.1.0",
            "commit_sha": "abc123",
            "scale_set_id": 117,
            "subsystem": "listener",
            "build_version": asc.__version__,
            "build_commit_sha": "",
            "kind": "scaleset",
        }
    registration = github.calls[0].request
    assert registration.url.host == "api.github.com"
    assert registration.headers["User-Agent"].startswith("actions-scaleset/")
    assert registration.headers["User-Agent"].endswith(" team-x")


async def test_calls_about_no_scale_set_send_scale_set_id_zero_and_default_system_info(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    scale_sets = github.get(url__startswith=f"{ADMIN[: -len('/117')]}").mock(
        return_value=httpx.Response(200, json={"count": 0, "value": []})
    )
    await _client(clock).list_scale_sets()
    agent = json.loads(scale_sets.calls.last.request.headers["User-Agent"])
    assert agent["scale_set_id"] == 0
    assert agent["system"] == "actions-scaleset-python"
    assert agent["kind"] == "scaleset"


# ---------------------------------------------------------------- 9. REST headers of the token calls


async def test_registration_and_remove_tokens_send_the_content_type_githubs_clients_send() -> None:
    with respx.mock() as router:
        token = {"token": "AAA", "expires_at": "2099-01-01T00:00:00Z"}
        registration = router.post(f"{API}/orgs/acme/actions/runners/registration-token").mock(
            return_value=httpx.Response(201, json=token)
        )
        remove = router.post(f"{API}/orgs/acme/actions/runners/remove-token").mock(
            return_value=httpx.Response(201, json=token)
        )
        async with asc.GitHubClient("https://github.com/acme", asc.PersonalAccessToken("ghp_x")) as github:
            await github.create_registration_token()
            await github.create_remove_token()
    for route in (registration, remove):
        assert route.calls.last.request.headers["Content-Type"] == "application/vnd.github.v3+json"


async def test_an_installation_token_is_requested_with_the_content_type_githubs_clients_send(
    clock: FakeClock,
) -> None:
    with respx.mock() as router:
        mint = router.post(f"{API}/app/installations/9/access_tokens").mock(
            return_value=httpx.Response(201, json={"token": "ghs_x", "expires_at": "2099-01-01T00:00:00Z"})
        )
        router.get(f"{API}/orgs/acme").mock(return_value=httpx.Response(200, json={"login": "acme", "id": 1}))
        app = asc.GitHubApp(app_id=1, installation_id=9, private_key=pem())
        async with asc.GitHubClient("https://github.com/acme", app, http=HTTPCore(clock=clock)) as github:
            await github.get_organization()
    assert mint.calls.last.request.headers["Content-Type"] == "application/vnd.github+json"


# ---------------------------------------------------------------- runner URLs, joined as .NET joins them


@pytest.mark.parametrize(
    ("base", "relative", "expected"),
    [
        ("https://broker.actions.example/", "message", "https://broker.actions.example/message"),
        ("https://broker.actions.example", "session", "https://broker.actions.example/session"),
        ("https://run.actions.example/12/", "acquirejob", "https://run.actions.example/12/acquirejob"),
        # no trailing slash: the last segment is replaced, as `new Uri(base, "renewjob")` does
        ("https://run.actions.example/12", "renewjob", "https://run.actions.example/renewjob"),
        # the base's query is not carried over to the resolved URL
        (
            "https://broker.actions.example/?tenant=1",
            "acknowledge",
            "https://broker.actions.example/acknowledge",
        ),
    ],
)
def test_broker_run_and_results_urls_resolve_as_dotnet_new_uri(
    base: str, relative: str, expected: str
) -> None:
    assert resolve_url(base, relative) == expected


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://pipelines.actions.example/tenant", "https://pipelines.actions.example/tenant/_apis/x"),
        ("https://pipelines.actions.example/tenant//", "https://pipelines.actions.example/tenant/_apis/x"),
    ],
)
def test_pipelines_urls_keep_the_server_urls_last_segment_as_vss_combines_them(
    base: str, expected: str
) -> None:
    assert combine_url(base, "_apis/x") == expected
