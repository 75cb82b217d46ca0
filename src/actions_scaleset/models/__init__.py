"""Wire types: frozen attrs classes built by one cattrs converter."""

from typing import TYPE_CHECKING, Any

from .._json import MAX_JSON_DEPTH, json_problem, load_json
from ._converter import (
    NIL_UUID,
    ZERO_TIME,
    camel_wire,
    cattrs_converter,
    format_job_events,
    format_timestamp,
    jit_config_request_body,
    parse_job_events,
    parse_timestamp,
    salvage_message,
    scale_set_request_body,
    session_request_body,
    structure,
    to_camel,
    unstructure,
)
from ._rest import (
    ActionsPermissions,
    GitHubJitConfig,
    GitHubRunner,
    GitHubRunnerGroup,
    GitHubRunnerLabel,
    GitHubUser,
    Installation,
    InstallationToken,
    Organization,
    RegistrationToken,
)
from ._scaleset import (
    JOB_MESSAGES_TYPE,
    AcquirableJob,
    AcquirableJobList,
    ActionsServiceAdminConnection,
    Int64List,
    JitRunnerConfig,
    JobAssigned,
    JobAvailable,
    JobCompleted,
    JobEvent,
    JobMessageBase,
    JobStarted,
    Label,
    ListEnvelope,
    RunnerGroup,
    RunnerGroupList,
    RunnerReference,
    RunnerReferenceList,
    RunnerScaleSet,
    RunnerScaleSetList,
    RunnerScaleSetMessage,
    RunnerScaleSetSession,
    RunnerScaleSetStatistic,
    RunnerSetting,
    UnknownJobEvent,
)

if TYPE_CHECKING:
    from ._converter import converter
else:

    def __getattr__(name: str) -> Any:
        # `converter` is built on first use: importing the models does not load cattrs (issue 16)
        if name == "converter":
            return cattrs_converter()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "JOB_MESSAGES_TYPE",
    "MAX_JSON_DEPTH",
    "NIL_UUID",
    "ZERO_TIME",
    "AcquirableJob",
    "AcquirableJobList",
    "ActionsPermissions",
    "ActionsServiceAdminConnection",
    "GitHubJitConfig",
    "GitHubRunner",
    "GitHubRunnerGroup",
    "GitHubRunnerLabel",
    "GitHubUser",
    "Installation",
    "InstallationToken",
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
    "Organization",
    "RegistrationToken",
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
    "camel_wire",
    "converter",
    "format_job_events",
    "format_timestamp",
    "jit_config_request_body",
    "json_problem",
    "load_json",
    "parse_job_events",
    "parse_timestamp",
    "salvage_message",
    "scale_set_request_body",
    "session_request_body",
    "structure",
    "to_camel",
    "unstructure",
]
