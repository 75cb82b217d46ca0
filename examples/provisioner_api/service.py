"""The runners' life cycle: start a JIT runner through a provisioner and answer once it is
online (or has failed), remove it, follow its jobs, and take over what an earlier run left.

- A start registers a JIT runner in its scale set (`targets.py`), hands the config to the
  provisioner, and waits until GitHub lists the runner `online`. Whatever fails on the way
  is taken back (compute, then registration), even when the caller went away.
- Each scale set in use has a `Listener` in one `ListenerGroup`: it acquires the jobs
  (without it they wait forever) and reports them started and completed; the jobs are
  recorded, and their runners marked busy and finished.
- Every second the compute is checked: a runner whose compute is gone has its
  registration removed (an ephemeral runner that ran its job removed its own).
- At start, runners recorded as live are adopted if the provisioner still runs them, and
  otherwise deregistered: no orphan registration, no forgotten compute.
- Leaving `async with` stops the listeners and leaves runners as they are: an API restart
  does not interrupt their jobs, and the next start adopts them or cleans them up.
"""

from __future__ import annotations

import logging
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any, Final

import anyio
import attrs

import actions_scaleset as asc

from ..listener.logs import first_line
from ..listener.provisioner import NewRunner, Provisioner, ProvisionerError, RunnerHandle
from .errors import ApiError
from .events import EventBus
from .metrics import ApiMetrics
from .runnerlogs import RunnerLogs
from .settings import Settings
from .state import LIVE_STATES, JobRecord, RunnerRecord, RunnerState, ScaleSetRecord, State
from .targets import ScaleSets, Target

__all__ = ["Service"]

logger = logging.getLogger("provisioner_api.service")

CLEANUP_TIMEOUT: Final = 15.0
ONLINE_POLL: Final = 0.25
CHECK_INTERVAL: Final = 1.0
FINISHED_GRACE: Final = 60.0
"""How long a runner's compute may outlive its job before it is stopped."""


class _Exited(Exception):
    """The runner's compute exited before the runner came online."""


class _JobEvents:
    """The `asc.Scaler` of one scale set's listener: it scales nothing (runners come from
    requests), and passes job events on to the service."""

    def __init__(self, service: Service, scale_set: ScaleSetRecord) -> None:
        self.service = service
        self.scale_set = scale_set

    async def handle_desired_runner_count(self, count: int) -> int:
        return count

    async def handle_job_started(self, job: asc.JobStarted) -> None:
        await self.service.job_started(self.scale_set, job)

    async def handle_job_completed(self, job: asc.JobCompleted) -> None:
        await self.service.job_completed(self.scale_set, job)


