"""Faults, in-process and over TCP (`serve()`), on asyncio and trio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from actions_scaleset.testing import FakeGitHub, JobState, TokenKind
from tests.testing.wire import (
    acquire,
    bearer,
    bootstrap,
    create_scale_set,
    create_session,
    events,
    poll,
    registration_token,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def session(fake: FakeGitHub, http: httpx.AsyncClient) -> dict[str, Any]:
    admin = await bootstrap(http, fake)
    await create_scale_set(http, admin, "linux")
    return dict((await create_session(http, admin, 1)).json())


async def test_a_status_fault_answers_times_then_stops(
    fake: FakeGitHub, http: httpx.AsyncClient, session: dict[str, Any]
) -> None:
    fault = fake.faults.add(route="message", status=503, times=3, retry_after=2)
    answers = [await poll(http, session) for _ in range(4)]
    assert [a.status_code for a in answers] == [503, 503, 503, 202]
    assert answers[0].headers["retry-after"] == "2"
    assert set(answers[0].json()) == {"typeName", "message"}
    assert fault.hits == 3
    assert fake.faults.pending == []
    assert [r.status for r in fake.requests_to("message")] == [503, 503, 503, 202]


async def test_a_dropped_connection_is_an_httpx_transport_error_in_process(
    fake: FakeGitHub, http: httpx.AsyncClient, session: dict[str, Any]
) -> None:
    fake.faults.add(route="message", drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        await poll(http, session)
    assert fake.requests[-1].status is None
    assert (await poll(http, session)).status_code == 202


async def test_an_empty_200_and_a_malformed_body(
    fake: FakeGitHub, http: httpx.AsyncClient, session: dict[str, Any]
) -> None:
    fake.faults.add(route="message", empty=True)
    fake.faults.add(route="message", malformed=True)
    empty = await poll(http, session)
    assert (empty.status_code, empty.content) == (200, b"")
    broken = await poll(http, session)
    assert broken.status_code == 200
    with pytest.raises(ValueError, match=r"Unterminated|Expecting"):
        broken.json()


async def test_a_delay_beyond_the_client_timeout_is_a_read_timeout(
    fake: FakeGitHub, http: httpx.AsyncClient, session: dict[str, Any]
) -> None:
    fake.faults.add(route="message", delay=0.5)
    with pytest.raises(httpx.ReadTimeout):
        await http.get(
            session["messageQueueUrl"], headers=bearer(session["messageQueueAccessToken"]), timeout=0.05
        )


async def test_a_409_on_session_create_has_the_conflict_body(
    fake: FakeGitHub, http: httpx.AsyncClient
) -> None:
    admin = await bootstrap(http, fake)
    await create_scale_set(http, admin, "linux")
    fake.faults.add(route="session.create", status=409)
    conflict = await create_session(http, admin, 1)
    assert conflict.status_code == 409
    assert "RunnerScaleSetSessionConflictException" in conflict.json()["typeName"]
    assert (await create_session(http, admin, 1)).status_code == 200


async def test_a_lost_response_still_changes_the_state(
    fake: FakeGitHub, http: httpx.AsyncClient, session: dict[str, Any]
) -> None:
    admin = await bootstrap(http, fake)
    job = fake.enqueue_job(labels=["linux"], repository="acme/app")
    fake.faults.add(route="acquire_jobs", drop=True, after_processing=True)
    with pytest.raises(httpx.RemoteProtocolError):
        await acquire(http, admin, session, 1, [job.runner_request_id])
    assert fake.job(job.job_id).state is JobState.ASSIGNED


async def test_faults_skip_and_match_globs_and_methods(
    fake: FakeGitHub, http: httpx.AsyncClient, session: dict[str, Any]
) -> None:
    fake.faults.add(route="mess*", method="GET", status=500, skip=1)
    assert (await poll(http, session)).status_code == 202
    assert (await poll(http, session)).status_code == 500


def test_a_fault_needs_one_answer() -> None:
    from actions_scaleset.testing import Faults

    with pytest.raises(ValueError, match="one of"):
        Faults().add(status=500, drop=True)
    with pytest.raises(ValueError, match="needs"):
        Faults().add(route="message")


async def test_expire_tokens_makes_the_queue_token_401_now(
    fake: FakeGitHub, http: httpx.AsyncClient, session: dict[str, Any]
) -> None:
    fake.expire_tokens(kind="message_queue")
    response = await poll(http, session)
    assert response.status_code == 401
    assert fake.requests[-1].token is TokenKind.MESSAGE_QUEUE


# ---------------------------------------------------------------------- over TCP


@pytest.fixture
async def served(fake: FakeGitHub) -> AsyncIterator[str]:
    async with fake.serve() as base_url:
        yield base_url


async def test_serve_runs_the_whole_scale_set_flow_on_a_loopback_port(fake: FakeGitHub, served: str) -> None:
    assert served.startswith("http://127.0.0.1:")
    assert fake.config_url("acme") == f"{served}/acme"
    async with httpx.AsyncClient() as http:
        admin = await bootstrap(http, fake)
        assert admin.url.startswith(served)
        await create_scale_set(http, admin, "linux")
        session = (await create_session(http, admin, 1)).json()
        job = fake.enqueue_job(labels=["linux"], repository="acme/app")
        [available] = events(await poll(http, session))
        assert available["runnerRequestId"] == job.runner_request_id
        assert (await poll(http, session, last=1)).status_code == 202
    assert fake.requests[-1].host == served.removeprefix("http://")


async def test_faults_work_over_tcp(fake: FakeGitHub, served: str) -> None:
    async with httpx.AsyncClient() as http:
        fake.faults.add(route="registration_token", status=503, retry_after=2)
        fake.faults.add(route="registration_token", drop=True)
        fake.config_url("acme")
        headers = bearer(fake.pat().token.get_secret_value())
        url = f"{served}/api/v3/orgs/acme/actions/runners/registration-token"
        unavailable = await http.post(url, headers=headers)
        assert (unavailable.status_code, unavailable.headers["retry-after"]) == (503, "2")
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(url, headers=headers)
        assert (await http.post(url, headers=headers)).status_code == 201


async def test_a_token_minted_in_process_is_wrong_host_over_tcp(
    fake: FakeGitHub, http: httpx.AsyncClient
) -> None:
    token = await registration_token(http, fake)
    async with fake.serve() as base_url, httpx.AsyncClient() as tcp:
        response = await tcp.post(
            f"{base_url}/api/v3/actions/runner-registration",
            headers={"Authorization": f"RemoteAuth {token}"},
            json={"url": fake.config_url("acme"), "runner_event": "register"},
        )
    assert response.status_code == 401


def test_a_rate_fault_fires_for_about_that_share_and_repeats_with_its_seed() -> None:
    from actions_scaleset.testing import Faults

    def schedule(seed: int) -> list[bool]:
        faults = Faults()
        faults.add(route="message", status=503, rate=0.1, times=None, seed=seed)
        return [bool(faults.take("message", "GET")) for _ in range(1000)]

    first = schedule(3)
    assert 60 <= sum(first) <= 140
    assert schedule(3) == first
    assert schedule(4) != first


def test_a_rate_outside_zero_to_one_is_refused() -> None:
    from actions_scaleset.testing import Faults

    with pytest.raises(ValueError, match="rate"):
        Faults().add(route="*", status=503, rate=0)


# ---------------------------------------------------------------------- misuse and reprs


def test_a_misspelt_route_is_a_value_error_listing_the_known_routes(fake: FakeGitHub) -> None:
    with pytest.raises(ValueError, match="no route matches 'mesage'") as info:
        fake.faults.add(route="mesage", status=503)
    said = str(info.value)
    assert "did you mean 'message'" in said
    assert all(name in said for name in fake.routes())
    assert fake.faults.pending == []


@pytest.mark.parametrize("route", ["brokr.*", "*.nothing", "message.get"])
def test_a_glob_that_matches_no_route_is_refused(fake: FakeGitHub, route: str) -> None:
    with pytest.raises(ValueError, match="no route matches"):
        fake.faults.add(route=route, drop=True)


@pytest.mark.parametrize("route", ["*", "broker.*", "message", "run.?enew"])
def test_a_glob_that_matches_a_route_is_accepted(fake: FakeGitHub, route: str) -> None:
    assert fake.faults.add(route=route, drop=True).route == route


def test_a_fault_repr_shows_what_was_asked_and_its_hits_and_nothing_private(fake: FakeGitHub) -> None:
    fault = fake.faults.add(route="message", status=503, times=3, retry_after=2)
    assert repr(fault) == "Fault(route='message', status=503, retry_after=2, times=3, hits=0)"
    assert repr(fake.faults.add(route="broker.*", drop=True)) == "Fault(route='broker.*', drop=True, hits=0)"


def test_a_faults_repr_lists_a_few_pending_faults_and_counts_the_rest(fake: FakeGitHub) -> None:
    assert repr(fake.faults) == "Faults([])"
    for _ in range(5):
        fake.faults.add(route="message", delay=0.5)
    shown = repr(fake.faults)
    assert shown.startswith("Faults([Fault(route='message', delay=0.5, hits=0), ")
    assert shown.endswith(", … 2 more])")
    assert "_seen" not in shown
    assert "_random" not in shown
