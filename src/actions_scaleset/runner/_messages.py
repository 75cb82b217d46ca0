"""Runner messages from the broker (v2) and the pipelines queue (v1), parsed (docs/protocol.md,
"Polling and runner messages").

The envelope is `{"messageId", "messageType", "iv", "body"}`; `body` is a JSON
*string*, AES-encrypted on v1 when `iv` is set. `parse_message` returns one of
the message classes below, or `UnknownMessage` for a type it does not know.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Final, TypeAlias

import attrs

from .._http import url_problem
from ..errors import InvalidResponseError
from ..models import camel_wire, json_problem, load_json, structure
from ._jobmessage import JobMessage, parse_job_message

__all__ = [
    "AgentRefresh",
    "BrokerMigration",
    "ForceTokenRefresh",
    "JobCancellation",
    "MessageEnvelope",
    "PipelineJobRequest",
    "RunnerJobRequest",
    "RunnerMessage",
    "RunnerRefresh",
    "RunnerRefreshConfig",
    "RunnerShutdown",
    "UnknownMessage",
    "parse_message",
    "parse_timespan",
]

_UTF8_BOM: Final = "\ufeff"
_TIMESPAN: Final = re.compile(r"^(-)?(?:(\d+)\.)?(\d+):(\d{1,2}):(\d{1,2})(?:\.(\d+))?$")


@camel_wire
@attrs.frozen
class MessageEnvelope:
    """`TaskAgentMessage`. Broker message ids may be negative or absent; never assume order."""

    message_type: str = ""
    message_id: int | None = None
    iv: str | None = None
    body: str | None = None


@attrs.frozen
class RunnerJobRequest:
    """v2 `RunnerJobRequest`: a reference to a job, fetched with `acquirejob` (docs/protocol.md,
    "Polling and runner messages", "Acquire, renew, complete")."""

    runner_request_id: str
    run_service_url: str = ""
    billing_owner_id: str | None = None
    should_acknowledge: bool = False
    id: str | None = None
    message_id: int | None = None


@attrs.frozen
class PipelineJobRequest:
    """v1 `PipelineAgentJobRequest`: the whole job, already in the message (docs/protocol.md,
    "Broker (v2) and pipelines (v1)")."""

    job: JobMessage
    message_id: int | None = None

    @property
    def runner_request_id(self) -> str:
        return self.job.job_id


@camel_wire
@attrs.frozen
class JobCancellation:
    """Cancel the running job `job_id`; the worker gets `max(timeout, 60 s) - 15 s` to stop
    (docs/protocol.md, "Polling and runner messages")."""

    job_id: str
    timeout: timedelta | None = None
    message_id: int | None = None


@attrs.frozen
class ForceTokenRefresh:
    """Fetch new OAuth tokens."""

    message_id: int | None = None


@camel_wire
@attrs.frozen
class BrokerMigration:
    """Poll `{broker_base_url}message` from now on, keeping the session id (docs/protocol.md,
    "Polling and runner messages")."""

    broker_base_url: str
    message_id: int | None = None


@attrs.frozen
class RunnerRefresh:
    """A v2 self-update offer. This package reports it and never updates itself."""

    target_version: str = ""
    download_url: str = ""
    sha256_checksum: str = ""
    os: str = ""
    message_id: int | None = None


@camel_wire
@attrs.frozen
class AgentRefresh:
    """A v1 self-update offer. Reported, never acted on."""

    target_version: str = ""
    agent_id: int | None = None
    timeout: timedelta | None = None
    message_id: int | None = None


@camel_wire
@attrs.frozen
class RunnerRefreshConfig:
    """The server wants the runner to fetch new `.runner`/`.credentials` files. Reported, not acted on."""

    config_type: str = ""
    service_type: str = ""
    runner_qualified_id: str = ""
    config_refresh_url: str = ""
    message_id: int | None = None


@attrs.frozen
class RunnerShutdown:
    """Stop now, without deleting the session (hosted runners)."""

    reason: str = ""
    message_id: int | None = None


@attrs.frozen
class UnknownMessage:
    """A message type this package does not know: logged and otherwise ignored."""

    message_type: str
    message_id: int | None = None
    body: str = attrs.field(default="", repr=False)


RunnerMessage: TypeAlias = (
    RunnerJobRequest
    | PipelineJobRequest
    | JobCancellation
    | ForceTokenRefresh
    | BrokerMigration
    | RunnerRefresh
    | AgentRefresh
    | RunnerRefreshConfig
    | RunnerShutdown
    | UnknownMessage
)


def parse_timespan(text: str) -> timedelta:
    """A .NET `TimeSpan` string: `[-][d.]hh:mm:ss[.fffffff]`. Raises ValueError."""
    match = _TIMESPAN.match(text.strip())
    if match is None:
        raise ValueError(f"not a .NET time span: {text[:40]!r}")
    sign, days, hours, minutes, seconds, fraction = match.groups()
    value = timedelta(
        days=int(days or 0),
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds),
        microseconds=int((fraction or "0")[:6].ljust(6, "0")),
    )
    return -value if sign else value


def _body_json(body: str, message_type: str) -> Any:
    try:
        return load_json(body)
    except ValueError as exc:
        raise InvalidResponseError(
            f"the body of a {message_type} message is not JSON ({json_problem(exc)})"
        ) from None


def _body_object(body: str, message_type: str) -> Mapping[str, Any]:
    if not body.removeprefix(_UTF8_BOM).strip():
        return {}
    value = _body_json(body, message_type)
    if not isinstance(value, Mapping):
        raise InvalidResponseError(f"the body of a {message_type} message is not a JSON object")
    return value


def _pop_timeout(data: Mapping[str, Any], message_type: str) -> tuple[dict[str, Any], timedelta | None]:
    out = dict(data)
    timeout = None
    for key in [key for key in out if key.lower() == "timeout"]:
        raw = out.pop(key)
        if isinstance(raw, str) and raw:
            try:
                timeout = parse_timespan(raw)
            except ValueError:
                raise InvalidResponseError(
                    f"the `timeout` of a {message_type} message is not a time span"
                ) from None
    return out, timeout


def _check_url(message: RunnerMessage) -> None:
    """A URL the runner will send to is checked when it arrives, not at its first use."""
    if isinstance(message, BrokerMigration):
        name, url = "brokerBaseUrl", message.broker_base_url
    elif isinstance(message, RunnerJobRequest) and message.run_service_url:
        name, url = "run_service_url", message.run_service_url
    else:
        return
    problem = url_problem(url)
    if problem is not None:
        kind = type(message).__name__
        raise InvalidResponseError(f"the `{name}` of a {kind} message cannot be used: {problem}")


_SIMPLE: Final[Mapping[str, type[Any]]] = {
    "RunnerJobRequest": RunnerJobRequest,
    "JobCancellation": JobCancellation,
    "BrokerMigration": BrokerMigration,
    "RunnerRefresh": RunnerRefresh,
    "AgentRefresh": AgentRefresh,
    "RunnerRefreshConfig": RunnerRefreshConfig,
    "RunnerShutdown": RunnerShutdown,
}


def parse_message(
    payload: Any,
    *,
    decrypt: Callable[[str, str], str] | None = None,
) -> RunnerMessage:
    """Parse one polled message. `decrypt(iv, body)` handles v1 encrypted bodies.

    A body that cannot be used raises `InvalidResponseError` (the listener logs it
    and polls on). Message types match case-insensitively.
    """
    envelope = structure(payload, MessageEnvelope, "a runner message")
    body = envelope.body or ""
    if envelope.iv and decrypt is not None and body:
        body = decrypt(envelope.iv, body)
    kind = envelope.message_type
    known = {name.lower(): name for name in (*_SIMPLE, "PipelineAgentJobRequest", "ForceTokenRefresh")}
    canonical = known.get(kind.lower())
    message_id = envelope.message_id
    if canonical == "ForceTokenRefresh":
        return ForceTokenRefresh(message_id=message_id)
    if canonical == "PipelineAgentJobRequest":
        job_payload = _body_json(body, canonical)
        return PipelineJobRequest(job=parse_job_message(job_payload), message_id=message_id)
    if canonical is None:
        return UnknownMessage(kind, message_id, body)
    data, timeout = _pop_timeout(_body_object(body, canonical), canonical)
    data.pop("message_id", None)
    data.pop("messageId", None)
    message: RunnerMessage = structure(data, _SIMPLE[canonical], f"a {canonical} message")
    _check_url(message)
    if isinstance(message, JobCancellation | AgentRefresh):
        return attrs.evolve(message, timeout=timeout, message_id=message_id)
    return attrs.evolve(message, message_id=message_id)
