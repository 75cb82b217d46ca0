"""Auth migration: broker and run-service calls take their token from `authorizationUrlV2`.

actions/runner: `OAuthCredential.GetVssCredentials` (the V2 issuer only for
`allowAuthUrlV2` callers while `HostContext.AllowAuthMigration`), `Runner.cs`
(`EnableAuthMigrationByDefault`; `RunServer` acquires with the V2 credentials),
`BrokerMessageListener` / `MessageListener` (`DeferAuthMigration(60 min)` on a
failed session create or poll).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import anyio
import attrs
import httpx
import jwt
import pytest
import respx

import actions_scaleset as asc
from actions_scaleset import AuthenticationError, PermissionDeniedError
from actions_scaleset._http import HTTPCore
from actions_scaleset.runner import JitConfig, JobRequest, RunnerClient, RunnerCredentials
from actions_scaleset.runner._migration import AuthMigration
from actions_scaleset.testing import FakeGitHub
from actions_scaleset.testing._jit import authorization_url_v2
from tests.runner.conftest import TOKEN_URL, TOKEN_URL_V2, make_config
from tests.runner.fakes import job_request, runner_env, wait_until
from tests.support import RUNNER_FIXTURES, load_fixture

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

pytestmark = pytest.mark.anyio

V1 = "Bearer RUNNER-ACCESS-TOKEN-1"


def v2_tokens(router: respx.MockRouter, url: str = TOKEN_URL_V2) -> respx.Route:
    count = iter(range(1, 1000))
    return router.post(url).mock(
        side_effect=lambda request: httpx.Response(
            200, json={"access_token": f"RUNNER-V2-TOKEN-{next(count)}", "expires_in": 3600}
        )
    )


def audience(request: httpx.Request) -> Any:
    form = parse_qs(request.content.decode())
    return jwt.decode(form["client_assertion"][0], options={"verify_signature": False})["aud"]


async def next_request(runner: RunnerClient) -> JobRequest:
    async with contextlib.aclosing(runner.job_requests()) as requests:
        return await requests.__anext__()


async def test_broker_and_run_service_calls_use_the_authorization_url_v2_token_when_migration_is_on(
    rsa_key: RSAPrivateKey,
) -> None:
    async with runner_env(make_config(rsa_key, migrate=True)) as (runner, broker, router, _):
        v2 = v2_tokens(router)
        async with runner:
            broker.push(job_request())
            request = await next_request(runner)
            job = await runner.acquire_job(request)
            await job.complete()

        assert broker.session.calls.last.request.headers["authorization"] == "Bearer RUNNER-V2-TOKEN-1"
        assert broker.polls[0].headers["authorization"] == "Bearer RUNNER-V2-TOKEN-1"
        assert broker.ack.calls.last.request.headers["authorization"] == "Bearer RUNNER-V2-TOKEN-1"
        assert broker.acquire.calls.last.request.headers["authorization"] == "Bearer RUNNER-V2-TOKEN-1"
        assert broker.delete_session.calls.last.request.headers["authorization"] == "Bearer RUNNER-V2-TOKEN-1"
        assert audience(v2.calls.last.request) == TOKEN_URL_V2
        assert broker.token.call_count == 0  # authorizationUrl is not asked at all


async def test_the_v2_token_is_posted_to_oauth_endpoint_url_with_authorization_url_v2_as_audience(
    rsa_key: RSAPrivateKey,
) -> None:
    config = make_config(rsa_key, migrate=True)
    endpoint = "https://oauth-endpoint.example/token"
    credentials = RunnerCredentials(
        client_id=config.credentials.client_id,
        authorization_url=TOKEN_URL,
        oauth_endpoint_url=endpoint,
        authorization_url_v2=TOKEN_URL_V2,
        enable_auth_migration_by_default=True,
    )
    config = type(config).create(config.runner, credentials, rsa_key)
    async with runner_env(config) as (runner, broker, router, _):
        posted = v2_tokens(router, endpoint)
        async with runner:
            pass

        assert audience(posted.calls.last.request) == TOKEN_URL_V2
        assert broker.session.calls.last.request.headers["authorization"] == "Bearer RUNNER-V2-TOKEN-1"


async def test_without_enable_auth_migration_by_default_authorization_url_v2_is_not_used(
    rsa_key: RSAPrivateKey,
) -> None:
    config = make_config(rsa_key, migrate=True)
    credentials = RunnerCredentials(
        client_id=config.credentials.client_id,
        authorization_url=TOKEN_URL,
        authorization_url_v2=TOKEN_URL_V2,
    )
    config = type(config).create(config.runner, credentials, rsa_key)
    async with runner_env(config) as (runner, broker, router, _):
        v2 = v2_tokens(router)
        async with runner:
            pass

        assert broker.session.calls.last.request.headers["authorization"] == V1
        assert v2.call_count == 0


async def test_a_failed_poll_turns_the_migration_off_for_an_hour_instead_of_stopping_the_runner(
    rsa_key: RSAPrivateKey,
) -> None:
    config = make_config(rsa_key, migrate=True, ephemeral=False)
    async with runner_env(config) as (runner, broker, router, sleeper):
        v2_tokens(router)
        async with runner:
            # Without migration a 403 stops the runner; under migration it is retried with authorizationUrl.
            broker.push(httpx.Response(403, json={"message": "denied"}), job_request())

            await next_request(runner)

            assert broker.polls[0].headers["authorization"] == "Bearer RUNNER-V2-TOKEN-1"
            assert broker.polls[1].headers["authorization"] == V1
            await wait_until(lambda: len(broker.polls) == 3)
            sleeper.now += 3600
            broker.push(httpx.Response(202))
            await wait_until(lambda: len(broker.polls) == 4)
            assert broker.polls[3].headers["authorization"].startswith("Bearer RUNNER-V2-TOKEN-")  # on again


async def test_a_failed_broker_session_create_under_migration_is_retried_with_authorization_url(
    rsa_key: RSAPrivateKey,
) -> None:
    async with runner_env(make_config(rsa_key, migrate=True)) as (runner, broker, router, sleeper):
        v2_tokens(router)
        created = httpx.Response(
            201, json=load_fixture("broker_session_create_response.json", RUNNER_FIXTURES)
        )
        broker.session.side_effect = [httpx.Response(403, json={"message": "denied"}), created]

        async with runner:
            first, second = (call.request for call in broker.session.calls)
            assert first.headers["authorization"] == "Bearer RUNNER-V2-TOKEN-1"
            assert second.headers["authorization"] == V1
            assert sleeper.slept == [30.0]


async def test_a_failed_broker_session_create_without_migration_still_stops(rsa_key: RSAPrivateKey) -> None:
    async with runner_env(make_config(rsa_key)) as (runner, broker, _, _):
        broker.session.mock(return_value=httpx.Response(403, json={"message": "denied"}))

        with pytest.raises(PermissionDeniedError):
            await runner.__aenter__()


async def test_a_failed_acquisition_under_migration_turns_the_migration_off(
    rsa_key: RSAPrivateKey,
) -> None:
    async with runner_env(make_config(rsa_key, migrate=True)) as (runner, broker, router, _):
        v2_tokens(router)
        async with runner:
            broker.acquire.mock(return_value=httpx.Response(401, json={"message": "no"}))
            broker.push(job_request())
            request = await next_request(runner)

            with pytest.raises(AuthenticationError):
                await runner.acquire_job(request)

            assert not runner.tokens.migration.allowed


def test_migration_comes_back_on_by_itself_after_its_deferral() -> None:
    now = [0.0]
    migration = AuthMigration(True, lambda: now[0])

    migration.defer("poll failed")
    now[0] = 3599.0
    assert not migration.allowed
    now[0] = 3600.0
    assert migration.allowed


def test_migration_that_was_never_enabled_stays_off() -> None:
    migration = AuthMigration(False, lambda: 0.0)

    migration.defer("poll failed")

    assert not migration.allowed


# --------------------------------------------------------------------------- against FakeGitHub


async def fast_sleep(seconds: float) -> None:
    await anyio.sleep(min(seconds, 0.01))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_a_jit_runner_with_authorization_url_v2_takes_its_job_on_v2_tokens_from_fake_github() -> None:
    fake = FakeGitHub(runner_key_size=1024, poll_hold=0.05)
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    async with fake.http_client(event_hooks={"request": [record]}) as http:
        client = asc.ScaleSetClient(
            fake.config_url("acme"), fake.pat(), http=HTTPCore(http, sleep=fast_sleep)
        )
        scale_set = await client.ensure_scale_set("linux", labels=["linux"])
        fake.enqueue_job(labels=["linux"], repository="acme/app", display_name="build")
        async with client.session(scale_set.id, owner="listener") as session:
            message = await session.get_message(max_capacity=1)
            assert message is not None
            await session.acquire_jobs([job.runner_request_id for job in message.jobs_available])
            jit = await client.generate_jit_config(scale_set.id, name="runner-1")
        config = JitConfig.decode(jit.encoded_jit_config)
        v2_url = authorization_url_v2(config.credentials.authorization_url)
        credentials = attrs.evolve(
            config.credentials, authorization_url_v2=v2_url, enable_auth_migration_by_default=True
        )
        config = JitConfig.create(config.runner, credentials, config.rsa_parameters)

        async with RunnerClient(config, http=client.http) as runner:
            async for request in runner.job_requests():
                job = await runner.acquire_job(request)
                await job.complete("succeeded")

    assert fake.snapshot().jobs[0].result == "succeeded"
    token_paths = {r.url.path for r in sent if r.url.path.startswith("/_services/token/")}
    assert token_paths == {urlsplit(v2_url).path}
    runner_calls = [
        r for r in sent if r.url.path.startswith(("/_services/broker/", "/_services/run/1/acquirejob"))
    ]
    runner_calls = [r for r in runner_calls if "/scalesets/" not in r.url.path]  # the listener's queue
    assert {r.url.path.rpartition("/")[2] for r in runner_calls} >= {"session", "message", "acquirejob"}
    for call in runner_calls:
        token = call.headers["authorization"].removeprefix("Bearer ")
        assert jwt.decode(token, options={"verify_signature": False})["authorization_url"] == v2_url
