"""Wire JSON the fake sends, built from the spec's field lists (docs/protocol.md, "Wire format")."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from ._model import Job, Runner, RunnerGroup, ScaleSet

__all__ = [
    "ZERO_TIME",
    "Statistics",
    "dotnet_time",
    "job_event",
    "runner_group_json",
    "runner_reference",
    "scale_set_json",
]

ZERO_TIME: Final = "0001-01-01T00:00:00Z"


@attrs.frozen
class Statistics:
    """`RunnerScaleSetStatistic`, always computed from the jobs and runners of the moment."""

    total_available_jobs: int = 0
    total_acquired_jobs: int = 0
    total_assigned_jobs: int = 0
    total_running_jobs: int = 0
    total_registered_runners: int = 0
    total_busy_runners: int = 0
    total_idle_runners: int = 0

    def to_wire(self) -> dict[str, int]:
        return {
            "totalAvailableJobs": self.total_available_jobs,
            "totalAcquiredJobs": self.total_acquired_jobs,
            "totalAssignedJobs": self.total_assigned_jobs,
            "totalRunningJobs": self.total_running_jobs,
            "totalRegisteredRunners": self.total_registered_runners,
            "totalBusyRunners": self.total_busy_runners,
            "totalIdleRunners": self.total_idle_runners,
        }


def dotnet_time(timestamp: float | None) -> str:
    """`2026-05-04T10:07:18.4410000Z`: seven fraction digits, as .NET writes; None → zero time."""
    if timestamp is None:
        return ZERO_TIME
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def scale_set_json(
    scale_set: ScaleSet, group: RunnerGroup | None, admin_url: str | None, statistics: Statistics | None
) -> dict[str, Any]:
    """A `RunnerScaleSet`; without `admin_url` and statistics as embedded in a session.

    Scale-set runners are always ephemeral and elastic, so the service reports both.
    """
    body: dict[str, Any] = {
        "id": scale_set.id,
        "name": scale_set.name,
        "runnerGroupId": scale_set.group_id,
        "runnerGroupName": group.name if group else "",
        "labels": [dict(label) for label in scale_set.labels],
        "RunnerSetting": {
            "ephemeral": True,
            "isElastic": True,
            "disableUpdate": bool(scale_set.setting.get("disableUpdate", False)),
        },
        "createdOn": dotnet_time(scale_set.created_at),
    }
    if admin_url is not None:
        body["runnerJitConfigUrl"] = (
            f"{admin_url}_apis/runtime/runnerscalesets/{scale_set.id}/generatejitconfig"
        )
    if statistics is not None:
        body["statistics"] = statistics.to_wire()
    return body


def runner_group_json(group: RunnerGroup, size: int) -> dict[str, Any]:
    return {"id": group.id, "name": group.name, "size": size, "isDefaultGroup": group.is_default}


def runner_reference(runner: Runner) -> dict[str, Any]:
    return {"id": runner.id, "name": runner.name, "runnerScaleSetId": runner.scale_set_id or 0}


def job_event(job: Job, message_type: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One element of a message body, fields in the order the service writes them.

    `JobAvailable` carries an `acquireJobUrl` placeholder (None) filled in at delivery,
    when the host the listener uses is known.
    """
    head: dict[str, Any] = dict(extra or {})
    if message_type == "JobAvailable":
        head = {"acquireJobUrl": None, **head}
    return {
        **head,
        "messageType": message_type,
        "runnerRequestId": job.request_id,
        "repositoryName": job.repository_name,
        "ownerName": job.owner,
        "jobId": job.id,
        "jobWorkflowRef": job.workflow_ref,
        "jobDisplayName": job.display_name,
        "workflowRunId": job.workflow_run_id,
        "eventName": job.event_name,
        "requestLabels": list(job.labels),
        "queueTime": dotnet_time(job.queued_at),
        "scaleSetAssignTime": dotnet_time(job.scale_set_assigned_at),
        "runnerAssignTime": dotnet_time(job.runner_assigned_at),
        "finishTime": dotnet_time(job.finished_at),
    }


def acquirable_job(job: Job, acquire_url: str) -> dict[str, Any]:
    """An `AcquirableJob` (legacy `acquirablejobs`)."""
    return {
        "acquireJobUrl": acquire_url,
        "messageType": "JobAvailable",
        "runnerRequestId": job.request_id,
        "repositoryName": job.repository_name,
        "ownerName": job.owner,
        "jobWorkflowRef": job.workflow_ref,
        "eventName": job.event_name,
        "requestLabels": list(job.labels),
    }