class Service:
    """Used as `async with`: opens the provisioner, recovers, then listens and checks until left."""

    def __init__(
        self,
        settings: Settings,
        provisioner: Provisioner,
        state: State,
        *,
        scale_sets: ScaleSets,
        bus: EventBus | None = None,
        metrics: ApiMetrics | None = None,
        logs: RunnerLogs | None = None,
        online_poll: float = ONLINE_POLL,
        check_interval: float = CHECK_INTERVAL,
        finished_grace: float = FINISHED_GRACE,
    ) -> None:
        self.settings = settings
        self.provisioner = provisioner
        self.state = state
        self.scale_sets = scale_sets
        self.bus = bus if bus is not None else EventBus()
        self.metrics = metrics
        self.logs = logs if logs is not None else RunnerLogs(settings.logs_dir)
        self.online_poll = online_poll
        self.check_interval = check_interval
        self.finished_grace = finished_grace
        self.group: asc.ListenerGroup[tuple[str, str]] = asc.ListenerGroup(start_jitter=0.0)
        self._runners: dict[str, RunnerRecord] = {}
        self._handles: dict[str, RunnerHandle] = {}
        self._alive: set[str] = set()
        self._pending: set[str] = set()
        """Names being created or removed: a second request for one gets a 409."""
        self._finished_at: dict[str, float] = {}
        self._stack: AsyncExitStack | None = None

    def __repr__(self) -> str:
        return f"Service({len(self._runners)} runners, {len(self.group)} scale sets)"

    # ------------------------------------------------------------------ life cycle

    async def __aenter__(self) -> Service:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self.provisioner)
            stack.push_async_callback(self.scale_sets.aclose)
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)
            await self._recover()
            tg.start_soon(self.group.run)
            tg.start_soon(self._check_forever)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._stack is not None
        stack, self._stack = self._stack, None
        await stack.aclose()
        live = sum(1 for record in self._runners.values() if record.state in LIVE_STATES)
        if live:
            logger.info("left %d runners running; the next start adopts or removes them", live)

    async def _recover(self) -> None:
        for scale_set in await self.state.scale_sets():
            self.scale_sets.known(scale_set)
        adopted = {handle.runner_name: handle for handle in await self.provisioner.adopt()}
        for record in await self.state.runners():
            self._runners[record.name] = record
            handle = adopted.pop(record.name, None)
            if record.state not in LIVE_STATES:
                continue
            if handle is not None:
                self._handles[record.name] = handle
                self._alive.add(record.name)
                state: RunnerState = "idle" if record.state == "starting" else record.state
                await self._update(record, state=state, ref=handle.ref)
                await self.logs.note(record.name, f"adopted after a restart ({handle.ref})")
                logger.info("adopted runner %s (%s)", record.name, handle.ref)
            else:
                await self._gone(record, why="nothing runs it after a restart")
        for handle in adopted.values():  # compute with no record: nothing will ever remove it
            logger.warning("stopping %s (%s): no runner of this API", handle.runner_name, handle.ref)
            await self._stop_compute(handle)
        for scale_set in await self.state.scale_sets():
            await self._listen(scale_set)

    async def _listen(self, scale_set: ScaleSetRecord) -> None:
        key = (scale_set.config_url, scale_set.name)
        if key in self.group:
            return
        client = await self.scale_sets.client(scale_set.config_url)
        self.group.add(
            key,
            asc.Listener(
                client,
                scale_set.id,
                _JobEvents(self, scale_set),
                0,
                self.settings.max_runners,
                self.metrics.for_scale_set(scale_set) if self.metrics else None,
                ensure=asc.EnsureScaleSet(scale_set.name, self.settings.runner_group, list(scale_set.labels)),
            ),
        )

    async def _check_forever(self) -> None:
        while True:
            await self.check()
            await anyio.sleep(self.check_interval)

    async def check(self) -> None:
        """Notice compute that is gone, and stop compute that outlived its job."""
        try:
            alive = {handle.runner_name for handle in await self.provisioner.running()}
        except Exception as exc:  # noqa: BLE001 - a provisioner's failure never stops the API
            logger.warning("could not list the runners' compute: %s", first_line(exc))
            return
        self._alive = alive
        now = time.monotonic()
        for record in list(self._runners.values()):
            if record.name in self._pending or record.state not in ("idle", "busy", "finished"):
                continue
            if record.name not in alive:
                await self._gone(record, why="its compute exited")
            elif (
                record.state == "finished"
                and now - self._finished_at.get(record.name, now) > self.finished_grace
            ):
                await self.logs.note(record.name, "its compute outlived its job; stopping it")
                await self._stop_compute(self._handle(record))

    # ------------------------------------------------------------------ reading

    def runner(self, name: str) -> RunnerRecord | None:
        return self._runners.get(name)

    def runners(
        self, *, state: str | None = None, label: str | None = None, repository: str | None = None
    ) -> list[RunnerRecord]:
        found = []
        for record in self._runners.values():
            if (
                state is not None
                and record.state != state
                and _runnerctl_status(record, self._alive) != state
            ):
                continue
            if label is not None and label.lower() not in {item.lower() for item in record.labels}:
                continue
            if repository is not None and (record.repository or "").lower() != repository.lower():
                continue
            found.append(record)
        return found

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self._runners.values():
            counts[record.state] = counts.get(record.state, 0) + 1
        return counts

    def status(self, name: str) -> dict[str, Any]:
        """runnerctl's `running | installed_not_running | not_installed`, and more."""
        record = self._runners.get(name)
        if record is None:
            return {"status": "not_installed", "name": name}
        return {"status": _runnerctl_status(record, self._alive), **describe(record, self.settings)}

    # ------------------------------------------------------------------ create

    async def create(self, name: str, target: Target, created_by: str) -> RunnerRecord:
        existing = self._runners.get(name)
        if name in self._pending or (existing is not None and existing.state in LIVE_STATES):
            raise ApiError(409, "runner_exists", f"a runner named {name} exists already; remove it first")
        self._pending.add(name)
        try:
            return await self._create(name, target, created_by)
        finally:
            self._pending.discard(name)

    async def _create(self, name: str, target: Target, created_by: str) -> RunnerRecord:
        now = time.time()
        record = RunnerRecord(
            name, target.config_url, target.repository, target.scale_set, target.labels, "starting",
            created_by, now, now,
        )  # fmt: skip
        await self._put(record)
        await self.logs.note(name, f"requested by token {created_by!r}")
        began = time.monotonic()
        try:
            record = await self._boot(record, target)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an answer, after clean-up
            error = _start_error(exc, name, self.settings.start_timeout)
            if self.metrics:
                self.metrics.record_start(False, time.monotonic() - began)
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
                await self._undo(
                    name, error.message, lost=isinstance(exc, asc.TransportError | asc.ServerError)
                )
            raise error from None
        except BaseException:  # cancelled (the caller went away, or shutdown): take it back
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
                await self._undo(name, "the request was cancelled", lost=True)
            raise
        if self.metrics:
            self.metrics.record_start(True, time.monotonic() - began)
        return record

    async def _boot(self, record: RunnerRecord, target: Target) -> RunnerRecord:
        name = record.name
        scale_set, new = await self.scale_sets.ensure(target)
        if new:
            await self.state.put_scale_set(scale_set)
            await self._listen(scale_set)
        key = (scale_set.config_url, scale_set.name)
        scale_set_id = (self.group[key].scale_set_id if key in self.group else None) or scale_set.id
        record = await self._update(record, scale_set_id=scale_set_id, labels=scale_set.labels)
        client = await self.scale_sets.client(scale_set.config_url)
        jit = await client.generate_jit_config(
            scale_set_id, name=name, work_folder=self.settings.provisioner.work_folder
        )
        record = await self._update(record, runner_id=jit.runner.id)
        self._publish("runner:created", record)
        await self.logs.note(name, f"registered as runner {jit.runner.id} in scale set {scale_set.name}")
        handle = await self.provisioner.start(
            NewRunner(name, jit.runner.id, scale_set.name, jit.encoded_jit_config)
        )
        self._handles[name] = handle
        self._alive.add(name)
        record = await self._update(record, ref=handle.ref)
        await self.logs.note(name, f"compute started ({handle.ref})")
        with anyio.fail_after(self.settings.start_timeout):
            await self._wait_online(client, jit.runner.id, name)
        record = self._runners[name]
        if record.state == "starting":
            record = await self._update(record, state="idle")
        self._publish("runner:running", record)
        await self.logs.note(name, "online")
        logger.info("started runner %s (%s) for %s", name, handle.ref, record.created_by)
        return record

    async def _wait_online(self, client: asc.ScaleSetClient, runner_id: int, name: str) -> None:
        while True:
            if self._runners[name].state in ("busy", "finished"):
                return  # it took a job: it was online
            if name not in {handle.runner_name for handle in await self.provisioner.running()}:
                raise _Exited
            try:
                listed = await client.github.get_runner(runner_id)
            except asc.NotFoundError:
                listed = None
            if listed is not None and listed.status == "online":
                return
            await anyio.sleep(self.online_poll)

    async def _undo(self, name: str, why: str, *, lost: bool) -> None:
        """Take back a start that failed: its compute, then its registration, then its record.

        `lost`: the registration's answer may have been lost (a dropped connection, a 5xx, a
        cancel), so a runner of this name is looked up and removed. A refusal (a 4xx, such
        as a name GitHub has already) leaves the name alone: it may be someone else's.
        """
        record = self._runners.get(name)
        if record is None:
            return
        handle = self._handles.pop(name, None)
        if handle is not None:
            await self._stop_compute(handle)
        removed = True
        if record.runner_id is not None:
            removed = await self._deregister(record)
        elif lost and record.scale_set_id is not None:
            try:
                client = await self.scale_sets.client(record.config_url)
                found = await client.get_runner_by_name(name)
            except asc.ActionsScaleSetError:
                found = None
            if found is not None:
                removed = await self._deregister(attrs.evolve(record, runner_id=found.id))
        await self.logs.note(name, f"start failed: {why}")
        self._publish("runner:failed", record, error=why)
        if removed:
            await self._forget(name)
        else:  # still registered: the next check tries again
            await self._update(record, state="idle")

    # ------------------------------------------------------------------ delete

    async def delete(self, name: str, *, repository: str | None, force: bool) -> dict[str, Any]:
        record = self._runners.get(name)
        if record is None or (
            repository is not None
            and record.repository is not None
            and repository.lower() != record.repository.lower()
        ):
            where = f" for {repository}" if repository else ""
            raise ApiError(404, "runner_not_found", f"this API started no runner named {name}{where}")
        if name in self._pending:
            raise ApiError(409, "runner_pending", f"runner {name} is being started or removed; try again")
        self._pending.add(name)
        try:
            with anyio.CancelScope(shield=True):  # once begun, a removal is finished
                removed = await self._delete(record, force)
        finally:
            self._pending.discard(name)
        return removed

    async def _delete(self, record: RunnerRecord, force: bool) -> dict[str, Any]:
        name = record.name
        if record.state == "busy" and not force:
            raise _busy(record)
        deregistered = True
        if record.runner_id is not None and record.state != "failed":
            try:
                client = await self.scale_sets.client(record.config_url)
                await client.remove_runner(record.runner_id)
            except asc.RunnerNotFoundError:
                pass  # gone already: an ephemeral runner removes itself after its job
            except asc.JobStillRunningError:
                if not force:
                    await self._update(record, state="busy")
                    raise _busy(record) from None
                deregistered = False
            except asc.ActionsScaleSetError as exc:
                raise _github_error(exc) from None
        if record.state in LIVE_STATES:
            await self._stop_compute(self._handle(record))
        if not deregistered:  # forced off a job: with its compute gone, GitHub lets it go
            deregistered = await self._deregister(record)
        await self.logs.note(
            name, "removed" + ("" if deregistered else "; its registration ends with its job")
        )
        self._publish("runner:removed", record, forced=force)
        await self._forget(name)
        logger.info("removed runner %s%s", name, " (forced)" if force else "")
        return {"status": "removed", "name": name, "deregistered": deregistered, "forced": force}

    # ------------------------------------------------------------------ jobs

    async def job_started(self, scale_set: ScaleSetRecord, job: asc.JobStarted) -> None:
        now = time.time()
        await self.state.put_job(
            JobRecord(
                id=job.runner_request_id, job_id=job.job_id, status="running", scale_set=scale_set.name,
                labels=tuple(job.request_labels), repository=_repository(job),
                workflow_ref=job.job_workflow_ref or None,
                display_name=job.job_display_name or None, workflow_run_id=job.workflow_run_id or None,
                event_name=job.event_name or None, runner_name=job.runner_name or None,
                queued_at=_iso(job.queue_time), started_at=_iso(job.runner_assign_time) or _iso_now(),
                updated_at=now,
            )
        )  # fmt: skip
        self.bus.publish("job:started", _repository(job), await self._job_json(job.runner_request_id))
        record = self._runners.get(job.runner_name)
        if record is not None and record.state in ("starting", "idle"):
            record = await self._update(record, state="busy", job=str(job.runner_request_id))
            self._publish("runner:busy", record)
            await self.logs.note(record.name, f"job {job.job_display_name!r} started ({_repository(job)})")

    async def job_completed(self, scale_set: ScaleSetRecord, job: asc.JobCompleted) -> None:
        earlier = await self.state.job(job.runner_request_id)
        await self.state.put_job(
            JobRecord(
                id=job.runner_request_id, job_id=job.job_id, status="completed", scale_set=scale_set.name,
                labels=tuple(job.request_labels), result=job.result or None, repository=_repository(job),
                workflow_ref=job.job_workflow_ref or None, display_name=job.job_display_name or None,
                workflow_run_id=job.workflow_run_id or None, event_name=job.event_name or None,
                runner_name=job.runner_name or None, queued_at=_iso(job.queue_time),
                started_at=earlier.started_at if earlier else _iso(job.runner_assign_time),
                finished_at=_iso(job.finish_time) or _iso_now(), updated_at=time.time(),
            )
        )  # fmt: skip
        self.bus.publish("job:completed", _repository(job), await self._job_json(job.runner_request_id))
        record = self._runners.get(job.runner_name)
        if record is None:
            return
        await self.logs.note(record.name, f"job {job.job_display_name!r} {job.result}")
        if record.state in (
            "starting",
            "idle",
            "busy",
        ):  # its compute may have exited first: then it stays so
            record = await self._update(record, state="finished", job=str(job.runner_request_id))
            self._finished_at[record.name] = time.monotonic()
            self._publish("runner:finished", record, result=job.result)

    async def _job_json(self, request_id: int) -> dict[str, Any]:
        record = await self.state.job(request_id)
        return job_json(record) if record is not None else {"id": request_id}

    # ------------------------------------------------------------------ helpers

    def _handle(self, record: RunnerRecord) -> RunnerHandle:
        return self._handles.get(record.name) or RunnerHandle(
            record.name, record.runner_id or 0, record.ref or ""
        )

    async def _gone(self, record: RunnerRecord, *, why: str) -> None:
        """Its compute is gone: remove its registration (if it is still there), and say so."""
        if record.runner_id is not None and not await self._deregister(record):
            return  # still registered: tried again at the next check
        self._handles.pop(record.name, None)
        record = await self._update(record, state="exited")
        await self.logs.note(record.name, f"exited: {why}")
        self._publish("runner:exited", record, why=why)
        logger.info("runner %s exited (%s)", record.name, why)

    async def _deregister(self, record: RunnerRecord) -> bool:
        """Remove the runner's registration; True when it is gone (or never was)."""
        assert record.runner_id is not None
        try:
            client = await self.scale_sets.client(record.config_url)
            await client.remove_runner(record.runner_id)
        except asc.RunnerNotFoundError:
            return True
        except asc.JobStillRunningError:
            logger.warning("runner %s is still running a job; left registered", record.name)
            return False
        except asc.ActionsScaleSetError as exc:
            logger.warning("could not remove runner %s: %s", record.name, first_line(exc))
            return False
        logger.info("removed the registration of runner %s", record.name)
        return True

    async def _stop_compute(self, handle: RunnerHandle) -> None:
        try:
            await self.provisioner.stop(handle)
        except Exception as exc:  # noqa: BLE001 - a provisioner's failure never stops the API
            logger.warning("could not stop %s: %s", handle.runner_name, first_line(exc))
        self._alive.discard(handle.runner_name)

    async def _put(self, record: RunnerRecord) -> None:
        self._runners[record.name] = record
        await self.state.put_runner(record)

    async def _update(self, record: RunnerRecord, **changes: Any) -> RunnerRecord:
        record = attrs.evolve(record, updated_at=time.time(), **changes)
        await self._put(record)
        return record

    async def _forget(self, name: str) -> None:
        self._runners.pop(name, None)
        self._handles.pop(name, None)
        self._finished_at.pop(name, None)
        self._alive.discard(name)
        await self.state.delete_runner(name)

    def _publish(self, kind: str, record: RunnerRecord, **extra: Any) -> None:
        data = {**describe(record, self.settings), **extra}
        self.bus.publish(kind, record.repository, data)


