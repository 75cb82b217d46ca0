"""A route, and the context its handler gets: the request, the core, auth and body helpers."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, NoReturn

import anyio
import attrs

from ._core import Core
from ._http import (
    BadBody,
    HTTPFailure,
    Request,
    Response,
    Surface,
    actions_error,
    broker_error,
    error_for,
    oauth_error,
    rest_error,
)
from ._jit import build_jit_config, new_rsa_key
from ._model import Runner, Tenant
from ._state import StateError
from ._tokens import TokenInfo, TokenKind, TokenProblem
from ._urls import Urls

__all__ = ["Ctx", "Handler", "Route", "long_poll", "route", "scope_url"]

Handler = Callable[["Ctx"], Awaitable[Response]]


@attrs.frozen
class Route:
    name: str
    method: str
    pattern: re.Pattern[str]
    surface: Surface
    handler: Handler
    api_version: bool = False
    """The Actions service refuses the call without an `api-version` query parameter."""


def route(
    name: str, method: str, pattern: str, surface: Surface, *, api_version: bool = False
) -> Callable[[Handler], Route]:
    def wrap(handler: Handler) -> Route:
        return Route(name, method, re.compile(f"^{pattern}/?$"), surface, handler, api_version)

    return wrap


@attrs.define
class Ctx:
    request: Request
    route: Route
    params: Mapping[str, str]
    core: Core
    token_kind: TokenKind | None = None

    @property
    def urls(self) -> Urls:
        return Urls(self.request.origin)

    @property
    def surface(self) -> Surface:
        return self.route.surface

    # ------------------------------------------------------------------ failures

    def error(self, status: int, message: str, exception: str | None = None) -> Response:
        """An error in this route's service's shape."""
        surface = self.surface
        if surface is Surface.ACTIONS:
            return actions_error(status, exception or "InvalidRequestException", message)
        if surface is Surface.BROKER:
            return broker_error(status, exception or "BadRequest", message)
        if surface is Surface.OAUTH:
            return oauth_error(exception or "invalid_request", message, status)
        return error_for(surface, status, message)  # REST, run service, results, blob

    def fail(self, status: int, message: str, exception: str | None = None) -> NoReturn:
        raise HTTPFailure(self.error(status, message, exception))

    def refuse(self, error: StateError) -> NoReturn:
        """Answer a state refusal in this service's shape."""
        self.fail(error.status, error.message, error.exception)

    # ------------------------------------------------------------------ auth

    def credentials(self) -> tuple[str, str] | None:
        header = self.request.header("authorization")
        if not header:
            return None
        scheme, _, token = header.strip().partition(" ")
        return scheme, token.strip()

    def require(self, kinds: Collection[TokenKind], *, schemes: Collection[str] = ("Bearer",)) -> TokenInfo:
        """The presented token, if it is of one of `kinds`, alive, and for this host; 401 otherwise."""
        creds = self.credentials()
        if creds is None or not creds[1]:
            self._unauthorized("no credentials were sent", "Requires authentication")
        scheme, token = creds
        if scheme.lower() not in {s.lower() for s in schemes}:
            self._unauthorized(f"the '{scheme}' authorization scheme is not accepted here")
        verdict = self.core.tokens.verify(token, kinds, self.request.origin)
        if isinstance(verdict, TokenProblem):
            self._unauthorized(verdict.reason)
        return verdict

    def _unauthorized(self, reason: str, rest_message: str = "Bad credentials") -> NoReturn:
        if self.surface is Surface.REST:
            raise HTTPFailure(rest_error(401, rest_message))
        if self.surface is Surface.ACTIONS:
            raise HTTPFailure(actions_error(401, "VssUnauthorizedException", f"TF400813: {reason}"))
        raise HTTPFailure(self.error(401, reason, "Unauthorized"))

    # ------------------------------------------------------------------ bodies

    def json(self) -> Any:
        try:
            return self.request.json()
        except BadBody as exc:
            self.fail(400, str(exc), "ArgumentException")

    def json_object(self) -> dict[str, Any]:
        body = self.json()
        if not isinstance(body, dict):
            self.fail(400, "the request body must be a JSON object", "ArgumentException")
        return body

    def field(
        self, body: Mapping[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = True
    ) -> Any:
        """`body[name]` if it has the JSON type `kind`; 400 if wrong, or missing when required."""
        if name not in body or body[name] is None:
            if required:
                self.fail(400, f"the '{name}' field is required", "ArgumentNullException")
            return None
        value = body[name]
        wanted = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in wanted:
            self.fail(400, f"the '{name}' field has the wrong type", "ArgumentException")
        if not isinstance(value, wanted):
            self.fail(400, f"the '{name}' field has the wrong type", "ArgumentException")
        return value

    def create_jit_runner(
        self,
        tenant: Tenant,
        *,
        name: str,
        group_id: int,
        scale_set_id: int | None,
        labels: list[str],
        work_folder: str,
    ) -> tuple[Runner, str]:
        """Register a runner with a fresh RSA key; returns it and its encoded JIT config."""
        settings = self.core.settings
        key = new_rsa_key(settings.runner_key_size)
        try:
            runner = self.core.state.create_runner(
                tenant,
                name=name,
                group_id=group_id,
                scale_set_id=scale_set_id,
                labels=labels,
                public_key=key.public_key(),
                authorization_url=self.urls.token(tenant.id),
                work_folder=work_folder,
            )
        except StateError as exc:
            self.refuse(exc)
        encoded = build_jit_config(
            runner,
            key,
            server_url=self.urls.admin(tenant.id),
            server_url_v2=self.urls.broker,
            github_url=scope_url(self.request.origin, tenant),
            style=settings.jit_style,
        )
        return runner, encoded

    def int_param(self, name: str, source: Mapping[str, str] | None = None) -> int | None:
        raw = (self.params if source is None else source).get(name)
        if raw is None or raw == "":
            return None
        try:
            return int(raw)
        except ValueError:
            self.fail(400, f"'{name}' must be an integer", "ArgumentException")


def scope_url(origin: str, tenant: Tenant) -> str:
    """The config URL of a tenant on `origin` (`…/acme`, `…/acme/app`, `…/enterprises/big`)."""
    kind, name = tenant.key
    return f"{origin}/enterprises/{name}" if kind == "enterprise" else f"{origin}/{name}"


async def long_poll(core: Core, hold: float, attempt: Callable[[], Any]) -> Any:
    """Call `attempt` until it returns something, for at most `hold` seconds of real time."""
    deadline = anyio.current_time() + hold
    while True:
        core.state.tick()
        found = attempt()
        remaining = deadline - anyio.current_time()
        if found is not None or remaining <= 0:
            return found
        await core.waker.wait(min(remaining, 0.05))
