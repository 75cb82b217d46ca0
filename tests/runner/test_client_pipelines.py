"""RunnerClient on the pipelines (v1) flow: encrypted session, deletes, job-request PATCHes
(docs/protocol.md, "Broker (v2) and pipelines (v1)")."""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import jwt
import pytest
import respx

from actions_scaleset import InvalidResponseError
from actions_scaleset._http import HTTPCore
from actions_scaleset.runner import (
    JitConfig,
    PipelineJobRequest,
    RunnerClient,
    RunnerJobRequest,
    encrypt_message_body,
    wrap_session_key,
)
from tests.runner.conftest import PIPELINES, TOKEN_URL, TOKEN_URL_V2, make_config
from tests.runner.fakes import Sleeper, job_message, job_request, wait_until
from tests.support import RUNNER_FIXTURES, load_fixture

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

pytestmark = pytest.mark.anyio

POOL = f"{PIPELINES}_apis/distributedtask/pools/5/"
SESSION_ID = "5e55e55e-0000-4000-8000-000000000001"


class FakePipelines:
    def __init__(
        self, router: respx.MockRouter, rsa_key: RSAPrivateKey, *, hash_name: str = "sha256"
    ) -> None:
        self.key = os.urandom(32)
        response = load_fixture("v1_session_create_response.json", RUNNER_FIXTURES)
        wrapped = wrap_session_key(rsa_key.public_key(), self.key, hash_name=hash_name)  # type: ignore[arg-type]
        response["encryptionKey"]["value"] = base64.b64encode(wrapped).decode()
        response["useFipsEncryption"] = hash_name == "sha256"
        self.send, self.receive = anyio.create_memory_object_stream[httpx.Response](math.inf)
        self.polls: list[httpx.Request] = []
        router.post(TOKEN_URL).mock(
            return_value=httpx.Response(200, json={"access_token": "RUNNER-V1-TOKEN", "expires_in": 3600})
        )
        self.session = router.post(f"{POOL}sessions").mock(return_value=httpx.Response(200, json=response))
        self.delete_session = router.delete(f"{POOL}sessions/{SESSION_ID}").mock(
            return_value=httpx.Response(204)
        )
        self.poll = router.get(f"{POOL}messages").mock(side_effect=self._poll)
        self.delete_message = router.delete(url__regex=rf"^{POOL}messages/\d+").mock(
            return_value=httpx.Response(204)
        )
        self.job_request = router.patch(f"{POOL}jobrequests/1234").mock(
            return_value=httpx.Response(
                200, json={"requestId": 1234, "lockedUntil": "2026-06-30T15:47:10.9027894Z"}
            )
        )

    async def _poll(self, request: httpx.Request) -> httpx.Response:
        self.polls.append(request)
        return await self.receive.receive()

    def push(self, *responses: httpx.Response) -> None:
        for response in responses:
            self.send.send_nowait(response)

    def encrypted(self, kind: str, body: Any, message_id: int) -> httpx.Response:
        iv = os.urandom(16)
        text = body if isinstance(body, str) else json.dumps(body)
        ciphertext = encrypt_message_body(self.key, iv, "\ufeff" + text)
        payload = {
            "messageId": message_id,
            "messageType": kind,
            "iv": base64.b64encode(iv).decode(),
            "body": base64.b64encode(ciphertext).decode(),
        }
        return httpx.Response(200, json=payload)

    def close(self) -> None:
        self.send.close()
        self.receive.close()


@contextlib.asynccontextmanager
async def v1_env(
    config: JitConfig, rsa_key: RSAPrivateKey, **options: Any
) -> AsyncIterator[tuple[RunnerClient, FakePipelines, respx.MockRouter]]:
    router = respx.MockRouter(assert_all_called=False)
    fake = FakePipelines(router, rsa_key, **options)
    sleeper = Sleeper()
    async with httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler)) as client:
        http = HTTPCore(client, sleep=sleeper.sleep, clock=sleeper, random=lambda: 0.0)
        runner = RunnerClient(
            config,
            http=http,
            os_name="Linux",
            architecture="X64",
            owner_name="build-host-01 (PID: 22897)",
            os_description="Linux 6.8.0-1021-azure #25-Ubuntu SMP",
        )
        try:
            yield runner, fake, router
        finally:
            fake.close()


def pipeline_job() -> dict[str, Any]:
    return job_message() | {
        "messageType": "PipelineAgentJobRequest",
        "requestId": 1234,
        "lockedUntil": "2026-06-30T15:40:00Z",
    }


async def next_request(runner: RunnerClient) -> Any:
    async with contextlib.aclosing(runner.job_requests()) as requests:
        return await requests.__anext__()


