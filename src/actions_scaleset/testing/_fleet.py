"""`RunnerFleet`: a `Scaler` whose runners are in-process `RunnerClient`s.

It does what a VM or pod provisioner does, without the machines: for each runner the
listener asks for it mints a JIT config and "boots" a runner that speaks the real
runner protocol (OAuth, broker session, acquire, renew, complete); when fewer are
wanted it deregisters idle runners first and only then stops them. Point it at
`FakeGitHub` to test a listener end to end, offline.

A registration whose answer never arrived (a lost response, a cancellation mid-request)
is looked up by name and removed, so the fleet leaks no runner.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .._secret import Secret
from ..errors import ActionsScaleSetError, HTTPStatusError, JobStillRunningError, RunnerNotFoundError
from ..models import JitRunnerConfig, JobCompleted, JobStarted

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from .._http import HTTPCore
    from ..actions import ScaleSetClient
    from ..runner import Conclusion, Job

__all__ = ["RunnerFleet"]

logger = logging.getLogger("actions_scaleset.testing.fleet")

JobHandler = Callable[["Job"], Awaitable["Conclusion"]]

CLEANUP_TIMEOUT = 30.0
"""How long removing a registration whose answer was lost may take."""


async def succeed(job: Job) -> Conclusion:
    """The default job: nothing to run, conclusion `succeeded`."""
    return "succeeded"


@attrs.define
class _Runner:
    id: int
    name: str
    scope: anyio.CancelScope = attrs.field(factory=anyio.CancelScope)
    busy: bool = False
    removed: bool = False


class RunnerFleet:
    """A `Scaler` that keeps one in-process runner per runner the listener asks for.

    ```python
    async with anyio.create_task_group() as tg:
        fleet = RunnerFleet(client, tg, scale_set_id=scale_set.id)
        tg.start_soon(asc.Listener(client, scale_set.id, fleet, max_runners=10).run)
    ```

    `run_job` runs each acquired job and returns its conclusion (default: succeed at
    once). `http` is the `HTTPCore` the runners share (default: the client's).
    A runner that fails is recorded in `failures` and does not stop the fleet.

    When minting a JIT config fails without a clear refusal (its response was lost, the
    call was cancelled, a 5xx), the registration it may have made is found by name and
    removed before the error goes on, so nothing is left registered that the fleet does
    not know.
    """

    def __init__(
        self,
        client: ScaleSetClient,
        task_group: TaskGroup,
        *,
        scale_set_id: int = 0,
        run_job: JobHandler = succeed,
        http: HTTPCore | None = None,
        runner_options: Mapping[str, Any] | None = None,
        name_prefix: str = "runner",
    ) -> None:
        self.client = client
        self.task_group = task_group
        self.scale_set_id = scale_set_id
        self.run_job = run_job
        self.http = http if http is not None else client.http
        self.runner_options = dict(runner_options or {})
        self.name_prefix = name_prefix
        self.started: list[JobStarted] = []
        self.completed: list[JobCompleted] = []
        self.failures: list[BaseException] = []
        self.removed = 0
        self._runners: dict[str, _Runner] = {}
        self._names = itertools.count(1)

    def __repr__(self) -> str:
        done = len(self.completed)
        return f"RunnerFleet(scale_set_id={self.scale_set_id}, live={self.live}, completed={done})"

    @property
    def live(self) -> int:
        """Runners booted and not yet gone."""
        return len(self._runners)

    async def handle_desired_runner_count(self, count: int) -> int:
        while self.live < count:
            name = f"{self.name_prefix}-{next(self._names)}"
            jit = await self._register(name)
            runner = _Runner(jit.runner.id, jit.runner.name)
            self._runners[runner.name] = runner
            self.task_group.start_soon(self._run, runner, jit.encoded_jit_config)
        idle = [runner for runner in self._runners.values() if not runner.busy]
        for runner in idle[: max(0, self.live - count)]:
            await self._retire(runner)
        return count

    async def _register(self, name: str) -> JitRunnerConfig:
        try:
            return await self.client.generate_jit_config(self.scale_set_id, name=name)
        except HTTPStatusError as exc:
            if exc.status_code is not None and exc.status_code < 500:
                raise  # refused: nothing was registered (and a 409 means the name is someone else's)
            await self._forget(name, exc)
            raise
        except BaseException as exc:  # a lost answer, an unreadable one, or a cancellation
            await self._forget(name, exc)
            raise

    async def _forget(self, name: str, cause: BaseException) -> None:
        """Remove the runner `name` if the failed registration made it after all; shielded, best effort."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
            try:
                made = await self.client.get_runner_by_name(name)
                if made is None:
                    return
                await self.client.remove_runner(made.id)
            except RunnerNotFoundError:
                return
            except ActionsScaleSetError as exc:
                logger.warning("runner %s may be left registered: looking it up failed: %s", name, exc)
                return
            self.removed += 1
            logger.warning(
                "removed runner %s: the service registered it, but its answer never arrived intact (%s)",
                name,
                type(cause).__name__,
            )

    async def _retire(self, runner: _Runner) -> None:
        # Deregister first: the service refuses while the runner runs a job, and takes
        # back a job it offered but did not start. Only then stop the process.
        runner.removed = True
        try:
            await self.client.remove_runner(runner.id)
        except JobStillRunningError:
            runner.removed = False  # it took a job after all
            return
        except RunnerNotFoundError:
            pass  # it finished its job and is gone already
        self.removed += 1
        self._runners.pop(runner.name, None)
        runner.scope.cancel()

    async def _run(self, runner: _Runner, blob: Secret) -> None:
        from ..runner import JitConfig, RunnerClient

        try:
            with runner.scope:
                config = JitConfig.decode(blob)
                async with RunnerClient(config, http=self.http, **self.runner_options) as client:
                    async for request in client.job_requests():
                        runner.busy = True
                        job = await client.acquire_job(request)
                        await job.complete(await self.run_job(job))
        except ActionsScaleSetError as exc:
            # A runner we deregistered may well be told its registration is gone.
            if not runner.removed:
                logger.warning("runner %s failed: %s", runner.name, exc)
                self.failures.append(exc)
        finally:
            self._runners.pop(runner.name, None)

    async def handle_job_started(self, job: JobStarted) -> None:
        self.started.append(job)

    async def handle_job_completed(self, job: JobCompleted) -> None:
        self.completed.append(job)
