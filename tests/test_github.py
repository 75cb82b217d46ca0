"""GitHubClient: the REST calls, their headers and bodies, pagination and rate limits."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import respx

import actions_scaleset as asc
from actions_scaleset._http import HTTPCore
from tests.keys import pem
from tests.support import FakeClock, load_fixture

pytestmark = pytest.mark.anyio

API = "https://api.github.com"
GHES_API = "https://ghes.example.com/api/v3"


def _client(
    clock: FakeClock, url: str = "https://github.com/acme", auth: asc.Credentials | None = None
) -> asc.GitHubClient:
    http = HTTPCore(sleep=clock.sleep, clock=clock, random=lambda: 0.0)
    return asc.GitHubClient(url, auth or asc.PersonalAccessToken("ghp_tok"), http=http)


@respx.mock
async def test_registration_token_request_and_response(clock: FakeClock) -> None:
    route = respx.post(f"{API}/orgs/acme/actions/runners/registration-token").mock(
        return_value=httpx.Response(201, json=load_fixture("registration_token_response.json"))
    )
    async with _client(clock) as github:
        token = await github.create_registration_token()
    request = route.calls.last.request
    assert request.headers["Authorization"] == "Bearer ghp_tok"
    assert request.headers["Accept"] == "application/vnd.github+json"
    assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert request.content == b""
    assert token.token.get_secret_value() == "AABF3JGZDX3P5PMEXLND6TS6FCWO6"
    assert token.expires_at is not None
    assert token.expires_at.year == 2026
    assert "AABF3J" not in repr(token)


@respx.mock
async def test_remove_token_for_a_repository_on_ghes(clock: FakeClock) -> None:
    route = respx.post(f"{GHES_API}/repos/acme/app/actions/runners/remove-token").mock(
        return_value=httpx.Response(201, json={"token": "RT", "expires_at": "2026-05-04T11:07:21.000Z"})
    )
    async with _client(clock, "https://ghes.example.com/acme/app") as github:
        token = await github.create_remove_token()
    assert route.called
    assert token.token.get_secret_value() == "RT"


@respx.mock
async def test_generate_jit_config_body_and_result(clock: FakeClock) -> None:
    route = respx.post(f"{API}/orgs/acme/actions/runners/generate-jitconfig").mock(
        return_value=httpx.Response(
            201,
            json={
                "runner": {
                    "id": 23,
                    "name": "r-1",
                    "os": "unknown",
                    "status": "offline",
                    "busy": False,
                    "labels": [{"id": 0, "name": "linux", "type": "read-only"}],
                },
                "encoded_jit_config": "eyJ0b2tlbiI6IjEyMyJ9",
            },
        )
    )
    async with _client(clock) as github:
        jit = await github.generate_jit_config(
            "r-1", runner_group_id=3, labels=["linux", "x64"], work_folder="w"
        )
    assert json.loads(route.calls.last.request.content) == {
        "name": "r-1",
        "runner_group_id": 3,
        "labels": ["linux", "x64"],
        "work_folder": "w",
    }
    assert jit.runner.id == 23
    assert jit.runner.labels[0].name == "linux"
    assert jit.encoded_jit_config.get_secret_value() == "eyJ0b2tlbiI6IjEyMyJ9"
    assert "eyJ0b2tl" not in repr(jit)


@respx.mock
async def test_generate_jit_config_is_not_retried_after_a_server_error(clock: FakeClock) -> None:
    route = respx.post(f"{API}/orgs/acme/actions/runners/generate-jitconfig").mock(
        return_value=httpx.Response(500)
    )
    async with _client(clock) as github:
        with pytest.raises(asc.ServerError):
            await github.generate_jit_config("r-1")
    assert route.call_count == 1


@respx.mock
async def test_list_runners_follows_the_link_header_across_pages(clock: FakeClock) -> None:
    first = f"{API}/orgs/acme/actions/runners"
    second = f"{API}/organizations/1/actions/runners?per_page=100&page=2"
    respx.get(first, params={"per_page": "100"}).mock(
        return_value=httpx.Response(
            200,
            json={"total_count": 3, "runners": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]},
            headers={"Link": f'<{second}>; rel="next", <{second}>; rel="last"'},
        )
    )
    respx.get(second).mock(
        return_value=httpx.Response(
            200, json={"total_count": 3, "runners": [{"id": 3, "name": "c", "busy": True}]}
        )
    )
    async with _client(clock) as github:
        runners = await github.list_runners()
    assert [r.name for r in runners] == ["a", "b", "c"]
    assert runners[2].busy


@respx.mock
async def test_a_page_without_its_list_is_a_typed_error(clock: FakeClock) -> None:
    respx.get(f"{API}/orgs/acme/actions/runners").mock(
        return_value=httpx.Response(200, json={"message": "?"})
    )
    async with _client(clock) as github:
        with pytest.raises(asc.InvalidResponseError, match="no 'runners' list"):
            await github.list_runners()


@respx.mock
async def test_get_and_delete_runner(clock: FakeClock) -> None:
    respx.get(f"{API}/orgs/acme/actions/runners/5").mock(
        return_value=httpx.Response(200, json={"id": 5, "name": "x"})
    )
    delete = respx.delete(f"{API}/orgs/acme/actions/runners/5").mock(return_value=httpx.Response(204))
    async with _client(clock) as github:
        assert (await github.get_runner(5)).name == "x"
        await github.delete_runner(5)
    assert delete.called


@respx.mock
async def test_runner_groups_of_a_repository_come_from_its_organization(clock: FakeClock) -> None:
    respx.get(f"{API}/orgs/acme/actions/runner-groups").mock(
        return_value=httpx.Response(
            200,
            json={
                "total_count": 2,
                "runner_groups": [{"id": 1, "name": "Default", "default": True}, {"id": 4, "name": "GPU"}],
            },
        )
    )
    async with _client(clock, "https://github.com/acme/app") as github:
        assert [g.id for g in await github.list_runner_groups()] == [1, 4]
        group = await github.get_runner_group_by_name("gpu")
        assert group is not None
        assert group.id == 4
        assert await github.get_runner_group_by_name("nope") is None


@respx.mock
async def test_checks_user_organization_and_actions_permissions(clock: FakeClock) -> None:
    respx.get(f"{API}/user").mock(
        return_value=httpx.Response(200, json={"login": "me", "id": 1, "type": "User"})
    )
    respx.get(f"{API}/orgs/acme").mock(return_value=httpx.Response(200, json={"login": "acme", "id": 9}))
    respx.get(f"{API}/orgs/acme/actions/permissions").mock(
        return_value=httpx.Response(200, json={"enabled_repositories": "all", "allowed_actions": "all"})
    )
    async with _client(clock) as github:
        assert (await github.get_authenticated_user()).login == "me"
        assert (await github.get_organization()).id == 9
        assert (await github.get_actions_permissions()).enabled_repositories == "all"


@respx.mock
async def test_get_installation_uses_the_app_jwt(clock: FakeClock) -> None:
    route = respx.get(f"{API}/orgs/acme/installation").mock(
        return_value=httpx.Response(200, json={"id": 321, "permissions": {"administration": "write"}})
    )
    async with _client(clock, auth=asc.GitHubApp(app_id=5, private_key=pem())) as github:
        installation = await github.get_installation()
        assert installation.id == 321
        assert installation.permissions == {"administration": "write"}
    assert route.calls.last.request.headers["Authorization"].startswith("Bearer eyJ")
    async with _client(clock) as github:
        with pytest.raises(asc.ConfigurationError):
            await github.get_installation()


@respx.mock
async def test_a_primary_rate_limit_is_waited_out_then_succeeds(clock: FakeClock) -> None:
    reset = str(int(clock.now) + 30)
    route = respx.post(f"{API}/orgs/acme/actions/runners/registration-token").mock(
        side_effect=[
            httpx.Response(
                403,
                json={"message": "API rate limit exceeded"},
                headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
            ),
            httpx.Response(201, json={"token": "T"}),
        ]
    )
    async with _client(clock) as github:
        await github.create_registration_token()
    assert route.call_count == 2
    assert clock.slept == [30.0]


@respx.mock
async def test_a_rate_limit_beyond_the_cap_raises_with_retry_after(clock: FakeClock) -> None:
    reset = str(int(clock.now) + 3600)
    respx.get(f"{API}/user").mock(
        return_value=httpx.Response(
            403,
            json={"message": "API rate limit exceeded"},
            headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset, "X-GitHub-Request-Id": "R:1"},
        )
    )
    async with _client(clock) as github:
        with pytest.raises(asc.PrimaryRateLimitError) as info:
            await github.get_authenticated_user()
    assert info.value.retry_after == pytest.approx(3600)
    assert info.value.github_request_id == "R:1"
    assert clock.slept == []


@respx.mock
async def test_a_rest_404_is_typed_with_the_request_id(clock: FakeClock) -> None:
    respx.post(f"{API}/orgs/acme/actions/runners/registration-token").mock(
        return_value=httpx.Response(
            404, json=load_fixture("error_github_rest_404.json"), headers={"X-GitHub-Request-Id": "AB:CD"}
        )
    )
    async with _client(clock) as github:
        with pytest.raises(asc.NotFoundError) as info:
            await github.create_registration_token()
    assert info.value.github_request_id == "AB:CD"
    assert info.value.body["documentation_url"] == "https://docs.github.com/rest"


@respx.mock
async def test_no_secret_reaches_logs_reprs_or_errors(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    key = pem()
    secrets = ["ghs_installtoken123456", "REGTOKEN_abcdef", "encodedjitblob=="]
    respx.post(f"{API}/app/installations/9/access_tokens").mock(
        return_value=httpx.Response(201, json={"token": secrets[0], "expires_at": "2099-01-01T00:00:00Z"})
    )
    respx.post(f"{API}/orgs/acme/actions/runners/registration-token").mock(
        side_effect=[httpx.Response(503), httpx.Response(201, json={"token": secrets[1]})]
    )
    respx.post(f"{API}/orgs/acme/actions/runners/generate-jitconfig").mock(
        return_value=httpx.Response(
            201, json={"runner": {"id": 1, "name": "r"}, "encoded_jit_config": secrets[2]}
        )
    )
    respx.get(f"{API}/orgs/acme/actions/runners").mock(
        return_value=httpx.Response(401, json={"message": "Bad credentials"})
    )
    texts: list[str] = []
    app = asc.GitHubApp(app_id=5, installation_id=9, private_key=key)
    with caplog.at_level(logging.DEBUG):
        async with _client(clock, auth=app) as github:
            texts += [repr(github), repr(app)]
            texts.append(repr(await github.create_registration_token()))
            texts.append(repr(await github.generate_jit_config("r")))
            try:
                await github.list_runners()
            except asc.ActionsScaleSetError as exc:
                texts += [str(exc), repr(exc), repr(getattr(exc, "body", None))]
    texts += [r.getMessage() for r in caplog.records]
    texts += [repr(r.__dict__) for r in caplog.records]
    blob = "\n".join(texts)
    assert "Bad credentials" in blob  # the failure itself is visible
    for secret in [*secrets, key.splitlines()[1], "eyJ"]:
        assert secret not in blob


def test_oauth_scopes_are_read_from_the_header_and_absent_for_fine_grained_tokens() -> None:
    from actions_scaleset.github import parse_oauth_scopes

    assert parse_oauth_scopes("admin:org, repo,  workflow") == frozenset({"admin:org", "repo", "workflow"})
    assert parse_oauth_scopes("") == frozenset()  # a classic token with no scope
    assert parse_oauth_scopes(None) is None  # fine-grained or App token: GitHub lists none
