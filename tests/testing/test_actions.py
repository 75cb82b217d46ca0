"""The Actions service: scale sets, runner groups, JIT configs, runners, and its strictness."""

from __future__ import annotations

import httpx
import pytest

from actions_scaleset.testing import FakeGitHub
from tests.support import FakeClock
from tests.testing.wire import Admin, actions, bootstrap, create_scale_set, generate_jit

pytestmark = pytest.mark.anyio

SETS = "_apis/runtime/runnerscalesets"


@pytest.fixture
async def admin(fake: FakeGitHub, http: httpx.AsyncClient) -> Admin:
    return await bootstrap(http, fake)


async def test_a_scale_set_is_created_read_listed_updated_and_deleted(
    http: httpx.AsyncClient, admin: Admin
) -> None:
    created = await create_scale_set(http, admin, "linux")
    assert created["labels"] == [{"type": "System", "name": "linux"}]
    assert created["runnerGroupName"] == "Default"
    got = await actions(http, admin, "GET", f"{SETS}/{created['id']}")
    assert got.json() == created
    listed = await actions(http, admin, "GET", SETS, runnerGroupId=1, name="linux")
    assert listed.json() == {"count": 1, "value": [created]}
    renamed = await actions(
        http, admin, "PATCH", f"{SETS}/{created['id']}", json_body={"name": "linux-2", "RunnerSetting": {}}
    )
    assert renamed.json()["name"] == "linux-2"
    assert (await actions(http, admin, "DELETE", f"{SETS}/{created['id']}")).status_code == 204
    gone = await actions(http, admin, "GET", f"{SETS}/{created['id']}")
    assert gone.status_code == 404
    assert "RunnerScaleSetNotFoundException" in gone.json()["typeName"]


async def test_a_missing_scale_set_name_is_an_empty_list(http: httpx.AsyncClient, admin: Admin) -> None:
    response = await actions(http, admin, "GET", SETS, runnerGroupId=1, name="nope")
    assert response.json() == {"count": 0, "value": []}


async def test_labels_default_to_the_scale_set_name(http: httpx.AsyncClient, admin: Admin) -> None:
    response = await actions(http, admin, "POST", SETS, json_body={"name": "arm", "runnerGroupId": 1})
    assert response.json()["labels"] == [{"type": "System", "name": "arm"}]


async def test_a_second_scale_set_of_the_same_name_in_a_group_is_409(
    http: httpx.AsyncClient, admin: Admin
) -> None:
    await create_scale_set(http, admin, "linux")
    again = await actions(http, admin, "POST", SETS, json_body={"name": "linux", "runnerGroupId": 1})
    assert again.status_code == 409


async def test_moving_a_scale_set_to_a_missing_group_is_404(http: httpx.AsyncClient, admin: Admin) -> None:
    created = await create_scale_set(http, admin, "linux")
    moved = await actions(http, admin, "PATCH", f"{SETS}/{created['id']}", json_body={"runnerGroupId": 99})
    assert moved.status_code == 404


async def test_runner_groups_are_found_by_name_case_insensitively(
    fake: FakeGitHub, http: httpx.AsyncClient, admin: Admin
) -> None:
    fake.add_runner_group("acme", "GPU")
    found = await actions(http, admin, "GET", "_apis/runtime/runnergroups/", groupName="gpu")
    assert found.json() == {
        "count": 1,
        "value": [{"id": 2, "name": "GPU", "size": 0, "isDefaultGroup": False}],
    }
    missing = await actions(http, admin, "GET", "_apis/runtime/runnergroups/", groupName="none")
    assert missing.json() == {"count": 0, "value": []}


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"runnerGroupId": 1},
        {"name": 5},
        {"name": "x", "runnerGroupId": "1"},
        {"name": "x", "labels": [{"type": "System"}]},
        {"name": "x", "RunnerSetting": {"ephemeral": "yes"}},
    ],
)
async def test_a_wrong_scale_set_body_is_400_with_an_actions_error(
    http: httpx.AsyncClient, admin: Admin, body: object
) -> None:
    response = await actions(http, admin, "POST", SETS, json_body=body)
    assert response.status_code == 400
    assert set(response.json()) == {"typeName", "message"}


async def test_a_missing_api_version_is_400(fake: FakeGitHub, http: httpx.AsyncClient, admin: Admin) -> None:
    response = await http.get(admin.url + SETS, headers=admin.headers)
    assert response.status_code == 400
    assert "VssVersionNotSpecifiedException" in response.json()["typeName"]
    assert "activityid" in response.headers


async def test_an_expired_admin_token_is_401(http: httpx.AsyncClient, admin: Admin, clock: FakeClock) -> None:
    clock.now += 3600
    response = await actions(http, admin, "GET", SETS)
    assert response.status_code == 401


