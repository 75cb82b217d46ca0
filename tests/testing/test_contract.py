"""Contract: every response fixture's shape (keys and JSON types) is what the fake answers,
and every request fixture is a body the fake accepts.

One scenario (run once, on asyncio: shapes do not depend on the backend) drives the
fake through each call and keeps what it answered, keyed by fixture name.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from actions_scaleset.testing import FakeGitHub
from tests.support import RUNNER_FIXTURES, SCALESET_FIXTURES, FakeClock, load_fixture
from tests.testing.wire import (
    Admin,
    acquire,
    actions,
    bearer,
    broker_poll,
    broker_session,
    broker_url,
    client_assertion,
    create_session,
    decode_jit,
    generate_jit,
    oauth,
    poll,
    runner_token,
)

SETS = "_apis/runtime/runnerscalesets"
AGENTS = "_apis/distributedtask/pools/0/agents"
SUBSET = {  # fixtures copied from client tests: fewer keys than the service sends
    "message_minimal_from_tests.json",
    "runner_group_list_from_tests.json",
    "runner_scale_set_list_from_tests.json",
    "session_from_tests.json",
}


def kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}[
        type(value)
    ]


def assert_shape(expected: Any, actual: Any, where: str = "$", *, subset: bool = False) -> None:
    """Same keys (or a subset of ours) and the same JSON type at every level."""
    assert kind(actual) == kind(expected), f"{where}: {kind(actual)} where the fixture has {kind(expected)}"
    if isinstance(expected, dict):
        keys = {k for k in expected if not k.startswith("_")}
        if subset:
            assert keys <= set(actual), f"{where}: missing {sorted(keys - set(actual))}"
        else:
            assert keys == set(actual), f"{where}: keys {sorted(actual)} != fixture {sorted(keys)}"
        for key in keys:
            assert_shape(expected[key], actual[key], f"{where}.{key}", subset=subset)
    elif isinstance(expected, list) and expected and actual:
        for i, item in enumerate(actual):
            assert_shape(expected[0], item, f"{where}[{i}]", subset=subset)


async def scale_set_side(fake: FakeGitHub, http: httpx.AsyncClient, seen: dict[str, Any]) -> Admin:
    pat = bearer(fake.pat().token.get_secret_value())
    api = f"{fake.base_url}/api/v3"
    fake.config_url("octo-org")
    seen["registration_token_response.json"] = (
        await http.post(f"{api}/orgs/octo-org/actions/runners/registration-token", headers=pat)
    ).json()
    registration = {**load_fixture("runner_registration_request.json"), "url": fake.config_url("octo-org")}
    exchanged = await http.post(
        f"{api}/actions/runner-registration",
        headers={"Authorization": f"RemoteAuth {seen['registration_token_response.json']['token']}"},
        json=registration,
    )
    seen["runner_registration_response.json"] = seen["runner_registration_response_from_tests.json"] = (
        exchanged.json()
    )
    seen["error_github_rest_404.json"] = (
        await http.post(
            f"{api}/actions/runner-registration",
            headers={"Authorization": f"RemoteAuth {seen['registration_token_response.json']['token']}"},
            json={**registration, "url": fake.config_url("other-org")},
        )
    ).json()
    app = fake.app("octo-org")
    app_jwt = bearer(app.app_jwt(now=fake.clock()).get_secret_value())
    seen["installation_access_token_response.json"] = (
        await http.post(f"{api}/app/installations/{app.installation_id}/access_tokens", headers=app_jwt)
    ).json()
    admin = Admin(exchanged.json()["url"], exchanged.json()["token"])

    for name in (
        "runner_scale_set_create_request_legacy.json",
        "runner_scale_set_create_request_scaleset.json",
    ):
        short = name.removesuffix(".json")[-6:]
        body = {**load_fixture(name), "name": short, "labels": [{"type": "System", "name": short}]}
        assert (await actions(http, admin, "POST", SETS, json_body=body)).status_code == 200, name
    fake.add_runner_group("octo-org", "gpu")
    fake.add_runner_group("octo-org", "arc-linux")  # id 3, as in the update fixture
    assert (
        await actions(
            http, admin, "PATCH", f"{SETS}/2", json_body=load_fixture("runner_scale_set_update_request.json")
        )
    ).status_code == 200
    created = await actions(
        http, admin, "POST", SETS, json_body=load_fixture("runner_scale_set_create_request_scaleset.json")
    )
    scale_set_id = created.json()["id"]
    seen["runner_scale_set.json"] = (await actions(http, admin, "GET", f"{SETS}/{scale_set_id}")).json()
    listed = await actions(http, admin, "GET", SETS, runnerGroupId=1, name="arc-runner-set")
    seen["runner_scale_set_list.json"] = seen["runner_scale_set_list_from_tests.json"] = listed.json()
    groups = await actions(http, admin, "GET", "_apis/runtime/runnergroups/", groupName="arc-linux")
    seen["runner_group_list.json"] = seen["runner_group_list_from_tests.json"] = groups.json()

    for name in ("session_create_request_legacy.json", "session_create_request_scaleset.json"):
        session = await actions(
            http, admin, "POST", f"{SETS}/{scale_set_id}/sessions", json_body=load_fixture(name)
        )
        assert session.status_code == 200, name
        await actions(http, admin, "DELETE", f"{SETS}/{scale_set_id}/sessions/{session.json()['sessionId']}")
    session = (await create_session(http, admin, scale_set_id)).json()
    seen["session_create_response.json"] = seen["session_from_tests.json"] = session
    seen["error_actions_session_conflict_409.json"] = (await create_session(http, admin, scale_set_id)).json()
    seen["error_actions_from_tests.json"] = (await http.get(admin.url + SETS, headers=admin.headers)).json()
    return admin


async def jobs_and_runners(
    fake: FakeGitHub, http: httpx.AsyncClient, admin: Admin, seen: dict[str, Any]
) -> None:
    session = seen["session_create_response.json"]
    scale_set_id = session["runnerScaleSet"]["id"]
    first = fake.enqueue_job(labels=["arc-runner-set"], repository="octo-org/widgets")
    second = fake.enqueue_job(labels=["arc-runner-set"], repository="octo-org/gadgets")
    seen["acquirable_jobs.json"] = (
        await actions(http, admin, "GET", f"{SETS}/{scale_set_id}/acquirablejobs")
    ).json()
    message = await poll(http, session)
    acquired = await acquire(
        http,
        admin,
        session,
        scale_set_id,
        [*load_fixture("acquire_jobs_request.json"), first.runner_request_id, second.runner_request_id],
    )
    seen["acquire_jobs_response.json"] = acquired.json()
    jit = await generate_jit(http, admin, scale_set_id, load_fixture("jit_config_request.json")["name"])
    seen["jit_config_response.json"] = jit.json()
    seen["jit_config_decoded_example.json"] = {
        "outer_map": json.loads(base64.b64decode(jit.json()["encodedJITConfig"])),
        "decoded_files": decode_jit(jit.json()["encodedJITConfig"]),
    }
    seen["error_actions_agent_exists_from_tests.json"] = (
        await generate_jit(http, admin, scale_set_id, load_fixture("jit_config_request.json")["name"])
    ).json()
    runner = jit.json()["runner"]
    seen["runner_reference.json"] = (await actions(http, admin, "GET", f"{AGENTS}/{runner['id']}")).json()
    seen["runner_reference_list.json"] = (
        await actions(http, admin, "GET", AGENTS, agentName=runner["name"])
    ).json()
    seen["runner_reference_list_empty.json"] = (
        await actions(http, admin, "GET", AGENTS, agentName="nobody")
    ).json()

    files = decode_jit(jit.json()["encodedJITConfig"])
    token_response = await oauth(http, files, client_assertion(files, fake.clock()))
    seen["oauth_token_response.json"] = token_response.json()
    seen["oauth_token_error_lifetime.json"] = (
        await oauth(http, files, client_assertion(files, fake.clock(), lifetime=330))
    ).json()
    token = await runner_token(http, files, fake.clock())
    broker = (await broker_session(http, files, token)).json()
    seen["broker_session_create_response.json"] = broker
    seen["broker_error_runner_session_invalid.json"] = (
        await broker_poll(http, files, token, "00000000-0000-0000-0000-000000000009")
    ).json()
    job_request = (await broker_poll(http, files, token, broker["sessionId"])).json()
    seen["broker_message_runner_job_request.json"] = job_request
    request_body = json.loads(job_request["body"])
    seen["broker_message_runner_job_request_body_decoded.json"] = request_body
    seen["broker_error_acknowledge_job_not_found.json"] = (
        await http.post(
            broker_url(files) + "acknowledge",
            params={"sessionId": broker["sessionId"]},
            headers=bearer(token),
            json={"runnerRequestId": "00000000-0000-0000-0000-000000000000"},
        )
    ).json()
    run_url = request_body["run_service_url"]
    acquire_body = {
        **load_fixture("run_acquirejob_request.json", RUNNER_FIXTURES),
        "jobMessageId": request_body["runner_request_id"],
    }
    seen["run_service_error_not_found.json"] = (
        await http.post(
            run_url + "acquirejob", headers=bearer(token), json={**acquire_body, "jobMessageId": "nope"}
        )
    ).json()
    job = (await http.post(run_url + "acquirejob", headers=bearer(token), json=acquire_body)).json()
    seen["run_acquirejob_response_job_message.json"] = job
    endpoint = job["resources"]["endpoints"][0]
    job_token = bearer(endpoint["authorization"]["parameters"]["AccessToken"])
    ids = {"planId": job["plan"]["planId"], "jobId": job["jobId"]}
    seen["run_renewjob_response.json"] = (
        await http.post(
            run_url + "renewjob",
            headers=job_token,
            json={**load_fixture("run_renewjob_request.json", RUNNER_FIXTURES), **ids},
        )
    ).json()
    backend = {"workflow_run_backend_id": ids["planId"], "workflow_job_run_backend_id": ids["jobId"]}
    twirp = job["variables"]["system.github.results_endpoint"]["value"] + "twirp/"
    steps = {**load_fixture("results_workflow_steps_update_request.json", RUNNER_FIXTURES), **backend}
    seen["results_ok_response.json"] = (
        await http.post(
            twirp + "github.actions.results.api.v1.WorkflowStepUpdateService/WorkflowStepsUpdate",
            headers=job_token,
            json=steps,
        )
    ).json()
    signed = {**load_fixture("results_get_step_logs_signed_url_request.json", RUNNER_FIXTURES), **backend}
    seen["results_get_step_logs_signed_url_response.json"] = (
        await http.post(
            twirp + "results.services.receiver.Receiver/GetStepLogsSignedBlobURL",
            headers=job_token,
            json=signed,
        )
    ).json()
    metadata = {**load_fixture("results_create_step_logs_metadata_request.json", RUNNER_FIXTURES), **backend}
    created = await http.post(
        twirp + "results.services.receiver.Receiver/CreateStepLogsMetadata", headers=job_token, json=metadata
    )
    assert created.json() == {"ok": True}
    fake.cancel_job(job["jobId"])
    seen["broker_message_job_cancellation.json"] = (
        await broker_poll(http, files, token, broker["sessionId"], "Busy")
    ).json()
    seen["error_actions_job_still_running_from_tests.json"] = (
        await actions(http, admin, "DELETE", f"{AGENTS}/{runner['id']}")
    ).json()
    complete = {**load_fixture("run_completejob_request.json", RUNNER_FIXTURES), **ids}
    assert (await http.post(run_url + "completejob", headers=job_token, json=complete)).status_code == 204
    seen["message_empty_body.json"] = seen["message_minimal_from_tests.json"] = message.json()
    messages = []
    last = message.json()["messageId"]
    while (response := await poll(http, session, last=last)).status_code == 200:
        messages.append(response.json())
        last = response.json()["messageId"]
    seen["message_job_messages.json"] = messages[-1]
    seen["statistics.json"] = messages[-1]["statistics"]
    seen["message_job_messages_body_decoded.json"] = [
        event for m in [message.json(), *messages] for event in json.loads(m["body"])
    ]


@pytest.fixture(scope="module")
def answers() -> dict[str, Any]:
    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        fake = FakeGitHub(clock=FakeClock(), poll_hold=0.01)
        async with fake.http_client() as http:
            admin = await scale_set_side(fake, http, seen)
            await jobs_and_runners(fake, http, admin, seen)
        return seen

    return anyio.run(scenario)


RESPONSE_FIXTURES = sorted(
    [p.name for p in SCALESET_FIXTURES.glob("*.json") if "request" not in p.name]
    + [
        p.name
        for p in RUNNER_FIXTURES.glob("*.json")
        if p.name.startswith(
            (
                "broker_message_runner_job",
                "broker_message_job",
                "broker_session_create_response",
                "broker_error",
                "oauth_token_",
                "run_",
                "results_",
            )
        )
        and "request" not in p.name
    ]
)


def fixture_path(name: str) -> Path:
    return SCALESET_FIXTURES / name if (SCALESET_FIXTURES / name).exists() else RUNNER_FIXTURES / name


@pytest.mark.parametrize("name", RESPONSE_FIXTURES)
def test_the_fake_answers_in_the_fixture_shape(answers: dict[str, Any], name: str) -> None:
    expected = json.loads(fixture_path(name).read_text(encoding="utf-8"))
    assert name in answers, f"the contract scenario does not produce {name}"
    actual = answers[name]
    if name == "message_job_messages_body_decoded.json":
        by_type = {event["messageType"]: event for event in expected}
        assert {e["messageType"] for e in actual} == set(by_type)
        for event in actual:
            assert_shape(by_type[event["messageType"]], event, f"$[{event['messageType']}]")
    elif name == "run_acquirejob_response_job_message.json":
        assert set(expected) == set(actual)
        for key in ("plan", "timeline", "jobId", "requestId", "lockedUntil", "billingOwnerId"):
            assert_shape(expected[key], actual[key], f"$.{key}")
        endpoint = expected["resources"]["endpoints"][0]
        assert_shape(
            {k: v for k, v in endpoint.items() if k != "data"},
            {k: v for k, v in actual["resources"]["endpoints"][0].items() if k != "data"},
        )
    else:
        assert_shape(expected, actual, subset=name in SUBSET)


def test_every_response_fixture_is_covered() -> None:
    names = {p.name for p in SCALESET_FIXTURES.glob("*.json") if "request" not in p.name}
    assert names <= set(RESPONSE_FIXTURES)
