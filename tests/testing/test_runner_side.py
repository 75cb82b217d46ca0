"""The runner side: OAuth, broker, run service and results, driven with raw httpx.

The first test walks the whole path from a PAT to a completed job, the way a
listener and a JIT runner would, and checks what the scale-set side saw.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import httpx
import pytest

from actions_scaleset.testing import FakeGitHub, JobState
from tests.support import FakeClock
from tests.testing.wire import (
    Admin,
    ack,
    acquire,
    bearer,
    bootstrap,
    broker_poll,
    broker_session,
    broker_url,
    client_assertion,
    create_scale_set,
    create_session,
    decode_jit,
    events,
    generate_jit,
    oauth,
    poll,
    runner_token,
)

pytestmark = pytest.mark.anyio


@attrs.define
class Listener:
    """The scale-set side of a test: admin connection, session, last message id."""

    http: httpx.AsyncClient
    admin: Admin
    session: dict[str, Any]
    last: int = 0

    async def next_events(self) -> list[dict[str, Any]]:
        message = await poll(self.http, self.session, last=self.last)
        if message.status_code == 202:
            return []
        self.last = message.json()["messageId"]
        await ack(self.http, self.session, self.last)
        return events(message)


@attrs.define
class RunnerSide:
    http: httpx.AsyncClient
    files: dict[str, Any]
    token: str
    session_id: str

    async def poll(self, status: str = "Online") -> httpx.Response:
        return await broker_poll(self.http, self.files, self.token, self.session_id, status)


async def listener(fake: FakeGitHub, http: httpx.AsyncClient) -> Listener:
    admin = await bootstrap(http, fake)
    await create_scale_set(http, admin, "linux")
    session = (await create_session(http, admin, 1)).json()
    return Listener(http, admin, session)


async def runner(
    fake: FakeGitHub, http: httpx.AsyncClient, admin: Admin, name: str = "runner-1"
) -> RunnerSide:
    jit = (await generate_jit(http, admin, 1, name)).json()
    files = decode_jit(jit["encodedJITConfig"])
    token = await runner_token(http, files, fake.clock())
    created = await broker_session(http, files, token)
    assert created.status_code == 201, created.text
    return RunnerSide(http, files, token, created.json()["sessionId"])


async def take_job(side: RunnerSide) -> dict[str, Any]:
    """Poll the broker for a RunnerJobRequest, acknowledge it and acquire the job."""
    message = await side.poll()
    assert message.status_code == 200, message.text
    assert message.json()["messageType"] == "RunnerJobRequest"
    request = json.loads(message.json()["body"])
    acked = await side.http.post(
        broker_url(side.files) + "acknowledge",
        params={"sessionId": side.session_id, "status": "Online"},
        headers=bearer(side.token),
        json={"runnerRequestId": request["runner_request_id"]},
    )
    assert acked.status_code == 200
    job = await side.http.post(
        request["run_service_url"] + "acquirejob",
        headers=bearer(side.token),
        json={
            "jobMessageId": request["runner_request_id"],
            "runnerOS": "Linux",
            "billingOwnerId": request["billing_owner_id"],
        },
    )
    assert job.status_code == 200, job.text
    return dict(job.json())


def connection(job: dict[str, Any]) -> tuple[str, str]:
    endpoint = next(e for e in job["resources"]["endpoints"] if e["name"] == "SystemVssConnection")
    return endpoint["url"], endpoint["authorization"]["parameters"]["AccessToken"]


async def test_a_job_travels_from_the_queue_to_a_jit_runner_and_back(
    fake: FakeGitHub, http: httpx.AsyncClient
) -> None:
    scale_set = await listener(fake, http)
    queued = fake.enqueue_job(labels=["linux"], repository="acme/app", display_name="test (ubuntu)")

    [available] = await scale_set.next_events()
    assert available["messageType"] == "JobAvailable"
    await acquire(http, scale_set.admin, scale_set.session, 1, [available["runnerRequestId"]])
    assert [e["messageType"] for e in await scale_set.next_events()] == ["JobAssigned"]

    side = await runner(fake, http, scale_set.admin)
    job = await take_job(side)
    assert job["jobId"] == queued.job_id
    assert job["jobDisplayName"] == "test (ubuntu)"
    run_url, job_token = connection(job)
    plan = {"planId": job["plan"]["planId"], "jobId": job["jobId"]}

    renewed = await http.post(run_url + "renewjob", headers=bearer(job_token), json=plan)
    assert renewed.status_code == 200
    assert renewed.json()["lockedUntil"].endswith("Z")
    [started] = await scale_set.next_events()
    assert (started["messageType"], started["runnerId"], started["runnerName"]) == (
        "JobStarted",
        1,
        "runner-1",
    )
    assert started["runnerAssignTime"] != "0001-01-01T00:00:00Z"

    busy = await side.poll(status="Busy")
    assert busy.status_code == 202
    completed = await http.post(
        run_url + "completejob",
        headers=bearer(job_token),
        json={
            **plan,
            "conclusion": "succeeded",
            "outputs": {},
            "stepResults": [],
            "annotations": [],
            "telemetry": [],
        },
    )
    assert completed.status_code == 204
    [done] = await scale_set.next_events()
    assert (done["messageType"], done["result"], done["runnerName"]) == (
        "JobCompleted",
        "succeeded",
        "runner-1",
    )

    closed = await http.delete(broker_url(side.files) + "session", headers=bearer(side.token))
    assert closed.status_code == 204
    snapshot = fake.snapshot()
    assert snapshot.job(queued.job_id).state is JobState.COMPLETED
    assert snapshot.runners == ()  # ephemeral: gone after its job
    assert snapshot.scale_sets[0].statistics.total_registered_runners == 0
    assert [r.route for r in fake.requests if r.route and r.route.startswith(("run.", "broker."))] == [
        "broker.session.create",
        "broker.message",
        "broker.acknowledge",
        "run.acquire",
        "run.renew",
        "broker.message",
        "run.complete",
        "broker.session.delete",
    ]


async def test_statistics_follow_the_job(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    scale_set = await listener(fake, http)
    job = fake.enqueue_job(labels=["linux"], repository="acme/app")
    await scale_set.next_events()
    await acquire(http, scale_set.admin, scale_set.session, 1, [job.runner_request_id])
    side = await runner(fake, http, scale_set.admin)
    stats = fake.statistics(1)
    assert (stats.total_assigned_jobs, stats.total_registered_runners, stats.total_idle_runners) == (1, 1, 1)
    await take_job(side)
    stats = fake.statistics(1)
    assert (stats.total_running_jobs, stats.total_busy_runners, stats.total_idle_runners) == (1, 1, 0)


# ---------------------------------------------------------------------- OAuth


@pytest.fixture
async def jit_files(fake: FakeGitHub, http: httpx.AsyncClient) -> dict[str, Any]:
    admin = await bootstrap(http, fake)
    await create_scale_set(http, admin, "linux")
    return decode_jit((await generate_jit(http, admin, 1, "runner-1")).json()["encodedJITConfig"])


async def test_the_token_endpoint_accepts_a_ps256_assertion(
    fake: FakeGitHub, http: httpx.AsyncClient, jit_files: dict[str, Any]
) -> None:
    response = await oauth(http, jit_files, client_assertion(jit_files, fake.clock(), algorithm="PS256"))
    assert response.status_code == 200
    assert set(response.json()) == {"access_token", "token_type", "expires_in"}


async def test_an_assertion_living_longer_than_five_minutes_is_refused(
    fake: FakeGitHub, http: httpx.AsyncClient, jit_files: dict[str, Any]
) -> None:
    response = await oauth(http, jit_files, client_assertion(jit_files, fake.clock(), lifetime=330))
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_client",
        "error_description": (
            "Bearer token lifetime 00:05:30 is greater than the allowed maximum lifetime 00:05:00"
        ),
    }


async def test_an_assertion_for_another_audience_is_refused(
    fake: FakeGitHub, http: httpx.AsyncClient, jit_files: dict[str, Any]
) -> None:
    assertion = client_assertion(jit_files, fake.clock(), audience="https://elsewhere/_apis/oauth2/token")
    response = await oauth(http, jit_files, assertion)
    assert response.json()["error"] == "invalid_client"


async def test_an_expired_assertion_mentions_the_server_time(
    fake: FakeGitHub, http: httpx.AsyncClient, jit_files: dict[str, Any], clock: FakeClock
) -> None:
    assertion = client_assertion(jit_files, fake.clock())
    clock.now += 301
    response = await oauth(http, jit_files, assertion)
    assert "Current server time is" in response.json()["error_description"]


async def test_an_assertion_signed_by_another_key_is_refused(
    fake: FakeGitHub, http: httpx.AsyncClient, jit_files: dict[str, Any]
) -> None:
    admin = await bootstrap(http, fake)
    other = decode_jit((await generate_jit(http, admin, 1, "runner-2")).json()["encodedJITConfig"])
    forged = {**jit_files, ".credentials_rsaparams": other[".credentials_rsaparams"]}
    response = await oauth(http, jit_files, client_assertion(forged, fake.clock()))
    assert response.json()["error"] == "invalid_client"


async def test_the_token_request_must_be_a_form(
    fake: FakeGitHub, http: httpx.AsyncClient, jit_files: dict[str, Any]
) -> None:
    url = jit_files[".credentials"]["Data"]["authorizationUrl"]
    response = await http.post(url, json={"grant_type": "client_credentials"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_the_string_typed_jit_style_round_trips(clock: FakeClock) -> None:
    fake = FakeGitHub(clock=clock, jit_style="string", poll_hold=0.02)
    async with fake.http_client() as http:
        admin = await bootstrap(http, fake)
        await create_scale_set(http, admin, "linux")
        files = decode_jit((await generate_jit(http, admin, 1, "runner-1")).json()["encodedJITConfig"])
        assert files[".runner"]["AgentId"] == "1"
        assert files[".runner"]["UseV2Flow"] == "True"
        assert "ClientId" in files[".credentials"]["Data"]
        assert (await oauth(http, files, client_assertion(files, fake.clock()))).status_code == 200


# ---------------------------------------------------------------------- broker and run service


async def test_a_second_broker_session_is_409(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    scale_set = await listener(fake, http)
    side = await runner(fake, http, scale_set.admin)
    again = await broker_session(http, side.files, side.token)
    assert again.status_code == 409
    assert again.json()["source"] == "actions-broker-listener"


async def test_a_poll_with_a_wrong_session_is_runner_session_invalid(
    fake: FakeGitHub, http: httpx.AsyncClient
) -> None:
    scale_set = await listener(fake, http)
    side = await runner(fake, http, scale_set.admin)
    response = await broker_poll(http, side.files, side.token, "00000000-0000-0000-0000-000000000001")
    assert response.status_code == 400
    assert response.json()["errorKind"] == "RunnerSessionInvalid"


async def test_renewjob_refuses_the_runner_token(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    scale_set = await listener(fake, http)
    job = fake.enqueue_job(labels=["linux"], repository="acme/app")
    await scale_set.next_events()
    await acquire(http, scale_set.admin, scale_set.session, 1, [job.runner_request_id])
    side = await runner(fake, http, scale_set.admin)
    message = await take_job(side)
    run_url, _ = connection(message)
    response = await http.post(
        run_url + "renewjob",
        headers=bearer(side.token),
        json={"planId": message["plan"]["planId"], "jobId": job.job_id},
    )
    assert response.status_code == 401
    assert response.json() == {
        "source": "actions-run-service",
        "statusCode": 401,
        "errorMessage": "Not authorized for this job",
    }


async def test_a_job_canceled_on_github_reaches_the_runner(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    scale_set = await listener(fake, http)
    job = fake.enqueue_job(labels=["linux"], repository="acme/app")
    await scale_set.next_events()
    await acquire(http, scale_set.admin, scale_set.session, 1, [job.runner_request_id])
    side = await runner(fake, http, scale_set.admin)
    message = await take_job(side)
    fake.cancel_job(job.job_id)
    cancellation = await side.poll(status="Busy")
    assert cancellation.json()["messageType"] == "JobCancellation"
    assert json.loads(cancellation.json()["body"]) == {"jobId": job.job_id, "timeout": "00:05:00"}
    run_url, job_token = connection(message)
    await http.post(
        run_url + "completejob",
        headers=bearer(job_token),
        json={"planId": message["plan"]["planId"], "jobId": job.job_id, "conclusion": "canceled"},
    )
    completed = [e for e in await scale_set.next_events() if e["messageType"] == "JobCompleted"]
    assert completed[0]["result"] == "canceled"


async def test_a_runner_busy_with_a_job_cannot_be_removed(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    from tests.testing.wire import actions

    scale_set = await listener(fake, http)
    job = fake.enqueue_job(labels=["linux"], repository="acme/app")
    await scale_set.next_events()
    await acquire(http, scale_set.admin, scale_set.session, 1, [job.runner_request_id])
    side = await runner(fake, http, scale_set.admin)
    await take_job(side)
    response = await actions(http, scale_set.admin, "DELETE", "_apis/distributedtask/pools/0/agents/1")
    assert response.status_code == 400
    assert "JobStillRunningException" in response.json()["typeName"]


async def test_an_unrenewed_lock_abandons_the_job(
    fake: FakeGitHub, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    scale_set = await listener(fake, http)
    job = fake.enqueue_job(labels=["linux"], repository="acme/app")
    await scale_set.next_events()
    await acquire(http, scale_set.admin, scale_set.session, 1, [job.runner_request_id])
    side = await runner(fake, http, scale_set.admin)
    await take_job(side)
    for _ in range(11):
        clock.now += 60
        await scale_set.next_events()
    assert fake.job(job.job_id).result == "abandoned"


async def test_steps_and_logs_reach_the_results_service(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    scale_set = await listener(fake, http)
    job = fake.enqueue_job(labels=["linux"], repository="acme/app")
    await scale_set.next_events()
    await acquire(http, scale_set.admin, scale_set.session, 1, [job.runner_request_id])
    side = await runner(fake, http, scale_set.admin)
    message = await take_job(side)
    _, job_token = connection(message)
    results = message["variables"]["system.github.results_endpoint"]["value"]
    ids = {"workflow_run_backend_id": message["plan"]["planId"], "workflow_job_run_backend_id": job.job_id}
    twirp = results + "twirp/"
    step = {"external_id": "step-1", "number": 1, "name": "Run", "status": 6, "conclusion": 2}
    updated = await http.post(
        twirp + "github.actions.results.api.v1.WorkflowStepUpdateService/WorkflowStepsUpdate",
        headers=bearer(job_token),
        json={**ids, "change_order": 1, "steps": [step]},
    )
    assert updated.json() == {"ok": True}
    signed = await http.post(
        twirp + "results.services.receiver.Receiver/GetStepLogsSignedBlobURL",
        headers=bearer(job_token),
        json={**ids, "step_backend_id": "step-1"},
    )
    logs_url = signed.json()["logs_url"]
    assert (
        await http.put(logs_url, content=b"hello\n", headers={"x-ms-blob-type": "BlockBlob"})
    ).status_code == 201
    assert (
        await http.put(
            logs_url.replace("sig=", "sig=x"), content=b"", headers={"x-ms-blob-type": "BlockBlob"}
        )
    ).status_code == 403
    metadata = await http.post(
        twirp + "results.services.receiver.Receiver/CreateStepLogsMetadata",
        headers=bearer(job_token),
        json={**ids, "step_backend_id": "step-1", "uploaded_at": "2026-05-04T10:07:01.120Z", "line_count": 1},
    )
    assert metadata.json() == {"ok": True}
    assert list(fake.blobs.values()) == [b"hello\n"]


async def test_a_rest_jit_runner_takes_a_job_for_its_labels(
    fake: FakeGitHub, http: httpx.AsyncClient
) -> None:
    fake.config_url("acme")
    created = await http.post(
        f"{fake.base_url}/api/v3/orgs/acme/actions/runners/generate-jitconfig",
        headers=bearer(fake.pat().token.get_secret_value()),
        json={"name": "gpu-1", "runner_group_id": 1, "labels": ["self-hosted", "gpu"]},
    )
    files = decode_jit(created.json()["encoded_jit_config"])
    token = await runner_token(http, files, fake.clock())
    session = (await broker_session(http, files, token)).json()
    side = RunnerSide(http, files, token, session["sessionId"])
    other = fake.enqueue_job(labels=["self-hosted", "linux"], repository="acme/app")
    job = fake.enqueue_job(labels=["self-hosted", "gpu"], repository="acme/app")
    message = await take_job(side)
    assert message["jobId"] == job.job_id
    assert fake.job(other.job_id).state is JobState.QUEUED
