"""Plain request/response values for the fake, and each service's error body.

Every surface of the fake answers errors in the shape its real counterpart uses
(docs/protocol.md, "Exception names in error bodies", docs/protocol.md, "Runner errors"): GitHub REST
`{"message", "documentation_url", "status"}`, the Actions service
`{"typeName", "message"}`, the broker `{"source", "errorKind", "statusCode",
"errorMessage"}`, the run service `{"source", "statusCode", "errorMessage"}`, the
OAuth endpoint `{"error", "error_description"}` and Twirp `{"code", "msg"}`.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import parse_qsl

import attrs

__all__ = [
    "BadBody",
    "ConnectionDropped",
    "HTTPFailure",
    "Request",
    "Response",
    "Surface",
    "actions_error",
    "actions_type_name",
    "broker_error",
    "error_for",
    "json_response",
    "oauth_error",
    "rest_error",
    "run_error",
    "twirp_error",
]

REST_DOCS: Final = "https://docs.github.com/rest"
_DISTRIBUTED_TASK: Final = ("GitHub.DistributedTask.WebApi", "GitHub.DistributedTask.WebApi")
_RUNTIME: Final = ("GitHub.Actions.Runtime.WebApi", "GitHub.Actions.Runtime.WebApi")
_VSS: Final = ("Microsoft.VisualStudio.Services.WebApi", "Microsoft.VisualStudio.Services.WebApi")
_NAMESPACES: Final[Mapping[str, tuple[str, str]]] = {
    "AgentExistsException": _DISTRIBUTED_TASK,
    "AgentNotFoundException": _DISTRIBUTED_TASK,
    "JobStillRunningException": _DISTRIBUTED_TASK,
    "TaskAgentPoolNotFoundException": _DISTRIBUTED_TASK,
    "VssVersionNotSpecifiedException": _VSS,
    "VssInvalidApiVersionException": _VSS,
    "VssUnauthorizedException": _VSS,
    "VssServiceException": _VSS,
}


class Surface(enum.StrEnum):
    """Which service a route belongs to: it decides the error body's shape."""

    REST = "rest"
    ACTIONS = "actions"
    OAUTH = "oauth"
    BROKER = "broker"
    RUN = "run"
    RESULTS = "results"
    BLOB = "blob"


class ConnectionDropped(Exception):
    """Raised by the app to drop the connection without an answer (a fault)."""


class BadBody(Exception):
    """The request body is not what the route accepts."""


@attrs.frozen
class Request:
    method: str
    path: str
    """Decoded path, `//` collapsed (the service tolerates `…//_apis`, docs/protocol.md, "The long poll")."""
    query: Mapping[str, str]
    """Last value of each parameter."""
    headers: Mapping[str, str]
    """Lower-case names."""
    body: bytes
    scheme: str
    host: str
    """`host[:port]` as the client addressed it (the `Host` header)."""

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}"

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body as JSON; `BadBody` if it is empty or not JSON."""
        text = self.body.decode("utf-8-sig", errors="replace").strip()
        if not text:
            raise BadBody("the request body is empty; a JSON body is required")
        try:
            return json.loads(text)
        except ValueError:
            raise BadBody("the request body is not valid JSON") from None

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8", errors="replace"), keep_blank_values=True))


@attrs.define
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = attrs.field(factory=list)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class HTTPFailure(Exception):
    """Raised by a handler to answer with `response` at once."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def json_response(status: int, payload: Any, headers: Sequence[tuple[str, str]] = ()) -> Response:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(status, body, [("content-type", "application/json; charset=utf-8"), *headers])


def rest_error(status: int, message: str | None = None, headers: Sequence[tuple[str, str]] = ()) -> Response:
    """GitHub REST: `{"message", "documentation_url", "status"}` (fixture error_github_rest_404)."""
    text = message or HTTPStatus(status).phrase
    return json_response(
        status, {"message": text, "documentation_url": REST_DOCS, "status": str(status)}, headers
    )


def actions_type_name(short: str) -> str:
    """`RunnerScaleSetNotFoundException` → its fully qualified .NET name, as the service sends."""
    namespace, assembly = _NAMESPACES.get(short, _RUNTIME)
    return f"{namespace}.{short}, {assembly}"


def actions_error(status: int, exception: str, message: str) -> Response:
    """Actions service: `{"typeName", "message"}` (docs/protocol.md, "Exception names in error bodies")."""
    return json_response(
        status,
        {"typeName": actions_type_name(exception), "message": message},
        [("activityid", str(uuid.uuid4()))],
    )


def broker_error(status: int, kind: str, message: str) -> Response:
    return json_response(
        status,
        {
            "source": "actions-broker-listener",
            "errorKind": kind,
            "statusCode": status,
            "errorMessage": message,
        },
    )


def run_error(status: int, message: str) -> Response:
    return json_response(
        status, {"source": "actions-run-service", "statusCode": status, "errorMessage": message}
    )


def oauth_error(error: str, description: str, status: int = 400) -> Response:
    return json_response(status, {"error": error, "error_description": description})


_TWIRP_CODES: Final[Mapping[int, str]] = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    409: "already_exists",
    429: "resource_exhausted",
    503: "unavailable",
}


def twirp_error(status: int, message: str) -> Response:
    return json_response(status, {"code": _TWIRP_CODES.get(status, "internal"), "msg": message})


_ACTIONS_EXCEPTIONS: Final[Mapping[int, str]] = {
    400: "InvalidRequestException",
    401: "VssUnauthorizedException",
    403: "AccessDeniedException",
    404: "NotFoundException",
    409: "ConflictException",
    429: "TooManyRequestsException",
}


def error_for(surface: Surface, status: int, message: str | None = None) -> Response:
    """A plausible error of `status` in the shape `surface` answers with (used by faults)."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    text = message or phrase
    builders: dict[Surface, Callable[[], Response]] = {
        Surface.REST: lambda: rest_error(status, text),
        Surface.ACTIONS: lambda: actions_error(
            status, _ACTIONS_EXCEPTIONS.get(status, "VssServiceException"), text
        ),
        Surface.BROKER: lambda: broker_error(status, phrase.replace(" ", ""), text),
        Surface.RUN: lambda: run_error(status, text),
        Surface.OAUTH: lambda: oauth_error(
            "server_error" if status >= 500 else "invalid_request", text, status
        ),
        Surface.RESULTS: lambda: twirp_error(status, text),
    }
    build = builders.get(surface)
    return build() if build else Response(status, text.encode(), [("content-type", "text/plain")])
