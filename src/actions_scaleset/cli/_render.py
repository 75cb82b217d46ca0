"""Models → JSON objects and table rows. Pure: no I/O, no rich, no secrets.

Each `*_json` function gives the one stable shape its command prints with `--json`
(docs/cli.md lists them); each `*_table` the rows of its readable table. Absent values
are `null` in JSON and `-` in tables; every key is always present.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import attrs

from ..models import (
    AcquirableJob,
    GitHubRunner,
    JobCompleted,
    JobEvent,
    JobStarted,
    RunnerScaleSet,
    RunnerScaleSetMessage,
    RunnerScaleSetStatistic,
    UnknownJobEvent,
)
from ._errors import PROG

if TYPE_CHECKING:
    from ..runner import JitConfig

__all__ = [
    "HIDDEN",
    "STATISTICS",
    "TableData",
    "event_json",
    "event_text",
    "jit_json",
    "jit_settings_json",
    "jit_table",
    "job_json",
    "jobs_table",
    "message_json",
    "message_line",
    "runner_json",
    "runners_table",
    "scale_set_json",
    "scale_set_ref",
    "scale_set_table",
    "scale_sets_table",
    "statistics_json",
    "statistics_text",
    "stats_table",
]

HIDDEN: Final = "(hidden)"
NONE: Final = "-"
STATISTICS: Final = (
    ("total_available_jobs", "available jobs"),
    ("total_acquired_jobs", "acquired jobs"),
    ("total_assigned_jobs", "assigned jobs"),
    ("total_running_jobs", "running jobs"),
    ("total_registered_runners", "registered runners"),
    ("total_busy_runners", "busy runners"),
    ("total_idle_runners", "idle runners"),
)
"""The statistics' keys, in the order shown, with their labels."""


