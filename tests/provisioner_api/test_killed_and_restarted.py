"""The served API is killed (SIGKILL) with three runner processes up, then started again on
the same state file: it adopts the three, and deletes them cleanly. Over loopback TCP, with
real runner processes (`python -m actions_scaleset.runner`) and the command provisioner."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest

from actions_scaleset.testing import FakeGitHub

from .support import free_port

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds runner processes in /proc"),
]

ROOT = Path(__file__).resolve().parents[2]
API_TOKEN = "restart-token-0123456789abcdef"
NAMES = ("keep-1", "keep-2", "keep-3")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the server is a subprocess; one backend is enough for it


def runner_processes(marker: str) -> dict[int, str]:
    """pid -> RUNNER_NAME of each live process whose environment carries `marker` and a runner name."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = dict(
                item.split(b"=", 1) for item in (entry / "environ").read_bytes().split(b"\0") if b"=" in item
            )
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        ours = environ.get(b"RESTART_TEST_MARKER") == marker.encode() and b"RUNNER_NAME" in environ
        if ours and state not in ("Z", "X"):
            found[int(entry.name)] = environ[b"RUNNER_NAME"].decode()
    return found


@asynccontextmanager
async def served_api(
    fake: FakeGitHub, state: Path, port: int, marker: str
) -> AsyncIterator[anyio.abc.Process]:
    runner = shlex.join([sys.executable, "-m", "actions_scaleset.runner", "--exec", "sleep 1"])
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("GITHUB_", "PROVISIONER_API_"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        GITHUB_TOKEN=fake.pat().token.get_secret_value(),
        PROVISIONER_API_TOKENS=f"ci={API_TOKEN}",
        RESTART_TEST_MARKER=marker,
    )
    argv = [sys.executable, "-m", "examples.provisioner_api", "--url", fake.config_url("myorg"),
            "--provisioner", "command", "--runner-command", runner, "--state", str(state),
            "--bind", f"127.0.0.1:{port}"]  # fmt: skip
    async with await anyio.open_process(argv, cwd=ROOT, env=env) as process:
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as probe:
                with anyio.fail_after(30):
                    while True:
                        try:
                            if (await probe.get("/health")).status_code == 200:
                                break
                        except httpx.TransportError:
                            pass
                        assert process.returncode is None, "the API exited at start"
                        await anyio.sleep(0.1)
            yield process
        finally:
            if process.returncode is None:
                process.kill()
            with anyio.CancelScope(shield=True):
                await process.wait()


async def test_a_killed_api_adopts_its_runners_when_started_again(tmp_path: Path) -> None:
    fake = FakeGitHub()
    marker = uuid.uuid4().hex
    state = tmp_path / "state.sqlite3"
    port = free_port()
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    base = f"http://127.0.0.1:{port}"
    try:
        async with fake.serve(), httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as api:
            async with served_api(fake, state, port, marker) as server:
                for name in NAMES:
                    created = await api.post("/api/v1/runners", json={"repo": "myorg/app", "name": name})
                    assert created.status_code == 201, created.text
                server.send_signal(signal.SIGKILL)
                await server.wait()
            before = runner_processes(marker)
            assert sorted(before.values()) == list(NAMES)  # the runners outlived the API

            async with served_api(fake, state, port, marker):
                listed = (await api.get("/api/v1/runners")).json()["runners"]
                assert sorted(runner["name"] for runner in listed) == list(NAMES)
                for name in NAMES:
                    status = (await api.get(f"/api/v1/runners/{name}/status")).json()
                    assert status["status"] == "running", status
                    assert int(status["pid"]) in before
                assert runner_processes(marker) == before  # adopted, not started again
                for name in NAMES:
                    removed = await api.delete(f"/api/v1/runners/{name}")
                    assert removed.status_code == 200, removed.text
                assert fake.snapshot().runners == ()
                with anyio.fail_after(15):
                    while runner_processes(marker):  # noqa: ASYNC110 - /proc has nothing to wait on
                        await anyio.sleep(0.1)
    finally:
        for pid in runner_processes(marker):
            os.kill(pid, signal.SIGKILL)
