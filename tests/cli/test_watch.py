"""`watch` over loopback (`fake.serve()`): what it shows, that it acquires only when asked, and that
its session is deleted however it stops, Ctrl-C in a real process included."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

import actions_scaleset as asc
from actions_scaleset.cli import run
from actions_scaleset.testing import FakeGitHub
from tests.cli import shapes
from tests.cli.conftest import Invoke, Result, Screen, env_for, invoke_with

pytestmark = pytest.mark.anyio


@pytest.fixture
async def served(fake: FakeGitHub) -> AsyncIterator[httpx.AsyncClient]:
    """The fake on a loopback port, a scale set `demo` on it, and a client (no proxies) to reach it."""
    async with (
        fake.serve(),
        httpx.AsyncClient(trust_env=False) as tcp,
        asc.ScaleSetClient(fake.config_url("acme"), fake.pat(), http_client=tcp) as client,
    ):
        await client.create_scale_set("demo", labels=["demo"])
        yield tcp


def enqueue(fake: FakeGitHub, count: int, *, after: float | None = None) -> list[int]:
    at = fake.clock() + after if after is not None else None
    return [
        fake.enqueue_job(
            labels=["demo"], repository="acme/app", display_name=f"job-{i}", at=at
        ).runner_request_id
        for i in range(count)
    ]


def session_owner(fake: FakeGitHub) -> str | None:
    [scale_set] = fake.snapshot().scale_sets
    return scale_set.session_owner


async def test_watch_json_shows_each_message_and_acquires_nothing(
    fake: FakeGitHub, served: httpx.AsyncClient
) -> None:
    ids = enqueue(fake, 3)
    result = await invoke_with(("watch", "demo", "--count", "1", "--json"), env_for(fake), served)
    assert (result.code, result.err) == (0, "")
    message = result.json()
    shapes.assert_message(message)
    assert [event["type"] for event in message["events"]] == ["JobAvailable"] * 3
    assert [event["runner_request_id"] for event in message["events"]] == ids
    assert message["events"][0]["repository"] == "acme/app"
    assert message["events"][0]["job_display_name"] == "job-0"
    assert message["acquired"] == []
    assert fake.requests_to("acquire_jobs") == []
    assert len(fake.snapshot().jobs_in("available")) == 3  # still there for a listener to take
    assert session_owner(fake) is None
    assert [r.status for r in fake.requests_to("session.delete")] == [204]
    assert [r.status for r in fake.requests_to("message.delete")] == [204]  # shown, then acknowledged


async def test_watch_acquires_only_with_acquire(fake: FakeGitHub, served: httpx.AsyncClient) -> None:
    ids = enqueue(fake, 2)
    result = await invoke_with(
        ("watch", "demo", "--count", "1", "--json", "--acquire"), env_for(fake), served
    )
    assert result.code == 0
    assert result.json()["acquired"] == ids
    assert fake.snapshot().jobs_in("available") == ()
    assert session_owner(fake) is None


async def test_watch_prints_one_line_per_message_off_a_terminal(
    fake: FakeGitHub, served: httpx.AsyncClient
) -> None:
    enqueue(fake, 1)
    enqueue(fake, 1, after=0.3)  # a second message, later
    result = await invoke_with(("watch", "demo", "--count", "2"), env_for(fake), served)
    assert (result.code, result.err) == (0, "")
    lines = result.out.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("Watching scale set 'demo' (id 1) in acme: jobs available 1 ")
    assert lines[0].endswith("Ctrl-C stops.")
    for line, job in zip(lines[1:3], ("#1", "#2"), strict=True):
        assert f"JobAvailable {job} acme/app 'job-0'" in line
        assert "| runners 0 busy 0 idle 0 |" in line
    assert lines[3] == "Stopped after 2 messages; the session is closed."


async def test_cancelling_watch_deletes_its_session(fake: FakeGitHub, served: httpx.AsyncClient) -> None:
    out = Screen()
    enqueue(fake, 1)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(
                lambda: run(["watch", "demo"], env=env_for(fake), http_client=served, stdout=out)
            )
            await out.wait_for("JobAvailable")
            assert session_owner(fake) is not None
            group.cancel_scope.cancel()  # what Ctrl-C does in `main`
    assert session_owner(fake) is None
    assert out.getvalue().endswith("Stopped after 1 message; the session is closed.\n")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_on_a_terminal_watch_draws_a_live_table(
    invoke: Invoke, fake: FakeGitHub, env: dict[str, str]
) -> None:
    await invoke("scale-sets", "create", "demo")
    enqueue(fake, 2)
    out, err = Terminal(), io.StringIO()
    async with fake.http_client() as http:
        code = await run(
            ["watch", "demo", "--count", "1", "--acquire"], env=env, http_client=http, stdout=out, stderr=err
        )
    assert (code, err.getvalue()) == (0, "")
    screen = out.getvalue()
    assert "\x1b[" in screen  # drawn, and redrawn, with terminal control codes
    assert "'demo' in acme: 1 message, acquiring jobs; Ctrl-C stops" in screen
    assert "latest job events" in screen
    assert " Available " in screen
    assert screen.rstrip().endswith("Stopped after 1 message; the session is closed.")


async def test_watch_on_a_scale_set_that_is_not_there(invoke: Invoke) -> None:
    result = await invoke("watch", "ghost")
    assert result.code == 1
    assert result.err == (
        "actions-scaleset: error: no scale set named 'ghost' in acme "
        "(list them: actions-scaleset scale-sets list)\n"
    )


def child_env(fake: FakeGitHub) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("GITHUB_")}
    return {**keep, **env_for(fake), "PYTHONUNBUFFERED": "1"}


async def test_ctrl_c_stops_a_real_watch_with_exit_0_and_its_session_deleted(
    fake: FakeGitHub, served: httpx.AsyncClient
) -> None:
    enqueue(fake, 1)
    command = [sys.executable, "-m", "actions_scaleset", "watch", "demo", "--json"]
    with anyio.fail_after(30):
        async with await anyio.open_process(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(fake)
        ) as process:
            assert process.stdout is not None
            assert process.stderr is not None
            seen = b""
            async for chunk in process.stdout:
                seen += chunk
                if b"\n" in seen:
                    break
            assert session_owner(fake) is not None
            process.send_signal(signal.SIGINT)
            code = await process.wait()
            rest = b"".join([chunk async for chunk in process.stdout])
            err = b"".join([chunk async for chunk in process.stderr])
    result = Result(code, (seen + rest).decode(), err.decode())
    assert (result.code, result.err) == (0, "")
    assert json.loads(result.out)["events"][0]["type"] == "JobAvailable"
    assert session_owner(fake) is None
    assert [r.status for r in fake.requests_to("session.delete")] == [204]
