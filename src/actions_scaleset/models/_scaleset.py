"""Actions-service payloads: scale sets, sessions, messages, job events, JIT configs (docs/protocol.md,
"Wire format").

Plain frozen attrs classes with snake_case attributes. They know nothing about the
wire: `_converter` maps their names to camelCase, handles the quirks (capital-R
`RunnerSetting`, `encodedJITConfig`, the JSON-in-a-string message `body`, zero
times, Go's `omitempty`) and builds `RunnerScaleSetMessage.events` once, when a
message is decoded. Reprs are short and never show a secret, and neither do the
tables `_repr_html_` draws for a notebook.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Final, Generic, TypeAlias, TypeVar

import attrs

from .._html import Row, html_table
from .._secret import Secret

__all__ = [
    "JOB_MESSAGES_TYPE",
    "AcquirableJob",
    "AcquirableJobList",
    "ActionsServiceAdminConnection",
    "Int64List",
    "JitRunnerConfig",
    "JobAssigned",
    "JobAvailable",
    "JobCompleted",
    "JobEvent",
    "JobMessageBase",
    "JobStarted",
    "Label",
    "ListEnvelope",
    "RunnerGroup",
    "RunnerGroupList",
    "RunnerReference",
    "RunnerReferenceList",
    "RunnerScaleSet",
    "RunnerScaleSetList",
    "RunnerScaleSetMessage",
    "RunnerScaleSetSession",
    "RunnerScaleSetStatistic",
    "RunnerSetting",
    "UnknownJobEvent",
]

T = TypeVar("T")

JOB_MESSAGES_TYPE: Final = "RunnerScaleSetJobMessages"
"""The only `messageType` of a `RunnerScaleSetMessage` whose body holds job events (docs/protocol.md,
"Wire format")."""


_EVENT_LIMIT: Final = 10
"""A message's notebook table lists this many job events, then how many more there are."""


def _repo(owner: str, repository: str) -> str:
    return f"{owner}/{repository}" if owner and repository else repository or owner


def _counts(statistics: RunnerScaleSetStatistic | None) -> str | None:
    return statistics._counts() if statistics is not None else None


def _event_summary(event: JobEvent) -> str:
    if isinstance(event, UnknownJobEvent):
        return f"{len(event.raw)} fields"
    return event._repr_fields()


def _runner_rows(runner: RunnerReference) -> list[Row]:
    return [("id", runner.id), ("name", runner.name), ("runner_scale_set_id", runner.runner_scale_set_id)]


# --------------------------------------------------------------------------- scale sets


@attrs.frozen
class Label:
    """A scale-set label; GitHub's clients only ever use `type="System"`."""

    name: str
    type: str = "System"


@attrs.frozen(kw_only=True)
class RunnerSetting:
    """The scale set's runner settings; None means "not said" and is never sent."""

    ephemeral: bool | None = None
    is_elastic: bool | None = None
    disable_update: bool | None = None


@attrs.frozen(kw_only=True, repr=False)
class RunnerScaleSetStatistic:
    """Job and runner counts for a scale set. Scale on `total_assigned_jobs` (docs/protocol.md,
    "Listener semantics")."""

    total_available_jobs: int = 0
    total_acquired_jobs: int = 0
    total_assigned_jobs: int = 0
    total_running_jobs: int = 0
    total_registered_runners: int = 0
    total_busy_runners: int = 0
    total_idle_runners: int = 0

    def _counts(self) -> str:
        return (
            f"available={self.total_available_jobs}, "
            f"acquired={self.total_acquired_jobs}, assigned={self.total_assigned_jobs}, "
            f"running={self.total_running_jobs}, registered={self.total_registered_runners}, "
            f"busy={self.total_busy_runners}, idle={self.total_idle_runners}"
        )

    def __repr__(self) -> str:
        return f"RunnerScaleSetStatistic({self._counts()})"

    def _repr_html_(self) -> str:
        return html_table(
            type(self).__name__, [(f.name, getattr(self, f.name)) for f in attrs.fields(type(self))]
        )


