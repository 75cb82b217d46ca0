"""The one state model behind every route: jobs move, statistics follow.

A job goes scheduled → queued → available to a matching scale set (labels ⊆ the
scale set's labels) → acquired (`acquirejobs`) → assigned, within the listener's
`X-ScaleSetMaxCapacity` → running (a runner of that scale set polled the broker
and called `acquirejob`) → completed (`completejob`). An assigned job no runner
starts in time is canceled and re-queued, at most `max_requeues` times
(docs/protocol.md, "Wire format", "The long poll"). Statistics are computed from the jobs and runners,
never counted separately, so they are always consistent.

No I/O and no URLs here; time comes from the injected clock, and `tick()` applies
whatever the clock made due. Listeners registered with `subscribe` are called on
every change (the app wakes its long polls with them).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ._model import (
    BrokerSession,
    Job,
    JobState,
    QueueMessage,
    Runner,
    RunnerGroup,
    ScaleSet,
    ScaleSetSession,
    ScopeKey,
    Settings,
    Tenant,
)
from ._timeline import advance
from ._wire import Statistics, job_event

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

__all__ = ["MAX_EVENTS_PER_MESSAGE", "State", "StateError"]

MAX_EVENTS_PER_MESSAGE = 50
_WAITING = (JobState.AVAILABLE, JobState.ACQUIRED, JobState.ASSIGNED)
_OPEN = (JobState.SCHEDULED, JobState.QUEUED, *_WAITING, JobState.RUNNING)


class StateError(Exception):
    """An operation the service refuses; `exception` is the .NET exception's short name."""

    def __init__(self, status: int, exception: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.exception = exception
        self.message = message


class State:
    def __init__(self, settings: Settings, clock: Callable[[], float], seed: int | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.rng = random.Random(seed)  # noqa: S311 - simulation, not security
        self.tenants: dict[ScopeKey, Tenant] = {}
        self.org_enterprise: dict[str, str | None] = {}
        self.scale_sets: dict[int, ScaleSet] = {}
        self.runners: dict[int, Runner] = {}
        self.jobs: dict[str, Job] = {}
        self._next = {"scale_set": 1, "runner": 1, "request": 1, "message": 1, "run": 1000}
        self._listeners: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ plumbing

    def new_id(self, kind: str) -> int:
        value = self._next[kind]
        self._next[kind] = value + 1
        return value

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def changed(self) -> None:
        for listener in list(self._listeners):
            listener()

    def now(self) -> float:
        return self.clock()

    # ------------------------------------------------------------------ scopes

    def tenant(self, key: ScopeKey) -> Tenant | None:
        """The tenant of a scope; a repository exists whenever its organization does."""
        kind, name = key[0], key[1].lower()
        found = self.tenants.get((kind, name))
        if found is None and kind == "repo" and name.partition("/")[0] in self.org_enterprise:
            found = self._make_tenant(("repo", name))
        return found

    def _make_tenant(self, key: ScopeKey) -> Tenant:
        tenant = Tenant(key, uuid.uuid5(uuid.NAMESPACE_URL, f"fake-github/{key[0]}/{key[1]}").hex[:20])
        tenant.groups[1] = RunnerGroup(1, "Default", is_default=True)
        self.tenants[key] = tenant
        return tenant

    def ensure_scope(self, key: ScopeKey, *, enterprise: str | None = None) -> Tenant:
        kind, name = key[0], key[1].lower()
        if kind == "repo":
            self.ensure_scope(("org", name.partition("/")[0]))
        elif kind == "org":
            if name not in self.org_enterprise or enterprise is not None:
                self.org_enterprise[name] = enterprise.lower() if enterprise else None
            if enterprise:
                self.ensure_scope(("enterprise", enterprise))
        found = self.tenant((kind, name))
        return found if found is not None else self._make_tenant((kind, name))

    def add_runner_group(self, tenant: Tenant, name: str) -> RunnerGroup:
        if tenant.group_by_name(name) is not None:
            raise StateError(
                409, "RunnerGroupExistsException", f"A runner group named '{name}' already exists."
            )
        group = RunnerGroup(max(tenant.groups) + 1, name)
        tenant.groups[group.id] = group
        return group

    def job_scopes(self, job: Job) -> list[ScopeKey]:
        owner = job.owner.lower()
        scopes: list[ScopeKey] = [("repo", job.repository.lower()), ("org", owner)]
        enterprise = self.org_enterprise.get(owner)
        if enterprise:
            scopes.append(("enterprise", enterprise))
        return scopes

    # ------------------------------------------------------------------ scale sets

    def scale_set(self, tenant: Tenant, scale_set_id: int) -> ScaleSet:
        found = self.scale_sets.get(scale_set_id)
        if found is None or found.deleted or found.tenant is not tenant:
            raise StateError(
                404,
                "RunnerScaleSetNotFoundException",
                f"No runner scale set found with identifier {scale_set_id}.",
            )
        return found

    def list_scale_sets(self, tenant: Tenant, group_id: int | None, name: str | None) -> list[ScaleSet]:
        return [
            s
            for s in self.scale_sets.values()
            if not s.deleted
            and s.tenant is tenant
            and (group_id is None or s.group_id == group_id)
            and (name is None or s.name.casefold() == name.casefold())
        ]

    def _check_group(self, tenant: Tenant, group_id: int) -> None:
        if group_id not in tenant.groups:
            raise StateError(404, "RunnerGroupNotFoundException", f"Runner group {group_id} was not found.")

    def _check_name_free(self, tenant: Tenant, group_id: int, name: str, keep: ScaleSet | None) -> None:
        for other in self.list_scale_sets(tenant, group_id, name):
            if other is not keep:
                raise StateError(
                    409,
                    "RunnerScaleSetExistsException",
                    f"A runner scale set named '{name}' already exists in runner group {group_id}.",
                )

    def create_scale_set(
        self,
        tenant: Tenant,
        *,
        name: str,
        group_id: int,
        labels: list[dict[str, str]],
        setting: dict[str, Any],
    ) -> ScaleSet:
        self._check_group(tenant, group_id)
        self._check_name_free(tenant, group_id, name, None)
        scale_set = ScaleSet(
            id=self.new_id("scale_set"),
            tenant=tenant,
            name=name,
            group_id=group_id,
            labels=labels,
            setting=setting,
            created_at=self.now(),
        )
        self.scale_sets[scale_set.id] = scale_set
        self.tick()
        return scale_set

    def update_scale_set(
        self,
        scale_set: ScaleSet,
        *,
        name: str | None,
        group_id: int | None,
        labels: list[dict[str, str]] | None,
        setting: dict[str, Any] | None,
    ) -> ScaleSet:
        new_group = group_id if group_id else scale_set.group_id
        new_name = name if name else scale_set.name
        self._check_group(scale_set.tenant, new_group)
        self._check_name_free(scale_set.tenant, new_group, new_name, scale_set)
        scale_set.group_id, scale_set.name = new_group, new_name
        if labels:
            scale_set.labels = labels
        if setting:
            scale_set.setting = {**scale_set.setting, **setting}
        self.tick()
        return scale_set

    def delete_scale_set(self, scale_set: ScaleSet, *, force: bool = False) -> None:
        """Delete it; refused while its runners run jobs unless `force` (server-side deletion)."""
        running = [
            j for j in self.jobs.values() if j.scale_set_id == scale_set.id and j.state is JobState.RUNNING
        ]
        if running and not force:
            raise StateError(
                400,
                "JobStillRunningException",
                f"Runner scale set {scale_set.id} has {len(running)} running job(s).",
            )
        scale_set.deleted = True
        scale_set.session = None
        for job in self.jobs.values():
            if job.scale_set_id == scale_set.id and job.state in (*_WAITING, JobState.RUNNING):
                if job.state is JobState.RUNNING:
                    self.finish(job, "canceled")
                else:
                    self.release(job)
                    self.unroute(job)
        for runner in self.runners.values():
            if runner.scale_set_id == scale_set.id:
                runner.deleted = True
        self.tick()
        self.changed()

    def statistics(self, scale_set: ScaleSet) -> Statistics:
        counts = dict.fromkeys(JobState, 0)
        for job in self.jobs.values():
            if job.scale_set_id == scale_set.id:
                counts[job.state] += 1
        runners = [r for r in self.runners.values() if r.scale_set_id == scale_set.id and not r.deleted]
        busy = sum(1 for r in runners if r.job_id and self.jobs[r.job_id].state is JobState.RUNNING)
        return Statistics(
            total_available_jobs=counts[JobState.AVAILABLE],
            total_acquired_jobs=counts[JobState.ACQUIRED],
            total_assigned_jobs=counts[JobState.ASSIGNED] + counts[JobState.RUNNING],
            total_running_jobs=counts[JobState.RUNNING],
            total_registered_runners=len(runners),
            total_busy_runners=busy,
            total_idle_runners=len(runners) - busy,
        )

    # ------------------------------------------------------------------ scale-set sessions

    def create_session(self, scale_set: ScaleSet, owner: str) -> ScaleSetSession:
        self.tick()
        if scale_set.session is not None:
            raise StateError(
                409,
                "RunnerScaleSetSessionConflictException",
                f"The actions runner scaleset {scale_set.name} already has an active session.",
            )
        scale_set.session = ScaleSetSession(str(uuid.uuid4()), owner, self.now())
        return scale_set.session

    def session(self, scale_set: ScaleSet, session_id: str) -> ScaleSetSession:
        self.tick()
        current = scale_set.session
        if current is None or current.id.lower() != session_id.lower():
            raise StateError(
                404,
                "RunnerScaleSetSessionNotFoundException",
                f"The session {session_id} does not exist for runner scale set {scale_set.id}.",
            )
        current.last_seen = self.now()
        return current

    def delete_session(self, scale_set: ScaleSet, session_id: str) -> None:
        self.session(scale_set, session_id)
        scale_set.session = None

    def next_message(self, scale_set: ScaleSet, last_message_id: int) -> QueueMessage | None:
        """The first unacknowledged message after `last_message_id`, or a new one of ≤ 50 events."""
        for message in scale_set.messages:
            if message.id <= last_message_id:
                message.acked = True
        scale_set.messages = [m for m in scale_set.messages if not m.acked]
        if scale_set.messages:
            return scale_set.messages[0]
        if not scale_set.pending:
            return None
        events = scale_set.pending[:MAX_EVENTS_PER_MESSAGE]
        del scale_set.pending[:MAX_EVENTS_PER_MESSAGE]
        message = QueueMessage(self.new_id("message"), events)
        scale_set.messages.append(message)
        return message

    def ack_message(self, scale_set: ScaleSet, message_id: int) -> bool:
        """True when the id was ever issued (acknowledging twice is fine)."""
        for message in scale_set.messages:
            if message.id == message_id:
                message.acked = True
        scale_set.messages = [m for m in scale_set.messages if not m.acked]
        return 0 < message_id < self._next["message"]

    def set_capacity(self, scale_set: ScaleSet, capacity: int | None) -> None:
        if capacity is not None and capacity != scale_set.max_capacity:
            scale_set.max_capacity = capacity
            self.tick()

    def acquirable(self, scale_set: ScaleSet) -> list[Job]:
        self.tick()
        return self.jobs_of(scale_set, JobState.AVAILABLE)

    def acquire(self, scale_set: ScaleSet, request_ids: Iterable[int]) -> list[int]:
        wanted = set(request_ids)
        acquired = []
        for job in self.jobs_of(scale_set, JobState.AVAILABLE):
            if job.request_id in wanted:
                job.state = JobState.ACQUIRED
                acquired.append(job.request_id)
        self.tick()
        return acquired

    def jobs_of(self, scale_set: ScaleSet, state: JobState) -> list[Job]:
        return [j for j in self.jobs.values() if j.scale_set_id == scale_set.id and j.state is state]

    # ------------------------------------------------------------------ runners

    def runner_named(self, tenant: Tenant, name: str) -> Runner | None:
        wanted = name.casefold()
        return next((r for r in self.live_runners(tenant) if r.name.casefold() == wanted), None)

    def live_runners(self, tenant: Tenant | None = None) -> list[Runner]:
        return [r for r in self.runners.values() if not r.deleted and (tenant is None or r.tenant is tenant)]

    def runner(self, tenant: Tenant | None, runner_id: int) -> Runner:
        found = self.runners.get(runner_id)
        if found is None or found.deleted or (tenant is not None and found.tenant is not tenant):
            raise StateError(404, "AgentNotFoundException", f"No runner found with identifier {runner_id}.")
        return found

    def create_runner(
        self,
        tenant: Tenant,
        *,
        name: str,
        group_id: int,
        scale_set_id: int | None,
        labels: Sequence[str],
        public_key: RSAPublicKey,
        authorization_url: str,
        work_folder: str,
    ) -> Runner:
        if self.runner_named(tenant, name) is not None:
            raise StateError(409, "AgentExistsException", f"A runner with the name '{name}' already exists.")
        self._check_group(tenant, group_id)
        runner = Runner(
            id=self.new_id("runner"),
            name=name,
            tenant=tenant,
            group_id=group_id,
            scale_set_id=scale_set_id,
            labels=tuple(labels),
            client_id=str(uuid.uuid4()),
            public_key=public_key,
            authorization_url=authorization_url,
            work_folder=work_folder,
            created_at=self.now(),
            simulated=self.settings.auto_start_runners,
        )
        self.runners[runner.id] = runner
        self.tick()
        self.changed()
        return runner

    def delete_runner(self, runner: Runner) -> None:
        if runner.job_id and self.jobs[runner.job_id].state is JobState.RUNNING:
            raise StateError(
                400, "JobStillRunningException", f"The runner {runner.name} is still running a job."
            )
        if runner.job_id:
            self.release(self.jobs[runner.job_id])
        runner.deleted = True
        self.changed()

    def start_simulated(self, runner: Runner) -> None:
        runner.simulated = True
        self.tick()

    def create_broker_session(self, runner: Runner, owner: str) -> BrokerSession:
        self.tick()
        if runner.session is not None:
            raise StateError(
                409, "SessionConflict", f"The runner {runner.name} already has an active session."
            )
        runner.session = BrokerSession(str(uuid.uuid4()), owner, self.now())
        return runner.session

    def runner_poll(self, runner: Runner) -> tuple[str, Job] | None:
        """The next broker message for `runner`: a JobCancellation, or a RunnerJobRequest."""
        if runner.session is not None:
            runner.session.last_seen = self.now()
        self.tick()
        if runner.deleted:
            return None  # an ephemeral runner that finished its job gets no other (its poll was in flight)
        if runner.outbox:
            return "JobCancellation", self.jobs[runner.outbox.pop(0)]
        if runner.job_id:
            job = self.jobs[runner.job_id]
            if job.state is JobState.ASSIGNED and not job.acknowledged:
                return "RunnerJobRequest", job
            return None
        offered = self.next_job_for(runner)
        if offered is None:
            return None
        self.bind(runner, offered)
        return "RunnerJobRequest", offered

    def acknowledge(self, runner: Runner, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        if (
            job is None
            or job.runner_id != runner.id
            or job.state not in (JobState.ASSIGNED, JobState.RUNNING)
        ):
            return False
        job.acknowledged = True
        return True

    def next_job_for(self, runner: Runner) -> Job | None:
        if runner.scale_set_id is not None:
            waiting = [
                j
                for j in self.jobs_of(self.scale_sets[runner.scale_set_id], JobState.ASSIGNED)
                if j.runner_id is None
            ]
            return min(waiting, key=lambda j: j.assigned_at or 0.0, default=None)
        labels = {label.casefold() for label in runner.labels} | {"self-hosted"}
        for job in self.jobs.values():
            if (
                job.state is JobState.QUEUED
                and runner.tenant.key in self.job_scopes(job)
                and {label.casefold() for label in job.labels} <= labels
            ):
                job.state, job.assigned_at = JobState.ASSIGNED, self.now()
                return job
        return None

    def bind(self, runner: Runner, job: Job) -> None:
        job.runner_id, job.runner_name, job.acknowledged = runner.id, runner.name, False
        runner.job_id = job.id

    def end_runner_session(self, runner: Runner) -> None:
        """The runner went away: a job offered to it but not started goes to another runner."""
        runner.session = None
        job = self.jobs.get(runner.job_id) if runner.job_id else None
        if job is not None and job.state is JobState.ASSIGNED:
            self.release(job)
            self.changed()

    def release(self, job: Job) -> None:
        """Take a not-yet-started job back from the runner it was offered to."""
        runner = self.runners.get(job.runner_id) if job.runner_id else None
        if runner is not None and runner.job_id == job.id:
            runner.job_id = None
        job.runner_id, job.runner_name, job.acknowledged = None, "", False

    # ------------------------------------------------------------------ the job on the runner

    def job_for_runner(self, runner: Runner, job_id: str) -> Job:
        """`acquirejob`: the runner takes the job it was offered; `JobStarted` goes out."""
        job = self.jobs.get(job_id)
        if job is None or job.state not in (JobState.ASSIGNED, JobState.RUNNING):
            raise StateError(404, "JobNotFound", f"Job {job_id} was not found.")
        if job.runner_id != runner.id:
            if job.runner_id is None:
                raise StateError(404, "JobNotFound", f"Job {job_id} is not assigned to runner {runner.name}.")
            raise StateError(409, "JobAlreadyAcquired", f"Job {job_id} was acquired by another runner.")
        if job.state is JobState.ASSIGNED:
            self.start(runner, job)
        return job

    def start(self, runner: Runner, job: Job) -> None:
        now = self.now()
        job.state, job.runner_assigned_at, job.acknowledged = JobState.RUNNING, now, True
        job.locked_until = now + self.settings.lock_duration
        self.emit(job, "JobStarted", {"runnerId": runner.id, "runnerName": runner.name})
        self.changed()

    def running_job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or job.state is not JobState.RUNNING:
            raise StateError(404, "JobNotFound", f"Job {job_id} is not running.")
        return job

    def renew(self, job: Job) -> float:
        job.locked_until = self.now() + self.settings.lock_duration
        return job.locked_until

    def complete(self, job: Job, conclusion: str) -> None:
        self.finish(job, conclusion)
        self.tick()
        self.changed()

    def finish(self, job: Job, result: str) -> None:
        job.state, job.result, job.finished_at = JobState.COMPLETED, result, self.now()
        self.emit(
            job,
            "JobCompleted",
            {"result": result, "runnerId": job.runner_id or 0, "runnerName": job.runner_name},
        )
        runner = self.runners.get(job.runner_id) if job.runner_id else None
        if runner is not None and runner.job_id == job.id:
            runner.job_id = None
            runner.deleted = True  # JIT runners are ephemeral: one job, then gone

    # ------------------------------------------------------------------ jobs

    def enqueue(
        self,
        *,
        repository: str,
        labels: Sequence[str],
        display_name: str,
        workflow: str,
        ref: str,
        event_name: str,
        duration: float,
        conclusion: str,
        at: float | None,
    ) -> Job:
        owner = repository.partition("/")[0]
        self.ensure_scope(("org", owner))
        now = self.now()
        job = Job(
            id=str(uuid.uuid4()),
            request_id=self.new_id("request"),
            repository=repository,
            labels=tuple(labels),
            display_name=display_name,
            workflow_ref=f"{repository}/{workflow}@{ref}",
            event_name=event_name,
            workflow_run_id=self.new_id("run"),
            plan_id=str(uuid.uuid4()),
            duration=duration,
            conclusion=conclusion,
            arrive_at=now if at is None else at,
        )
        self.jobs[job.id] = job
        self.tick()
        return job

    def cancel(self, job: Job) -> None:
        """Cancel from the GitHub side: a running job gets a `JobCancellation` on its runner."""
        if job.state is JobState.RUNNING:
            job.cancel_requested = True
            runner = self.runners.get(job.runner_id) if job.runner_id else None
            if runner is not None and not runner.simulated:
                runner.outbox.append(job.id)
        elif job.state in _OPEN:
            self.release(job)
            if job.scale_set_id is not None:
                self.finish(job, "canceled")
            else:
                job.state, job.result, job.finished_at = JobState.COMPLETED, "canceled", self.now()
        self.tick()
        self.changed()

    def emit(self, job: Job, message_type: str, extra: dict[str, Any] | None = None) -> None:
        scale_set = self.scale_sets.get(job.scale_set_id) if job.scale_set_id is not None else None
        if scale_set is None or scale_set.deleted:
            return
        scale_set.pending.append(job_event(job, message_type, extra))
        job.history.append(message_type)

    def unroute(self, job: Job) -> None:
        """Back to the queue, offered to no scale set."""
        job.state = JobState.QUEUED
        job.scale_set_id = None
        job.scale_set_assigned_at = job.assigned_at = None

    def tick(self) -> None:
        """Apply everything the clock made due; notify listeners if anything moved."""
        if advance(self):
            self.changed()
