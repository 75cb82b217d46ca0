"""The command provisioner adopts the runner processes an earlier listener left running."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
from pathlib import Path

import anyio
import pytest
from examples.listener.command import CommandProvisioner

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="adoption reads /proc"),
]

SLEEPER = shlex.join([sys.executable, "-c", "import time; time.sleep(60)"])
ROOT = Path(__file__).resolve().parents[2]

EARLIER_LISTENER = """
import sys
from pathlib import Path

import anyio
from examples.listener.command import CommandProvisioner
from examples.listener.provisioner import NewRunner
import actions_scaleset as asc


async def main() -> None:
    async with CommandProvisioner(sys.argv[1], Path(sys.argv[2])) as provisioner:
        runner = NewRunner(sys.argv[3], int(sys.argv[4]), "linux", asc.Secret("jit-config-blob"))
        handle = await provisioner.start(runner)
        print(handle.ref)

anyio.run(main)
"""


async def start_in_an_earlier_listener(log_dir: Path, name: str, runner_id: int) -> int:
    """Start a runner from another process that then exits without stopping it; its pid."""
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-c", EARLIER_LISTENER, SLEEPER, str(log_dir), name, str(runner_id)], cwd=ROOT
        )
    return int(done.stdout.split()[-1])


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


async def wait_gone(pid: int) -> None:
    with anyio.fail_after(10):
        while alive(pid):  # noqa: ASYNC110 - /proc has nothing to wait on
            await anyio.sleep(0.05)


async def test_a_process_left_by_an_earlier_listener_is_adopted_and_can_be_stopped(tmp_path: Path) -> None:
    pid = await start_in_an_earlier_listener(tmp_path, "linux-1", 41)
    try:
        assert alive(pid)
        record = json.loads((tmp_path / "linux-1.process").read_text())
        assert (record["runner_name"], record["runner_id"], record["pid"]) == ("linux-1", 41, pid)
        assert "jit-config-blob" not in json.dumps(record)

        async with CommandProvisioner(SLEEPER, tmp_path, stop_grace=2) as second:
            adopted = await second.adopt()
            assert [(h.runner_name, h.runner_id, h.ref) for h in adopted] == [("linux-1", 41, str(pid))]
            assert await second.running() == adopted
            await second.stop(adopted[0])
            assert not alive(pid)
            assert await second.running() == []
        assert not (tmp_path / "linux-1.process").exists()
    finally:
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)


async def test_an_adopted_process_that_exits_on_its_own_is_dropped(tmp_path: Path) -> None:
    pid = await start_in_an_earlier_listener(tmp_path, "linux-2", 7)
    async with CommandProvisioner(SLEEPER, tmp_path) as second:
        assert len(await second.adopt()) == 1
        os.killpg(pid, signal.SIGKILL)  # its job done, the runner exits
        await wait_gone(pid)
        assert await second.running() == []
    assert not (tmp_path / "linux-2.process").exists()


async def test_a_record_whose_pid_now_belongs_to_another_process_is_not_adopted(tmp_path: Path) -> None:
    # The pid is live, but its start time is not the recorded one: a reused pid.
    async with await anyio.open_process([sys.executable, "-c", "import time; time.sleep(60)"]) as stranger:
        try:
            record = {"runner_name": "linux-3", "runner_id": 3, "pid": stranger.pid, "started": 1}
            (tmp_path / "linux-3.process").write_text(json.dumps(record))
            async with CommandProvisioner(SLEEPER, tmp_path) as provisioner:
                assert await provisioner.adopt() == []
                assert stranger.returncode is None  # left alone
            assert not (tmp_path / "linux-3.process").exists()
        finally:
            stranger.kill()


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"runner_name": "linux-4", "runner_id": 4, "pid": "many", "started": 1}',
        '{"runner_name": "linux-4", "runner_id": 4}',
        '{"runner_name": "other", "runner_id": 4, "pid": 1, "started": 1}',  # not its own file's runner
    ],
)
async def test_an_unreadable_record_is_ignored(tmp_path: Path, content: str) -> None:
    (tmp_path / "linux-4.process").write_text(content)
    async with CommandProvisioner(SLEEPER, tmp_path) as provisioner:
        assert await provisioner.adopt() == []
