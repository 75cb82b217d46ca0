"""The loopback rig of the burst and pickup figures: FakeGitHub in a process of its own
(`benchmarks.fake_server`, loopback TCP, queue URLs carrying `?sessionId=…`), and two
listening processes (`benchmarks.many_listeners`): the SDK on one scale set, the raw
baseline on another. Both stay up for every round, so rounds can alternate between them;
the one not being measured sits in an idle long poll.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import attrs
import httpx

from benchmarks._harness import note
from benchmarks._procs import Worker, start

SIDES = ("sdk", "raw")


@attrs.frozen
class Side:
    impl: str
    worker: Worker
    set_id: int
    group: int


@attrs.frozen
class Loopback:
    admin: httpx.AsyncClient
    """An httpx client on the fake's `/_bench/` endpoints."""
    sides: tuple[Side, Side]
    """The SDK's process, then the baseline's."""

    async def parked(self, side: Side) -> bool:
        answer = await self.admin.get("/_bench/parked", params={"group": side.group})
        return int(answer.json()["parked"]) > 0

    async def wait_parked(self, side: Side, timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            while not await self.parked(side):  # noqa: ASYNC110 - a count on the fake, over HTTP
                await anyio.sleep(0.005)
            return True
        return False


@contextlib.asynccontextmanager
async def loopback(*, max_runners: int = 10, hold: float = 50.0) -> AsyncIterator[Loopback]:
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "children.log"
        with log_path.open("wb") as log:
            server = await start(
                "benchmarks.fake_server",
                ["--groups", "1,1", "--hold", str(hold), "--queue-url-query"],
                log,
            )
            workers: list[Worker] = []
            try:
                info = json.loads(await server.line(120))
                async with httpx.AsyncClient(base_url=info["url"], timeout=30) as admin:
                    sides = []
                    for group, impl in enumerate(SIDES):
                        worker = await start("benchmarks.many_listeners", [], log)
                        workers.append(worker)
                        config = {
                            "impl": impl,
                            "config_url": info["config_url"],
                            "pat": info["pat"],
                            "sets": info["groups"][group],
                            "max_runners": max_runners,
                        }
                        await worker.send(json.dumps(config))
                        await worker.line(60)
                        sides.append(Side(impl, worker, info["groups"][group][0], group))
                    rig = Loopback(admin, (sides[0], sides[1]))
                    for side in rig.sides:
                        if not await rig.wait_parked(side, 60):
                            raise RuntimeError(f"the {side.impl} listener never parked its poll")  # noqa: TRY301
                    note("loopback: fake and both listeners up, polls parked")
                    yield rig
                    for worker in workers:
                        await worker.send("stop")
            except BaseException:
                log.flush()
                print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
                raise
            finally:
                with anyio.CancelScope(shield=True):
                    for worker in workers:
                        await worker.finish(30)
                    await server.finish(15)
