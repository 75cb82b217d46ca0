"""The job message (`AgentJobRequestMessage`) read into what a runner needs (docs/protocol.md,
"Acquire, renew, complete").

Parsing is pure and lenient about everything the protocol does not use; a
missing plan id, job id or `SystemVssConnection` raises `InvalidResponseError`.
The job token is a `Secret`; secret variables never show in a repr.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import attrs

from .._http import url_problem
from .._secret import Secret
from ..errors import InvalidResponseError
from ..models import parse_timestamp

__all__ = ["JobMessage", "JobStepInfo", "JobVariable", "MaskHint", "ServiceEndpoint", "parse_job_message"]

SYSTEM_CONNECTION: Final = "SystemVssConnection"
RESULTS_ENDPOINT_VARIABLE: Final = "system.github.results_endpoint"


@attrs.frozen(repr=False)
class JobVariable:
    """A job variable; a secret one never shows its value in a repr."""

    value: str
    is_secret: bool = False

    def __repr__(self) -> str:
        shown = "'**********'" if self.is_secret else repr(self.value)
        return f"JobVariable({shown}, is_secret={self.is_secret})"


@attrs.frozen
class MaskHint:
    """A value (`type` "value") or a regex (`type` "regex") to redact from logs."""

    type: str
    value: str = attrs.field(repr=False)


@attrs.frozen
class ServiceEndpoint:
    """One of `resources.endpoints`; `token` is `authorization.parameters.AccessToken`."""

    name: str
    url: str
    token: Secret | None = attrs.field(default=None, repr=False)
    data: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class JobStepInfo:
    """What a step of the job is: its id and display name (the rest stays in `raw`)."""

    id: str
    name: str
    type: str | None = None
    reference_type: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)


@attrs.frozen(repr=False)
class JobMessage:
    """The parts of an `AgentJobRequestMessage` the protocol uses.

    `raw` is the whole decoded message (with its tokens: never log it).
    """

    message_type: str
    plan_id: str
    plan_type: str
    timeline_id: str
    job_id: str
    job_display_name: str
    job_name: str
    request_id: int
    locked_until: datetime | None
    system_connection: ServiceEndpoint
    endpoints: tuple[ServiceEndpoint, ...]
    variables: Mapping[str, JobVariable]
    mask: tuple[MaskHint, ...]
    steps: tuple[JobStepInfo, ...]
    context_data: Mapping[str, Any]
    file_table: tuple[str, ...]
    billing_owner_id: str | None
    raw: Mapping[str, Any] = attrs.field(eq=False)

    def __repr__(self) -> str:
        return (
            f"JobMessage(job_id={self.job_id!r}, plan_id={self.plan_id!r}, "
            f"job_display_name={self.job_display_name!r}, request_id={self.request_id})"
        )

    @property
    def job_token(self) -> Secret:
        token = self.system_connection.token
        assert token is not None  # parse_job_message checked it
        return token

    @property
    def run_service_url(self) -> str:
        return self.system_connection.url

    @property
    def results_url(self) -> str | None:
        """The results base: `system.github.results_endpoint`, else the endpoint's `ResultsServiceUrl`."""
        variable = self.variables.get(RESULTS_ENDPOINT_VARIABLE)
        url = variable.value if variable is not None and variable.value else None
        url = url or _ci(self.system_connection.data, "ResultsServiceUrl")
        return url if isinstance(url, str) and url else None

    @property
    def secret_values(self) -> tuple[str, ...]:
        """Values to redact from logs: `mask` value hints and secret variables, longest first."""
        values = {hint.value for hint in self.mask if hint.type.lower() == "value" and hint.value}
        values |= {v.value for v in self.variables.values() if v.is_secret and v.value}
        token = self.system_connection.token
        if token:
            values.add(token.get_secret_value())
        return tuple(sorted(values, key=len, reverse=True))


def _ci(data: Mapping[str, Any], name: str) -> Any:
    if name in data:
        return data[name]
    lowered = name.lower()
    for key, value in data.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


def _bad(what: str) -> InvalidResponseError:
    return InvalidResponseError(f"the job message {what}")


def _text(data: Mapping[str, Any], name: str, *, required: bool = False, where: str = "") -> str:
    value = _ci(data, name)
    if value is None or value == "":
        if required:
            raise _bad(f"has no `{where}{name}`")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _bad(f"field `{where}{name}` is not a string")
    return str(value)