async def test_the_v1_session_uses_vss_headers_and_the_pool_route(rsa_key: RSAPrivateKey) -> None:
    async with v1_env(make_config(rsa_key, v2=False), rsa_key) as (runner, fake, _):
        async with runner:
            request = fake.session.calls.last.request
            assert json.loads(request.content) == load_fixture(
                "v1_session_create_request.json", RUNNER_FIXTURES
            )
            assert request.headers["accept"] == "application/json; api-version=5.1-preview.1"
            assert (
                request.headers["content-type"]
                == "application/json; charset=utf-8; api-version=5.1-preview.1"
            )
            assert request.headers["x-tfs-fedauthredirect"] == "Suppress"
            assert runner.session_id == SESSION_ID

        assert fake.delete_session.call_count == 1


@pytest.mark.parametrize("hash_name", ["sha256", "sha1"])
async def test_an_encrypted_job_runs_through_renew_and_finish(rsa_key: RSAPrivateKey, hash_name: str) -> None:
    config = make_config(rsa_key, v2=False)
    async with v1_env(config, rsa_key, hash_name=hash_name) as (runner, fake, _), runner:
        fake.push(fake.encrypted("PipelineAgentJobRequest", pipeline_job(), 7))

        request = await next_request(runner)

        assert isinstance(request, PipelineJobRequest)
        assert request.job.request_id == 1234
        delete = fake.delete_message.calls.last.request
        assert delete.url.path.endswith("/messages/7")
        assert delete.url.params["sessionId"] == SESSION_ID

        job = await runner.acquire_job(request)

        renew = fake.job_request.calls.last.request
        assert renew.method == "PATCH"
        assert renew.url.params["lockToken"] == "00000000-0000-0000-0000-000000000000"
        assert json.loads(renew.content) == {"requestId": 1234}
        assert renew.headers["authorization"] == "Bearer RUNNER-V1-TOKEN"  # v1 renews with the runner token
        assert "x-vss-orchestrationid" not in renew.headers  # the fixture's job token is not a JWT
        assert job.locked_until is not None
        assert job.locked_until.minute == 47

        await job.complete("succeeded")

        finish = json.loads(fake.job_request.calls.last.request.content)
        assert finish == {"requestId": 1234, "finishTime": "2026-07-08T20:00:00Z", "result": "succeeded"}
        await anyio.lowlevel.checkpoint()
        polls = fake.polls
        assert polls[0].headers["accept"] == "application/json; api-version=6.0-preview.1"
        assert "lastMessageId" not in polls[0].url.params
        assert polls[1].url.params["lastMessageId"] == "7"


async def test_plain_messages_need_no_key(rsa_key: RSAPrivateKey) -> None:
    async with v1_env(make_config(rsa_key, v2=False), rsa_key) as (runner, fake, _), runner:
        fake.push(
            httpx.Response(
                200, json={"messageId": 3, "messageType": "JobCancellation", "body": '{"jobId":"x"}'}
            )
        )
        fake.push(fake.encrypted("PipelineAgentJobRequest", pipeline_job(), 4))

        request = await next_request(runner)

        assert isinstance(request, PipelineJobRequest)
        assert fake.delete_message.call_count == 2


async def test_a_session_key_for_another_runner_fails_on_enter(rsa_key: RSAPrivateKey) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    async with v1_env(make_config(rsa_key, v2=False), other) as (runner, _, _):
        with pytest.raises(
            InvalidResponseError, match="could not be decrypted with the runner's private key"
        ):
            await runner.__aenter__()


async def test_an_expired_v1_session_is_recreated(rsa_key: RSAPrivateKey) -> None:
    async with v1_env(make_config(rsa_key, v2=False), rsa_key) as (runner, fake, _), runner:
        expired = load_fixture("vss_wrapped_exception_error.json", RUNNER_FIXTURES)
        fake.push(
            httpx.Response(404, json=expired), fake.encrypted("PipelineAgentJobRequest", pipeline_job(), 9)
        )

        await next_request(runner)

        assert fake.session.call_count == 2


BROKER_URL = "https://broker.actions.githubusercontent.com/"


def broker_routes(router: respx.MockRouter, *answers: httpx.Response) -> tuple[respx.Route, respx.Route]:
    """The broker a `BrokerMigration` points at: `answers` in order, then a poll that never ends."""
    queue = list(answers)

    async def broker_poll(request: httpx.Request) -> httpx.Response:
        if queue:
            return queue.pop(0)
        await anyio.sleep_forever()
        raise AssertionError

    poll = router.get(f"{BROKER_URL}message").mock(side_effect=broker_poll)
    ack = router.post(f"{BROKER_URL}acknowledge").mock(return_value=httpx.Response(200))
    return poll, ack


def migration(message_id: int) -> httpx.Response:
    return httpx.Response(
        200,
        json=load_fixture("broker_message_broker_migration.json", RUNNER_FIXTURES)
        | {"messageId": message_id},
    )


def plain(kind: str, body: str, message_id: int) -> httpx.Response:
    return httpx.Response(200, json={"messageId": message_id, "messageType": kind, "body": body})


