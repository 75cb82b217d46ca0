"""Each runner's log file, `<logs dir>/<name>.log`: the runner process's output (the `command`
provisioner writes it there) and the API's own lines about the runner, and how to read it.

Names are validated before they get here (`validate.runner_name`), and the path is
checked to stay inside the directory anyway.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import anyio

__all__ = ["RunnerLogs"]

FOLLOW_POLL: Final = 0.2
MAX_TAIL: Final = 10_000


class RunnerLogs:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __repr__(self) -> str:
        return f"RunnerLogs({str(self.directory)!r})"

    def path(self, name: str) -> Path:
        path = (self.directory / f"{name}.log").resolve()
        if path.parent != self.directory.resolve():
            raise ValueError("a runner's log stays in the logs directory")
        return path

    async def note(self, name: str, line: str) -> None:
        """Append one of the API's own lines about the runner, time-stamped."""
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        text = f"{stamp} [provisioner-api] {' '.join(line.split())}\n"
        await anyio.to_thread.run_sync(self._append, self.path(name), text)

    @staticmethod
    def _append(path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as file:
            file.write(text)

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    async def remove(self, name: str) -> None:
        await anyio.to_thread.run_sync(lambda: self.path(name).unlink(missing_ok=True))

    async def read(
        self, name: str, *, tail: int | None, follow: bool, idle_timeout: float | None = None
    ) -> AsyncIterator[bytes]:
        """The last `tail` lines (all when None), then, with `follow`, lines as they are written.

        Following ends when `idle_timeout` seconds pass without a new line (None: never),
        or when the caller stops iterating.
        """
        path = self.path(name)
        offset, lines = await anyio.to_thread.run_sync(_tail, path, tail)
        for line in lines:
            yield line
        if not follow:
            return
        last = time.monotonic()
        partial = b""
        while idle_timeout is None or time.monotonic() - last < idle_timeout:
            await anyio.sleep(FOLLOW_POLL)
            chunk = await anyio.to_thread.run_sync(_read_from, path, offset)
            if not chunk:
                continue
            offset += len(chunk)
            last = time.monotonic()
            *complete, partial = (partial + chunk).split(b"\n")
            for line in complete:
                yield line + b"\n"


def _tail(path: Path, count: int | None) -> tuple[int, list[bytes]]:
    try:
        with path.open("rb") as file:
            if count is None:
                lines = list(file)
            else:
                lines = list(collections.deque(file, maxlen=count)) if count > 0 else []
            return file.seek(0, os.SEEK_END), lines
    except FileNotFoundError:
        return 0, []


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return file.read(1 << 20)
    except FileNotFoundError:
        return b""
