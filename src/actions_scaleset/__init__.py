"""actions_scaleset: async SDK for GitHub Actions' runner scale-set service and runner protocol.

Runs on asyncio and trio (anyio). Public names are re-exported here; the modules
behind them are private unless documented. The errors, config and `Secret` load
with the package; the client layers load on first use, so importing the package
stays cheap for tools that need only part of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._secret import (
    Secret,
)
from ._version import (
    __version__,
)
from .config import (
    GitHubConfig,
    Scope,
)
from .errors import (
    AcknowledgeJobNotFoundError,
    ActionsScaleSetError,
    AuthenticationError,
    BadRequestError,
    BrokerError,
    BrokerRunnerNotFoundError,
    ConfigurationError,
    ConflictError,
    HostedRunnerDeprovisionedError,
    HTTPStatusError,
    InvalidConfigURLError,
    InvalidJitConfigError,
    InvalidPrivateKeyError,
    InvalidResponseError,
    JobStillRunningError,
    MessageQueueTokenExpiredError,
    NetworkError,
    NotFoundError,
    OAuthError,
    PermissionDeniedError,
    PrimaryRateLimitError,
    RateLimitError,
    RequestError,
    RequestTimeoutError,
    RunnerExistsError,
    RunnerGroupNotFoundError,
    RunnerNotFoundError,
    RunnerSessionConflictError,
    RunnerSessionInvalidError,
    RunnerVersionTooOldError,
    RunServiceError,
    ScaleSetNotFoundError,
    SecondaryRateLimitError,
    ServerError,
    SessionConflictError,
    TransportError,
    UnprocessableEntityError,
)

if TYPE_CHECKING:
    from ._http import (
        ACTIONS_RETRY,
        MESSAGE_POLL_RETRY,
        NO_RETRY,
        REGISTRATION_RETRY,
        REST_RETRY,
        SINGLE_USE_RETRY,
        RetryPolicy,
    )
    from ._system_info import SystemInfo
    from .actions import (
        ScaleSetClient,
    )
    from .auth import (
        Credentials,
        GitHubApp,
        PersonalAccessToken,
    )
    from .github import (
        GitHubClient,
    )
    from .group import ListenerGroup
    from .listener import (
        EnsureScaleSet,
        Listener,
        ListenerStatus,
        MetricsRecorder,
        NoopMetrics,
        Scaler,
        desired_runners,
    )
    from .metrics import PrometheusMetrics
    from .models import (
        AcquirableJob,
        ActionsPermissions,
        ActionsServiceAdminConnection,
        GitHubJitConfig,
        GitHubRunner,
        GitHubRunnerGroup,
        GitHubRunnerLabel,
        GitHubUser,
        Installation,
        InstallationToken,
        JitRunnerConfig,
        JobAssigned,
        JobAvailable,
        JobCompleted,
        JobEvent,
        JobStarted,
        Label,
        Organization,
        RegistrationToken,
        RunnerGroup,
        RunnerReference,
        RunnerScaleSet,
        RunnerScaleSetMessage,
        RunnerScaleSetSession,
        RunnerScaleSetStatistic,
        RunnerSetting,
        UnknownJobEvent,
    )
    from .session import (
        MessageSession,
    )

_LAZY: dict[str, str] = {
    "PrometheusMetrics": ".metrics",
    "ACTIONS_RETRY": "._http",
    "AcquirableJob": ".models",
    "ActionsPermissions": ".models",
    "ActionsServiceAdminConnection": ".models",
    "Credentials": ".auth",
    "EnsureScaleSet": ".listener",
    "GitHubApp": ".auth",
    "GitHubClient": ".github",
    "GitHubJitConfig": ".models",
    "GitHubRunner": ".models",
    "GitHubRunnerGroup": ".models",
    "GitHubRunnerLabel": ".models",
    "GitHubUser": ".models",
    "Installation": ".models",
    "InstallationToken": ".models",
    "JitRunnerConfig": ".models",
    "JobAssigned": ".models",
    "JobAvailable": ".models",
    "JobCompleted": ".models",
    "JobEvent": ".models",
    "JobStarted": ".models",
    "Label": ".models",
    "Listener": ".listener",
    "ListenerGroup": ".group",
    "ListenerStatus": ".listener",
    "MESSAGE_POLL_RETRY": "._http",
    "MessageSession": ".session",
    "MetricsRecorder": ".listener",
    "NO_RETRY": "._http",
    "NoopMetrics": ".listener",
    "Organization": ".models",
    "PersonalAccessToken": ".auth",
    "REGISTRATION_RETRY": "._http",
    "REST_RETRY": "._http",
    "RegistrationToken": ".models",
    "RetryPolicy": "._http",
    "RunnerGroup": ".models",
    "RunnerReference": ".models",
    "RunnerScaleSet": ".models",
    "RunnerScaleSetMessage": ".models",
    "RunnerScaleSetSession": ".models",
    "RunnerScaleSetStatistic": ".models",
    "RunnerSetting": ".models",
    "SINGLE_USE_RETRY": "._http",
    "ScaleSetClient": ".actions",
    "Scaler": ".listener",
    "SystemInfo": "._system_info",
    "UnknownJobEvent": ".models",
    "desired_runners": ".listener",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "ACTIONS_RETRY",
    "MESSAGE_POLL_RETRY",
    "NO_RETRY",
    "REGISTRATION_RETRY",
    "REST_RETRY",
    "SINGLE_USE_RETRY",
    "AcknowledgeJobNotFoundError",
    "AcquirableJob",
    "ActionsPermissions",
    "ActionsScaleSetError",
    "ActionsServiceAdminConnection",
    "AuthenticationError",
    "BadRequestError",
    "BrokerError",
    "BrokerRunnerNotFoundError",
    "ConfigurationError",
    "ConflictError",
    "Credentials",
    "EnsureScaleSet",
    "GitHubApp",
    "GitHubClient",
    "GitHubConfig",
    "GitHubJitConfig",
    "GitHubRunner",
    "GitHubRunnerGroup",
    "GitHubRunnerLabel",
    "GitHubUser",
    "HTTPStatusError",
    "HostedRunnerDeprovisionedError",
    "Installation",
    "InstallationToken",
    "InvalidConfigURLError",
    "InvalidJitConfigError",
    "InvalidPrivateKeyError",
    "InvalidResponseError",
    "JitRunnerConfig",
    "JobAssigned",
    "JobAvailable",
    "JobCompleted",
    "JobEvent",
    "JobStarted",
    "JobStillRunningError",
    "Label",
    "Listener",
    "ListenerGroup",
    "ListenerStatus",
    "MessageQueueTokenExpiredError",
    "MessageSession",
    "MetricsRecorder",
    "NetworkError",
    "NoopMetrics",
    "NotFoundError",
    "OAuthError",
    "Organization",
    "PermissionDeniedError",
    "PersonalAccessToken",
    "PrimaryRateLimitError",
    "PrometheusMetrics",
    "RateLimitError",
    "RegistrationToken",
    "RequestError",
    "RequestTimeoutError",
    "RetryPolicy",
    "RunServiceError",
    "RunnerExistsError",
    "RunnerGroup",
    "RunnerGroupNotFoundError",
    "RunnerNotFoundError",
    "RunnerReference",
    "RunnerScaleSet",
    "RunnerScaleSetMessage",
    "RunnerScaleSetSession",
    "RunnerScaleSetStatistic",
    "RunnerSessionConflictError",
    "RunnerSessionInvalidError",
    "RunnerSetting",
    "RunnerVersionTooOldError",
    "ScaleSetClient",
    "ScaleSetNotFoundError",
    "Scaler",
    "Scope",
    "SecondaryRateLimitError",
    "Secret",
    "ServerError",
    "SessionConflictError",
    "SystemInfo",
    "TransportError",
    "UnknownJobEvent",
    "UnprocessableEntityError",
    "__version__",
    "desired_runners",
]