async def test_a_broker_migration_polls_the_broker_at_once_and_the_pool_again_on_the_next_turn(
    rsa_key: RSAPrivateKey,
) -> None:
    # MessageListener.GetNextMessageAsync: every turn polls the pool; a BrokerMigration there makes
    # the same turn poll {brokerBaseUrl}message with the pool session id. The migration message
    # itself is neither deleted nor remembered as lastMessageId, so the pool keeps saying it until
    # the move is done.
    config = make_config(rsa_key, v2=False, ephemeral=False)
    async with v1_env(config, rsa_key) as (runner, fake, router), runner:
        poll, ack = broker_routes(router, job_request())
        fake.push(migration(11), plain("JobCancellation", '{"jobId":"x"}', 12))

        request = await next_request(runner)
        await wait_until(lambda: len(fake.polls) == 3)

        assert isinstance(request, RunnerJobRequest)
        assert poll.call_count == 1  # only the turn whose pool answer was BrokerMigration
        assert poll.calls.last.request.url.params["sessionId"] == SESSION_ID  # the pool session id
        assert ack.calls.last.request.url.params["sessionId"] == SESSION_ID
        assert "lastMessageId" not in fake.polls[1].url.params
        assert fake.polls[2].url.params["lastMessageId"] == "12"
        deleted = [call.request.url.path.rpartition("/")[2] for call in fake.delete_message.calls]
        assert deleted == ["12"]  # not the migration message, not the broker's job request


async def test_after_a_broker_migration_the_broker_gets_the_v2_token_and_the_pool_the_v1_token(
    rsa_key: RSAPrivateKey,
) -> None:
    config = make_config(rsa_key, v2=False, migrate=True)
    async with v1_env(config, rsa_key) as (runner, fake, router), runner:
        router.post(TOKEN_URL_V2).mock(
            return_value=httpx.Response(200, json={"access_token": "RUNNER-V2-TOKEN", "expires_in": 3600})
        )
        poll, ack = broker_routes(router, job_request())
        fake.push(migration(11))

        await next_request(runner)

        assert fake.session.calls.last.request.headers["authorization"] == "Bearer RUNNER-V1-TOKEN"
        assert fake.polls[0].headers["authorization"] == "Bearer RUNNER-V1-TOKEN"
        assert poll.calls.last.request.headers["authorization"] == "Bearer RUNNER-V2-TOKEN"
        assert ack.calls.last.request.headers["authorization"] == "Bearer RUNNER-V2-TOKEN"


def job_token(**claims: Any) -> str:
    return jwt.encode({"sub": "job", **claims}, "job-secret-of-the-test-only-32-bytes", algorithm="HS256")


def with_job_token(job: dict[str, Any], token: str) -> dict[str, Any]:
    job["resources"]["endpoints"][0]["authorization"]["parameters"]["AccessToken"] = token
    return job


@pytest.mark.parametrize("claim", ["orch_id", "orchid"])
async def test_a_v1_renewal_carries_the_orchestration_id_of_the_job_token(
    rsa_key: RSAPrivateKey, claim: str
) -> None:
    # JobDispatcher.Run reads orch_id (else orchid) from the job token; TaskAgentHttpClient
    # .RenewAgentRequestAsync sends it as X-VSS-OrchestrationId. The finish PATCH does not.
    config = make_config(rsa_key, v2=False)
    async with v1_env(config, rsa_key) as (runner, fake, _), runner:
        job = with_job_token(pipeline_job(), job_token(**{claim: "3f2a9c4e.build.__default"}))
        fake.push(fake.encrypted("PipelineAgentJobRequest", job, 7))

        acquired = await runner.acquire_job(await next_request(runner))
        await acquired.complete("succeeded")

        renew, finish = (call.request for call in fake.job_request.calls)
        assert renew.headers["x-vss-orchestrationid"] == "3f2a9c4e.build.__default"
        assert "x-vss-orchestrationid" not in finish.headers


async def test_every_v1_request_carries_its_own_e2e_id_and_the_clients_session_id(
    rsa_key: RSAPrivateKey,
) -> None:
    # VssHttpClientBase.SendAsync adds a new X-VSS-E2EID to each request;
    # VssHttpRequestSettings.ApplyTo adds X-TFS-Session, one id for the settings' lifetime.
    config = make_config(rsa_key, v2=False)
    async with v1_env(config, rsa_key) as (runner, fake, router):
        async with runner:
            fake.push(fake.encrypted("PipelineAgentJobRequest", pipeline_job(), 7))
            job = await runner.acquire_job(await next_request(runner))
            await job.complete("succeeded")
        requests = [
            call.request
            for call in router.calls
            if call.request.url.host != "tokenghub.actions.githubusercontent.com"
        ]

    assert {r.method for r in requests} == {"POST", "GET", "DELETE", "PATCH"}
    e2e_ids = [r.headers["x-vss-e2eid"] for r in requests]
    assert len(set(e2e_ids)) == len(requests)
    assert all(uuid.UUID(value) for value in e2e_ids)
    (session,) = {r.headers["x-tfs-session"] for r in requests}
    assert uuid.UUID(session)