@attrs.frozen(kw_only=True, repr=False)
class RunnerScaleSet:
    """A runner scale set. Only `id` is required, so partial responses decode."""

    id: int
    name: str = ""
    runner_group_id: int = 0
    runner_group_name: str = ""
    labels: tuple[Label, ...] = ()
    runner_setting: RunnerSetting = attrs.field(factory=RunnerSetting, metadata={"wire": "RunnerSetting"})
    created_on: datetime | None = None
    runner_jit_config_url: str = ""
    statistics: RunnerScaleSetStatistic | None = None

    def __repr__(self) -> str:
        if self.runner_group_name:
            group = f"group={self.runner_group_name!r}"
        else:
            group = f"group_id={self.runner_group_id}"
        labels = [label.name for label in self.labels]
        return f"RunnerScaleSet(id={self.id}, name={self.name!r}, {group}, labels={labels!r})"

    def _repr_html_(self) -> str:
        setting = self.runner_setting
        return html_table(
            type(self).__name__,
            [
                ("id", self.id),
                ("name", self.name),
                ("runner_group_id", self.runner_group_id),
                ("runner_group_name", self.runner_group_name),
                ("labels", [label.name for label in self.labels]),
                ("ephemeral", setting.ephemeral),
                ("is_elastic", setting.is_elastic),
                ("disable_update", setting.disable_update),
                ("created_on", self.created_on),
                ("runner_jit_config_url", self.runner_jit_config_url),
                ("statistics", _counts(self.statistics)),
            ],
        )


@attrs.frozen(kw_only=True, repr=False)
class RunnerScaleSetSession:
    """A message session: where to long-poll and the token for it (docs/protocol.md, "Wire format",
    "A 409 from a stale session")."""

    session_id: str | None = None
    owner_name: str = ""
    runner_scale_set: RunnerScaleSet | None = None
    message_queue_url: str
    message_queue_access_token: Secret
    statistics: RunnerScaleSetStatistic | None = None

    def __repr__(self) -> str:
        scale_set = self.runner_scale_set.id if self.runner_scale_set is not None else None
        return (
            f"RunnerScaleSetSession(session_id={self.session_id!r}, owner={self.owner_name!r}, "
            f"scale_set={scale_set!r}, statistics={self.statistics!r})"
        )


# --------------------------------------------------------------------------- job events


@attrs.frozen(kw_only=True, repr=False)
class JobMessageBase:
    """The fields every job event carries (Go's `JobMessageBase`).

    Times are None when the service sends the zero time (not yet happened).
    """

    message_type: ClassVar[str] = ""

    runner_request_id: int
    repository_name: str = ""
    owner_name: str = ""
    job_id: str = ""
    job_workflow_ref: str = ""
    job_display_name: str = ""
    workflow_run_id: int = 0
    event_name: str = ""
    request_labels: tuple[str, ...] = ()
    queue_time: datetime | None = None
    scale_set_assign_time: datetime | None = None
    runner_assign_time: datetime | None = None
    finish_time: datetime | None = None

    def _repr_fields(self) -> str:
        return (
            f"runner_request_id={self.runner_request_id}, "
            f"repo={_repo(self.owner_name, self.repository_name)!r}, job={self.job_display_name!r}"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._repr_fields()})"

    def _html_extra(self) -> list[Row]:
        """The rows a subclass adds after the request, repository and job."""
        return []

    def _repr_html_(self) -> str:
        return html_table(
            type(self).__name__,
            [
                ("runner_request_id", self.runner_request_id),
                ("repository", _repo(self.owner_name, self.repository_name)),
                ("job_display_name", self.job_display_name),
                *self._html_extra(),
                ("job_id", self.job_id),
                ("job_workflow_ref", self.job_workflow_ref),
                ("workflow_run_id", self.workflow_run_id),
                ("event_name", self.event_name),
                ("request_labels", self.request_labels),
                ("queue_time", self.queue_time),
                ("scale_set_assign_time", self.scale_set_assign_time),
                ("runner_assign_time", self.runner_assign_time),
                ("finish_time", self.finish_time),
            ],
        )


