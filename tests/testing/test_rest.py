"""GitHub REST: tokens, the runner-registration exchange, the App, runners and groups."""

from __future__ import annotations

import httpx
import pytest

from actions_scaleset.testing import FakeGitHub, TokenKind
from tests.support import FakeClock
from tests.testing.wire import bearer, bootstrap, registration_token

pytestmark = pytest.mark.anyio


def rest(fake: FakeGitHub, path: str) -> str:
    return f"{fake.base_url}/api/v3{path}"


@pytest.mark.parametrize("scheme", ["Bearer", "token"])
async def test_a_pat_mints_a_registration_token_with_either_scheme(
    fake: FakeGitHub, http: httpx.AsyncClient, scheme: str
) -> None:
    fake.config_url("acme")
    pat = fake.pat().token.get_secret_value()
    response = await http.post(
        rest(fake, "/orgs/acme/actions/runners/registration-token"),
        headers={"Authorization": f"{scheme} {pat}"},
    )
    assert response.status_code == 201
    assert set(response.json()) == {"token", "expires_at"}
    assert fake.requests[-1].token is TokenKind.PAT


@pytest.mark.parametrize(
    ("headers", "message"),
    [({}, "Requires authentication"), ({"Authorization": "Bearer ghp_wrong"}, "Bad credentials")],
)
async def test_rest_without_a_valid_token_is_401(
    fake: FakeGitHub, http: httpx.AsyncClient, headers: dict[str, str], message: str
) -> None:
    fake.config_url("acme")
    response = await http.post(rest(fake, "/orgs/acme/actions/runners/registration-token"), headers=headers)
    assert response.status_code == 401
    assert response.json()["message"] == message


