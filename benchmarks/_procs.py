"""Child processes speaking lines on stdin/stdout: the fake (`benchmarks.fake_server`) and the
listening processes (`benchmarks.many_listeners`)."""

from __future__ import annotations

import sys
from typing import IO

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream


class Worker:
    """A child process speaking lines on stdin/stdout."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        assert process.stdout is not None
        assert process.stdin is not None
        self.stdin = process.stdin
        self.stdout = BufferedByteReceiveStream(process.stdout)

    async def send(self, line: str) -> None:
        await self.stdin.send(line.encode() + b"\n")

    async def line(self, timeout: float) -> str:
        with anyio.fail_after(timeout):
            return (await self.stdout.receive_until(b"\n", 1 << 24)).decode()

    async def ask(self, command: str, timeout: float) -> str:
        """Send a command; the last word of the answer."""
        await self.send(command)
        return (await self.line(timeout)).split()[-1]

    async def finish(self, timeout: float) -> None:
        with anyio.move_on_after(timeout):
            await self.stdin.aclose()
            await self.process.wait()
            return
        self.process.kill()
        await self.process.wait()


async def start(module: str, args: list[str], log: IO[bytes]) -> Worker:
    process = await anyio.open_process([sys.executable, "-m", module, *args], stdin=-1, stdout=-1, stderr=log)
    return Worker(process)
