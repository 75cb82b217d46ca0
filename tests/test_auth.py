"""Credentials: Secret, PAT, GitHub App JWTs, installation-token cache and host binding."""

from __future__ import annotations

import json

import anyio
import httpx
import jwt
import pytest
import respx

import actions_scaleset as asc
from actions_scaleset._http import HTTPCore
from actions_scaleset.auth import TokenCache
from tests.keys import ec_pem, encrypted_pem, pem, pkcs8_pem, rsa_key
from tests.support import FakeClock, load_fixture

pytestmark = pytest.mark.anyio

API = "https://api.github.com"
ORG = asc.GitHubConfig.parse("https://github.com/acme", env={})


def test_secret_never_shows_its_value() -> None:
    secret = asc.Secret("ghp_value")
    assert "ghp_value" not in repr(secret) + str(secret) + f"{secret}" + f"{secret!r:>40}"
    assert secret.get_secret_value() == "ghp_value"
    assert secret == asc.Secret("ghp_value")
    assert secret != asc.Secret("other")
    assert repr(asc.Secret("")) == "Secret('')"
    with pytest.raises(TypeError):
        asc.Secret(123)  # type: ignore[arg-type]


def test_pat_repr_hides_the_token_and_empty_is_refused() -> None:
    assert "ghp_" not in repr(asc.PersonalAccessToken("ghp_abc"))
    with pytest.raises(asc.ConfigurationError):
        asc.PersonalAccessToken("  ")


@pytest.mark.parametrize("key", [pem, pkcs8_pem], ids=["pkcs1", "pkcs8"])
def test_app_accepts_pkcs1_and_pkcs8_keys(key: object) -> None:
    app = asc.GitHubApp(client_id="Iv1.abc", private_key=key())  # type: ignore[operator]
    assert app.issuer == "Iv1.abc"


def test_app_accepts_bytes_secret_and_escaped_newlines() -> None:
    asc.GitHubApp(app_id=123, private_key=pem().encode())
    asc.GitHubApp(app_id=123, private_key=asc.Secret(pem()))
    asc.GitHubApp(app_id=123, private_key=pem().replace("\n", "\\n"))  # as pasted into an env var


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("not a key", "not PEM"),
        ("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----", "could not be loaded"),
        ("ec", "not an RSA key"),
        ("encrypted", "could not be loaded"),
    ],
)
def test_bad_keys_raise_at_construction_without_showing_the_key(key: str, says: str) -> None:
    text = {"ec": ec_pem, "encrypted": encrypted_pem}.get(key, lambda: key)()
    with pytest.raises(asc.InvalidPrivateKeyError, match=says) as info:
        asc.GitHubApp(client_id="Iv1.abc", private_key=text)
    body = text.splitlines()[1] if "\n" in text else text
    assert body not in str(info.value) or (body == "not a key" and "not a key" not in str(info.value))


def test_app_needs_exactly_one_identifier() -> None:
    with pytest.raises(asc.ConfigurationError):
        asc.GitHubApp(private_key=pem())
    with pytest.raises(asc.ConfigurationError):
        asc.GitHubApp(client_id="a", app_id=1, private_key=pem())