@attrs.frozen
class TableData:
    """A table to print: a title, column headers, and rows of cells."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    title: str | None = None


def _cell(value: object) -> str:
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) or NONE
    return str(value)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _repository(owner: str, name: str) -> str | None:
    if owner and name and "/" not in name:
        return f"{owner}/{name}"
    return name or owner or None


def _group(scale_set: RunnerScaleSet) -> str:
    return scale_set.runner_group_name or str(scale_set.runner_group_id)


# --------------------------------------------------------------------------- scale sets


def statistics_json(statistics: RunnerScaleSetStatistic | None) -> dict[str, int] | None:
    if statistics is None:
        return None
    return {key: int(getattr(statistics, key)) for key, _ in STATISTICS}


def scale_set_ref(scale_set: RunnerScaleSet) -> dict[str, Any]:
    return {"id": scale_set.id, "name": scale_set.name}


def scale_set_json(scale_set: RunnerScaleSet) -> dict[str, Any]:
    setting = scale_set.runner_setting
    return {
        "id": scale_set.id,
        "name": scale_set.name,
        "runner_group_id": scale_set.runner_group_id,
        "runner_group_name": scale_set.runner_group_name or None,
        "labels": [label.name for label in scale_set.labels],
        "runner_setting": {
            "ephemeral": setting.ephemeral,
            "is_elastic": setting.is_elastic,
            "disable_update": setting.disable_update,
        },
        "created_on": _time(scale_set.created_on),
        "statistics": statistics_json(scale_set.statistics),
    }


def scale_sets_table(scale_sets: Sequence[RunnerScaleSet], where: str) -> TableData:
    rows = []
    for s in scale_sets:
        stats = s.statistics
        counts: tuple[int | None, ...] = (None,) * 4
        if stats is not None:
            counts = (
                stats.total_assigned_jobs,
                stats.total_running_jobs,
                stats.total_registered_runners,
                stats.total_busy_runners,
            )
        labels = _cell([label.name for label in s.labels])
        rows.append((str(s.id), s.name, _group(s), labels, *(_cell(count) for count in counts)))
    return TableData(
        ("ID", "NAME", "GROUP", "LABELS", "ASSIGNED", "RUNNING", "RUNNERS", "BUSY"),
        tuple(rows),
        title=f"{len(rows)} scale set{'' if len(rows) == 1 else 's'} in {where}",
    )


def scale_set_table(scale_set: RunnerScaleSet) -> TableData:
    setting = scale_set.runner_setting
    rows: list[tuple[str, str]] = [
        ("id", str(scale_set.id)),
        ("name", scale_set.name),
        ("runner group", f"{_group(scale_set)} (id {scale_set.runner_group_id})"),
        ("labels", _cell([label.name for label in scale_set.labels])),
        ("ephemeral", _cell(setting.ephemeral)),
        ("elastic", _cell(setting.is_elastic)),
        ("updates disabled", _cell(setting.disable_update)),
        ("created", _cell(scale_set.created_on)),
    ]
    if scale_set.statistics is not None:
        rows += [(label, str(getattr(scale_set.statistics, key))) for key, label in STATISTICS]
    return TableData(("FIELD", "VALUE"), tuple(rows), title=f"scale set {scale_set.name!r}")


def stats_table(scale_set: RunnerScaleSet, acquirable: int | None) -> TableData:
    statistics = scale_set.statistics
    rows = [
        (label, str(getattr(statistics, key)) if statistics is not None else NONE)
        for key, label in STATISTICS
    ]
    rows.append(("acquirable jobs", str(acquirable) if acquirable is not None else "not served here"))
    return TableData(
        ("STATISTIC", "VALUE"), tuple(rows), title=f"scale set {scale_set.name!r} (id {scale_set.id})"
    )


# --------------------------------------------------------------------------- jobs and runners


def job_json(job: AcquirableJob) -> dict[str, Any]:
    return {
        "runner_request_id": job.runner_request_id,
        "message_type": job.message_type or None,
        "repository": _repository(job.owner_name, job.repository_name),
        "job_workflow_ref": job.job_workflow_ref or None,
        "event_name": job.event_name or None,
        "labels": list(job.request_labels),
    }


def jobs_table(scale_set: RunnerScaleSet, jobs: Sequence[AcquirableJob]) -> TableData:
    rows = tuple(
        (
            str(job.runner_request_id),
            _cell(_repository(job.owner_name, job.repository_name)),
            _cell(job.job_workflow_ref),
            _cell(job.event_name),
            _cell(list(job.request_labels)),
        )
        for job in jobs
    )
    title = f"{len(rows)} job{'' if len(rows) == 1 else 's'} waiting for scale set {scale_set.name!r}"
    return TableData(("REQUEST", "REPOSITORY", "WORKFLOW", "EVENT", "LABELS"), rows, title=title)


def runner_json(runner: GitHubRunner) -> dict[str, Any]:
    return {
        "id": runner.id,
        "name": runner.name,
        "os": runner.os,
        "status": runner.status,
        "busy": runner.busy,
        "ephemeral": runner.ephemeral,
        "runner_group_id": runner.runner_group_id,
        "labels": [label.name for label in runner.labels],
    }


def runners_table(runners: Sequence[GitHubRunner], title: str) -> TableData:
    rows = tuple(
        (
            str(r.id),
            r.name,
            _cell(r.status),
            _cell(r.busy),
            _cell(r.os),
            _cell(r.runner_group_id),
            _cell([label.name for label in r.labels]),
        )
        for r in runners
    )
    return TableData(("ID", "NAME", "STATUS", "BUSY", "OS", "GROUP ID", "LABELS"), rows, title=title)


# --------------------------------------------------------------------------- JIT configs


def jit_settings_json(config: JitConfig) -> dict[str, Any]:
    """The decoded config's settings; the RSA key and any access token only say they are there."""
    return config.settings(hidden=HIDDEN)


def jit_json(
    scale_set: RunnerScaleSet, runner_id: int, runner_name: str, config: JitConfig, encoded: str | None
) -> dict[str, Any]:
    """`jit --json`; `encoded` (the secret) is None unless `--reveal`."""
    return {
        "scale_set": scale_set_ref(scale_set),
        "runner": {"id": runner_id, "name": runner_name},
        "settings": jit_settings_json(config),
        "encoded_jit_config": encoded,
        "remove_command": f"{PROG} runners remove {runner_id}",
    }


