"""No token, key, JIT blob or URL signature in any log record, repr or exception text of a full flow."""

from __future__ import annotations

import base64
import contextlib
import logging
from typing import TYPE_CHECKING

import httpx
import pytest

from actions_scaleset import ActionsScaleSetError, InvalidJitConfigError
from actions_scaleset.runner import JitConfig, RSAParameters
from tests.runner.conftest import make_config
from tests.runner.fakes import JOB_TOKEN, job_request, runner_env
from tests.support import RUNNER_FIXTURES, load_fixture

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

pytestmark = pytest.mark.anyio


def secrets_of(config: JitConfig, rsa_key: RSAPrivateKey) -> list[str]:
    numbers = rsa_key.private_numbers()
    params = RSAParameters.from_private_key(rsa_key).to_json()
    return [
        "RUNNER-ACCESS-TOKEN",
        JOB_TOKEN,
        "SYNTHETIC-GITHUB-TOKEN",
        "SIGNATURE",  # the SAS signature of the signed log URL
        config.encode().get_secret_value()[:24],
        config.encode().get_secret_value()[-24:],
        base64.b64encode(config.files[".credentials_rsaparams"]).decode()[:24],
        params["d"][:24],
        params["p"][:24],
        params["q"][:24],
        str(numbers.d)[:24],
        str(numbers.p)[:24],
        "eyJ",  # any JWT: the client assertion, an access token
        "Bearer ",
    ]


async def test_a_full_flow_with_failures_leaks_no_secret(
    rsa_key: RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = make_config(rsa_key)
    texts: list[str] = [repr(config), str(config), repr(config.credentials), repr(config.rsa_parameters)]

    async def expect_error(coro: object) -> None:
        try:
            await coro  # type: ignore[misc]
        except ActionsScaleSetError as exc:
            texts.extend([str(exc), repr(exc), repr(getattr(exc, "body", None))])
        else:
            raise AssertionError("expected an error")

    async with runner_env(config) as (runner, broker, _, _):
        session = load_fixture("broker_session_create_response.json", RUNNER_FIXTURES)
        broker.session.side_effect = [httpx.Response(409), httpx.Response(201, json=session)]
        async with runner:
            texts.append(repr(runner))
            broker.acquire.side_effect = [
                httpx.Response(
                    409, json={"source": "actions-run-service", "statusCode": 409, "errorMessage": "taken"}
                ),
                httpx.Response(
                    200, json=load_fixture("run_acquirejob_response_job_message.json", RUNNER_FIXTURES)
                ),
            ]
            broker.push(httpx.Response(500), httpx.Response(401), job_request(), job_request())
            async with contextlib.aclosing(runner.job_requests()) as requests:
                first = await requests.__anext__()
                await expect_error(runner.acquire_job(first))
                request = await requests.__anext__()
                job = await runner.acquire_job(request)
                texts.extend(
                    [repr(request), repr(job), repr(job.message), repr(job.variables), repr(job.steps)]
                )
                await job.upload_step_log("s1", ["echo SYNTHETIC-GITHUB-TOKEN", f"job token {JOB_TOKEN}"])
                broker.blob.mock(
                    return_value=httpx.Response(
                        403,
                        text="<Error>sig=SIGNATURE</Error>",
                        headers={"x-ms-error-code": "AuthenticationFailed"},
                    )
                )
                await expect_error(job.upload_step_log("s1", ["x"]))
                broker.steps.mock(return_value=httpx.Response(500, json={"msg": "down"}))
                await expect_error(job.update_steps([]))
                await job.complete("succeeded")

    assert broker.blob.calls[0].request.content == b"echo ***\njob token ***\n"
    texts.extend(record.getMessage() for record in caplog.records)
    texts.extend(repr(record.__dict__) for record in caplog.records)
    assert len(caplog.records) > 5
    everything = "\n".join(texts)
    for secret in secrets_of(config, rsa_key):
        assert secret not in everything, secret


def test_decode_errors_leak_nothing_of_the_blob(rsa_key: RSAPrivateKey) -> None:
    blob = make_config(rsa_key).encode().get_secret_value()
    for broken in (blob[:-7], blob[5:], blob.replace("e", "!"), "x" + blob):
        with pytest.raises(InvalidJitConfigError) as caught:
            JitConfig.decode(broken)
        assert blob[10:30] not in str(caught.value)
