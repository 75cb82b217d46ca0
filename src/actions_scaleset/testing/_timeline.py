"""What the clock makes due: arrivals, session expiry, time-outs, routing, assignment,
and the simulated runners' progress (docs/protocol.md, "Wire format", "The long poll").

`advance(state)` is `State.tick()`: each step reports whether it moved anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._model import Job, JobState, ScaleSet

if TYPE_CHECKING:
    from ._state import State

__all__ = ["advance"]


def advance(state: State) -> bool:
    """Apply everything due now; True when anything changed."""
    moved = [
        _expire_sessions(state),
        _arrive(state),
        _time_out(state),
        _route(state),
        _assign(state),
        _simulate(state),
    ]
    return any(moved)


def _expire_sessions(state: State) -> bool:
    limit = state.now() - state.settings.session_timeout
    moved = False
    for scale_set in state.scale_sets.values():
        if scale_set.session is not None and scale_set.session.last_seen < limit:
            scale_set.session, moved = None, True
    for runner in state.runners.values():
        if runner.session is not None and runner.session.last_seen < limit:
            runner.session, moved = None, True
    return moved


def _arrive(state: State) -> bool:
    now, moved = state.now(), False
    for job in state.jobs.values():
        if job.state is JobState.SCHEDULED and job.arrive_at <= now:
            job.state, job.queued_at, moved = JobState.QUEUED, now, True
    return moved


def _time_out(state: State) -> bool:
    now, moved = state.now(), False
    for job in state.jobs.values():
        if (
            job.state is JobState.ASSIGNED
            and (job.assigned_at or now) + state.settings.assignment_timeout <= now
        ):
            _requeue(state, job)
            moved = True
        elif (
            job.state is JobState.RUNNING
            and job.locked_until is not None
            and job.locked_until <= now
            and not _is_simulated(state, job)
        ):
            state.finish(job, "abandoned")
            moved = True
    return moved


def _is_simulated(state: State, job: Job) -> bool:
    runner = state.runners.get(job.runner_id) if job.runner_id else None
    return runner is not None and runner.simulated


def _requeue(state: State, job: Job) -> None:
    """Not picked up in time: `JobCompleted(canceled)`, then queued again (or canceled for good)."""
    state.release(job)
    job.finished_at = state.now()
    state.emit(job, "JobCompleted", {"result": "canceled", "runnerId": 0, "runnerName": ""})
    if job.requeues >= state.settings.max_requeues:
        job.state, job.result = JobState.COMPLETED, "canceled"
        return
    job.requeues += 1
    job.request_id = state.new_id("request")
    job.finished_at = None
    state.unroute(job)


def _route(state: State) -> bool:
    moved = False
    for job in state.jobs.values():
        if job.state is not JobState.QUEUED:
            continue
        target = _scale_set_for(state, job)
        if target is None:
            continue
        job.scale_set_id, job.scale_set_assigned_at = target.id, state.now()
        if state.settings.require_acquire:
            job.state = JobState.AVAILABLE
            state.emit(job, "JobAvailable")
        else:
            job.state = JobState.ACQUIRED
        moved = True
    return moved


def _scale_set_for(state: State, job: Job) -> ScaleSet | None:
    scopes = state.job_scopes(job)
    wanted = {label.casefold() for label in job.labels}
    matches = [
        s
        for s in state.scale_sets.values()
        if not s.deleted and s.tenant.key in scopes and wanted and wanted <= s.label_names()
    ]
    return min(matches, key=lambda s: (scopes.index(s.tenant.key), s.id), default=None)


def _assign(state: State) -> bool:
    moved = False
    for scale_set in state.scale_sets.values():
        if scale_set.deleted:
            continue
        capacity = scale_set.max_capacity
        busy = len(state.jobs_of(scale_set, JobState.ASSIGNED)) + len(
            state.jobs_of(scale_set, JobState.RUNNING)
        )
        for job in sorted(
            state.jobs_of(scale_set, JobState.ACQUIRED), key=lambda j: j.scale_set_assigned_at or 0
        ):
            if capacity is not None and busy >= capacity:
                break
            job.state, job.assigned_at = JobState.ASSIGNED, state.now()
            state.emit(job, "JobAssigned")
            busy += 1
            moved = True
    return moved


def _simulate(state: State) -> bool:
    moved = False
    for runner in state.live_runners():
        if not runner.simulated:
            continue
        if runner.job_id is None:
            job = state.next_job_for(runner)
            if job is not None:
                state.bind(runner, job)
                state.start(runner, job)
                moved = True
            continue
        job = state.jobs[runner.job_id]
        due = (job.runner_assigned_at or 0.0) + job.duration <= state.now()
        if job.state is JobState.RUNNING and (job.cancel_requested or due):
            state.finish(job, "canceled" if job.cancel_requested else job.conclusion)
            moved = True
    return moved