def test_app_jwt_claims_and_random_jti() -> None:
    app = asc.GitHubApp(app_id=42, private_key=pem())
    now = 1_777_889_641.0
    first = app.app_jwt(now=now).get_secret_value()
    second = app.app_jwt(now=now).get_secret_value()
    assert first != second  # a random jti: concurrent workers never mint identical JWTs
    header = jwt.get_unverified_header(first)
    claims = jwt.decode(
        first,
        rsa_key().public_key(),
        algorithms=["RS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert header["alg"] == "RS256"
    assert claims["iat"] == int(now) - 60
    assert claims["exp"] - claims["iat"] <= 600
    assert claims["iss"] == "42"
    assert len(claims["jti"]) >= 16
    assert "42" in repr(app)
    assert "BEGIN" not in repr(app)


def _token_response(token: str, expires_at: str = "2026-05-04T11:07:21Z") -> httpx.Response:
    return httpx.Response(201, json={"token": token, "expires_at": expires_at})


async def test_installation_token_is_cached_until_five_minutes_before_expiry(clock: FakeClock) -> None:
    # fixture expiry 2026-05-04T11:07:21Z = 1777892841; the clock starts at 1777889641 (53 min before)
    fixture = load_fixture("installation_access_token_response.json")
    with respx.mock:
        route = respx.post(f"{API}/app/installations/9/access_tokens").mock(
            side_effect=[httpx.Response(201, json=fixture), _token_response("ghs_second")]
        )
        http = HTTPCore(sleep=clock.sleep, clock=clock)
        auth = asc.GitHubApp(app_id=1, installation_id=9, private_key=pem()).bind(ORG, http)
        respx.get(f"{API}/orgs/acme").mock(return_value=httpx.Response(200, json={"login": "acme", "id": 1}))
        for _ in range(3):
            await http.request("GET", f"{API}/orgs/acme", policy=asc.NO_RETRY, auth=auth)
        assert route.call_count == 1
        clock.now = 1_777_892_841 - 301
        await http.request("GET", f"{API}/orgs/acme", policy=asc.NO_RETRY, auth=auth)
        assert route.call_count == 1
        clock.now = 1_777_892_841 - 299
        await http.request("GET", f"{API}/orgs/acme", policy=asc.NO_RETRY, auth=auth)
        assert route.call_count == 2
        sent = respx.calls.last.request.headers["Authorization"]
        assert sent == "Bearer ghs_second"
        jwt_sent = route.calls.last.request.headers["Authorization"].removeprefix("Bearer ")
        assert (
            jwt.decode(
                jwt_sent,
                rsa_key().public_key(),
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False},
            )["iss"]
            == "1"
        )


async def test_a_hundred_concurrent_callers_cause_one_refresh(clock: FakeClock) -> None:
    calls = {"tokens": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/access_tokens"):
            calls["tokens"] += 1
            await anyio.sleep(0.01)
            return _token_response("ghs_shared")
        return httpx.Response(200, json={})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        http = HTTPCore(client, clock=clock)
        auth = asc.GitHubApp(app_id=1, installation_id=9, private_key=pem()).bind(ORG, http)

        async def call() -> None:
            await http.request("GET", f"{API}/orgs/acme", policy=asc.NO_RETRY, auth=auth)

        async with anyio.create_task_group() as tg:
            for _ in range(100):
                tg.start_soon(call)
    assert calls["tokens"] == 1


async def test_installation_is_looked_up_from_the_config_url(clock: FakeClock) -> None:
    repo = asc.GitHubConfig.parse("https://github.com/acme/app", env={})
    with respx.mock:
        lookup = respx.get(f"{API}/repos/acme/app/installation").mock(
            return_value=httpx.Response(200, json={"id": 77, "app_id": 1})
        )
        mint = respx.post(f"{API}/app/installations/77/access_tokens").mock(
            return_value=_token_response("ghs_x")
        )
        respx.get(f"{API}/repos/acme/app").mock(return_value=httpx.Response(200, json={}))
        http = HTTPCore(clock=clock)
        auth = asc.GitHubApp(client_id="Iv1.x", private_key=pem()).bind(repo, http)
        await http.request("GET", f"{API}/repos/acme/app", policy=asc.NO_RETRY, auth=auth)
        assert lookup.called
        assert mint.called


async def test_a_401_refreshes_the_installation_token_once(clock: FakeClock) -> None:
    with respx.mock:
        mint = respx.post(f"{API}/app/installations/9/access_tokens").mock(
            side_effect=[_token_response("ghs_old"), _token_response("ghs_new")]
        )
        target = respx.get(f"{API}/orgs/acme").mock(side_effect=[httpx.Response(401), httpx.Response(200)])
        http = HTTPCore(clock=clock)
        auth = asc.GitHubApp(app_id=1, installation_id=9, private_key=pem()).bind(ORG, http)
        await http.request("GET", f"{API}/orgs/acme", policy=asc.NO_RETRY, auth=auth)
        assert mint.call_count == 2
        assert [c.request.headers["Authorization"] for c in target.calls] == [
            "Bearer ghs_old",
            "Bearer ghs_new",
        ]


async def test_missing_expiry_assumes_an_hour(clock: FakeClock) -> None:
    with respx.mock:
        mint = respx.post(f"{API}/app/installations/9/access_tokens").mock(
            return_value=httpx.Response(201, json={"token": "ghs_x"})
        )
        respx.get(f"{API}/orgs/acme").mock(return_value=httpx.Response(200))
        http = HTTPCore(clock=clock)
        auth = asc.GitHubApp(app_id=1, installation_id=9, private_key=pem()).bind(ORG, http)
        await http.request("GET", f"{API}/orgs/acme", policy=asc.NO_RETRY, auth=auth)
        clock.now += 3000
        await http.request("GET", f"{API}/orgs/acme", policy=asc.NO_RETRY, auth=auth)
        assert mint.call_count == 1


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'{"expires_at":"2026-05-04T11:07:21Z"}',
        b'{"token": 5}',
        b'{"token":"x","expires_at":"soon"}',
    ],
)
async def test_a_bad_installation_token_response_is_a_typed_error(clock: FakeClock, body: bytes) -> None:
    with respx.mock:
        respx.post(f"{API}/app/installations/9/access_tokens").mock(
            return_value=httpx.Response(201, content=body)
        )
        http = HTTPCore(clock=clock)
        auth = asc.GitHubApp(app_id=1, installation_id=9, private_key=pem()).bind(ORG, http)
        with pytest.raises(asc.InvalidResponseError):
            await http.request("GET", f"{API}/orgs/acme", policy=asc.NO_RETRY, auth=auth)


