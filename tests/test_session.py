"""MessageSession: create with 409 backoff, long poll, ack, acquire, token refresh, shielded close."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
import respx

import actions_scaleset as asc
from actions_scaleset._http import HTTPCore
from actions_scaleset.testing import FakeGitHub
from tests.scaleset_mocks import ADMIN_HOST, admin_jwt, mock_exchange
from tests.support import FakeClock, load_fixture

pytestmark = pytest.mark.anyio

SESSIONS = "https://pipelines.actions.example/tenant-1/_apis/runtime/runnerscalesets/117/sessions"
ACQUIRE = "https://pipelines.actions.example/tenant-1/_apis/runtime/runnerscalesets/117/acquirejobs"
SESSION = load_fixture("session_create_response.json")
SESSION_ID = SESSION["sessionId"]
MQ_URL = SESSION["messageQueueUrl"]
MQ_TOKEN = SESSION["messageQueueAccessToken"]
MESSAGE = load_fixture("message_job_messages.json")


def _session_body(**changes: Any) -> dict[str, Any]:
    return {**SESSION, **changes}


def _client(clock: FakeClock) -> asc.ScaleSetClient:
    return asc.ScaleSetClient(
        "https://github.com/acme",
        asc.PersonalAccessToken("ghp_tok"),
        http=HTTPCore(sleep=clock.sleep, clock=clock, random=lambda: 0.0),
    )


@pytest.fixture
def github(clock: FakeClock) -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        mock_exchange(router, exp=clock.now + 7200)
        router.post(url__startswith=SESSIONS).mock(return_value=httpx.Response(200, json=SESSION))
        router.delete(url__startswith=f"{SESSIONS}/{SESSION_ID}").mock(return_value=httpx.Response(204))
        yield router


# ---------------------------------------------------------------- create and close


async def test_open_sends_the_scaleset_body_and_keeps_the_statistics(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    async with _client(clock).session(117, owner="arc-runner-set-754b578d-listener") as session:
        assert session.session_id == SESSION_ID
        assert session.statistics.total_assigned_jobs == SESSION["statistics"]["totalAssignedJobs"]
        assert session.message_queue_url == MQ_URL
        assert MQ_TOKEN not in repr(session)
    create = github.routes[2].calls.last.request
    assert json.loads(create.content) == load_fixture("session_create_request_scaleset.json")
    assert create.url.params["api-version"] == "6.0-preview"
    delete = github.routes[3]
    assert delete.call_count == 1


async def test_a_409_is_waited_out_with_backoff_then_succeeds(
    clock: FakeClock, github: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    conflict = httpx.Response(409, json=load_fixture("error_actions_session_conflict_409.json"))
    github.post(url__startswith=SESSIONS).mock(
        side_effect=[conflict, conflict, conflict, httpx.Response(200, json=SESSION)]
    )
    with caplog.at_level(logging.WARNING, logger="actions_scaleset.session"):
        async with _client(clock).session(117, owner="me") as session:
            assert session.session_id == SESSION_ID
    assert clock.slept == [5.0, 10.0, 20.0]
    assert sum("already has an active session" in r.getMessage() for r in caplog.records) == 3


async def test_a_409_that_outlasts_the_conflict_timeout_raises_saying_how_long(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    github.post(url__startswith=SESSIONS).mock(
        return_value=httpx.Response(
            409, json=load_fixture("error_actions_session_conflict_409.json"), headers={"ActivityId": "act-9"}
        )
    )
    with pytest.raises(asc.SessionConflictError) as info:
        async with _client(clock).session(117, owner="me", conflict_timeout=60):
            pass
    assert "waited" in str(info.value)
    assert info.value.activity_id == "act-9"
    assert sum(clock.slept) <= 60


async def test_a_missing_scale_set_is_raised_at_once(clock: FakeClock, github: respx.MockRouter) -> None:
    github.post(url__startswith=SESSIONS).mock(
        return_value=httpx.Response(
            404,
            json={
                "typeName": "GitHub.Actions.Runtime.WebApi.RunnerScaleSetNotFoundException, "
                "GitHub.Actions.Runtime.WebApi",
                "message": "No runner scale set found with identifier 117.",
            },
        )
    )
    with pytest.raises(asc.ScaleSetNotFoundError):
        async with _client(clock).session(117, owner="me"):
            pass
    assert clock.slept == []


@pytest.mark.parametrize(
    "changes",
    [{"statistics": None}, {"sessionId": "00000000-0000-0000-0000-000000000000"}, {"messageQueueUrl": ""}],
    ids=["no-statistics", "nil-session-id", "no-queue-url"],
)
async def test_an_unusable_session_is_refused(
    clock: FakeClock, github: respx.MockRouter, changes: dict[str, Any]
) -> None:
    # docs/protocol.md, "A 409 from a stale session": both listeners refuse a session without statistics;
    # scaleset also a nil sessionId
    github.post(url__startswith=SESSIONS).mock(
        return_value=httpx.Response(200, json=_session_body(**changes))
    )
    with pytest.raises(asc.InvalidResponseError):
        async with _client(clock).session(117, owner="me"):
            pass


async def test_close_deletes_the_session_even_when_cancelled(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    github.get(url__startswith=MQ_URL).mock(return_value=httpx.Response(202))
    client = _client(clock)

    async def listen() -> None:
        async with client.session(117, owner="me") as session:
            await anyio.sleep_forever()
            await session.get_message(max_capacity=1)

    with anyio.move_on_after(0.05):
        await listen()
    assert github.routes[3].call_count == 1


async def test_close_gives_up_after_its_timeout(clock: FakeClock, github: respx.MockRouter) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(5)
        return httpx.Response(204)

    github.delete(url__startswith=f"{SESSIONS}/{SESSION_ID}").mock(side_effect=slow)
    with anyio.fail_after(2):
        async with _client(clock).session(117, owner="me", close_timeout=0.05):
            pass


# ---------------------------------------------------------------- the long poll


async def test_get_message_sends_the_queue_headers_and_decodes(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    poll = github.get(url__startswith=MQ_URL).mock(return_value=httpx.Response(200, json=MESSAGE))
    async with _client(clock).session(117, owner="me") as session:
        first = await session.get_message(max_capacity=10)
        await session.get_message(first.message_id if first else None, max_capacity=10)
    assert first is not None
    assert first.message_id == MESSAGE["messageId"]
    assert [type(e).__name__ for e in first.events][:2] == ["JobAvailable", "JobAssigned"]
    assert session.statistics.total_assigned_jobs == MESSAGE["statistics"]["totalAssignedJobs"]
    no_last, with_last = (call.request for call in poll.calls)
    assert no_last.headers["Accept"] == "application/json; api-version=6.0-preview"
    assert no_last.headers["X-ScaleSetMaxCapacity"] == "10"
    assert no_last.headers["Authorization"] == f"Bearer {MQ_TOKEN}"
    assert "lastMessageId" not in no_last.url.params
    assert "api-version" not in no_last.url.params
    assert with_last.url.params["lastMessageId"] == str(MESSAGE["messageId"])


async def test_a_202_is_no_message(clock: FakeClock, github: respx.MockRouter) -> None:
    github.get(url__startswith=MQ_URL).mock(return_value=httpx.Response(202))
    async with _client(clock).session(117, owner="me") as session:
        assert await session.get_message(max_capacity=1) is None


@pytest.mark.parametrize("body", [b"", b"{not json", b'{"messageId":"x"}', b"\xef\xbb\xbf"])
async def test_an_empty_or_broken_200_is_logged_and_read_as_no_message(
    clock: FakeClock, github: respx.MockRouter, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    # ARC #4488: GitHub's listener crash-looped on "200 ... EOF"
    github.get(url__startswith=MQ_URL).mock(return_value=httpx.Response(200, content=body))
    with caplog.at_level(logging.WARNING):
        async with _client(clock).session(117, owner="me") as session:
            assert await session.get_message(max_capacity=1) is None
    assert any("unusable message" in r.getMessage() for r in caplog.records)


async def test_a_401_refreshes_the_session_and_retries_once_on_the_new_url(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    new_url = "https://broker2.actions.example/scalesets/message"
    new_token = admin_jwt(clock.now + 3600, "mq2")
    github.get(url__startswith=MQ_URL).mock(return_value=httpx.Response(401))
    fresh = github.get(url__startswith=new_url).mock(return_value=httpx.Response(202))
    patch = github.patch(url__startswith=f"{SESSIONS}/{SESSION_ID}").mock(
        return_value=httpx.Response(
            200, json=_session_body(messageQueueUrl=new_url, messageQueueAccessToken=new_token)
        )
    )
    async with _client(clock).session(117, owner="me") as session:
        assert await session.get_message(max_capacity=1) is None
    assert patch.call_count == 1
    assert patch.calls.last.request.headers["Authorization"] != f"Bearer {MQ_TOKEN}"  # admin token
    assert fresh.calls.last.request.headers["Authorization"] == f"Bearer {new_token}"


async def test_a_second_401_after_refresh_is_raised_typed(clock: FakeClock, github: respx.MockRouter) -> None:
    github.get(url__startswith=MQ_URL).mock(return_value=httpx.Response(401))
    github.patch(url__startswith=f"{SESSIONS}/{SESSION_ID}").mock(
        return_value=httpx.Response(200, json=SESSION)
    )
    async with _client(clock).session(117, owner="me") as session:
        with pytest.raises(asc.MessageQueueTokenExpiredError):
            await session.get_message(max_capacity=1)


async def test_a_token_near_its_exp_is_refreshed_before_polling(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    github.get(url__startswith=MQ_URL).mock(return_value=httpx.Response(202))
    patch = github.patch(url__startswith=f"{SESSIONS}/{SESSION_ID}").mock(
        return_value=httpx.Response(
            200, json=_session_body(messageQueueAccessToken=admin_jwt(clock.now + 7200, "mq"))
        )
    )
    async with _client(clock).session(117, owner="me") as session:
        await session.get_message(max_capacity=1)
        assert patch.call_count == 0
        clock.now = 1_777_893_241 - 30  # the fixture token's exp is 1777893241
        await session.get_message(max_capacity=1)
        assert patch.call_count == 1


async def test_a_refresh_that_finds_the_session_gone_creates_a_new_one(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    # scaleset PR #123: re-create on a refresh 404
    github.get(url__startswith=MQ_URL).mock(side_effect=[httpx.Response(401), httpx.Response(202)])
    github.patch(url__startswith=f"{SESSIONS}/{SESSION_ID}").mock(
        return_value=httpx.Response(
            404, json={"typeName": "System.Exception", "message": "session ID doesn't exist"}
        )
    )
    async with _client(clock).session(117, owner="me") as session:
        assert await session.get_message(max_capacity=1) is None
    assert github.routes[2].call_count == 2  # created twice


async def test_delete_message_appends_the_id_and_keeps_the_query(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    url = "https://broker.actions.example/scalesets/message?tenant=abc"
    github.post(url__startswith=SESSIONS).mock(
        return_value=httpx.Response(200, json=_session_body(messageQueueUrl=url))
    )
    delete = github.delete("https://broker.actions.example/scalesets/message/100028209?tenant=abc").mock(
        return_value=httpx.Response(204)
    )
    async with _client(clock).session(117, owner="me") as session:
        await session.delete_message(100028209)
    assert delete.calls.last.request.headers["Authorization"] == f"Bearer {MQ_TOKEN}"


async def test_acquire_jobs_posts_ids_to_the_admin_url_with_the_queue_token(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    acquire = github.post(url__startswith=ACQUIRE).mock(
        return_value=httpx.Response(200, json=load_fixture("acquire_jobs_response.json"))
    )
    async with _client(clock).session(117, owner="me") as session:
        acquired = await session.acquire_jobs([7302, 7303])
        assert await session.acquire_jobs([]) == []
    assert acquired == [7302, 7303]
    request = acquire.calls.last.request
    assert json.loads(request.content) == load_fixture("acquire_jobs_request.json")
    assert request.url.host == ADMIN_HOST
    assert request.url.params["api-version"] == "6.0-preview"
    assert request.headers["Authorization"] == f"Bearer {MQ_TOKEN}"
    assert acquire.call_count == 1


async def test_acquire_jobs_refreshes_on_401(clock: FakeClock, github: respx.MockRouter) -> None:
    github.post(url__startswith=ACQUIRE).mock(
        side_effect=[httpx.Response(401), httpx.Response(200, json={"value": [1]})]
    )
    patch = github.patch(url__startswith=f"{SESSIONS}/{SESSION_ID}").mock(
        return_value=httpx.Response(200, json=SESSION)
    )
    async with _client(clock).session(117, owner="me") as session:
        assert await session.acquire_jobs([1]) == [1]
    assert patch.call_count == 1


async def test_messages_acks_only_after_the_consumer_is_done(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    second = {**MESSAGE, "messageId": MESSAGE["messageId"] + 1}
    github.get(url__startswith=MQ_URL).mock(
        side_effect=[httpx.Response(200, json=MESSAGE), httpx.Response(202), httpx.Response(200, json=second)]
    )
    deleted = github.delete(url__startswith=f"{MQ_URL}/").mock(return_value=httpx.Response(204))
    seen = []

    async def consume(session: asc.MessageSession) -> None:
        async for message in session.messages(max_capacity=5):
            seen.append(message.message_id)
            assert deleted.call_count == len(seen) - 1  # the previous one, not this one
            if len(seen) == 2:
                raise RuntimeError("handler failed")

    async with _client(clock).session(117, owner="me") as session:
        with pytest.raises(RuntimeError, match="handler failed"):
            await consume(session)
    assert seen == [MESSAGE["messageId"], MESSAGE["messageId"] + 1]
    assert [c.request.url.path.rsplit("/", 1)[1] for c in deleted.calls] == [str(MESSAGE["messageId"])]


async def test_max_capacity_is_validated(clock: FakeClock, github: respx.MockRouter) -> None:
    async with _client(clock).session(117, owner="me") as session:
        with pytest.raises(ValueError, match="max_capacity"):
            await session.get_message(max_capacity=-1)


async def test_a_message_with_one_broken_event_keeps_the_rest_so_the_queue_moves_on(
    clock: FakeClock, github: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    # An undecodable message would be redelivered forever; keep its id and its good events.
    events = json.loads(MESSAGE["body"])
    events.insert(1, {"messageType": "JobAvailable", "runnerRequestId": "not-a-number"})
    broken = {**MESSAGE, "body": json.dumps(events)}
    github.get(url__startswith=MQ_URL).mock(return_value=httpx.Response(200, json=broken))
    with caplog.at_level(logging.ERROR):
        async with _client(clock).session(117, owner="me") as session:
            message = await session.get_message(max_capacity=1)
    assert message is not None
    assert message.message_id == MESSAGE["messageId"]
    assert len(message.events) == len(events) - 1
    assert message.statistics is not None
    assert any("could not be fully decoded" in r.getMessage() for r in caplog.records)


async def test_a_message_with_broken_statistics_keeps_its_events(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    broken = {**MESSAGE, "statistics": {"totalAssignedJobs": "many"}}
    github.get(url__startswith=MQ_URL).mock(return_value=httpx.Response(200, json=broken))
    async with _client(clock).session(117, owner="me") as session:
        message = await session.get_message(max_capacity=1)
    assert message is not None
    assert message.statistics is None
    assert message.jobs_available


# ---------------------------------------------------------------- cancellation while creating


async def test_a_cancel_while_the_create_answer_is_on_its_way_deletes_the_session_the_server_made(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    made, release = anyio.Event(), anyio.Event()

    async def create(request: httpx.Request) -> httpx.Response:
        made.set()  # the server made the session; its answer is on the way
        await release.wait()
        return httpx.Response(200, json=SESSION)

    github.post(url__startswith=SESSIONS).mock(side_effect=create)
    delete = github.routes[3]
    client = _client(clock)
    async with anyio.create_task_group() as tg:
        tg.start_soon(client.session(117, owner="me").open)
        await made.wait()
        tg.cancel_scope.cancel()
        release.set()
    assert delete.call_count == 1
    assert delete.calls.last.request.url.path.endswith(f"/sessions/{SESSION_ID}")


async def test_a_cancelled_create_waits_for_its_answer_no_longer_than_close_timeout(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    async def never(request: httpx.Request) -> httpx.Response:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    github.post(url__startswith=SESSIONS).mock(side_effect=never)
    session = _client(clock).session(117, owner="me", close_timeout=0.005)
    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.open)
            await anyio.sleep(0.001)
            tg.cancel_scope.cancel()
    assert session.session_id is None
    assert github.routes[3].call_count == 0


async def test_a_create_that_is_not_cancelled_returns_its_session_unharmed(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    session = _client(clock).session(117, owner="me")
    await session.open()
    assert session.session_id == SESSION_ID
    assert github.routes[3].call_count == 0
    await session.close()
    assert github.routes[3].call_count == 1


# ---------------------------------------------------------------- a refresh that answers 404


async def test_a_refresh_404_deletes_the_old_session_so_the_new_one_meets_no_409_from_it(
    clock: FakeClock,
) -> None:
    # The 404 was wrong: the session is still there, and would answer the create with a 409 until it
    # expired. Deleting it first lets the new one open at once.
    fake = FakeGitHub(clock=clock, poll_hold=0.0)
    async with (
        fake.http_client() as http,
        asc.ScaleSetClient(
            fake.config_url("acme"),
            fake.pat(),
            http=HTTPCore(http, sleep=clock.sleep, clock=clock, random=lambda: 0.0),
        ) as client,
    ):
        scale_set = await client.ensure_scale_set("linux", labels=["linux"])
        async with client.session(scale_set.id, owner="me", conflict_timeout=60) as session:
            old = session.session_id
            fake.faults.add(route="session.refresh", status=404)
            await session.refresh()
            assert session.session_id not in (None, old)
            assert fake.snapshot().scale_sets[0].session_owner == "me"
    assert [r.status for r in fake.requests_to("session.create")] == [200, 200]
    assert [r.status for r in fake.requests_to("session.delete")] == [204, 204]
    assert clock.slept == []


async def test_a_refresh_404_for_a_session_that_is_really_gone_creates_a_new_one(
    clock: FakeClock, github: respx.MockRouter
) -> None:
    github.patch(url__startswith=f"{SESSIONS}/{SESSION_ID}").mock(
        return_value=httpx.Response(404, json={"typeName": "System.Exception", "message": "no session"})
    )
    github.delete(url__startswith=f"{SESSIONS}/{SESSION_ID}").mock(
        side_effect=[httpx.Response(404, json={"message": "no session"}), httpx.Response(204)]
    )
    async with _client(clock).session(117, owner="me") as session:
        await session.refresh()
        assert session.session_id == SESSION_ID
    assert github.routes[2].call_count == 2


# ---------------------------------------------------------------- the acquire log tells what happened


async def test_jobs_acquired_at_start_are_not_reported_as_gone_when_their_message_asks_again(
    clock: FakeClock, github: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    github.post(url__startswith=ACQUIRE).mock(
        side_effect=[
            httpx.Response(200, json={"value": [1, 2, 3, 4, 5]}),  # at start: all five were waiting
            httpx.Response(200, json={"value": []}),  # their JobAvailable message: ours already
            httpx.Response(200, json={"value": [6]}),  # one ours already, one taken, one new
        ]
    )
    with caplog.at_level(logging.INFO, logger="actions_scaleset.session"):
        async with _client(clock).session(117, owner="me") as session:
            assert await session.acquire_jobs([1, 2, 3, 4, 5]) == [1, 2, 3, 4, 5]
            assert await session.acquire_jobs([1, 2, 3, 4, 5]) == []
            assert await session.acquire_jobs([5, 6, 7]) == [6]
    lines = [r.getMessage() for r in caplog.records if "acquired" in r.getMessage()]
    assert lines == [
        "acquired 0 of 5 jobs: 5 already acquired by this session (at start or from an earlier message)",
        "acquired 1 of 3 jobs: 1 already acquired by this session (at start or from an earlier message), "
        "1 went elsewhere or cancelled",
    ]
    assert not any("others went elsewhere" in line for line in lines)
