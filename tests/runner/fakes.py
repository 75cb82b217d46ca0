"""A scriptable broker, run service and results service on a respx router, and a sleeper that never waits."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import respx
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actions_scaleset._http import HTTPCore
from actions_scaleset.runner import JitConfig, RunnerClient
from tests.runner.conftest import BROKER, TOKEN_URL
from tests.support import RUNNER_FIXTURES, load_fixture

RUN_SERVICE = "https://run-actions-2-azure-eastus.actions.githubusercontent.com/116/"
JOB_RUN_SERVICE = "https://run-actions-1-azure-eastus.actions.githubusercontent.com/177/"
RESULTS = "https://results-receiver.actions.githubusercontent.com/"
BLOB = "https://productionresultssa4.blob.core.windows.net/actions-results/log.txt?sv=2025-11-05&sr=b&sp=cw&sig=SIGNATURE"
JOB_TOKEN = "SYNTHETIC-JOB-TOKEN"
REQUEST_ID = "8c1d2e3f-4a5b-5c6d-8e7f-9a0b1c2d3e4f"


class Sleeper:
    """A UNIX clock and a sleep that advances it at once; a wait of `block_at` s or more never ends.

    Renewal timers (60 s) therefore park instead of spinning, while retry
    backoffs (30 s for a session conflict) pass instantly.
    """

    def __init__(self, now: float = 1_783_540_800.0, block_at: float = 60.0) -> None:
        self.now = now
        self.block_at = block_at
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if seconds >= self.block_at:
            await anyio.sleep_forever()
        self.now += seconds
        await anyio.lowlevel.checkpoint()


def message(kind: str, body: Any, message_id: int | None = 1) -> httpx.Response:
    payload: dict[str, Any] = {
        "messageType": kind,
        "body": body if isinstance(body, str) else json.dumps(body),
    }
    if message_id is not None:
        payload["messageId"] = message_id
    return httpx.Response(200, json=payload)


def job_request(should_acknowledge: bool = True, request_id: str = REQUEST_ID) -> httpx.Response:
    body = load_fixture("broker_message_runner_job_request_body_decoded.json", RUNNER_FIXTURES)
    body.update(should_acknowledge=should_acknowledge, runner_request_id=request_id)
    return message("RunnerJobRequest", body, -1843302231)


def job_message() -> dict[str, Any]:
    payload: dict[str, Any] = load_fixture("run_acquirejob_response_job_message.json", RUNNER_FIXTURES)
    return payload


class FakeBroker:
    """Routes for the token endpoint, broker, run service, results and blob storage.

    Polls wait for `push()`ed responses, like a long poll; `tokens` are handed out in order.
    """

    def __init__(self, router: respx.MockRouter, base: str = BROKER) -> None:
        self.router = router
        self.base = base
        self._send: MemoryObjectSendStream[httpx.Response]
        self._receive: MemoryObjectReceiveStream[httpx.Response]
        self._send, self._receive = anyio.create_memory_object_stream(math.inf)
        self.token_count = 0
        self.token_lifetime = 3600
        self.polls: list[httpx.Request] = []
        self.token = router.post(TOKEN_URL).mock(side_effect=self._token)
        self.session = router.post(f"{base}session").mock(
            return_value=httpx.Response(
                201, json=load_fixture("broker_session_create_response.json", RUNNER_FIXTURES)
            )
        )
        self.delete_session = router.delete(f"{base}session").mock(return_value=httpx.Response(204))
        self.poll = router.get(f"{base}message").mock(side_effect=self._poll)
        self.ack = router.post(f"{base}acknowledge").mock(return_value=httpx.Response(200))
        self.acquire = router.post(f"{RUN_SERVICE}acquirejob").mock(
            return_value=httpx.Response(200, json=job_message())
        )
        self.renew = router.post(f"{JOB_RUN_SERVICE}renewjob").mock(
            return_value=httpx.Response(200, json=load_fixture("run_renewjob_response.json", RUNNER_FIXTURES))
        )
        self.complete = router.post(f"{JOB_RUN_SERVICE}completejob").mock(return_value=httpx.Response(204))
        ok = httpx.Response(200, json={"ok": True})
        self.steps = router.post(
            f"{RESULTS}twirp/github.actions.results.api.v1.WorkflowStepUpdateService/WorkflowStepsUpdate"
        ).mock(return_value=ok)
        self.log_url = router.post(
            f"{RESULTS}twirp/results.services.receiver.Receiver/GetStepLogsSignedBlobURL"
        ).mock(
            return_value=httpx.Response(
                200,
                json=load_fixture("results_get_step_logs_signed_url_response.json", RUNNER_FIXTURES)
                | {"logs_url": BLOB},
            )
        )
        self.blob = router.put(BLOB.partition("?")[0]).mock(return_value=httpx.Response(201))
        self.log_metadata = router.post(
            f"{RESULTS}twirp/results.services.receiver.Receiver/CreateStepLogsMetadata"
        ).mock(return_value=ok)

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_count += 1
        return httpx.Response(
            200,
            json={
                "access_token": f"RUNNER-ACCESS-TOKEN-{self.token_count}",
                "token_type": "bearer",
                "expires_in": self.token_lifetime,
            },
        )

    async def _poll(self, request: httpx.Request) -> httpx.Response:
        self.polls.append(request)
        return await self._receive.receive()

    def close(self) -> None:
        self._send.close()
        self._receive.close()

    def push(self, *responses: httpx.Response) -> None:
        for response in responses:
            self._send.send_nowait(response)

    def last_status(self) -> str | None:
        return self.polls[-1].url.params.get("status") if self.polls else None


@asynccontextmanager
async def broker_http(sleeper: Sleeper | None = None) -> AsyncIterator[tuple[HTTPCore, FakeBroker, Sleeper]]:
    """An HTTPCore whose transport is a FakeBroker, with time under the test's control."""
    sleeper = sleeper or Sleeper()
    router = respx.MockRouter(assert_all_called=False)
    broker = FakeBroker(router)
    try:
        async with httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler)) as client:
            yield HTTPCore(client, sleep=sleeper.sleep, clock=sleeper, random=lambda: 0.0), broker, sleeper
    finally:
        broker.close()


@asynccontextmanager
async def runner_env(
    config: JitConfig, sleeper: Sleeper | None = None, **options: Any
) -> AsyncIterator[tuple[RunnerClient, FakeBroker, respx.MockRouter, Sleeper]]:
    """A RunnerClient against a FakeBroker, with time under the test's control."""
    sleeper = sleeper or Sleeper()
    router = respx.MockRouter(assert_all_called=False)
    broker = FakeBroker(router)
    async with httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler)) as client:
        http = HTTPCore(client, sleep=sleeper.sleep, clock=sleeper, random=lambda: 0.0)
        options.setdefault("os_name", "Linux")
        options.setdefault("architecture", "X64")
        options.setdefault("owner_name", "build-host-01 (PID: 22897)")
        options.setdefault("os_description", "Linux 6.8.0-1021-azure #25-Ubuntu SMP")
        runner = RunnerClient(config, http=http, **options)
        try:
            yield runner, broker, router, sleeper
        finally:
            broker.close()


async def wait_until(predicate: Any, *, limit: int = 2000) -> None:
    """Let other tasks run until `predicate()` holds (no real time passes)."""
    for _ in range(limit):
        if predicate():
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError("condition never became true")
