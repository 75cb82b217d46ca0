"""End to end against the wire shapes GitHub may answer with (issue 9), in-process and over TCP.

A queue URL that carries its own query, 401s in the broker's or OAuth's shape, session
refreshes without statistics and a tenant without `acquirablejobs`: jobs still flow.
"""

from __future__ import annotations

import logging

import anyio
import pytest

import actions_scaleset as asc
from actions_scaleset.testing import FakeGitHub
from tests.integration.test_scenarios import (
    FAST_BACKOFF,
    completed_jobs,
    connected,
    eventually,
    fleet,
    run_until,
    scale_set_client,
)

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]


@pytest.fixture(params=["in-process", "tcp"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("style", ["broker", "oauth"])
async def test_a_queue_url_with_a_query_and_a_non_vss_401_keep_jobs_flowing(
    transport: str, style: str
) -> None:
    fake = FakeGitHub(
        runner_key_size=1024,
        poll_hold=0.05,
        queue_url_query=True,
        queue_unauthorized_style=style,  # type: ignore[arg-type]
        refresh_statistics=False,
    )
    async with connected(fake, transport) as http, scale_set_client(fake, http) as client:
        scale_set = await client.ensure_scale_set("linux", labels=["linux"])
        async with anyio.create_task_group() as tg:
            provisioner = fleet(client, tg, scale_set.id)
            listener = asc.Listener(
                client, scale_set.id, provisioner, max_runners=5, reconnect_backoff=FAST_BACKOFF
            )
            fake.enqueue_job(labels=["linux"], repository="acme/app")
            await run_until(lambda: completed_jobs(fake) == 1, listener, tg)
            fake.expire_tokens("message_queue")
            fake.enqueue_job(labels=["linux"], repository="acme/app")
            await eventually(lambda: completed_jobs(fake) == 2)
            tg.cancel_scope.cancel()
    polls = fake.requests_to("message")
    assert len(polls) > 2, "the listener polled again and again with its query"
    assert any(r.status == 401 and r.token == "message_queue" for r in fake.requests)
    assert [r.status for r in fake.requests_to("session.refresh")] == [200]
    assert len([r for r in fake.requests_to("session.create") if r.status == 200]) == 1


async def test_a_tenant_without_acquirablejobs_does_not_stop_the_listener(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeGitHub(runner_key_size=1024, poll_hold=0.05, acquirable_jobs=False)
    async with connected(fake, transport) as http, scale_set_client(fake, http) as client:
        scale_set = await client.ensure_scale_set("linux", labels=["linux"])
        fake.enqueue_job(labels=["linux"], repository="acme/app")  # waiting before the listener starts
        with caplog.at_level(logging.WARNING, logger="actions_scaleset.listener"):
            async with anyio.create_task_group() as tg:
                provisioner = fleet(client, tg, scale_set.id)
                listener = asc.Listener(
                    client, scale_set.id, provisioner, max_runners=5, reconnect_backoff=FAST_BACKOFF
                )
                await run_until(lambda: completed_jobs(fake) == 1, listener, tg)
                tg.cancel_scope.cancel()
    assert [r.status for r in fake.requests_to("acquirable_jobs")] == [404]
    warnings = [r for r in caplog.records if "waiting at start" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
