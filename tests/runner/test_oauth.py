"""The runner's client assertion and token exchange (docs/protocol.md, "The OAuth client assertion")."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import anyio
import httpx
import jwt
import pytest
import respx

from actions_scaleset import InvalidResponseError, OAuthError, Secret, ServerError
from actions_scaleset._http import HTTPCore
from actions_scaleset.runner._jitconfig import RunnerCredentials
from actions_scaleset.runner._oauth import (
    RunnerTokens,
    build_client_assertion,
    parse_token_response,
    token_request_form,
)
from tests.runner.conftest import CLIENT_ID, TOKEN_URL
from tests.support import RUNNER_FIXTURES, FakeClock, load_fixture

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

pytestmark = pytest.mark.anyio

NOW = 1_783_540_800.0


def credentials(**overrides: Any) -> RunnerCredentials:
    values: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "authorization_url": TOKEN_URL,
        "require_fips_cryptography": True,
    }
    values.update(overrides)
    return RunnerCredentials(**values)


@pytest.mark.parametrize(("fips", "alg"), [(True, "PS256"), (False, "RS256")])
def test_the_assertion_matches_the_fixture_and_verifies_with_the_public_key(
    rsa_key: RSAPrivateKey, fips: bool, alg: str
) -> None:
    expected = load_fixture("oauth_client_assertion_decoded.json", RUNNER_FIXTURES)
    token = build_client_assertion(
        client_id=CLIENT_ID,
        audience=TOKEN_URL,
        private_key=rsa_key,
        now=NOW + 0.9,
        fips=fips,
        jti=expected["payload"]["jti"],
    ).get_secret_value()

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(
        token,
        rsa_key.public_key(),
        algorithms=[alg],
        audience=TOKEN_URL,
        options={"verify_exp": False, "verify_nbf": False},
    )

    assert header == {**expected["header"], "alg": alg}
    assert claims == expected["payload"]
    assert list(claims) == ["sub", "jti", "iss", "aud", "nbf", "exp"]  # the runner's order, no iat
    assert claims["exp"] - claims["nbf"] == 300


def test_every_assertion_has_a_new_jti(rsa_key: RSAPrivateKey) -> None:
    def jti() -> str:
        token = build_client_assertion(
            client_id=CLIENT_ID, audience=TOKEN_URL, private_key=rsa_key, now=NOW, fips=False
        ).get_secret_value()
        return str(jwt.decode(token, options={"verify_signature": False})["jti"])

    assert jti() != jti()


def test_the_form_matches_the_fixture() -> None:
    expected = load_fixture("oauth_token_request.json", RUNNER_FIXTURES)["form"]

    form = token_request_form(Secret("a.b.c"))

    assert form == {**expected, "client_assertion": "a.b.c"}


def test_the_token_expires_at_the_earlier_of_expires_in_and_its_own_exp() -> None:
    short = jwt.encode({"exp": int(NOW) + 600}, "k" * 32, algorithm="HS256")

    assert parse_token_response({"access_token": short, "expires_in": 3600}, now=NOW)[1] == NOW + 600
    assert parse_token_response({"access_token": short, "expires_in": "60"}, now=NOW)[1] == NOW + 60
    fixture = load_fixture("oauth_token_response.json", RUNNER_FIXTURES)
    assert parse_token_response(fixture, now=NOW) == (Secret(fixture["access_token"]), NOW + 3600)
    assert parse_token_response({"access_token": "opaque"}, now=NOW)[1] is None


@pytest.mark.parametrize("payload", [[], {}, {"access_token": ""}, {"access_token": 5}])
def test_a_token_response_without_a_token_is_refused(payload: Any) -> None:
    with pytest.raises(ValueError, match="OAuth reply"):
        parse_token_response(payload, now=NOW)


@pytest.fixture
async def env(rsa_key: RSAPrivateKey) -> AsyncIterator[tuple[respx.MockRouter, RunnerTokens, FakeClock]]:
    clock = FakeClock(NOW)
    router = respx.MockRouter(assert_all_called=False)
    async with httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler)) as client:
        http = HTTPCore(client, sleep=clock.sleep, clock=clock, random=lambda: 0.0)
        yield router, RunnerTokens(http, credentials(), rsa_key), clock


def token_response(token: str = "tok-1", expires_in: int = 3600) -> httpx.Response:
    return httpx.Response(200, json={"access_token": token, "token_type": "bearer", "expires_in": expires_in})


async def test_the_token_request_is_a_form_post_without_authorization(
    env: Any, rsa_key: RSAPrivateKey
) -> None:
    router, tokens, _ = env
    route = router.post(TOKEN_URL).mock(return_value=token_response())

    assert await tokens.get() == Secret("tok-1")

    request = route.calls.last.request
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["accept"] == "application/json"
    assert "authorization" not in request.headers
    form = {key: values[0] for key, values in parse_qs(request.content.decode()).items()}
    assert form["grant_type"] == "client_credentials"
    claims = jwt.decode(
        form["client_assertion"],
        rsa_key.public_key(),
        algorithms=["PS256"],
        audience=TOKEN_URL,
        leeway=10**10,
    )
    assert claims["nbf"] == int(NOW)


async def test_the_form_goes_to_the_oauth_endpoint_with_the_authorization_url_as_audience(
    rsa_key: RSAPrivateKey,
) -> None:
    router = respx.MockRouter()
    route = router.post("https://other.example/token").mock(return_value=token_response())
    async with httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler)) as client:
        tokens = RunnerTokens(
            HTTPCore(client), credentials(oauth_endpoint_url="https://other.example/token"), rsa_key
        )
        await tokens.get()

    form = parse_qs(route.calls.last.request.content.decode())
    assert jwt.decode(form["client_assertion"][0], options={"verify_signature": False})["aud"] == TOKEN_URL


async def test_the_token_is_cached_and_fetched_once_by_concurrent_callers(env: Any) -> None:
    router, tokens, _ = env
    route = router.post(TOKEN_URL).mock(return_value=token_response())
    results: list[Secret] = []

    async def get() -> None:
        results.append(await tokens.get())

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(get)
    await tokens.get()

    assert route.call_count == 1
    assert results == [Secret("tok-1")] * 5


async def test_the_token_is_replaced_a_minute_before_it_expires(env: Any) -> None:
    router, tokens, clock = env
    router.post(TOKEN_URL).mock(side_effect=[token_response("tok-1", 600), token_response("tok-2")])

    assert await tokens.get() == Secret("tok-1")
    clock.now += 539
    assert await tokens.get() == Secret("tok-1")
    clock.now += 2
    assert await tokens.get() == Secret("tok-2")


async def test_a_401_refreshes_the_token_once_and_retries(env: Any) -> None:
    router, tokens, _ = env
    router.post(TOKEN_URL).mock(side_effect=[token_response("tok-1"), token_response("tok-2")])
    seen: list[str] = []

    def broker(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(401 if len(seen) == 1 else 200, json={})

    router.get("https://broker.example/message").mock(side_effect=broker)

    response = await tokens.http.request(
        "GET",
        "https://broker.example/message",
        policy=tokens.retry,
        auth=tokens.auth_for("https://broker.example/"),
    )

    assert response.status_code == 200
    assert seen == ["Bearer tok-1", "Bearer tok-2"]


async def test_invalid_client_means_the_registration_is_gone(env: Any) -> None:
    router, tokens, _ = env
    body = load_fixture("oauth_token_error_lifetime.json", RUNNER_FIXTURES)
    router.post(TOKEN_URL).mock(return_value=httpx.Response(400, json=body))

    with pytest.raises(OAuthError) as caught:
        await tokens.get()

    assert caught.value.error == "invalid_client"
    assert caught.value.registration_deleted
    assert "00:05:30" in (caught.value.error_description or "")


async def test_a_4xx_without_an_oauth_body_is_still_an_oauth_error(env: Any) -> None:
    router, tokens, _ = env
    router.post(TOKEN_URL).mock(return_value=httpx.Response(403, text="nope"))

    with pytest.raises(OAuthError, match="OAuth endpoint refused the runner's client assertion") as caught:
        await tokens.get()

    assert caught.value.status_code == 403
    assert caught.value.error is None


async def test_an_error_in_a_200_body_is_an_oauth_error(env: Any) -> None:
    router, tokens, _ = env
    router.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"error": "server_error"}))

    with pytest.raises(OAuthError) as caught:
        await tokens.get()

    assert caught.value.error == "server_error"


async def test_5xx_and_429_are_retried_from_ten_seconds(env: Any) -> None:
    router, tokens, clock = env
    router.post(TOKEN_URL).mock(
        side_effect=[httpx.Response(503), httpx.Response(429), httpx.Response(500), token_response()]
    )

    assert await tokens.get() == Secret("tok-1")
    assert clock.slept == [10.0, 20.0, 40.0]


async def test_5xx_gives_up_after_five_retries(env: Any) -> None:
    router, tokens, clock = env
    router.post(TOKEN_URL).mock(return_value=httpx.Response(502))

    with pytest.raises(ServerError):
        await tokens.get()

    assert len(clock.slept) == 5


async def test_a_malformed_token_response_is_a_typed_error(env: Any) -> None:
    router, tokens, _ = env
    router.post(TOKEN_URL).mock(return_value=httpx.Response(200, content=b"<html>"))

    with pytest.raises(
        InvalidResponseError, match="malformed JSON where an OAuth access-token reply was expected"
    ):
        await tokens.get()


async def test_an_access_token_credential_is_used_as_is(rsa_key: RSAPrivateKey) -> None:
    creds = RunnerCredentials(scheme="OAuthAccessToken", access_token=Secret("static"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500))) as client:
        tokens = RunnerTokens(HTTPCore(client), creds, None)

        assert await tokens.get() == Secret("static")
        assert json.dumps(repr(tokens)).count("static") == 0
