"""The fake's records: scopes, runner groups, scale sets, sessions, runners, jobs.

Mutable attrs classes owned by `State`; nothing here does I/O or knows a URL.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Literal

import attrs

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

__all__ = [
    "BrokerSession",
    "Job",
    "JobState",
    "QueueMessage",
    "Runner",
    "RunnerGroup",
    "ScaleSet",
    "ScaleSetSession",
    "ScopeKey",
    "ScopeKind",
    "Settings",
    "Tenant",
]

ScopeKind = Literal["org", "repo", "enterprise"]
ScopeKey = tuple[ScopeKind, str]
"""(`org`, `acme`), (`repo`, `acme/app`) or (`enterprise`, `big`); names in lower case."""


@attrs.frozen
class Settings:
    """Lifetimes, timeouts and switches of one `FakeGitHub` (seconds of the injected clock)."""

    poll_hold: float = 0.2
    """How long an empty long poll is held before the 202 (real time; the service holds ~50 s)."""
    session_timeout: float = 120.0
    """A session (scale-set or broker) not seen for this long is stale and may be replaced."""
    assignment_timeout: float = 300.0
    """An assigned job no runner started within this long is canceled and re-queued."""
    max_requeues: int = 3
    lock_duration: float = 600.0
    """`renewjob` extends a running job's lock by this much; a lapsed lock abandons the job."""
    admin_token_lifetime: float = 3600.0
    message_queue_token_lifetime: float = 3000.0
    runner_token_lifetime: float = 3600.0
    job_token_lifetime: float = 21600.0
    registration_token_lifetime: float = 3600.0
    installation_token_lifetime: float = 3600.0
    require_acquire: bool = True
    """GHES behaviour: jobs stay available until `acquirejobs`. False: jobs arrive assigned."""
    auto_start_runners: bool = False
    """Every JIT runner comes online at once as a simulated runner (see `FakeGitHub.start_runner`)."""
    runner_key_size: int = 2048
    jit_style: Literal["native", "string"] = "native"
    """`.runner` values as JSON natives, or as the strings some server-generated configs carry."""
    queue_url_query: bool = False
    """The `messageQueueUrl` carries `?sessionId=…&api-version=…` (the older pipelines shape), and
    the queue refuses a call that dropped it with a 401."""
    queue_unauthorized_style: Literal["actions", "broker", "oauth"] = "actions"
    """The body of a 401 from the message queue and `acquirejobs`: the Actions service's
    `typeName` shape, the broker's `errorKind` shape, or an OAuth `{"error": …}`."""
    refresh_statistics: bool = True
    """A session refresh (`PATCH`) answers with `statistics`; False leaves them out."""
    acquirable_jobs: bool = True
    """The tenant serves `acquirablejobs`; False answers 404, as a broker tenant may."""


@attrs.define(eq=False)
class RunnerGroup:
    id: int
    name: str
    is_default: bool = False


@attrs.define(eq=False)
class Tenant:
    """One enterprise, organization or repository: its own groups, scale sets and runners."""

    key: ScopeKey
    id: str
    """The tenant segment of the Actions service URL."""
    groups: dict[int, RunnerGroup] = attrs.field(factory=dict)

    @property
    def kind(self) -> ScopeKind:
        return self.key[0]

    @property
    def name(self) -> str:
        return self.key[1]

    def group_by_name(self, name: str) -> RunnerGroup | None:
        wanted = name.casefold()
        return next((g for g in self.groups.values() if g.name.casefold() == wanted), None)


@attrs.define(eq=False)
class QueueMessage:
    id: int
    events: list[dict[str, Any]]
    acked: bool = False


@attrs.define(eq=False)
class ScaleSetSession:
    id: str
    owner: str
    last_seen: float


@attrs.define(eq=False)
class ScaleSet:
    id: int
    tenant: Tenant
    name: str
    group_id: int
    labels: list[dict[str, str]]
    setting: dict[str, Any]
    created_at: float
    max_capacity: int | None = None
    """The last `X-ScaleSetMaxCapacity` the listener sent (None: never polled, no limit)."""
    pending: list[dict[str, Any]] = attrs.field(factory=list)
    """Job events not yet put in a message."""
    messages: list[QueueMessage] = attrs.field(factory=list)
    session: ScaleSetSession | None = None
    deleted: bool = False

    def label_names(self) -> set[str]:
        return {label["name"].casefold() for label in self.labels}


@attrs.define(eq=False)
class BrokerSession:
    id: str
    owner: str
    last_seen: float


@attrs.define(eq=False)
class Runner:
    id: int
    name: str
    tenant: Tenant
    group_id: int
    scale_set_id: int | None
    labels: tuple[str, ...]
    client_id: str
    public_key: RSAPublicKey
    authorization_url: str
    """The OAuth token endpoint and the client assertion's audience."""
    work_folder: str
    created_at: float
    session: BrokerSession | None = None
    job_id: str | None = None
    outbox: list[str] = attrs.field(factory=list)
    """Job ids whose `JobCancellation` waits for the runner's next poll."""
    simulated: bool = False
    deleted: bool = False
    os: str = "Linux"


class JobState(enum.StrEnum):
    SCHEDULED = "scheduled"
    """Not arrived yet (a workload's future job)."""
    QUEUED = "queued"
    """Waiting for a matching scale set or runner."""
    AVAILABLE = "available"
    """Offered to a scale set (`JobAvailable`); waiting for `acquirejobs`."""
    ACQUIRED = "acquired"
    """Acquired by the listener; waiting for capacity (`X-ScaleSetMaxCapacity`)."""
    ASSIGNED = "assigned"
    """Assigned to the scale set (`JobAssigned`); waiting for one of its runners."""
    RUNNING = "running"
    """A runner acquired it (`JobStarted`)."""
    COMPLETED = "completed"


@attrs.define(eq=False)
class Job:
    id: str
    """The job GUID (`jobId`; the runner's `runner_request_id`)."""
    request_id: int
    """`runnerRequestId` on the scale-set side; a re-queued job gets a new one."""
    repository: str
    labels: tuple[str, ...]
    display_name: str
    workflow_ref: str
    event_name: str
    workflow_run_id: int
    plan_id: str
    duration: float
    """How long a simulated runner takes to run it."""
    conclusion: str
    """What a simulated runner reports."""
    arrive_at: float
    state: JobState = JobState.SCHEDULED
    queued_at: float | None = None
    scale_set_id: int | None = None
    scale_set_assigned_at: float | None = None
    assigned_at: float | None = None
    runner_id: int | None = None
    runner_name: str = ""
    runner_assigned_at: float | None = None
    finished_at: float | None = None
    result: str | None = None
    requeues: int = 0
    acknowledged: bool = False
    locked_until: float | None = None
    cancel_requested: bool = False
    billing_owner_id: str = "O_FAKE"
    history: list[str] = attrs.field(factory=list)
    """Every scale-set event sent for this job, in order (`JobAvailable`, …)."""
    steps: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    """Step records reported to the results service, by `external_id`."""

    @property
    def owner(self) -> str:
        return self.repository.partition("/")[0]

    @property
    def repository_name(self) -> str:
        return self.repository.partition("/")[2]
