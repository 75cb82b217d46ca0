"""`SimulatedProvisioner`: in-process runners that speak the real runner protocol, without running anything.

Each runner is an `actions_scaleset.runner.RunnerClient` booted from its JIT config: it
opens its session, takes its job, "runs" it for `job_seconds(job)` seconds, and completes
it as succeeded. For demos and load tests; pointed at real GitHub, it would report jobs
done that never ran.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self

import anyio
import attrs
import httpx
from anyio.abc import TaskGroup

import actions_scaleset as asc
from actions_scaleset.runner import JitConfig, Job, RunnerClient

from .provisioner import NewRunner, ProvisionerError, RunnerHandle

__all__ = ["SimulatedProvisioner"]

logger = logging.getLogger("listener.simulate")


def _a_few_seconds(job: Job) -> float:
    return random.uniform(0.5, 3.0)


@attrs.define
class _Task:
    handle: RunnerHandle
    scope: anyio.CancelScope = attrs.field(factory=anyio.CancelScope)


class SimulatedProvisioner:
    """Boots each runner as a task; `stop` cancels it, leaving the registration to the scaler.

    Runners share `http_client` when one is given (its TLS and proxy settings too).
    """

    def __init__(
        self,
        http_client: httpx.AsyncClient | None = None,
        *,
        job_seconds: Callable[[Job], float] = _a_few_seconds,
    ) -> None:
        self.http_client = http_client
        self.job_seconds = job_seconds
        self.completed = 0
        self._tasks: dict[str, _Task] = {}
        self._tg: TaskGroup | None = None

    def __repr__(self) -> str:
        return f"SimulatedProvisioner({len(self._tasks)} runners, {self.completed} jobs completed)"

    async def __aenter__(self) -> Self:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()  # in-process runners cannot outlive the listener
        await self._tg.__aexit__(exc_type, exc, tb)
        self._tg = None

    async def adopt(self) -> Sequence[RunnerHandle]:
        return []

    async def start(self, runner: NewRunner) -> RunnerHandle:
        if self._tg is None:
            raise ProvisionerError("the simulated provisioner is not open (use `async with`)")
        try:
            config = JitConfig.decode(runner.jit_config)
        except asc.ConfigurationError as exc:
            raise ProvisionerError(f"the JIT config does not decode: {exc}") from None
        task = _Task(RunnerHandle(runner.name, runner.id, f"task:{runner.name}"))
        self._tasks[runner.name] = task
        self._tg.start_soon(self._run, task, config)
        return task.handle

    async def _run(self, task: _Task, config: JitConfig) -> None:
        try:
            with task.scope:
                async with RunnerClient(config, http_client=self.http_client) as client:
                    async for request in client.job_requests():
                        job = await client.acquire_job(request)
                        await anyio.sleep(self.job_seconds(job))
                        await job.complete("succeeded")
                        self.completed += 1
        except asc.ActionsScaleSetError as exc:
            logger.info("simulated runner %s stopped: %s", task.handle.runner_name, str(exc).splitlines()[0])
        finally:
            self._tasks.pop(task.handle.runner_name, None)

    async def stop(self, handle: RunnerHandle) -> None:
        task = self._tasks.pop(handle.runner_name, None)
        if task is not None:
            task.scope.cancel()

    async def running(self) -> Sequence[RunnerHandle]:
        return [task.handle for task in self._tasks.values()]
