"""The exception tree, and the pure function that maps an HTTP response to it.

Every exception the public API raises is an `ActionsScaleSetError`::

    ActionsScaleSetError
    ├── ConfigurationError                   (also a ValueError: bad input from you)
    │   ├── InvalidConfigURLError
    │   ├── InvalidPrivateKeyError
    │   └── InvalidJitConfigError
    └── RequestError                         (.method, .url: secrets stripped)
        ├── TransportError                   (no response arrived)
        │   ├── RequestTimeoutError
        │   └── NetworkError
        ├── InvalidResponseError             (a response we cannot use: empty, not JSON,
        │                                     wrong shape; .status_code, .reason)
        └── HTTPStatusError                  (.status_code, .activity_id,
            │                                 .github_request_id, .body)
            ├── BadRequestError                       400
            │   └── JobStillRunningError              JobStillRunningException
            ├── AuthenticationError                   401
            │   └── MessageQueueTokenExpiredError     401 on a message-queue call
            ├── PermissionDeniedError                 403
            ├── NotFoundError                         404
            │   ├── ScaleSetNotFoundError             RunnerScaleSetNotFoundException
            │   ├── RunnerNotFoundError               AgentNotFoundException
            │   └── RunnerGroupNotFoundError          no runner group of that name
            ├── ConflictError                         409
            │   ├── SessionConflictError              RunnerScaleSetSessionConflictException
            │   └── RunnerExistsError                 AgentExistsException
            ├── UnprocessableEntityError              422
            ├── RateLimitError                        403/429 from GitHub REST (.retry_after)
            │   ├── PrimaryRateLimitError
            │   └── SecondaryRateLimitError
            ├── ServerError                           5xx
            ├── OAuthError                            runner token endpoint (.error)
            ├── RunServiceError                       runner run service (acquire/renew/complete)
            └── BrokerError                           runner broker (.error_kind)
                ├── RunnerSessionInvalidError         RunnerSessionInvalid
                ├── BrokerRunnerNotFoundError         RunnerNotFound (also a RunnerNotFoundError)
                ├── RunnerVersionTooOldError          RunnerVersionTooOld
                ├── HostedRunnerDeprovisionedError    HostedRunnerDeprovisioned
                ├── AcknowledgeJobNotFoundError       AcknowledgeJobNotFound
                └── RunnerSessionConflictError        409 on broker session create

Actions-service exceptions are chosen by a substring of the body's `typeName`
(docs/protocol.md, "Exception names in error bodies"), VSS runner errors by `typeKey`, broker errors by
`errorKind`, OAuth errors by
`error` (docs/protocol.md, "Runner errors"), REST rate limits as GitHub's docs say
(docs/protocol.md, "Exception names in error bodies"). No message ever contains a token or a key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar, Final, TypeVar

from ._json import load_json
from ._redact import redact_url, scrub_text

__all__ = [
    "AcknowledgeJobNotFoundError",
    "ActionsScaleSetError",
    "AuthenticationError",
    "BadRequestError",
    "BrokerError",
    "BrokerRunnerNotFoundError",
    "ConfigurationError",
    "ConflictError",
    "HTTPStatusError",
    "HostedRunnerDeprovisionedError",
    "InvalidConfigURLError",
    "InvalidJitConfigError",
    "InvalidPrivateKeyError",
    "InvalidResponseError",
    "JobStillRunningError",
    "MessageQueueTokenExpiredError",
    "NetworkError",
    "NotFoundError",
    "OAuthError",
    "PermissionDeniedError",
    "PrimaryRateLimitError",
    "RateLimitError",
    "RequestError",
    "RequestTimeoutError",
    "RunServiceError",
    "RunnerExistsError",
    "RunnerGroupNotFoundError",
    "RunnerNotFoundError",
    "RunnerSessionConflictError",
    "RunnerSessionInvalidError",
    "RunnerVersionTooOldError",
    "ScaleSetNotFoundError",
    "SecondaryRateLimitError",
    "ServerError",
    "SessionConflictError",
    "TransportError",
    "UnprocessableEntityError",
    "error_from_response",
]

_BODY_SUMMARY_LIMIT: Final = 300


class ActionsScaleSetError(Exception):
    """The root of every error this package raises."""


# --------------------------------------------------------------------------- configuration


class ConfigurationError(ActionsScaleSetError, ValueError):
    """Bad input from the caller: a URL, a key or a JIT config that cannot be used."""


class InvalidConfigURLError(ConfigurationError):
    """The GitHub config URL does not point to an enterprise, organization or repository."""


class InvalidPrivateKeyError(ConfigurationError):
    """The GitHub App private key is not a PEM RSA private key (PKCS#1 or PKCS#8)."""


class InvalidJitConfigError(ConfigurationError):
    """A just-in-time runner config blob that cannot be decoded."""


# --------------------------------------------------------------------------- requests


class RequestError(ActionsScaleSetError):
    """A request failed. `url` never carries credentials."""

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        self.method = method
        self.url = redact_url(url) if url is not None else None
        self.message = scrub_text(message)
        super().__init__(self._render())

    def _render(self) -> str:
        if self.method and self.url:
            return f"{self.message} (request {self.method} {self.url})"
        return self.message


class TransportError(RequestError):
    """No response arrived: the connection failed or timed out."""


class RequestTimeoutError(TransportError):
    """The request timed out."""


class NetworkError(TransportError):
    """The connection could not be made, or broke before a response arrived."""


class _WithIds(RequestError):
    status_code: int
    activity_id: str | None
    github_request_id: str | None

    def _render(self) -> str:
        parts = [self.message]
        ids = []
        if self.activity_id:
            ids.append(f"ActivityId {self.activity_id}")
        if self.github_request_id:
            ids.append(f"X-GitHub-Request-Id {self.github_request_id}")
        if self.method and self.url:
            ids.append(f"request {self.method} {self.url}")
        if ids:
            parts.append(", ".join(ids))
        return "\n".join(parts)


class InvalidResponseError(_WithIds):
    """The server answered, but the response cannot be used (empty, not JSON, wrong shape).

    The body is never kept: a successful response may hold a token.
    """

    def __init__(
        self,
        reason: str,
        *,
        method: str | None = None,
        url: str | None = None,
        status_code: int = 0,
        activity_id: str | None = None,
        github_request_id: str | None = None,
    ) -> None:
        self.reason = scrub_text(reason)
        self.status_code = status_code
        self.activity_id = activity_id
        self.github_request_id = github_request_id
        status = f" ({_status_text(status_code)})" if status_code else ""
        super().__init__(f"unusable response{status}: {reason}", method=method, url=url)


class HTTPStatusError(_WithIds):
    """The server answered with an error status.

    `body` is the parsed JSON body (a dict or list), the text of a non-JSON body,
    or None when the body was empty. `headers` are the response's headers (never
    shown in the message).
    """

    default_status: ClassVar[int] = 0

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        url: str | None = None,
        status_code: int | None = None,
        activity_id: str | None = None,
        github_request_id: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = status_code if status_code is not None else self.default_status
        self.activity_id = activity_id
        self.github_request_id = github_request_id
        self.body = body
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        super().__init__(message, method=method, url=url)

    def as_error(self, cls: type[_StatusErrorT], message: str, **extra: Any) -> _StatusErrorT:
        """This failure as `cls` with a new message; the request, ids, body and headers are kept."""
        return cls(
            message,
            method=self.method,
            url=self.url,
            status_code=self.status_code,
            activity_id=self.activity_id,
            github_request_id=self.github_request_id,
            body=self.body,
            headers=self.headers,
            **extra,
        )


_StatusErrorT = TypeVar("_StatusErrorT", bound=HTTPStatusError)


class BadRequestError(HTTPStatusError):
    default_status = 400


class AuthenticationError(HTTPStatusError):
    default_status = 401


class PermissionDeniedError(HTTPStatusError):
    default_status = 403


class NotFoundError(HTTPStatusError):
    default_status = 404


class ConflictError(HTTPStatusError):
    default_status = 409


class UnprocessableEntityError(HTTPStatusError):
    default_status = 422


class ServerError(HTTPStatusError):
    default_status = 500


class RateLimitError(HTTPStatusError):
    """GitHub REST refused the request for a rate limit; `retry_after` is in seconds."""

    default_status = 429

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class PrimaryRateLimitError(RateLimitError):
    """The hourly quota is used up (`x-ratelimit-remaining: 0`)."""


class SecondaryRateLimitError(RateLimitError):
    """Too many requests too fast (GitHub's secondary limits)."""


# Actions service exceptions (docs/protocol.md, "Exception names in error bodies")


class JobStillRunningError(BadRequestError):
    """The runner still runs a job, so it cannot be removed yet."""


class MessageQueueTokenExpiredError(AuthenticationError):
    """The message-queue token was refused; refresh the session (docs/protocol.md,
    "The message-queue token")."""


class ScaleSetNotFoundError(NotFoundError):
    """The scale set does not exist (deleted, or dormant for 7 days)."""


class RunnerNotFoundError(NotFoundError):
    """The runner does not exist (or was removed)."""


class RunnerGroupNotFoundError(NotFoundError):
    """No runner group has that name."""


class SessionConflictError(ConflictError):
    """The scale set already has an active message session."""


class RunnerExistsError(ConflictError):
    """A runner with that name is already registered."""


# Runner protocol (docs/protocol.md, "Runner errors")


class OAuthError(HTTPStatusError):
    """The runner's token endpoint refused the client assertion.

    `error` is the OAuth error code; `invalid_client` means the runner
    registration is gone.
    """

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        error_description: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.error = error
        self.error_description = error_description
        super().__init__(message, **kwargs)

    @property
    def registration_deleted(self) -> bool:
        return self.error == "invalid_client"


class RunServiceError(HTTPStatusError):
    """The run service refused acquire, renew or complete (404, 409, 422 ...)."""


class BrokerError(HTTPStatusError):
    """The broker refused a runner call; `error_kind` says why."""

    def __init__(self, message: str, *, error_kind: str | None = None, **kwargs: Any) -> None:
        self.error_kind = error_kind
        super().__init__(message, **kwargs)


class RunnerSessionInvalidError(BrokerError):
    """The runner's broker session expired: create a new one."""


class BrokerRunnerNotFoundError(BrokerError, RunnerNotFoundError):
    """The broker no longer knows this runner: its registration is gone."""


class RunnerVersionTooOldError(BrokerError):
    """The broker refuses this runner version."""


class HostedRunnerDeprovisionedError(BrokerError):
    """The hosted runner was deprovisioned."""


class AcknowledgeJobNotFoundError(BrokerError):
    """The job being acknowledged no longer exists."""


class RunnerSessionConflictError(BrokerError, ConflictError):
    """The runner already has a broker session (a previous process did not clean up)."""


# --------------------------------------------------------------------------- mapping

_BY_STATUS: Final[Mapping[int, type[HTTPStatusError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}

# Substrings of `typeName`, matched in order (docs/protocol.md, "Exception names in error bodies":
# strings.Contains).
_BY_TYPE_NAME: Final[tuple[tuple[str, type[HTTPStatusError]], ...]] = (
    ("RunnerScaleSetSessionConflictException", SessionConflictError),
    ("RunnerScaleSetNotFoundException", ScaleSetNotFoundError),
    ("AgentExistsException", RunnerExistsError),
    ("AgentNotFoundException", RunnerNotFoundError),
    ("JobStillRunningException", JobStillRunningError),
)

_BY_ERROR_KIND: Final[Mapping[str, type[BrokerError]]] = {
    "RunnerSessionInvalid": RunnerSessionInvalidError,
    "RunnerNotFound": BrokerRunnerNotFoundError,
    "RunnerVersionTooOld": RunnerVersionTooOldError,
    "HostedRunnerDeprovisioned": HostedRunnerDeprovisionedError,
    "AcknowledgeJobNotFound": AcknowledgeJobNotFoundError,
}

# VSS (pipelines, v1 runner) bodies name their exception in `typeKey` (docs/protocol.md, "Runner errors").
_BY_TYPE_KEY: Final[Mapping[str, type[BrokerError]]] = {
    "TaskAgentSessionExpiredException": RunnerSessionInvalidError,
    "TaskAgentSessionConflictException": RunnerSessionConflictError,
    "TaskAgentNotFoundException": BrokerRunnerNotFoundError,
}

_DEFAULT_SECONDARY_WAIT: Final = 60.0


def error_from_response(
    *,
    method: str,
    url: str,
    status_code: int,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    unauthorized: type[AuthenticationError] = AuthenticationError,
) -> HTTPStatusError:
    """Build the typed error for an error response. Pure: no I/O, time passed in.

    `headers` must be case-insensitive (an `httpx.Headers`, say). `unauthorized`
    is the class for a 401, for calls whose 401 means something specific
    (a message-queue call: `MessageQueueTokenExpiredError`).
    """
    parsed = parse_error_body(body, headers.get("content-type", ""))
    common: dict[str, Any] = {
        "method": method,
        "url": url,
        "status_code": status_code,
        "activity_id": headers.get("activityid") or None,
        "github_request_id": headers.get("x-github-request-id") or None,
        "body": parsed,
        "headers": headers,
    }
    detail = _summarise(parsed)
    head = _status_text(status_code)
    if status_code == 401 and unauthorized is not AuthenticationError:
        # The call decides what its 401 means, whatever the body looks like: on the message
        # queue a broker- or OAuth-shaped 401 is still an expired message-queue token
        # (actions/scaleset `getMessage`; docs/protocol.md, "The 401 rules").
        return unauthorized(f"{detail} ({head})", **common)
    if isinstance(parsed, dict):
        by_body = _error_from_body(
            parsed,
            detail=detail,
            head=head,
            status_code=status_code,
            unauthorized=unauthorized,
            common=common,
        )
        if by_body is not None:
            return by_body

    if status_code in (403, 429):
        rate_limited = classify_rate_limit(status_code, headers, detail, now=now)
        if rate_limited is not None:
            cls_rl, retry_after = rate_limited
            wait = f"; retry after {retry_after:.0f} s" if retry_after is not None else ""
            return cls_rl(f"{detail} ({head}{wait})", retry_after=retry_after, **common)

    return _class_for_status(status_code, unauthorized)(f"{detail} ({head})", **common)


def _error_from_body(
    parsed: dict[str, Any],
    *,
    detail: str,
    head: str,
    status_code: int,
    unauthorized: type[AuthenticationError],
    common: dict[str, Any],
) -> HTTPStatusError | None:
    """The error a body names: VSS `typeKey`, Actions `typeName`, broker, run service, OAuth."""
    type_key = parsed.get("typeKey")
    if isinstance(type_key, str) and type_key in _BY_TYPE_KEY:
        return _BY_TYPE_KEY[type_key](f"{detail} ({head}, {type_key})", error_kind=type_key, **common)
    type_name = parsed.get("typeName")
    if isinstance(type_name, str) and type_name:
        short = type_name.split(",")[0].rsplit(".", 1)[-1]
        cls = _class_for_type_name(type_name) or _class_for_status(status_code, unauthorized)
        return cls(f"{detail} ({head}, {short})", **common)
    if parsed.get("source") == "actions-broker-listener" or "errorKind" in parsed:
        kind = parsed.get("errorKind")
        kind = kind if isinstance(kind, str) else None
        broker_cls = _BY_ERROR_KIND.get(kind or "")
        if broker_cls is None:
            broker_cls = RunnerSessionConflictError if status_code == 409 else BrokerError
        return broker_cls(f"{detail} ({head}, broker {kind or 'error'})", error_kind=kind, **common)
    if parsed.get("source") == "actions-run-service":
        return RunServiceError(f"{detail} ({head}, run service)", **common)
    if isinstance(parsed.get("error"), str) and "message" not in parsed:
        description = parsed.get("error_description")
        return OAuthError(
            f"{detail} ({head}, OAuth {parsed['error']})",
            error=parsed["error"],
            error_description=description if isinstance(description, str) else None,
            **common,
        )
    return None


def classify_rate_limit(
    status_code: int, headers: Mapping[str, str], message: str, *, now: float
) -> tuple[type[RateLimitError], float | None] | None:
    """Decide whether a 403/429 is a rate limit, which kind, and how long to wait.

    GitHub's docs: `retry-after` → wait that long (secondary); `x-ratelimit-remaining: 0`
    → wait until `x-ratelimit-reset` (primary, unless the message says secondary);
    a message mentioning the secondary limit → at least a minute. A 429 is always a
    rate limit; a 403 only with one of those signs.
    """
    retry_after = parse_retry_after(headers.get("retry-after"), now=now)
    remaining = headers.get("x-ratelimit-remaining")
    secondary_text = "secondary rate" in message.lower()
    if retry_after is not None:
        return SecondaryRateLimitError, retry_after
    if remaining == "0":
        reset = _parse_float(headers.get("x-ratelimit-reset"))
        wait = max(0.0, reset - now) if reset is not None else None
        if secondary_text:
            return SecondaryRateLimitError, wait if wait is not None else _DEFAULT_SECONDARY_WAIT
        return PrimaryRateLimitError, wait
    if secondary_text or "rate limit" in message.lower():
        return SecondaryRateLimitError, _DEFAULT_SECONDARY_WAIT
    if status_code == 429:
        return SecondaryRateLimitError, None
    return None


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` value: delta-seconds or an HTTP-date."""
    if value is None:
        return None
    value = value.strip()
    seconds = _parse_float(value)
    if seconds is not None:
        return max(0.0, seconds)
    import email.utils  # only for HTTP-date values, rarely seen

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def parse_error_body(body: bytes, content_type: str = "") -> Any:
    """The parsed JSON of an error body, its text when not JSON (or nested too deeply), None when empty."""
    text = body.decode("utf-8", errors="replace").lstrip("\ufeff").strip()
    if not text:
        return None
    if "text/plain" not in content_type.lower():
        try:
            return load_json(text)
        except ValueError:
            pass
    return text


def _class_for_type_name(type_name: str) -> type[HTTPStatusError] | None:
    for needle, cls in _BY_TYPE_NAME:
        if needle in type_name:
            return cls
    return None


def _class_for_status(status_code: int, unauthorized: type[AuthenticationError]) -> type[HTTPStatusError]:
    if status_code == 401:
        return unauthorized
    if status_code >= 500:
        return ServerError
    return _BY_STATUS.get(status_code, HTTPStatusError)


def _summarise(parsed: Any) -> str:
    if parsed is None:
        return "empty response body"
    if isinstance(parsed, dict):
        for key in ("message", "errorMessage", "error_description", "error"):
            value = parsed.get(key)
            if isinstance(value, str) and value:
                return _truncate(value)
    if isinstance(parsed, str):
        return _truncate(parsed)
    return _truncate(json.dumps(parsed, separators=(",", ":")))


def _truncate(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _BODY_SUMMARY_LIMIT:
        return text[: _BODY_SUMMARY_LIMIT - 1] + "…"
    return text


def _status_text(status_code: int) -> str:
    try:
        return f"{status_code} {HTTPStatus(status_code).phrase}"
    except ValueError:
        return f"status {status_code}"


def _parse_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