async def test_an_unknown_organization_is_404(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    pat = fake.pat().token.get_secret_value()
    response = await http.post(
        rest(fake, "/orgs/nope/actions/runners/registration-token"), headers=bearer(pat)
    )
    assert response.status_code == 404
    assert response.json() == {
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest",
        "status": "404",
    }


async def test_runner_registration_returns_the_actions_url_and_an_admin_jwt(
    fake: FakeGitHub, http: httpx.AsyncClient
) -> None:
    import jwt

    admin = await bootstrap(http, fake)
    assert admin.url.startswith(f"{fake.base_url}/_services/pipelines/")
    assert admin.url.endswith("/")
    claims = jwt.decode(admin.token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 3600


async def test_runner_registration_wants_remoteauth_not_bearer(
    fake: FakeGitHub, http: httpx.AsyncClient
) -> None:
    token = await registration_token(http, fake)
    response = await http.post(
        rest(fake, "/actions/runner-registration"),
        headers=bearer(token),
        json={"url": fake.config_url("acme"), "runner_event": "register"},
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    "url", ["http://fake-github.local/other", "http://elsewhere.example/acme", "http://fake-github.local"]
)
async def test_runner_registration_for_another_scope_or_host_is_404(
    fake: FakeGitHub, http: httpx.AsyncClient, url: str
) -> None:
    fake.config_url("other")
    token = await registration_token(http, fake)
    response = await http.post(
        rest(fake, "/actions/runner-registration"),
        headers={"Authorization": f"RemoteAuth {token}"},
        json={"url": url, "runner_event": "register"},
    )
    assert response.status_code == 404


async def test_runner_registration_rejects_a_body_without_url(
    fake: FakeGitHub, http: httpx.AsyncClient
) -> None:
    token = await registration_token(http, fake)
    response = await http.post(
        rest(fake, "/actions/runner-registration"),
        headers={"Authorization": f"RemoteAuth {token}"},
        json={"runner_event": "register"},
    )
    assert response.status_code == 400


async def test_a_registration_token_expires_with_the_clock(
    fake: FakeGitHub, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    token = await registration_token(http, fake)
    clock.now += 3601
    response = await http.post(
        rest(fake, "/actions/runner-registration"),
        headers={"Authorization": f"RemoteAuth {token}"},
        json={"url": fake.config_url("acme"), "runner_event": "register"},
    )
    assert response.status_code == 401


async def test_a_repository_scope_works_end_to_end(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    admin = await bootstrap(http, fake, "acme/app")
    assert "/_services/pipelines/" in admin.url


# ---------------------------------------------------------------------- the GitHub App


async def test_the_app_finds_its_installation_and_mints_a_token(
    fake: FakeGitHub, http: httpx.AsyncClient
) -> None:
    app = fake.app("acme", with_installation_id=False)
    assert app.installation_id is None
    app_jwt = app.app_jwt(now=fake.clock()).get_secret_value()
    found = await http.get(rest(fake, "/orgs/acme/installation"), headers=bearer(app_jwt))
    assert found.status_code == 200
    installation = found.json()["id"]
    minted = await http.post(
        rest(fake, f"/app/installations/{installation}/access_tokens"), headers=bearer(app_jwt)
    )
    assert minted.status_code == 201
    assert minted.json()["token"].startswith("ghs_")
    registration = await http.post(
        rest(fake, "/repos/acme/app/actions/runners/registration-token"),
        headers=bearer(minted.json()["token"]),
    )
    assert registration.status_code == 201
    assert fake.requests[-1].token is TokenKind.INSTALLATION


async def test_an_app_jwt_signed_by_another_key_is_401(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from actions_scaleset import GitHubApp

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    intruder = GitHubApp(client_id=fake.app().issuer, installation_id=1, private_key=pem)
    response = await http.get(
        rest(fake, "/orgs/acme/installation"),
        headers=bearer(intruder.app_jwt(now=fake.clock()).get_secret_value()),
    )
    assert response.status_code == 401


async def test_an_app_jwt_living_longer_than_ten_minutes_is_401(
    fake: FakeGitHub, http: httpx.AsyncClient
) -> None:
    import jwt

    app = fake.app()
    now = int(fake.clock())
    token = jwt.encode({"iat": now - 60, "exp": now + 900, "iss": app.issuer}, app._key, algorithm="RS256")
    response = await http.get(rest(fake, "/orgs/acme/installation"), headers=bearer(token))
    assert response.status_code == 401
    assert "too far in the future" in response.json()["message"]


async def test_an_installation_token_cannot_manage_an_enterprise(
    fake: FakeGitHub, http: httpx.AsyncClient
) -> None:
    fake.config_url("enterprises/big")
    app = fake.app("acme")
    app_jwt = app.app_jwt(now=fake.clock()).get_secret_value()
    minted = await http.post(
        rest(fake, f"/app/installations/{app.installation_id}/access_tokens"), headers=bearer(app_jwt)
    )
    response = await http.post(
        rest(fake, "/enterprises/big/actions/runners/registration-token"),
        headers=bearer(minted.json()["token"]),
    )
    assert response.status_code == 403


# ---------------------------------------------------------------------- runners and groups


async def jit(http: httpx.AsyncClient, fake: FakeGitHub, name: str) -> httpx.Response:
    pat = fake.pat().token.get_secret_value()
    return await http.post(
        rest(fake, "/orgs/acme/actions/runners/generate-jitconfig"),
        headers=bearer(pat),
        json={"name": name, "runner_group_id": 1, "labels": ["self-hosted", "linux"], "work_folder": "_work"},
    )


async def test_rest_jit_creates_a_runner_and_refuses_its_name_twice(
    fake: FakeGitHub, http: httpx.AsyncClient
) -> None:
    fake.config_url("acme")
    first = await jit(http, fake, "r-1")
    assert first.status_code == 201
    assert set(first.json()) == {"runner", "encoded_jit_config"}
    assert first.json()["runner"]["labels"][1] == {"id": 2, "name": "linux", "type": "read-only"}
    assert (await jit(http, fake, "r-1")).status_code == 409


async def test_runners_are_paginated_with_link_headers(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    fake.config_url("acme")
    for i in range(5):
        assert (await jit(http, fake, f"r-{i}")).status_code == 201
    pat = fake.pat().token.get_secret_value()
    page = await http.get(
        rest(fake, "/orgs/acme/actions/runners"), params={"per_page": 2}, headers=bearer(pat)
    )
    assert page.json()["total_count"] == 5
    names = [r["name"] for r in page.json()["runners"]]
    while "next" in page.links:
        page = await http.get(page.links["next"]["url"], headers=bearer(pat))
        names += [r["name"] for r in page.json()["runners"]]
    assert names == [f"r-{i}" for i in range(5)]


async def test_a_runner_can_be_read_and_deleted(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    fake.config_url("acme")
    runner_id = (await jit(http, fake, "r-1")).json()["runner"]["id"]
    headers = bearer(fake.pat().token.get_secret_value())
    url = rest(fake, f"/orgs/acme/actions/runners/{runner_id}")
    assert (await http.get(url, headers=headers)).json()["status"] == "offline"
    assert (await http.delete(url, headers=headers)).status_code == 204
    assert (await http.get(url, headers=headers)).status_code == 404


async def test_runner_groups_list_the_default_group_first(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    fake.config_url("acme")
    fake.add_runner_group("acme", "gpu")
    response = await http.get(
        rest(fake, "/orgs/acme/actions/runner-groups"), headers=bearer(fake.pat().token.get_secret_value())
    )
    groups = response.json()["runner_groups"]
    assert [(g["id"], g["name"], g["default"]) for g in groups] == [(1, "Default", True), (2, "gpu", False)]


async def test_an_unknown_rest_path_is_404_and_a_wrong_method_405(
    fake: FakeGitHub, http: httpx.AsyncClient
) -> None:
    fake.config_url("acme")
    headers = bearer(fake.pat().token.get_secret_value())
    assert (await http.get(rest(fake, "/nothing/here"), headers=headers)).status_code == 404
    wrong = await http.get(rest(fake, "/orgs/acme/actions/runners/registration-token"), headers=headers)
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"


async def test_a_github_com_style_host_serves_rest_at_the_api_subdomain(clock: FakeClock) -> None:
    from actions_scaleset.config import GitHubConfig

    fake = FakeGitHub(clock=clock, host="github.localhost")
    config = GitHubConfig.parse(fake.config_url("acme"), env={})
    assert config.is_hosted
    assert config.api_url == "http://api.github.localhost"
    async with fake.http_client() as http:
        pat = bearer(fake.pat().token.get_secret_value())
        token = (await http.post(config.api(config.registration_token_path), headers=pat)).json()["token"]
        exchanged = await http.post(
            config.api("/actions/runner-registration"),
            headers={"Authorization": f"RemoteAuth {token}"},
            json={"url": config.config_url, "runner_event": "register"},
        )
    assert exchanged.status_code == 200
    assert exchanged.json()["url"].startswith("http://api.github.localhost/_services/pipelines/")