def _object(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = _ci(data, name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad(f"field `{name}` is not an object")
    return value


def _list(data: Mapping[str, Any], name: str) -> list[Any]:
    value = _ci(data, name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(f"field `{name}` is not an array")
    return value


def _endpoint(raw: Any) -> ServiceEndpoint:
    if not isinstance(raw, Mapping):
        raise _bad("has an endpoint that is not an object")
    authorization = _object(raw, "authorization")
    parameters = _ci(authorization, "parameters") or {}
    token = _ci(parameters, "AccessToken") if isinstance(parameters, Mapping) else None
    data = _ci(raw, "data") or {}
    return ServiceEndpoint(
        name=_text(raw, "name"),
        url=_text(raw, "url"),
        token=Secret(token) if isinstance(token, str) and token else None,
        data={str(k): v for k, v in data.items() if isinstance(v, str)} if isinstance(data, Mapping) else {},
    )


def _step(raw: Any, index: int) -> JobStepInfo:
    if not isinstance(raw, Mapping):
        raise _bad(f"step {index} is not an object")
    name = _ci(raw, "displayName")
    token = _ci(raw, "displayNameToken")
    if not isinstance(name, str) and isinstance(token, Mapping) and isinstance(token.get("lit"), str):
        name = token["lit"]
    reference = _ci(raw, "reference")
    reference_type = _ci(reference, "type") if isinstance(reference, Mapping) else None
    step_type = _ci(raw, "type")
    return JobStepInfo(
        id=_text(raw, "id"),
        name=name if isinstance(name, str) else f"Step {index + 1}",
        type=step_type if isinstance(step_type, str) else None,
        reference_type=reference_type if isinstance(reference_type, str) else None,
        raw=raw,
    )


def parse_job_message(payload: Any) -> JobMessage:
    """Read an `acquirejob` response or a v1 `PipelineAgentJobRequest` body. Raises `InvalidResponseError`.

    The run-service and results URLs the job will be reported to must be absolute http(s)
    URLs: they are checked here, not at their first use.
    """
    try:
        message = _parse(payload)
    except RecursionError:  # a value decoded by `load_json` is never this deep; one built elsewhere may be
        raise _bad("is nested too deeply to be read") from None
    _check_url(message.run_service_url, f"`{SYSTEM_CONNECTION}` endpoint URL")
    if message.results_url is not None:
        _check_url(message.results_url, "results service URL")
    return message


def _check_url(url: str, what: str) -> None:
    problem = url_problem(url)
    if problem is not None:
        raise _bad(f"{what} cannot be used: {problem}")


def _parse(payload: Any) -> JobMessage:
    if not isinstance(payload, Mapping):
        raise _bad("is not a JSON object")
    plan = _object(payload, "plan")
    timeline = _object(payload, "timeline")
    endpoints = tuple(_endpoint(raw) for raw in _list(_object(payload, "resources"), "endpoints"))
    system = next((e for e in endpoints if e.name.lower() == SYSTEM_CONNECTION.lower()), None)
    if system is None or not system.url:
        raise _bad(f"has no `{SYSTEM_CONNECTION}` endpoint with a URL")
    if system.token is None:
        raise _bad(f"has no job token (`{SYSTEM_CONNECTION}.authorization.parameters.AccessToken`)")

    variables: dict[str, JobVariable] = {}
    for name, raw in _object(payload, "variables").items():
        if isinstance(raw, Mapping):
            value = _ci(raw, "value")
            secret = _ci(raw, "isSecret") is True
            variables[str(name)] = JobVariable("" if value is None else str(value), secret)
    mask = tuple(
        MaskHint(str(_ci(hint, "type") or ""), str(_ci(hint, "value") or ""))
        for hint in _list(payload, "mask")
        if isinstance(hint, Mapping)
    )
    request_id = _ci(payload, "requestId")
    if request_id is None:
        request_id = 0
    if isinstance(request_id, bool) or not isinstance(request_id, int):
        raise _bad("field `requestId` is not an integer")
    locked_until_raw = _ci(payload, "lockedUntil")
    try:
        locked_until = parse_timestamp(locked_until_raw) if isinstance(locked_until_raw, str) else None
    except ValueError:
        raise _bad("field `lockedUntil` is not a timestamp") from None
    plan_id = _text(plan, "planId", required=True, where="plan.")
    billing_owner_id = _ci(payload, "billingOwnerId")
    return JobMessage(
        message_type=_text(payload, "messageType"),
        plan_id=plan_id,
        plan_type=_text(plan, "planType"),
        timeline_id=_text(timeline, "id") or plan_id,
        job_id=_text(payload, "jobId", required=True),
        job_display_name=_text(payload, "jobDisplayName"),
        job_name=_text(payload, "jobName"),
        request_id=request_id,
        locked_until=locked_until,
        system_connection=system,
        endpoints=endpoints,
        variables=variables,
        mask=mask,
        steps=tuple(_step(raw, index) for index, raw in enumerate(_list(payload, "steps"))),
        context_data=_object(payload, "contextData"),
        file_table=tuple(str(item) for item in _list(payload, "fileTable")),
        billing_owner_id=billing_owner_id if isinstance(billing_owner_id, str) else None,
        raw=payload,
    )
