"""ScaleSetClient: the registration exchange, the admin token and every scale-set endpoint
(docs/protocol.md, "Credentials and where they go", "Exception names in error bodies")."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import jwt
import pytest
import respx

import actions_scaleset as asc
from actions_scaleset._http import HTTPCore
from actions_scaleset.actions import actions_url, token_expiry
from tests.scaleset_mocks import ADMIN, ADMIN_HOST, API, admin_jwt, mock_exchange
from tests.support import FakeClock, load_fixture

pytestmark = pytest.mark.anyio

BASE = "https://pipelines.actions.example/tenant-1/_apis"


def _client(clock: FakeClock, url: str = "https://github.com/acme") -> asc.ScaleSetClient:
    http = HTTPCore(sleep=clock.sleep, clock=clock, random=lambda: 0.0)
    return asc.ScaleSetClient(url, asc.PersonalAccessToken("ghp_tok"), http=http)


# ---------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("base", "path", "params", "expected"),
    [
        # docs/protocol.md, "Building Actions-service URLs" test: base …/tenant/123/ + /my/path?name=banana
        (
            "https://x.example/tenant/123/",
            "/my/path?name=banana",
            None,
            "https://x.example/tenant/123/my/path?api-version=6.0-preview&name=banana",
        ),
        (
            "https://x.example/t/",
            "_apis/runtime/runnergroups/",
            {"groupName": "g"},
            "https://x.example/t/_apis/runtime/runnergroups/?api-version=6.0-preview&groupName=g",
        ),
        ("https://x.example/t", "a//b/./c", None, "https://x.example/t/a/b/c?api-version=6.0-preview"),
        ("https://x.example/t/", "a?api-version=7.0", None, "https://x.example/t/a?api-version=7.0"),
        (
            "https://x.example/t/",
            "a",
            {"name": "a&b #c+d%e f/g"},
            "https://x.example/t/a?api-version=6.0-preview&name=a%26b%20%23c%2Bd%25e%20f%2Fg",
        ),
    ],
)
def test_actions_url_joins_cleans_and_adds_the_api_version(
    base: str, path: str, params: dict[str, str] | None, expected: str
) -> None:
    assert actions_url(base, path, params) == expected


def test_token_expiry_reads_the_unverified_exp() -> None:
    registration = load_fixture("runner_registration_response.json")
    assert token_expiry(registration["token"]) == 1777893241  # fixture README: exp 1777893241
    assert token_expiry("not-a-jwt") is None
    assert token_expiry(jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256")) is None


# ---------------------------------------------------------------- the exchange


@respx.mock
async def test_the_exchange_sends_remote_auth_and_the_config_url(clock: FakeClock) -> None:
    registration, exchange = mock_exchange(respx.mock, exp=clock.now + 3600)
    route = respx.get(f"{BASE}/runtime/runnerscalesets/7").mock(
        return_value=httpx.Response(200, json=load_fixture("runner_scale_set.json"))
    )
    async with _client(clock) as client:
        await client.get_scale_set_by_id(7)
    request = exchange.calls.last.request
    assert request.headers["Authorization"] == "RemoteAuth REG1"
    assert json.loads(request.content) == load_fixture("runner_registration_request.json") | {
        "url": "https://github.com/acme"
    }
    assert registration.calls.last.request.headers["Authorization"] == "Bearer ghp_tok"
    admin = route.calls.last.request
    assert admin.headers["Authorization"].startswith("Bearer ey")
    assert admin.headers["Content-Type"] == "application/json"
    assert admin.url.params["api-version"] == "6.0-preview"


@respx.mock
async def test_two_concurrent_first_calls_do_one_exchange(clock: FakeClock) -> None:
    registration, exchange = mock_exchange(respx.mock, exp=clock.now + 3600)
    respx.get(f"{BASE}/runtime/runnerscalesets/7").mock(
        return_value=httpx.Response(200, json=load_fixture("runner_scale_set.json"))
    )
    async with _client(clock) as client, anyio.create_task_group() as tg:
        tg.start_soon(client.get_scale_set_by_id, 7)
        tg.start_soon(client.get_scale_set_by_id, 7)
    assert registration.call_count == 1
    assert exchange.call_count == 1


@respx.mock
async def test_an_admin_token_near_expiry_is_refreshed_before_the_next_call(clock: FakeClock) -> None:
    _, exchange = mock_exchange(respx.mock, exp=clock.now + 3600)
    route = respx.get(f"{BASE}/runtime/runnerscalesets/7").mock(
        return_value=httpx.Response(200, json=load_fixture("runner_scale_set.json"))
    )
    async with _client(clock) as client:
        await client.get_scale_set_by_id(7)
        clock.now += 3600 - 61  # 61 s left: still fine
        await client.get_scale_set_by_id(7)
        assert exchange.call_count == 1
        clock.now += 2  # 59 s left: refresh first (docs/protocol.md, "The admin token": now + 60 s > exp)
        await client.get_scale_set_by_id(7)
        assert exchange.call_count == 2
    tokens = [c.request.headers["Authorization"] for c in route.calls]
    assert tokens[0] == tokens[1] != tokens[2]


@respx.mock
async def test_a_401_from_the_actions_service_redoes_the_exchange_once(clock: FakeClock) -> None:
    _, exchange = mock_exchange(respx.mock, exp=clock.now + 3600)
    respx.get(f"{BASE}/runtime/runnerscalesets/7").mock(
        side_effect=[httpx.Response(401), httpx.Response(200, json=load_fixture("runner_scale_set.json"))]
    )
    async with _client(clock) as client:
        scale_set = await client.get_scale_set_by_id(7)
    assert scale_set.id == load_fixture("runner_scale_set.json")["id"]
    assert exchange.call_count == 2


@respx.mock
async def test_a_refresh_may_move_the_actions_base_url(clock: FakeClock) -> None:
    urls = iter([ADMIN, "https://pipelines2.actions.example/tenant-2/"])
    respx.post(f"{API}/orgs/acme/actions/runners/registration-token").mock(
        return_value=httpx.Response(201, json={"token": "REG"})
    )
    respx.post(f"{API}/actions/runner-registration").mock(
        side_effect=lambda request: httpx.Response(
            200, json={"url": next(urls), "token": admin_jwt(clock.now + 3600)}
        )
    )
    old = respx.get(f"{BASE}/runtime/runnerscalesets/7").mock(return_value=httpx.Response(401))
    new = respx.get("https://pipelines2.actions.example/tenant-2/_apis/runtime/runnerscalesets/7").mock(
        return_value=httpx.Response(200, json={"id": 7, "name": "x"})
    )
    async with _client(clock) as client:
        await client.get_scale_set_by_id(7)
        assert await client.admin_url() == "https://pipelines2.actions.example/tenant-2/"
    assert old.call_count == 1
    assert new.call_count == 1


@respx.mock
async def test_registration_exchange_retries_401_and_403_while_the_token_propagates(clock: FakeClock) -> None:
    respx.post(f"{API}/orgs/acme/actions/runners/registration-token").mock(
        return_value=httpx.Response(201, json={"token": "REG"})
    )
    exchange = respx.post(f"{API}/actions/runner-registration").mock(
        side_effect=[
            httpx.Response(401),
            httpx.Response(403),
            httpx.Response(200, json={"url": ADMIN, "token": admin_jwt(clock.now + 3600)}),
        ]
    )
    respx.get(f"{BASE}/runtime/runnerscalesets/7").mock(
        return_value=httpx.Response(200, json={"id": 7, "name": "x"})
    )
    async with _client(clock) as client:
        await client.get_scale_set_by_id(7)
    assert exchange.call_count == 3
    assert len(clock.slept) == 2


@pytest.mark.parametrize(
    "payload",
    [
        {"url": "", "token": "x"},
        {"url": ADMIN, "token": ""},
        {"url": ADMIN},
        {"token": "t"},
        [],
        {"url": "relative/", "token": "t"},
    ],
)
async def test_a_bad_admin_connection_is_a_typed_error(clock: FakeClock, payload: Any) -> None:
    with respx.mock:
        respx.post(f"{API}/orgs/acme/actions/runners/registration-token").mock(
            return_value=httpx.Response(201, json={"token": "REG"})
        )
        respx.post(f"{API}/actions/runner-registration").mock(return_value=httpx.Response(200, json=payload))
        async with _client(clock) as client:
            with pytest.raises(asc.InvalidResponseError):
                await client.get_scale_set_by_id(7)


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1/tenant/",
        "https://pipelines.actions.example/\u0000tenant/",
        "https://xn--zz.example/tenant/",
    ],
    ids=["broken-ipv6", "nul", "non-idna-host"],
)
async def test_an_unusable_actions_service_url_is_refused_when_it_is_adopted(
    clock: FakeClock, url: str
) -> None:
    with respx.mock:
        mock_exchange(respx.mock, exp=clock.now + 3600, admin_url=url)
        async with _client(clock) as client:
            with pytest.raises(
                asc.InvalidResponseError, match=r"the Actions service connection's url is unusable: \w"
            ):
                await client.admin_url()


@respx.mock
async def test_the_admin_token_never_goes_to_the_github_api_host(clock: FakeClock) -> None:
    mock_exchange(respx.mock, exp=clock.now + 3600)
    respx.get(f"{BASE}/runtime/runnerscalesets/7").mock(
        return_value=httpx.Response(200, json={"id": 7, "name": "x"})
    )
    async with _client(clock) as client:
        await client.get_scale_set_by_id(7)
    for call in respx.calls:
        auth = call.request.headers.get("Authorization", "")
        if call.request.url.host == ADMIN_HOST:
            assert auth.startswith("Bearer ey")
        else:
            assert not auth.startswith("Bearer ey")


# ---------------------------------------------------------------- the endpoint table (docs/protocol.md,
# "Scale-set endpoints")


def _scale_set_list(*items: dict[str, Any]) -> dict[str, Any]:
    return {"count": len(items), "value": list(items)}


ENDPOINTS: list[tuple[str, str, str, dict[str, str], Any, int, Any]] = [
    # name, method, path under _apis, query, request body, status, response body
    (
        "get_scale_set",
        "GET",
        "runtime/runnerscalesets",
        {"name": "linux", "runnerGroupId": "1"},
        None,
        200,
        load_fixture("runner_scale_set_list.json"),
    ),
    (
        "get_scale_set_by_id",
        "GET",
        "runtime/runnerscalesets/7",
        {},
        None,
        200,
        load_fixture("runner_scale_set.json"),
    ),
    (
        "list_scale_sets",
        "GET",
        "runtime/runnerscalesets",
        {"runnerGroupId": "1"},
        None,
        200,
        load_fixture("runner_scale_set_list.json"),
    ),
    (
        "create_scale_set",
        "POST",
        "runtime/runnerscalesets",
        {},
        load_fixture("runner_scale_set_create_request_scaleset.json"),
        200,
        load_fixture("runner_scale_set.json"),
    ),
    (
        "update_scale_set",
        "PATCH",
        "runtime/runnerscalesets/7",
        {},
        load_fixture("runner_scale_set_update_request.json"),
        200,
        load_fixture("runner_scale_set.json"),
    ),
    ("delete_scale_set", "DELETE", "runtime/runnerscalesets/7", {}, None, 204, None),
    (
        "get_runner_group",
        "GET",
        "runtime/runnergroups/",
        {"groupName": "gpu"},
        None,
        200,
        load_fixture("runner_group_list.json"),
    ),
    (
        "generate_jit_config",
        "POST",
        "runtime/runnerscalesets/7/generatejitconfig",
        {},
        load_fixture("jit_config_request.json"),
        200,
        load_fixture("jit_config_response.json"),
    ),
    (
        "get_runner",
        "GET",
        "distributedtask/pools/0/agents/5",
        {},
        None,
        200,
        load_fixture("runner_reference.json"),
    ),
    (
        "get_runner_by_name",
        "GET",
        "distributedtask/pools/0/agents",
        {"agentName": "r-1"},
        None,
        200,
        load_fixture("runner_reference_list.json"),
    ),
    ("remove_runner", "DELETE", "distributedtask/pools/0/agents/5", {}, None, 204, None),
    (
        "get_acquirable_jobs",
        "GET",
        "runtime/runnerscalesets/7/acquirablejobs",
        {},
        None,
        200,
        load_fixture("acquirable_jobs.json"),
    ),
]


async def _call(client: asc.ScaleSetClient, name: str) -> Any:
    create = load_fixture("runner_scale_set_create_request_scaleset.json")
    update = load_fixture("runner_scale_set_update_request.json")
    jit = load_fixture("jit_config_request.json")
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "get_scale_set": lambda: client.get_scale_set("linux", 1),
        "get_scale_set_by_id": lambda: client.get_scale_set_by_id(7),
        "list_scale_sets": lambda: client.list_scale_sets(runner_group_id=1),
        "create_scale_set": lambda: client.create_scale_set(
            create["name"],
            runner_group_id=create["runnerGroupId"],
            labels=[lb["name"] for lb in create["labels"]],
        ),
        "update_scale_set": lambda: client.update_scale_set(7, runner_group_id=update["runnerGroupId"]),
        "delete_scale_set": lambda: client.delete_scale_set(7),
        "get_runner_group": lambda: client.get_runner_group("gpu"),
        "generate_jit_config": lambda: client.generate_jit_config(
            7, name=jit["name"], work_folder=jit["workFolder"]
        ),
        "get_runner": lambda: client.get_runner(5),
        "get_runner_by_name": lambda: client.get_runner_by_name("r-1"),
        "remove_runner": lambda: client.remove_runner(5),
        "get_acquirable_jobs": lambda: client.get_acquirable_jobs(7),
    }
    return await calls[name]()


@pytest.mark.parametrize(
    ("name", "method", "path", "query", "body", "status", "response"),
    ENDPOINTS,
    ids=[e[0] for e in ENDPOINTS],
)
async def test_every_endpoint_sends_what_the_spec_says(
    clock: FakeClock,
    name: str,
    method: str,
    path: str,
    query: dict[str, str],
    body: Any,
    status: int,
    response: Any,
) -> None:
    with respx.mock:
        mock_exchange(respx.mock, exp=clock.now + 3600)
        route = respx.route(method=method, url__startswith=f"{BASE}/{path}").mock(
            return_value=httpx.Response(status, json=response)
            if response is not None
            else httpx.Response(status)
        )
        async with _client(clock) as client:
            result = await _call(client, name)
        request = route.calls.last.request
        assert request.url.path == f"/tenant-1/_apis/{path}"
        assert dict(request.url.params) == {"api-version": "6.0-preview", **query}
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Authorization"].startswith("Bearer ey")
        if body is None:
            assert request.content == b""
        else:
            assert json.loads(request.content) == body
        if response is None:
            assert result is None


async def test_decoded_results_carry_the_fixture_values(clock: FakeClock) -> None:
    with respx.mock:
        mock_exchange(respx.mock, exp=clock.now + 3600)
        for _, method, path, _, _, status, response in ENDPOINTS:
            respx.route(method=method, url__startswith=f"{BASE}/{path}?").mock(
                return_value=httpx.Response(status, json=response)
                if response is not None
                else httpx.Response(status)
            )
        async with _client(clock) as client:
            scale_set = await client.get_scale_set("linux", 1)
            jit = await client.generate_jit_config(7, name="r-1")
            group = await client.get_runner_group("gpu")
            jobs = await client.get_acquirable_jobs(7)
    listed = load_fixture("runner_scale_set_list.json")["value"][0]
    assert scale_set is not None
    assert (scale_set.id, scale_set.name) == (listed["id"], listed["name"])
    response = load_fixture("jit_config_response.json")
    assert jit.runner.name == response["runner"]["name"]
    assert jit.encoded_jit_config.get_secret_value() == response["encodedJITConfig"]
    assert group.name == load_fixture("runner_group_list.json")["value"][0]["name"]
    assert [j.runner_request_id for j in jobs] == [
        j["runnerRequestId"] for j in load_fixture("acquirable_jobs.json")["value"]
    ]


# ---------------------------------------------------------------- status handling


@respx.mock
async def test_not_found_and_multiple_matches(clock: FakeClock) -> None:
    mock_exchange(respx.mock, exp=clock.now + 3600)
    route = respx.get(url__startswith=f"{BASE}/runtime/runnerscalesets?")
    async with _client(clock) as client:
        route.mock(return_value=httpx.Response(200, json={"count": 0, "value": []}))
        assert await client.get_scale_set("x", 1) is None
        route.mock(
            return_value=httpx.Response(
                200, json=_scale_set_list({"id": 1, "name": "x"}, {"id": 2, "name": "x"})
            )
        )
        with pytest.raises(asc.InvalidResponseError, match="2 scale sets are named 'x'"):
            await client.get_scale_set("x", 1)
        respx.get(url__startswith=f"{BASE}/distributedtask/pools/0/agents?").mock(
            return_value=httpx.Response(200, json=load_fixture("runner_reference_list_empty.json"))
        )
        assert await client.get_runner_by_name("nobody") is None
        respx.get(url__startswith=f"{BASE}/runtime/runnergroups/?").mock(
            return_value=httpx.Response(200, json={"count": 0, "value": []})
        )
        with pytest.raises(asc.RunnerGroupNotFoundError):
            await client.get_runner_group("nope")


@respx.mock
async def test_acquirable_jobs_204_means_none(clock: FakeClock) -> None:
    mock_exchange(respx.mock, exp=clock.now + 3600)
    respx.get(url__startswith=f"{BASE}/runtime/runnerscalesets/7/acquirablejobs").mock(
        return_value=httpx.Response(204)
    )
    async with _client(clock) as client:
        assert await client.get_acquirable_jobs(7) == []


@pytest.mark.parametrize(
    ("call", "status", "fixture_or_body", "cls"),
    [
        ("generate_jit_config", 409, "error_actions_agent_exists_from_tests.json", asc.RunnerExistsError),
        ("remove_runner", 400, "error_actions_job_still_running_from_tests.json", asc.JobStillRunningError),
        ("get_runner", 404, {"typeName": "AgentNotFoundException", "message": "no"}, asc.RunnerNotFoundError),
        (
            "get_scale_set_by_id",
            404,
            {
                "typeName": "GitHub.Actions.Runtime.WebApi.RunnerScaleSetNotFoundException, x",
                "message": "gone",
            },
            asc.ScaleSetNotFoundError,
        ),
        ("get_scale_set_by_id", 500, {"message": "boom"}, asc.ServerError),
    ],
)
async def test_actions_exceptions_map_to_typed_errors_with_activity_id(
    clock: FakeClock, call: str, status: int, fixture_or_body: Any, cls: type[Exception]
) -> None:
    body = load_fixture(fixture_or_body) if isinstance(fixture_or_body, str) else fixture_or_body
    with respx.mock:
        mock_exchange(respx.mock, exp=clock.now + 3600)
        respx.route(url__startswith=BASE).mock(
            return_value=httpx.Response(status, json=body, headers={"ActivityId": "act-42"})
        )
        async with _client(clock) as client:
            with pytest.raises(cls) as info:
                await _call(client, call)
    assert isinstance(info.value, asc.HTTPStatusError)
    assert info.value.activity_id == "act-42"
    assert info.value.status_code == status


@respx.mock
async def test_generate_jit_config_is_not_retried_after_a_lost_response(clock: FakeClock) -> None:
    mock_exchange(respx.mock, exp=clock.now + 3600)
    route = respx.post(url__startswith=f"{BASE}/runtime/runnerscalesets/7/generatejitconfig").mock(
        side_effect=httpx.ReadTimeout("lost")
    )
    async with _client(clock) as client:
        with pytest.raises(asc.RequestTimeoutError):
            await client.generate_jit_config(7, name="r")
    assert route.call_count == 1


# ---------------------------------------------------------------- ensure_scale_set


@respx.mock
async def test_ensure_scale_set_creates_when_absent_in_the_named_group(clock: FakeClock) -> None:
    mock_exchange(respx.mock, exp=clock.now + 3600)
    respx.get(url__startswith=f"{BASE}/runtime/runnergroups/?").mock(
        return_value=httpx.Response(200, json={"count": 1, "value": [{"id": 4, "name": "GPU"}]})
    )
    lookup = respx.get(url__startswith=f"{BASE}/runtime/runnerscalesets?").mock(
        return_value=httpx.Response(200, json={"count": 0, "value": []})
    )
    create = respx.post(url__startswith=f"{BASE}/runtime/runnerscalesets?").mock(
        return_value=httpx.Response(200, json={"id": 9, "name": "gpu-set", "runnerGroupId": 4})
    )
    async with _client(clock) as client:
        created = await client.ensure_scale_set("gpu-set", runner_group="GPU", labels=["gpu", "linux"])
    assert created.id == 9
    assert lookup.calls.last.request.url.params["runnerGroupId"] == "4"
    body = json.loads(create.calls.last.request.content)
    assert body["runnerGroupId"] == 4
    assert [label["name"] for label in body["labels"]] == ["gpu", "linux"]
    assert body["RunnerSetting"] == {"disableUpdate": True}


@respx.mock
async def test_ensure_scale_set_returns_an_existing_one_and_skips_the_default_group_lookup(
    clock: FakeClock,
) -> None:
    mock_exchange(respx.mock, exp=clock.now + 3600)
    groups = respx.get(url__startswith=f"{BASE}/runtime/runnergroups/")
    respx.get(url__startswith=f"{BASE}/runtime/runnerscalesets?").mock(
        return_value=httpx.Response(
            200,
            json=_scale_set_list({"id": 3, "name": "linux", "labels": [{"type": "System", "name": "linux"}]}),
        )
    )
    async with _client(clock) as client:
        found = await client.ensure_scale_set("linux")
    assert found.id == 3
    assert not groups.called


@respx.mock
async def test_ensure_scale_set_updates_labels_that_differ(clock: FakeClock) -> None:
    mock_exchange(respx.mock, exp=clock.now + 3600)
    respx.get(url__startswith=f"{BASE}/runtime/runnerscalesets?").mock(
        return_value=httpx.Response(
            200,
            json=_scale_set_list({"id": 3, "name": "linux", "labels": [{"type": "System", "name": "linux"}]}),
        )
    )
    patch = respx.patch(url__startswith=f"{BASE}/runtime/runnerscalesets/3").mock(
        return_value=httpx.Response(200, json={"id": 3, "name": "linux"})
    )
    async with _client(clock) as client:
        await client.ensure_scale_set("linux", labels=["linux", "x64"])
    assert [lb["name"] for lb in json.loads(patch.calls.last.request.content)["labels"]] == ["linux", "x64"]


def test_a_bad_label_is_refused_before_any_request(clock: FakeClock) -> None:
    client = _client(clock)
    with pytest.raises(asc.ConfigurationError):
        anyio.run(lambda: client.create_scale_set("x", labels=["ok", ""]))


def test_client_repr_is_short_and_secret_free(clock: FakeClock) -> None:
    assert (
        repr(_client(clock))
        == "ScaleSetClient('https://github.com/acme', auth=PersonalAccessToken(Secret('**********')))"
    )
