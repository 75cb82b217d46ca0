"""`CommandProvisioner`: one local process per runner, such as GitHub's `run.sh`.

Each process runs `--runner-command` with ACTIONS_RUNNER_INPUT_JITCONFIG and RUNNER_NAME
in its environment, in a process group of its own (so its children stop with it, and a
Ctrl-C in the listener's terminal does not reach a job). Its output goes to
`<state dir>/logs/<runner name>.log`, not into the listener's log.

Stopping sends SIGTERM to the group, then SIGKILL after `stop_grace` seconds. Processes
from an earlier run cannot be adopted: their registrations are removed at start, which
makes a runner that is still alive exit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import anyio
import attrs

from .provisioner import NewRunner, ProvisionerError, RunnerHandle

__all__ = ["CommandProvisioner"]

logger = logging.getLogger("listener.command")

STOP_GRACE: Final = 10.0
_POSIX: Final = os.name == "posix"


@attrs.define
class _Child:
    handle: RunnerHandle
    process: subprocess.Popen[bytes]
    stopping: bool = False


class CommandProvisioner:
    """Runs `command` once per runner and tracks each process."""

    def __init__(self, command: str, log_dir: Path, *, stop_grace: float = STOP_GRACE) -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError("the runner command is empty")
        self.log_dir = log_dir
        self.stop_grace = stop_grace
        self._children: dict[str, _Child] = {}

    def __repr__(self) -> str:
        return f"CommandProvisioner({shlex.join(self.argv[:1])}, {len(self._children)} processes)"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for child in self._children.values():
            if child.process.poll() is not None:
                continue
            if child.stopping:  # asked to stop and still alive: it goes now
                _signal_group(child.process, signal.SIGKILL if _POSIX else signal.SIGTERM)
            else:
                logger.warning(
                    "runner %s (pid %d) is still running a job; it keeps running after the listener exits",
                    child.handle.runner_name,
                    child.process.pid,
                )

    async def adopt(self) -> Sequence[RunnerHandle]:
        return []

    async def start(self, runner: NewRunner) -> RunnerHandle:
        env = {**os.environ, **runner.environment()}
        log_path = self.log_dir / f"{runner.name}.log"
        try:
            process = await anyio.to_thread.run_sync(self._spawn, env, log_path)
        except OSError as exc:
            raise ProvisionerError(f"cannot run {self.argv[0]!r}: {exc.strerror or exc}") from None
        handle = RunnerHandle(runner.name, runner.id, str(process.pid))
        self._children[runner.name] = _Child(handle, process)
        logger.debug("runner %s is pid %d, logging to %s", runner.name, process.pid, log_path)
        return handle

    def _spawn(self, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            return subprocess.Popen(
                self.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=_POSIX,
            )

    async def stop(self, handle: RunnerHandle) -> None:
        child = self._children.get(handle.runner_name)
        if child is None:
            return
        child.stopping = True
        if child.process.poll() is None:
            _signal_group(child.process, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_grace
            while child.process.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
                await anyio.sleep(0.05)
            if child.process.poll() is None:
                _signal_group(child.process, signal.SIGKILL if _POSIX else signal.SIGTERM)
                with anyio.move_on_after(5):
                    while child.process.poll() is None:  # noqa: ASYNC110 - Popen has no async wait
                        await anyio.sleep(0.05)
        self._children.pop(handle.runner_name, None)

    async def running(self) -> Sequence[RunnerHandle]:
        alive = []
        for name, child in list(self._children.items()):
            if child.process.poll() is None:
                alive.append(child.handle)
            elif not child.stopping:
                logger.info("runner %s exited with status %d", name, child.process.returncode)
                del self._children[name]
        return alive


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if _POSIX:
            os.killpg(process.pid, signum)
        else:  # pragma: no cover - Windows has no process groups
            process.send_signal(signum)
