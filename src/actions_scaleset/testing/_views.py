"""Read-only views of the fake's state and its request log, for assertions."""

from __future__ import annotations

import attrs

from ._model import Job, JobState, Runner, ScaleSet
from ._tokens import TokenKind
from ._wire import Statistics

__all__ = ["JobInfo", "RecordedRequest", "RunnerInfo", "ScaleSetInfo", "Snapshot", "job_info", "runner_info"]


def _scope_name(kind: str, name: str) -> str:
    return f"enterprises/{name}" if kind == "enterprise" else name


@attrs.frozen
class JobInfo:
    job_id: str
    runner_request_id: int
    state: JobState
    repository: str
    labels: tuple[str, ...]
    scale_set_id: int | None
    runner_id: int | None
    runner_name: str
    result: str | None
    requeues: int
    events: tuple[str, ...]
    """Scale-set events sent for the job, in order: `JobAvailable`, `JobAssigned`, …"""


@attrs.frozen
class RunnerInfo:
    id: int
    name: str
    scope: str
    """`acme`, `acme/app` or `enterprises/big`."""
    runner_group_id: int
    scale_set_id: int | None
    labels: tuple[str, ...]
    online: bool
    """It has a broker session (or is simulated)."""
    busy: bool
    job_id: str | None
    simulated: bool


@attrs.frozen
class ScaleSetInfo:
    id: int
    name: str
    scope: str
    runner_group_id: int
    labels: tuple[str, ...]
    session_owner: str | None
    max_capacity: int | None
    statistics: Statistics


@attrs.frozen
class Snapshot:
    """`fake.snapshot()`: jobs (in arrival order), live runners and scale sets, now."""

    jobs: tuple[JobInfo, ...]
    runners: tuple[RunnerInfo, ...]
    scale_sets: tuple[ScaleSetInfo, ...]

    def job(self, job_id: str) -> JobInfo:
        return next(j for j in self.jobs if j.job_id == job_id)

    def jobs_in(self, state: JobState | str) -> tuple[JobInfo, ...]:
        return tuple(j for j in self.jobs if j.state == state)


@attrs.frozen
class RecordedRequest:
    """One request the fake answered (`status` None: the connection was dropped)."""

    method: str
    path: str
    route: str | None
    """The route's name (`message`, `session.create`, …); None for an unknown path."""
    status: int | None
    token: TokenKind | None
    """The class of the credential presented, None when there was none."""
    host: str
    query: str = ""


def job_info(job: Job) -> JobInfo:
    return JobInfo(
        job_id=job.id,
        runner_request_id=job.request_id,
        state=job.state,
        repository=job.repository,
        labels=job.labels,
        scale_set_id=job.scale_set_id,
        runner_id=job.runner_id,
        runner_name=job.runner_name,
        result=job.result,
        requeues=job.requeues,
        events=tuple(job.history),
    )


def runner_info(runner: Runner, busy: bool) -> RunnerInfo:
    return RunnerInfo(
        id=runner.id,
        name=runner.name,
        scope=_scope_name(*runner.tenant.key),
        runner_group_id=runner.group_id,
        scale_set_id=runner.scale_set_id,
        labels=runner.labels,
        online=runner.session is not None or runner.simulated,
        busy=busy,
        job_id=runner.job_id,
        simulated=runner.simulated,
    )


def scale_set_info(scale_set: ScaleSet, statistics: Statistics) -> ScaleSetInfo:
    return ScaleSetInfo(
        id=scale_set.id,
        name=scale_set.name,
        scope=_scope_name(*scale_set.tenant.key),
        runner_group_id=scale_set.group_id,
        labels=tuple(label["name"] for label in scale_set.labels),
        session_owner=scale_set.session.owner if scale_set.session else None,
        max_capacity=scale_set.max_capacity,
        statistics=statistics,
    )