def describe(record: RunnerRecord, settings: Settings) -> dict[str, Any]:
    """A runner as the API shows it; never its JIT config."""
    shown: dict[str, Any] = {
        "name": record.name,
        "id": record.runner_id,
        "state": record.state,
        "busy": record.state == "busy",
        "job": int(record.job) if record.job and record.job.isdigit() else record.job,
        "repository": record.repository,
        "scale_set": record.scale_set,
        "scale_set_id": record.scale_set_id,
        "labels": list(record.labels),
        "ephemeral": True,
        "created_by": record.created_by,
        "created_at": _iso_at(record.created_at),
        "updated_at": _iso_at(record.updated_at),
    }
    ref = record.ref
    if settings.provisioner.kind == "command" and ref and ref.isdigit():
        shown["pid"] = int(ref)
    elif settings.provisioner.kind == "docker" and ref:
        shown["container_id"] = ref
    else:
        shown["ref"] = ref
    return shown


def job_json(record: JobRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "job_id": record.job_id,
        "status": record.status,
        "result": record.result,
        "repository": record.repository,
        "workflow_ref": record.workflow_ref,
        "display_name": record.display_name,
        "workflow_run_id": record.workflow_run_id,
        "event_name": record.event_name,
        "labels": list(record.labels),
        "scale_set": record.scale_set,
        "runner_name": record.runner_name,
        "queued_at": record.queued_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
    }