@attrs.frozen(kw_only=True, repr=False)
class JobAvailable(JobMessageBase):
    """A job the scale set may take; acquire it with its `runner_request_id`."""

    message_type: ClassVar[str] = "JobAvailable"

    acquire_job_url: str = ""

    def _repr_fields(self) -> str:
        return f"{super()._repr_fields()}, labels={list(self.request_labels)!r}"

    def _html_extra(self) -> list[Row]:
        return [("acquire_job_url", self.acquire_job_url)]


@attrs.frozen(kw_only=True, repr=False)
class JobAssigned(JobMessageBase):
    """A job assigned to the scale set, waiting for a runner."""

    message_type: ClassVar[str] = "JobAssigned"


@attrs.frozen(kw_only=True, repr=False)
class JobStarted(JobMessageBase):
    """A job a runner started; `runner_name` is the name given to the JIT config."""

    message_type: ClassVar[str] = "JobStarted"

    runner_id: int = 0
    runner_name: str = ""

    def _repr_fields(self) -> str:
        return f"{super()._repr_fields()}, runner={self.runner_name!r}"

    def _html_extra(self) -> list[Row]:
        return [("runner_id", self.runner_id), ("runner_name", self.runner_name)]


@attrs.frozen(kw_only=True, repr=False)
class JobCompleted(JobMessageBase):
    """A job that finished; `result` is e.g. `succeeded`, `failed` or `canceled`.

    A job canceled before it reached a runner has `runner_assign_time` None,
    `runner_id` 0 and `runner_name` "".
    """

    message_type: ClassVar[str] = "JobCompleted"

    result: str = ""
    runner_id: int = 0
    runner_name: str = ""

    def _repr_fields(self) -> str:
        return f"{super()._repr_fields()}, result={self.result!r}, runner={self.runner_name!r}"

    def _html_extra(self) -> list[Row]:
        return [("result", self.result), ("runner_id", self.runner_id), ("runner_name", self.runner_name)]


@attrs.frozen(repr=False)
class UnknownJobEvent:
    """A job message of a type this version does not know, kept as received.

    `raw` is the whole wire object, `messageType` included.
    """

    message_type: str
    raw: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def __repr__(self) -> str:
        return f"UnknownJobEvent(message_type={self.message_type!r}, fields={len(self.raw)})"

    def _repr_html_(self) -> str:
        # the raw object is not shown: an unknown event may carry anything
        return html_table(
            type(self).__name__, [("message_type", self.message_type), ("fields", len(self.raw))]
        )


JobEvent: TypeAlias = JobAvailable | JobAssigned | JobStarted | JobCompleted | UnknownJobEvent


@attrs.frozen(kw_only=True, repr=False)
class RunnerScaleSetMessage:
    """One long-poll answer: job events and the scale set's current statistics.

    `events` is parsed once, when the message is decoded, from `body` (a JSON
    string holding a list, docs/protocol.md, "Wire format"); it is empty when `message_type` is not
    `RunnerScaleSetJobMessages`. Scale on `statistics`, not on event counts.
    """

    message_id: int
    message_type: str
    body: str = ""
    statistics: RunnerScaleSetStatistic | None = None
    events: tuple[JobEvent, ...] = ()

    @property
    def jobs_available(self) -> tuple[JobAvailable, ...]:
        return tuple(event for event in self.events if isinstance(event, JobAvailable))

    @property
    def jobs_assigned(self) -> tuple[JobAssigned, ...]:
        return tuple(event for event in self.events if isinstance(event, JobAssigned))

    @property
    def jobs_started(self) -> tuple[JobStarted, ...]:
        return tuple(event for event in self.events if isinstance(event, JobStarted))

    @property
    def jobs_completed(self) -> tuple[JobCompleted, ...]:
        return tuple(event for event in self.events if isinstance(event, JobCompleted))

    @property
    def unknown_events(self) -> tuple[UnknownJobEvent, ...]:
        return tuple(event for event in self.events if isinstance(event, UnknownJobEvent))

    def _event_counts(self) -> str:
        """`1 available, 2 completed`: the events counted by kind, in order of first appearance."""
        counts: dict[str, int] = {}
        for event in self.events:
            kind = event.message_type.removeprefix("Job").lower()
            if isinstance(event, UnknownJobEvent):
                kind = "unknown"
            counts[kind] = counts.get(kind, 0) + 1
        return ", ".join(f"{count} {kind}" for kind, count in counts.items())

    def __repr__(self) -> str:
        kind = "" if self.message_type == JOB_MESSAGES_TYPE else f", type={self.message_type!r}"
        return (
            f"RunnerScaleSetMessage(id={self.message_id}{kind}, events=[{self._event_counts()}], "
            f"statistics={self.statistics!r})"
        )

    def _repr_html_(self) -> str:
        """The id, type and statistics, then one short row per event (the first few only)."""
        shown = self.events[:_EVENT_LIMIT]
        rows: list[Row] = [
            ("message_id", self.message_id),
            ("message_type", self.message_type),
            ("statistics", _counts(self.statistics)),
            ("events", self._event_counts() or None),
            *((event.message_type, _event_summary(event)) for event in shown),
        ]
        if len(self.events) > len(shown):
            rows.append(("\u2026", f"{len(self.events) - len(shown)} more"))
        return html_table(type(self).__name__, rows)