def jit_table(config: JitConfig, revealed: bool) -> TableData:
    settings = jit_settings_json(config)
    rows = tuple((key.replace("_", " "), _cell(value)) for key, value in settings.items())
    encoded = "printed below" if revealed else f"{HIDDEN}: add --reveal to print it"
    return TableData(("SETTING", "VALUE"), (*rows, ("encoded JIT config", encoded)), title="JIT config")


# --------------------------------------------------------------------------- messages


def event_json(event: JobEvent) -> dict[str, Any]:
    """A job event; the keys a kind of event lacks are null."""
    if isinstance(event, UnknownJobEvent):
        return dict.fromkeys(_EVENT_KEYS) | {"type": event.message_type}
    runner_id = event.runner_id if isinstance(event, JobStarted | JobCompleted) else None
    runner_name = event.runner_name if isinstance(event, JobStarted | JobCompleted) else None
    return {
        "type": event.message_type,
        "runner_request_id": event.runner_request_id,
        "job_id": event.job_id or None,
        "repository": _repository(event.owner_name, event.repository_name),
        "job_display_name": event.job_display_name or None,
        "job_workflow_ref": event.job_workflow_ref or None,
        "event_name": event.event_name or None,
        "labels": list(event.request_labels),
        "runner_id": runner_id or None,
        "runner_name": runner_name or None,
        "result": (event.result or None) if isinstance(event, JobCompleted) else None,
    }


_EVENT_KEYS: Final = (
    "type",
    "runner_request_id",
    "job_id",
    "repository",
    "job_display_name",
    "job_workflow_ref",
    "event_name",
    "labels",
    "runner_id",
    "runner_name",
    "result",
)


def message_json(message: RunnerScaleSetMessage, acquired: Sequence[int]) -> dict[str, Any]:
    return {
        "message_id": message.message_id,
        "message_type": message.message_type,
        "statistics": statistics_json(message.statistics),
        "events": [event_json(event) for event in message.events],
        "acquired": list(acquired),
    }


def event_text(event: JobEvent) -> str:
    """`JobAvailable #12 acme/app 'build'`, with the runner or result when the event has them."""
    if isinstance(event, UnknownJobEvent):
        return event.message_type
    parts = [f"{event.message_type} #{event.runner_request_id}"]
    repository = _repository(event.owner_name, event.repository_name)
    if repository:
        parts.append(repository)
    if event.job_display_name:
        parts.append(repr(event.job_display_name))
    if isinstance(event, JobCompleted) and event.result:
        parts.append(event.result)
    if isinstance(event, JobStarted | JobCompleted) and event.runner_name:
        parts.append(f"on {event.runner_name}")
    return " ".join(parts)


def statistics_text(statistics: RunnerScaleSetStatistic | None) -> str:
    if statistics is None:
        return "no statistics"
    s = statistics
    return (
        f"jobs available {s.total_available_jobs} acquired {s.total_acquired_jobs} "
        f"assigned {s.total_assigned_jobs} running {s.total_running_jobs} | "
        f"runners {s.total_registered_runners} busy {s.total_busy_runners} idle {s.total_idle_runners}"
    )


def message_line(message: RunnerScaleSetMessage, acquired: Sequence[int], at: datetime) -> str:
    """One message on one line: time, id, statistics, events, what was acquired."""
    events = "; ".join(event_text(event) for event in message.events) or "no job events"
    kind = "" if message.message_type == "RunnerScaleSetJobMessages" else f" ({message.message_type})"
    statistics = statistics_text(message.statistics)
    line = f"{at:%H:%M:%S} message {message.message_id}{kind}: {statistics} | {events}"
    if acquired:
        line += f" | acquired {', '.join(f'#{job}' for job in acquired)}"
    return line