def _runnerctl_status(record: RunnerRecord, alive: set[str]) -> str:
    if record.state in LIVE_STATES and (record.state == "starting" or record.name in alive):
        return "running" if record.state != "starting" else "installed_not_running"
    return "installed_not_running"


def _busy(record: RunnerRecord) -> ApiError:
    job = f" (job {record.job})" if record.job else ""
    return ApiError(
        409, "runner_busy", f"runner {record.name} is running a job{job}; add ?force=true to stop it anyway"
    )


def _start_error(exc: Exception, name: str, timeout: float) -> ApiError:  # noqa: PLR0911
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, TimeoutError):
        return ApiError(
            504, "start_timeout", f"runner {name} was not online within {timeout:g} s; it was removed"
        )
    if isinstance(exc, _Exited):
        return ApiError(502, "runner_exited", f"runner {name} exited before it came online; it was removed")
    if isinstance(exc, ProvisionerError):
        return ApiError(502, "provisioner_failed", f"could not start runner {name}: {first_line(exc)}")
    if isinstance(exc, asc.RunnerExistsError):
        return ApiError(
            409, "runner_exists", f"GitHub has a runner named {name} already; choose another name"
        )
    if isinstance(exc, asc.ActionsScaleSetError):
        return _github_error(exc)
    logger.error("starting runner %s failed: %s: %s", name, type(exc).__name__, first_line(exc))
    return ApiError(500, "internal", f"starting runner {name} failed unexpectedly ({type(exc).__name__})")


def _github_error(exc: asc.ActionsScaleSetError) -> ApiError:
    text = first_line(exc)
    if isinstance(exc, asc.AuthenticationError | asc.PermissionDeniedError):
        return ApiError(502, "github_refused", f"GitHub refused this API's credentials: {text}")
    if isinstance(exc, asc.RunnerGroupNotFoundError):
        return ApiError(502, "github_error", text)
    if isinstance(exc, asc.NotFoundError):
        return ApiError(
            404, "github_not_found", f"GitHub has no such repository or scale set, or no access: {text}"
        )
    if isinstance(exc, asc.TransportError | asc.ServerError | asc.RateLimitError):
        return ApiError(503, "github_unavailable", f"GitHub could not be reached: {text}")
    return ApiError(502, "github_error", text)


def _repository(job: asc.JobStarted | asc.JobCompleted) -> str | None:
    return f"{job.owner_name}/{job.repository_name}" if job.owner_name and job.repository_name else None


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment is not None else None


def _iso_now() -> str:
    return _iso(datetime.now(UTC)) or ""


def _iso_at(seconds: float) -> str:
    return _iso(datetime.fromtimestamp(seconds, UTC)) or ""