async def test_expire_tokens_revokes_admin_tokens_at_once(
    fake: FakeGitHub, http: httpx.AsyncClient, admin: Admin
) -> None:
    fake.expire_tokens("admin")
    assert (await actions(http, admin, "GET", SETS)).status_code == 401
    fresh = await bootstrap(http, fake)
    assert (await actions(http, fresh, "GET", SETS)).status_code == 200


async def test_a_token_sent_to_another_host_is_401(
    fake: FakeGitHub, http: httpx.AsyncClient, admin: Admin
) -> None:
    other_host = admin.url.replace("fake-github.local", "elsewhere.local")
    response = await http.get(other_host + SETS, params={"api-version": "6.0-preview"}, headers=admin.headers)
    assert response.status_code == 401
    assert "another host" in response.json()["message"]


async def test_a_pat_is_not_an_admin_token(fake: FakeGitHub, http: httpx.AsyncClient, admin: Admin) -> None:
    pat = fake.pat().token.get_secret_value()
    response = await actions(http, Admin(admin.url, pat), "GET", SETS)
    assert response.status_code == 401


async def test_an_admin_token_of_another_scope_is_401(
    fake: FakeGitHub, http: httpx.AsyncClient, admin: Admin
) -> None:
    other = await bootstrap(http, fake, "globex")
    response = await actions(http, Admin(admin.url, other.token), "GET", SETS)
    assert response.status_code == 401


async def test_a_scale_set_deleted_server_side_answers_404(
    fake: FakeGitHub, http: httpx.AsyncClient, admin: Admin
) -> None:
    created = await create_scale_set(http, admin, "linux")
    fake.delete_scale_set(created["id"])
    for method, path in [("GET", ""), ("POST", "/sessions"), ("POST", "/generatejitconfig")]:
        response = await actions(
            http, admin, method, f"{SETS}/{created['id']}{path}", json_body={"ownerName": "x", "name": "r"}
        )
        assert response.status_code == 404
        assert "RunnerScaleSetNotFoundException" in response.json()["typeName"]


async def test_generatejitconfig_returns_a_real_jit_config(http: httpx.AsyncClient, admin: Admin) -> None:
    from tests.testing.wire import decode_jit, runner_key

    created = await create_scale_set(http, admin, "linux")
    response = await generate_jit(http, admin, created["id"], "runner-1")
    assert response.status_code == 200
    assert response.json()["runner"] == {"id": 1, "name": "runner-1", "runnerScaleSetId": created["id"]}
    files = decode_jit(response.json()["encodedJITConfig"])
    assert set(files) == {".runner", ".credentials", ".credentials_rsaparams"}
    assert files[".runner"]["AgentId"] == 1
    assert files[".runner"]["UseV2Flow"] is True
    assert files[".credentials"]["Scheme"] == "OAuth"
    assert runner_key(files[".credentials_rsaparams"]).key_size == 2048


async def test_a_duplicate_runner_name_is_409_agent_exists(http: httpx.AsyncClient, admin: Admin) -> None:
    created = await create_scale_set(http, admin, "linux")
    await generate_jit(http, admin, created["id"], "runner-1")
    again = await generate_jit(http, admin, created["id"], "runner-1")
    assert again.status_code == 409
    assert again.json()["typeName"].startswith("GitHub.DistributedTask.WebApi.AgentExistsException")


async def test_runners_are_found_by_id_and_name_and_removed(http: httpx.AsyncClient, admin: Admin) -> None:
    created = await create_scale_set(http, admin, "linux")
    runner = (await generate_jit(http, admin, created["id"], "runner-1")).json()["runner"]
    agents = "_apis/distributedtask/pools/0/agents"
    assert (await actions(http, admin, "GET", f"{agents}/{runner['id']}")).json() == runner
    assert (await actions(http, admin, "GET", agents, agentName="runner-1")).json() == {
        "count": 1,
        "value": [runner],
    }
    assert (await actions(http, admin, "DELETE", f"{agents}/{runner['id']}")).status_code == 204
    missing = await actions(http, admin, "GET", f"{agents}/{runner['id']}")
    assert missing.status_code == 404
    assert "AgentNotFoundException" in missing.json()["typeName"]
    assert (await actions(http, admin, "GET", agents, agentName="runner-1")).json() == {
        "count": 0,
        "value": [],
    }


async def test_the_service_tolerates_a_doubled_slash(http: httpx.AsyncClient, admin: Admin) -> None:
    response = await http.get(
        admin.url + "/" + SETS, params={"api-version": "6.0-preview"}, headers=admin.headers
    )
    assert response.status_code == 200