async def test_the_token_is_refused_for_another_host(clock: FakeClock) -> None:
    with respx.mock:
        evil = respx.get("https://evil.example/x").mock(return_value=httpx.Response(200))
        http = HTTPCore(clock=clock)
        auth = asc.PersonalAccessToken("ghp_mytoken").bind(ORG, http)
        with pytest.raises(asc.RequestError, match="refusing to send"):
            await http.request("GET", "https://evil.example/x", policy=asc.NO_RETRY, auth=auth)
        assert not evil.called


async def test_the_token_does_not_follow_a_redirect_to_another_host(clock: FakeClock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "api.github.com":
            return httpx.Response(302, headers={"Location": "https://evil.example/steal"})
        return httpx.Response(200, json={"login": "x", "id": 1})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=True) as client:
        http = HTTPCore(client, clock=clock)
        auth = asc.PersonalAccessToken("ghp_mytoken").bind(ORG, http)
        await http.request("GET", f"{API}/user", policy=asc.NO_RETRY, auth=auth)
    assert [r.url.host for r in seen] == ["api.github.com", "evil.example"]
    assert seen[0].headers["Authorization"] == "Bearer ghp_mytoken"
    assert "Authorization" not in seen[1].headers


async def test_token_cache_keeps_a_value_without_expiry_until_invalidated(clock: FakeClock) -> None:
    fetched = []

    async def fetch() -> tuple[str, float | None]:
        fetched.append(1)
        return f"v{len(fetched)}", None

    cache: TokenCache[str] = TokenCache(fetch, clock=clock, refresh_margin=60)
    assert await cache.get() == "v1"
    assert await cache.get() == "v1"
    cache.invalidate()
    assert await cache.get() == "v2"
    assert await cache.refresh(stale="v1") == "v2"  # someone already replaced the stale one
    assert await cache.refresh(stale="v2") == "v3"


def test_fixture_registration_token_payload_is_what_the_cache_reads() -> None:
    payload = load_fixture("registration_token_response.json")
    assert json.dumps(payload)
