"""`CommandProvisioner`: one local process per runner, such as GitHub's `run.sh`.

Each process runs `--runner-command` with ACTIONS_RUNNER_INPUT_JITCONFIG and RUNNER_NAME
in its environment, in a process group of its own (so its children stop with it, and a
Ctrl-C in the listener's terminal does not reach a job). Its output goes to
`<state dir>/logs/<runner name>.log`, not into the listener's log.

Stopping sends SIGTERM to the group, then SIGKILL after `stop_grace` seconds.

Each process is recorded in `<runner name>.process` beside its log: its pid and its start
time as Linux counts it (`/proc/<pid>/stat`). A listener started again adopts the
processes whose record still matches a live process, so a runner busy with a job when the
listener stopped (or was killed) is tracked, and stopped, as before. Without `/proc`
nothing is adopted, and the scaler removes those runners' registrations instead.
"""

from __future__ import annotations

import contextlib
import json
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


@attrs.frozen
class _Record:
    """What `<runner>.process` holds: enough to find the process again, and to know it is the same one."""

    runner_name: str
    runner_id: int
    pid: int
    started: int
    """Clock ticks after boot (`/proc/<pid>/stat`, field 22): a reused pid has another."""


class _Adopted:
    """A runner process started by an earlier listener: not our child, so watched through `/proc`."""

    def __init__(self, record: _Record) -> None:
        self.pid = record.pid
        self._started = record.started
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and _start_time(self.pid) != self._started:
            self.returncode = -1  # gone (its parent, not we, learned the status)
        return self.returncode


@attrs.define
class _Child:
    handle: RunnerHandle
    process: subprocess.Popen[bytes] | _Adopted
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
        """The runner processes an earlier listener started that are still alive."""
        adopted = []
        for path in sorted(self.log_dir.glob("*.process")):
            record = _read_record(path)
            if record is None or record.runner_name in self._children:
                continue
            process = _Adopted(record)
            if process.poll() is not None:
                path.unlink(missing_ok=True)
                continue
            handle = RunnerHandle(record.runner_name, record.runner_id, str(record.pid))
            self._children[record.runner_name] = _Child(handle, process)
            adopted.append(handle)
            logger.info("runner %s (pid %d) is still running; adopted", record.runner_name, record.pid)
        return adopted

    async def start(self, runner: NewRunner) -> RunnerHandle:
        env = {**os.environ, **runner.environment()}
        log_path = self.log_dir / f"{runner.name}.log"
        try:
            process = await anyio.to_thread.run_sync(self._spawn, env, log_path)
        except OSError as exc:
            raise ProvisionerError(f"cannot run {self.argv[0]!r}: {exc.strerror or exc}") from None
        handle = RunnerHandle(runner.name, runner.id, str(process.pid))
        self._children[runner.name] = _Child(handle, process)
        self._write_record(runner, process.pid)
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
        self._forget(handle.runner_name)

    async def running(self) -> Sequence[RunnerHandle]:
        alive = []
        for name, child in list(self._children.items()):
            if child.process.poll() is None:
                alive.append(child.handle)
            elif not child.stopping:
                if isinstance(child.process, _Adopted):
                    logger.info("runner %s exited", name)
                else:
                    logger.info("runner %s exited with status %d", name, child.process.returncode)
                self._forget(name)
        return alive

    def _record_path(self, runner_name: str) -> Path:
        return self.log_dir / f"{runner_name}.process"

    def _write_record(self, runner: NewRunner, pid: int) -> None:
        started = _start_time(pid)
        if started is None:  # no /proc (or it exited already): nothing to find it by later
            return
        record = _Record(runner.name, runner.id, pid, started)
        path = self._record_path(runner.name)
        try:
            part = path.with_suffix(".part")
            part.write_text(json.dumps(attrs.asdict(record)))
            part.replace(path)
        except OSError as exc:
            logger.warning(
                "cannot record runner %s's process (%s); it cannot be adopted later", runner.name, exc
            )

    def _forget(self, runner_name: str) -> None:
        self._children.pop(runner_name, None)
        with contextlib.suppress(OSError):
            self._record_path(runner_name).unlink(missing_ok=True)


_RECORD_TYPES: Final = {"runner_name": str, "runner_id": int, "pid": int, "started": int}


def _read_record(path: Path) -> _Record | None:
    """The record in `path`; None (and the file removed) when it is not one, or not this file's."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        data = exc
    fits = isinstance(data, dict) and data.keys() == _RECORD_TYPES.keys()
    if not fits or not all(type(data[key]) is kind for key, kind in _RECORD_TYPES.items()):
        logger.warning("ignoring %s: not a runner process record", path.name)
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        return None
    record = _Record(**data)
    return record if path.name == f"{record.runner_name}.process" else None


def _start_time(pid: int) -> int | None:
    """When process `pid` started, in clock ticks after boot; None when it is gone, a zombie,
    or there is no `/proc` to ask."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):  # exited, waiting to be reaped
        return None
    return int(fields[19])  # field 22 of the line; fields[0] is field 3


def _signal_group(process: subprocess.Popen[bytes] | _Adopted, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if _POSIX:
            os.killpg(process.pid, signum)
        elif isinstance(process, subprocess.Popen):  # pragma: no cover - Windows has no process groups
            process.send_signal(signum)