@attrs.frozen(kw_only=True, repr=False)
class AcquirableJob:
    """An element of the legacy `acquirablejobs` list (docs/protocol.md, "Wire format"); `message_type` is
    likely `JobAvailable`."""

    acquire_job_url: str = ""
    message_type: str = ""
    runner_request_id: int
    repository_name: str = ""
    owner_name: str = ""
    job_workflow_ref: str = ""
    event_name: str = ""
    request_labels: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (
            f"AcquirableJob(runner_request_id={self.runner_request_id}, "
            f"repo={_repo(self.owner_name, self.repository_name)!r}, labels={list(self.request_labels)!r})"
        )

    def _repr_html_(self) -> str:
        return html_table(
            type(self).__name__,
            [
                ("runner_request_id", self.runner_request_id),
                ("repository", _repo(self.owner_name, self.repository_name)),
                ("message_type", self.message_type),
                ("job_workflow_ref", self.job_workflow_ref),
                ("event_name", self.event_name),
                ("request_labels", self.request_labels),
                ("acquire_job_url", self.acquire_job_url),
            ],
        )


# --------------------------------------------------------------------------- runners, groups, JIT


@attrs.frozen
class RunnerReference:
    """A runner registered with the Actions service (an "agent")."""

    id: int
    name: str
    runner_scale_set_id: int = 0

    def _repr_html_(self) -> str:
        return html_table(type(self).__name__, _runner_rows(self))


@attrs.frozen
class RunnerGroup:
    id: int
    name: str
    size: int = 0
    is_default_group: bool = False


@attrs.frozen
class JitRunnerConfig:
    """A just-in-time runner: its registration and the single-use config to start it with."""

    runner: RunnerReference
    encoded_jit_config: Secret = attrs.field(metadata={"wire": "encodedJITConfig"})

    def _repr_html_(self) -> str:
        # the Secret shows as its mask; its value is never asked for
        rows = [*_runner_rows(self.runner), ("encoded_jit_config", self.encoded_jit_config)]
        return html_table(type(self).__name__, rows)


@attrs.frozen
class ActionsServiceAdminConnection:
    """`POST /actions/runner-registration`: the Actions service base URL and its admin JWT."""

    url: str
    token: Secret


# --------------------------------------------------------------------------- lists


@attrs.frozen
class ListEnvelope(Generic[T]):
    """The service's list shape, `{"count": n, "value": [...]}`; either key may be absent."""

    count: int = 0
    value: tuple[T, ...] = ()


RunnerScaleSetList: TypeAlias = ListEnvelope[RunnerScaleSet]
RunnerGroupList: TypeAlias = ListEnvelope[RunnerGroup]
RunnerReferenceList: TypeAlias = ListEnvelope[RunnerReference]
AcquirableJobList: TypeAlias = ListEnvelope[AcquirableJob]
Int64List: TypeAlias = ListEnvelope[int]
