"""The ASGI application: routing, strictness, faults and the request log.

A plain ASGI callable (no framework). Each request is matched to a route (404
for an unknown path, 405 with `Allow` for a known path and another method),
faults are applied, the Actions service's `api-version` rule is enforced, and
the handler answers. `ConnectionDropped` escapes to the transport, which turns
it into a dropped connection (in-process) or a cut-off response (over TCP).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qsl

import anyio

from ._context import Ctx, Route
from ._core import Core
from ._faults import Faults
from ._http import ConnectionDropped, HTTPFailure, Request, Response, Surface, actions_error, error_for
from ._tokens import TokenKind
from ._views import RecordedRequest

__all__ = ["AsgiApp"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_API_VERSION: Final = re.compile(r"^\d+\.\d+(-preview(\.\d+)?)?$")
_SURFACES: Final = (
    ("/api/v3/", Surface.REST),
    ("/_services/pipelines/", Surface.ACTIONS),
    ("/_services/broker/scalesets/", Surface.ACTIONS),
    ("/_services/broker/", Surface.BROKER),
    ("/_services/token/", Surface.OAUTH),
    ("/_services/run/", Surface.RUN),
    ("/_services/results/", Surface.RESULTS),
)


def _surface_for(path: str) -> Surface:
    return next((surface for prefix, surface in _SURFACES if path.startswith(prefix)), Surface.BLOB)


class AsgiApp:
    """`FakeGitHub.asgi`: serve it in-process (httpx) or with any ASGI server."""

    def __init__(
        self, core: Core, faults: Faults, log: list[RecordedRequest], routes: Sequence[Route]
    ) -> None:
        self.core = core
        self.faults = faults
        self.log = log
        self.routes = list(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = await _read_request(scope, receive)
        response = await self.handle(request)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (k.encode("latin-1"), v.encode("latin-1"))
                    for k, v in [*response.headers, ("content-length", str(len(response.body)))]
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.body, "more_body": False})

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
        """The route and its parameters, or None and the methods the path allows."""
        allowed: list[str] = []
        for candidate in self.routes:
            found = candidate.pattern.match(path)
            if found is None:
                continue
            if candidate.method == method:
                return candidate, found.groupdict(), []
            allowed.append(candidate.method)
        return None, {}, allowed

    async def handle(self, request: Request) -> Response:
        """Answer one request; raises `ConnectionDropped` for a dropped-connection fault."""
        route, params, allowed = self.match(request.method, request.path)
        token = self._token_kind(request)
        fired = self.faults.take(route.name if route else None, request.method)
        delay = sum(f.delay for f in fired)
        if delay > 0:
            await anyio.sleep(delay)
        answer = next((f for f in fired if f.answers), None)
        surface = route.surface if route else _surface_for(request.path)
        if answer is not None and not answer.after_processing:
            return self._fault(
                request, route, token, answer.drop, answer.response(surface, route.name if route else None)
            )
        if route is None:
            response = self._no_route(request, surface, allowed)
        else:
            ctx = Ctx(request, route, params, self.core)
            response = await self._dispatch(ctx)
        if answer is not None:
            return self._fault(
                request, route, token, answer.drop, answer.response(surface, route.name if route else None)
            )
        self._record(request, route, token, response.status)
        return _decorate(response, surface)

    def _fault(
        self, request: Request, route: Route | None, token: TokenKind | None, drop: bool, response: Response
    ) -> Response:
        self._record(request, route, token, None if drop else response.status)
        if drop:
            raise ConnectionDropped(f"{request.method} {request.path}")
        return _decorate(response, route.surface if route else _surface_for(request.path))

    def _no_route(self, request: Request, surface: Surface, allowed: list[str]) -> Response:
        if allowed:
            response = error_for(surface, 405, f"{request.method} is not allowed on {request.path}")
            response.headers.append(("allow", ", ".join(sorted(set(allowed)))))
            return response
        return error_for(surface, 404, "Not Found")

    async def _dispatch(self, ctx: Ctx) -> Response:
        self.core.state.tick()
        if ctx.route.api_version:
            version = ctx.request.query.get("api-version")
            if not version:
                return actions_error(
                    400,
                    "VssVersionNotSpecifiedException",
                    f"No api-version was supplied for the {ctx.request.method} request. "
                    "Please add api-version=6.0-preview to the request query string.",
                )
            if not _API_VERSION.match(version):
                return actions_error(
                    400, "VssInvalidApiVersionException", f"The api-version '{version}' is not valid."
                )
        try:
            return await ctx.route.handler(ctx)
        except HTTPFailure as failure:
            return failure.response

    def _token_kind(self, request: Request) -> TokenKind | None:
        header = request.header("authorization")
        if not header or " " not in header.strip():
            return None
        return self.core.tokens.classify(header.strip().partition(" ")[2].strip())

    def _record(
        self, request: Request, route: Route | None, token: TokenKind | None, status: int | None
    ) -> None:
        if route is not None and route.name == "oauth.token":
            token = TokenKind.CLIENT_ASSERTION
        query = "&".join(f"{k}={v}" for k, v in request.query.items())
        self.log.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                route=route.name if route else None,
                status=status,
                token=token,
                host=request.host,
                query=query,
            )
        )


def _decorate(response: Response, surface: Surface) -> Response:
    """Request ids every GitHub service sends: `X-GitHub-Request-Id`, and `ActivityId` on Actions."""
    names = {k.lower() for k, _ in response.headers}
    if "x-github-request-id" not in names:
        response.headers.append(("x-github-request-id", uuid.uuid4().hex[:20].upper()))
    if surface is Surface.ACTIONS and "activityid" not in names:
        response.headers.append(("activityid", str(uuid.uuid4())))
    return response


async def _read_request(scope: Scope, receive: Receive) -> Request:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    server = scope.get("server") or ("localhost", None)
    host = headers.get("host") or (f"{server[0]}:{server[1]}" if server[1] else str(server[0]))
    path = re.sub(r"/{2,}", "/", scope.get("path") or "/")
    if host.lower().startswith("api.") and not path.startswith(("/api/v3/", "/_services/")):
        path = "/api/v3" + path  # github.com style: REST at the root of api.<host>
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
    return Request(
        method=str(scope["method"]).upper(),
        path=path,
        query=query,
        headers=headers,
        body=b"".join(chunks),
        scheme=str(scope.get("scheme", "http")),
        host=host.lower(),
    )


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
