"""Sessions and the scale-set message queue: long poll, ack, redelivery, capacity, re-queues."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from actions_scaleset.testing import FakeGitHub, JobState
from tests.support import FakeClock
from tests.testing.wire import (
    Admin,
    ack,
    acquire,
    actions,
    bootstrap,
    create_scale_set,
    create_session,
    events,
    poll,
)

pytestmark = pytest.mark.anyio

SETS = "_apis/runtime/runnerscalesets"


@pytest.fixture
async def admin(fake: FakeGitHub, http: httpx.AsyncClient) -> Admin:
    return await bootstrap(http, fake)


@pytest.fixture
async def scale_set(http: httpx.AsyncClient, admin: Admin) -> dict[str, Any]:
    return await create_scale_set(http, admin, "linux")


@pytest.fixture
async def session(http: httpx.AsyncClient, admin: Admin, scale_set: dict[str, Any]) -> dict[str, Any]:
    response = await create_session(http, admin, scale_set["id"])
    assert response.status_code == 200
    return dict(response.json())


# ---------------------------------------------------------------------- sessions


async def test_a_session_carries_the_scale_set_queue_and_statistics(session: dict[str, Any]) -> None:
    assert set(session) == {
        "sessionId",
        "ownerName",
        "runnerScaleSet",
        "messageQueueUrl",
        "messageQueueAccessToken",
        "statistics",
    }
    assert session["runnerScaleSet"]["id"] == 1
    assert session["sessionId"] != "00000000-0000-0000-0000-000000000000"


async def test_a_second_session_is_409_session_conflict(
    http: httpx.AsyncClient, admin: Admin, session: dict[str, Any]
) -> None:
    second = await create_session(http, admin, 1, owner="listener-1")
    assert second.status_code == 409
    assert second.json() == {
        "typeName": "GitHub.Actions.Runtime.WebApi.RunnerScaleSetSessionConflictException, "
        "GitHub.Actions.Runtime.WebApi",
        "message": "The actions runner scaleset linux already has an active session.",
    }


async def test_a_stale_session_expires_and_a_new_one_can_start(
    http: httpx.AsyncClient, admin: Admin, session: dict[str, Any], clock: FakeClock
) -> None:
    clock.now += 121
    assert (await create_session(http, admin, 1, owner="listener-1")).status_code == 200
    assert (await poll(http, session)).status_code == 401
    refresh = await actions(http, admin, "PATCH", f"{SETS}/1/sessions/{session['sessionId']}")
    assert refresh.status_code == 404


async def test_polling_keeps_a_session_alive(
    http: httpx.AsyncClient, admin: Admin, session: dict[str, Any], clock: FakeClock
) -> None:
    for _ in range(3):
        clock.now += 100
        assert (await poll(http, session)).status_code == 202
    assert (await create_session(http, admin, 1)).status_code == 409


async def test_a_refreshed_session_has_a_new_queue_token(
    http: httpx.AsyncClient, admin: Admin, session: dict[str, Any]
) -> None:
    refresh = await actions(http, admin, "PATCH", f"{SETS}/1/sessions/{session['sessionId']}")
    assert refresh.status_code == 200
    assert refresh.json()["sessionId"] == session["sessionId"]
    assert refresh.json()["messageQueueAccessToken"] != session["messageQueueAccessToken"]


async def test_a_deleted_session_frees_the_scale_set(
    http: httpx.AsyncClient, admin: Admin, session: dict[str, Any]
) -> None:
    deleted = await actions(http, admin, "DELETE", f"{SETS}/1/sessions/{session['sessionId']}")
    assert deleted.status_code == 204
    assert (await create_session(http, admin, 1)).status_code == 200


async def test_an_expired_queue_token_is_401_until_the_session_is_refreshed(
    fake: FakeGitHub, http: httpx.AsyncClient, admin: Admin, session: dict[str, Any]
) -> None:
    fake.expire_tokens("message_queue")
    assert (await poll(http, session)).status_code == 401
    refreshed = (await actions(http, admin, "PATCH", f"{SETS}/1/sessions/{session['sessionId']}")).json()
    assert (await poll(http, refreshed)).status_code == 202


async def test_the_admin_token_is_not_a_queue_token(
    http: httpx.AsyncClient, admin: Admin, session: dict[str, Any]
) -> None:
    response = await poll(http, {**session, "messageQueueAccessToken": admin.token})
    assert response.status_code == 401
    acquired = await acquire(http, admin, {**session, "messageQueueAccessToken": admin.token}, 1, [1])
    assert acquired.status_code == 401


# ---------------------------------------------------------------------- messages


async def test_an_empty_poll_is_202_with_no_body(http: httpx.AsyncClient, session: dict[str, Any]) -> None:
    response = await poll(http, session)
    assert response.status_code == 202
    assert response.content == b""


async def test_a_job_is_available_then_acquired_then_assigned(
    fake: FakeGitHub, http: httpx.AsyncClient, admin: Admin, session: dict[str, Any]
) -> None:
    job = fake.enqueue_job(labels=["linux"], repository="acme/app")
    first = await poll(http, session)
    [available] = events(first)
    assert available["messageType"] == "JobAvailable"
    assert available["acquireJobUrl"] == f"{admin.url}{SETS}/1/acquirejobs"
    assert first.json()["statistics"]["totalAvailableJobs"] == 1
    acquired = await acquire(http, admin, session, 1, [job.runner_request_id, 999])
    assert acquired.json() == {"count": 1, "value": [job.runner_request_id]}
    assert (await ack(http, session, first.json()["messageId"])).status_code == 204
    second = await poll(http, session, last=first.json()["messageId"])
    assert [e["messageType"] for e in events(second)] == ["JobAssigned"]
    assert second.json()["statistics"]["totalAssignedJobs"] == 1
    assert fake.job(job.job_id).state is JobState.ASSIGNED


async def test_an_unacknowledged_message_is_delivered_again(
    fake: FakeGitHub, http: httpx.AsyncClient, session: dict[str, Any]
) -> None:
    fake.enqueue_job(labels=["linux"], repository="acme/app")
    first = await poll(http, session)
    again = await poll(http, session)
    assert again.json()["messageId"] == first.json()["messageId"]
    assert again.json()["body"] == first.json()["body"]


async def test_a_job_for_other_labels_is_not_offered(
    fake: FakeGitHub, http: httpx.AsyncClient, session: dict[str, Any]
) -> None:
    job = fake.enqueue_job(labels=["windows"], repository="acme/app")
    assert (await poll(http, session)).status_code == 202
    assert fake.job(job.job_id).state is JobState.QUEUED


async def test_a_job_of_another_organization_is_not_offered(
    fake: FakeGitHub, http: httpx.AsyncClient, session: dict[str, Any]
) -> None:
    fake.enqueue_job(labels=["linux"], repository="globex/app")
    assert (await poll(http, session)).status_code == 202


async def test_a_message_holds_at_most_fifty_events(
    fake: FakeGitHub, http: httpx.AsyncClient, session: dict[str, Any]
) -> None:
    for _ in range(60):
        fake.enqueue_job(labels=["linux"], repository="acme/app")
    first = await poll(http, session)
    assert len(events(first)) == 50
    assert first.json()["statistics"]["totalAvailableJobs"] == 60
    await ack(http, session, first.json()["messageId"])
    second = await poll(http, session, last=first.json()["messageId"])
    assert len(events(second)) == 10


async def test_assignment_respects_the_max_capacity_header(
    fake: FakeGitHub, http: httpx.AsyncClient, admin: Admin, session: dict[str, Any]
) -> None:
    jobs = [fake.enqueue_job(labels=["linux"], repository="acme/app") for _ in range(3)]
    first = await poll(http, session, capacity=2)
    await acquire(http, admin, session, 1, [j.runner_request_id for j in jobs])
    second = await poll(http, session, last=first.json()["messageId"], capacity=2)
    assert [e["messageType"] for e in events(second)] == ["JobAssigned", "JobAssigned"]
    stats = second.json()["statistics"]
    assert (stats["totalAcquiredJobs"], stats["totalAssignedJobs"]) == (1, 2)
    third = await poll(http, session, last=second.json()["messageId"], capacity=3)
    assert [e["messageType"] for e in events(third)] == ["JobAssigned"]


async def test_without_acquire_a_ghes_job_stays_available(
    fake: FakeGitHub, http: httpx.AsyncClient, session: dict[str, Any]
) -> None:
    job = fake.enqueue_job(labels=["linux"], repository="acme/app")
    first = await poll(http, session)
    await poll(http, session, last=first.json()["messageId"])
    assert fake.job(job.job_id).state is JobState.AVAILABLE


async def test_acquirable_jobs_is_204_when_none_and_lists_available_jobs(
    fake: FakeGitHub, http: httpx.AsyncClient, admin: Admin, session: dict[str, Any]
) -> None:
    assert (await actions(http, admin, "GET", f"{SETS}/1/acquirablejobs")).status_code == 204
    job = fake.enqueue_job(labels=["linux"], repository="acme/app")
    listed = (await actions(http, admin, "GET", f"{SETS}/1/acquirablejobs")).json()
    assert listed["count"] == 1
    assert listed["value"][0]["runnerRequestId"] == job.runner_request_id


async def listen(
    http: httpx.AsyncClient, session: dict[str, Any], clock: FakeClock, last: int, seconds: float
) -> tuple[int, list[dict[str, Any]]]:
    """Poll (acknowledging by `lastMessageId`) while the clock moves `seconds` in 60 s steps."""
    seen: list[dict[str, Any]] = []
    for _ in range(int(seconds // 60) + 1):
        message = await poll(http, session, last=last)
        if message.status_code == 200:
            last = message.json()["messageId"]
            seen += events(message)
        clock.now += 60
    return last, seen


async def test_an_unstarted_job_is_canceled_and_requeued_at_most_three_times(
    fake: FakeGitHub, http: httpx.AsyncClient, admin: Admin, session: dict[str, Any], clock: FakeClock
) -> None:
    job = fake.enqueue_job(labels=["linux"], repository="acme/app")
    last, seen = await listen(http, session, clock, 0, 0)
    for _attempt in range(4):
        available = [e for e in seen if e["messageType"] == "JobAvailable"][-1]
        await acquire(http, admin, session, 1, [available["runnerRequestId"]])
        last, more = await listen(http, session, clock, last, 300)
        seen += more
    info = fake.job(job.job_id)
    assert info.state is JobState.COMPLETED
    assert info.result == "canceled"
    assert info.requeues == 3
    assert info.events == ("JobAvailable", "JobAssigned", "JobCompleted") * 4
    assert [e["messageType"] for e in seen] == ["JobAvailable", "JobAssigned", "JobCompleted"] * 4


async def test_a_canceled_assignment_reports_no_runner(
    fake: FakeGitHub, http: httpx.AsyncClient, admin: Admin, session: dict[str, Any], clock: FakeClock
) -> None:
    job = fake.enqueue_job(labels=["linux"], repository="acme/app")
    last, _ = await listen(http, session, clock, 0, 0)
    await acquire(http, admin, session, 1, [job.runner_request_id])
    _, batch = await listen(http, session, clock, last, 360)
    completed = next(e for e in batch if e["messageType"] == "JobCompleted")
    assert (completed["result"], completed["runnerId"], completed["runnerName"]) == ("canceled", 0, "")
    assert completed["runnerAssignTime"] == "0001-01-01T00:00:00Z"
    requeued = next(e for e in batch if e["messageType"] == "JobAvailable")
    assert requeued["jobId"] == job.job_id
    assert requeued["runnerRequestId"] != job.runner_request_id


async def test_a_redelivered_queue_survives_a_listener_restart(
    fake: FakeGitHub, http: httpx.AsyncClient, admin: Admin, session: dict[str, Any]
) -> None:
    fake.enqueue_job(labels=["linux"], repository="acme/app")
    first = await poll(http, session)
    await actions(http, admin, "DELETE", f"{SETS}/1/sessions/{session['sessionId']}")
    restarted = (await create_session(http, admin, 1)).json()
    again = await poll(http, restarted)
    assert again.json()["messageId"] == first.json()["messageId"]


async def test_a_bad_capacity_header_is_400(http: httpx.AsyncClient, session: dict[str, Any]) -> None:
    response = await poll(http, session, capacity=-1)
    assert response.status_code == 400


async def test_jobs_arrive_assigned_when_acquire_is_not_required(
    clock: FakeClock,
) -> None:
    fake = FakeGitHub(clock=clock, require_acquire=False, poll_hold=0.02)
    async with fake.http_client() as http:
        admin = await bootstrap(http, fake)
        await create_scale_set(http, admin, "linux")
        session = (await create_session(http, admin, 1)).json()
        fake.enqueue_job(labels=["linux"], repository="acme/app")
        assert [e["messageType"] for e in events(await poll(http, session))] == ["JobAssigned"]


async def test_an_enterprise_scale_set_sees_its_organizations_jobs(
    fake: FakeGitHub, http: httpx.AsyncClient
) -> None:
    fake.add_organization("acme", enterprise="big")
    admin = await bootstrap(http, fake, "enterprises/big")
    await create_scale_set(http, admin, "linux")
    session = (await create_session(http, admin, 1)).json()
    fake.enqueue_job(labels=["linux"], repository="acme/app")
    assert events(await poll(http, session))[0]["ownerName"] == "acme"
