"""The FastAPI application: runnerctl's routes, RunnerHub's listings and streams, all behind
Bearer tokens, per-token rate limits and a body cap, every error as `{"error": {"code", "message"}}`.

`build_app(settings)` opens everything in its lifespan (state file, provisioner, GitHub
clients, listeners); `build_app(settings, service=...)` serves a service you opened
yourself (tests do).
"""

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Annotated, Any, Final

import anyio
import httpx
from fastapi import Body, Depends, FastAPI, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

import actions_scaleset as asc

from ..listener.provisioner import Provisioner
from . import validate
from .auth import TokenChecker
from .errors import ApiError, body
from .events import Event
from .metrics import ApiMetrics
from .ratelimit import RateLimiter
from .runnerlogs import MAX_TAIL
from .service import Service, describe, job_json
from .settings import Settings
from .state import State
from .targets import ScaleSets, Target, repo_config_url, scale_set_for_labels

__all__ = ["build_app", "make_provisioner", "running_service"]

logger = logging.getLogger("provisioner_api.app")

KEEPALIVE: Final = 15.0
MAX_PER_PAGE: Final = 100
_STATUS_CODES: Final = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class CreateRunner(BaseModel):
    """runnerctl's request, as its users send it; `scale_set` is this API's addition."""

    model_config = ConfigDict(extra="ignore")

    name: str
    repo: str | None = None
    scale_set: str | None = None
    labels: str | list[str] | None = None
    """A comma-separated string (runnerctl) or a list."""
    ephemeral: bool = True
    """Accepted for runnerctl's requests: a JIT runner is always ephemeral."""
    daemonize: bool = True
    """Accepted for runnerctl's requests: the runner always runs in the background."""


class RemoveRunner(BaseModel):
    model_config = ConfigDict(extra="ignore")

    repo: str | None = None


# ---------------------------------------------------------------------- wiring


def make_provisioner(settings: Settings, http_client: httpx.AsyncClient | None = None) -> Provisioner:
    chosen = settings.provisioner
    if chosen.kind == "docker":
        from ..listener.docker import DockerProvisioner

        return DockerProvisioner(chosen, settings.scale_set)
    if chosen.kind == "simulate":
        from ..listener.simulate import SimulatedProvisioner

        return SimulatedProvisioner(http_client)
    from ..listener.command import CommandProvisioner

    assert chosen.runner_command is not None  # config.py requires it
    return CommandProvisioner(chosen.runner_command, settings.logs_dir)


@contextlib.asynccontextmanager
async def running_service(
    settings: Settings,
    *,
    provisioner: Provisioner | None = None,
    http_client: httpx.AsyncClient | None = None,
    **options: Any,
) -> AsyncIterator[Service]:
    """Open the state file, the provisioner and the GitHub clients; recover; serve until left."""
    state = State(settings.state)
    state.open()
    try:
        service = Service(
            settings,
            provisioner if provisioner is not None else make_provisioner(settings, http_client),
            state,
            scale_sets=ScaleSets(settings.credentials, settings.runner_group, http_client=http_client),
            metrics=ApiMetrics(settings.max_runners),
            **options,
        )
        async with service:
            yield service
    finally:
        state.close()


class _Runtime:
    service: Service | None = None

    def get(self) -> Service:
        if self.service is None:
            raise ApiError(503, "starting", "the API is starting or stopping")
        return self.service


# ---------------------------------------------------------------------- the app


def build_app(settings: Settings, *, service: Service | None = None) -> FastAPI:  # noqa: PLR0915 - the routes
    runtime = _Runtime()
    runtime.service = service
    checker = TokenChecker(settings.tokens)
    limiter = RateLimiter(settings.rate_limit)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime.service is not None:
            yield
            return
        async with contextlib.AsyncExitStack() as stack:
            http_client = None
            if settings.ca_file is not None:
                import ssl

                context = ssl.create_default_context(cafile=str(settings.ca_file))
                http_client = await stack.enter_async_context(httpx.AsyncClient(verify=context))
            runtime.service = await stack.enter_async_context(
                running_service(settings, http_client=http_client)
            )
            try:
                yield
            finally:
                runtime.service = None

    app = FastAPI(
        title="actions_scaleset provisioning API",
        description="Start, list and remove GitHub Actions JIT runners; runnerctl-compatible.",
        version=asc.__version__,
        lifespan=lifespan,
    )
    _install_error_handlers(app)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(_Guard, max_body=settings.max_body, runtime=runtime)

    def authorize(request: Request) -> str:
        name = checker.check(request.headers.get("authorization"))
        key = f"token:{name}" if name else f"client:{request.client.host if request.client else '-'}"
        decision = limiter.take(key)
        request.state.ratelimit = decision.headers()
        if not decision.allowed:
            raise ApiError(429, "rate_limited", f"too many requests; retry in {decision.retry_after} s",
                           headers=decision.headers())  # fmt: skip
        if request.headers.get("authorization") is None:
            raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>",
                           headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        if name is None:
            raise ApiError(403, "forbidden", "the token is not valid for this API")
        request.state.token_name = name
        return name

    Auth = Annotated[str, Depends(authorize)]

    @app.get("/health", tags=["runnerctl"])
    async def health() -> dict[str, str]:
        """No token needed."""
        return {"status": "ok"}

    @app.post("/api/v1/runners", status_code=201, tags=["runnerctl"])
    async def create_runner(request_body: CreateRunner, token: Auth) -> dict[str, Any]:
        """Start a JIT runner; answers once it is online (201), or with the error that stopped it."""
        name = _checked(validate.runner_name, request_body.name, "invalid_name")
        target = _target(settings, request_body)
        record = await runtime.get().create(name, target, token)
        return {"status": "running", **describe(record, settings)}

    @app.get("/api/v1/runners", tags=["runners"])
    async def list_runners(
        token: Auth,
        status: str | None = None,
        label: str | None = None,
        repository: str | None = None,
    ) -> dict[str, Any]:
        """Filter by `status` (a state, or runnerctl's `running`...), `label`, `repository`."""
        if repository is not None:
            repository = _checked(validate.repository, repository, "invalid_repository")
        found = runtime.get().runners(state=status, label=label, repository=repository)
        return {"total_count": len(found), "runners": [describe(record, settings) for record in found]}

    @app.get("/api/v1/runners/{name}", tags=["runners"])
    async def get_runner(name: str, token: Auth) -> dict[str, Any]:
        name = _checked(validate.runner_name, name, "invalid_name")
        service = runtime.get()
        record = service.runner(name)
        if record is None:
            raise ApiError(404, "runner_not_found", f"this API started no runner named {name}")
        return service.status(name)

    @app.delete("/api/v1/runners/{name}", tags=["runnerctl"])
    async def delete_runner(
        name: str,
        token: Auth,
        request_body: Annotated[RemoveRunner | None, Body()] = None,
        force: bool = False,
    ) -> dict[str, Any]:
        """Deregister and stop a runner; a busy one gets 409 unless `?force=true`."""
        name = _checked(validate.runner_name, name, "invalid_name")
        repo = request_body.repo if request_body is not None else None
        if repo is not None:
            repo = _checked(validate.repository, repo, "invalid_repository")
        return await runtime.get().delete(name, repository=repo, force=force)

    @app.get("/api/v1/runners/{name}/status", tags=["runnerctl"])
    async def runner_status(name: str, token: Auth) -> dict[str, Any]:
        """runnerctl's `running | installed_not_running | not_installed`, with `busy`, `job`, `pid`..."""
        name = _checked(validate.runner_name, name, "invalid_name")
        return runtime.get().status(name)

    @app.get("/api/v1/runners/{name}/logs", tags=["runners"], response_class=StreamingResponse)
    async def runner_logs(
        name: str,
        token: Auth,
        tail: Annotated[int | None, Query(ge=0, le=MAX_TAIL)] = None,
        follow: bool = False,
    ) -> StreamingResponse:
        """The runner's output and the API's lines about it; `follow=true` streams new lines."""
        name = _checked(validate.runner_name, name, "invalid_name")
        service = runtime.get()
        if service.runner(name) is None and not service.logs.exists(name):
            raise ApiError(404, "runner_not_found", f"no runner named {name} and no log of one")
        return StreamingResponse(
            service.logs.read(name, tail=tail, follow=follow),
            media_type="text/plain; charset=utf-8",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/api/v1/jobs", tags=["jobs"])
    async def list_jobs(
        token: Auth,
        status: str | None = None,
        repository: str | None = None,
        page: Annotated[int, Query(ge=1)] = 1,
        per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 30,
    ) -> dict[str, Any]:
        """Jobs the listeners saw, newest first: `status` is `running` or `completed`."""
        if repository is not None:
            repository = _checked(validate.repository, repository, "invalid_repository")
        jobs, total = await runtime.get().state.jobs(
            status=status, repository=repository, offset=(page - 1) * per_page, limit=per_page
        )
        return {
            "total_count": total,
            "page": page,
            "per_page": per_page,
            "jobs": [job_json(job) for job in jobs],
        }

    @app.get("/api/v1/jobs/{job_id}", tags=["jobs"])
    async def get_job(job_id: int, token: Auth) -> dict[str, Any]:
        """A job by its `id` (the runner request id of one attempt)."""
        job = await runtime.get().state.job(job_id)
        if job is None:
            raise ApiError(404, "job_not_found", f"no job {job_id}")
        return job_json(job)

    @app.get("/metrics", tags=["metrics"], response_class=Response)
    async def metrics(token: Auth) -> Response:
        """Prometheus: ARC's `gha_*` set, the provisioner's starts and the API's requests."""
        service = runtime.get()
        assert service.metrics is not None
        text = service.metrics.render(service.counts(), service.bus.subscribers)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/api/v1/events", tags=["events"], response_class=StreamingResponse)
    async def events(
        token: Auth,
        repository: str | None = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> StreamingResponse:
        """Server-Sent Events: `job:*` and `runner:*`, for one `repository` or all."""
        repositories = _subscription(repository)
        service = runtime.get()
        after = int(last_event_id) if last_event_id and last_event_id.isdigit() else None
        return StreamingResponse(
            _sse(service, repositories, after),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.websocket("/api/v1/ws")
    async def websocket(socket: WebSocket) -> None:
        """RunnerHub's events: send `{"type": "subscribe:repository", "repository": "owner/name"}`."""
        name = checker.check(socket.headers.get("authorization"))
        if name is None or not limiter.take(f"token:{name}").allowed:
            await socket.close(code=1008)
            return
        await socket.accept()
        await _serve_socket(socket, runtime.get(), settings.max_body)

    return app


def _checked(check: Callable[[str], str], value: str, code: str) -> str:
    try:
        return check(value)
    except validate.Invalid as exc:
        raise ApiError(400, code, str(exc)) from None


def _target(settings: Settings, request: CreateRunner) -> Target:
    try:
        labels = validate.labels(request.labels, settings.labels)
    except validate.Invalid as exc:
        raise ApiError(400, "invalid_labels", str(exc)) from None
    repository = None
    config_url = settings.url
    if request.repo is not None:
        repository = _checked(validate.repository, request.repo, "invalid_repository")
        if not validate.repo_allowed(repository, settings.allowed_repos):
            raise ApiError(403, "repository_not_allowed", f"this API does not serve {repository}")
        config_url = repo_config_url(settings.url, repository)
    if request.scale_set is not None:
        scale_set = _checked(validate.scale_set_name, request.scale_set, "invalid_scale_set")
    else:
        scale_set = scale_set_for_labels(settings.scale_set, labels, settings.labels)
    return Target(config_url, repository, scale_set, labels)


def _subscription(repository: str | None) -> frozenset[str]:
    if repository is None:
        return frozenset()
    return frozenset({_checked(validate.repository, repository, "invalid_repository").lower()})


def _sse_frame(event: Event) -> bytes:
    data = json.dumps(event.to_json(), separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n".encode()


async def _sse(service: Service, repositories: frozenset[str], after: int | None) -> AsyncIterator[bytes]:
    with service.bus.subscribe() as receive:
        yield b": connected\n\n"
        last = 0
        for event in service.bus.since(after) if after is not None else []:
            last = event.id
            if event.matches(repositories):
                yield _sse_frame(event)
        while True:
            with anyio.move_on_after(KEEPALIVE) as waited:
                try:
                    event = await receive.receive()
                except anyio.EndOfStream:
                    return
            if waited.cancelled_caught:
                yield b": keep-alive\n\n"
            elif event.id > last and event.matches(repositories):
                yield _sse_frame(event)


async def _serve_socket(socket: WebSocket, service: Service, max_size: int) -> None:
    subscriptions: set[str] = set()
    lock = anyio.Lock()

    async def send(message: dict[str, Any]) -> None:
        async with lock:
            await socket.send_text(json.dumps(message, separators=(",", ":")))

    async def pump() -> None:
        with service.bus.subscribe() as receive:
            async for event in receive:
                if event.matches(frozenset(subscriptions)):
                    await send({"type": event.type, "id": event.id, "repository": event.repository,
                                "data": dict(event.data)})  # fmt: skip
        await socket.close(code=1013)  # fell behind: reconnect

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump)
        try:
            while True:
                text = await socket.receive_text()
                if len(text) > max_size:
                    await socket.close(code=1009)
                    break
                await send(_socket_reply(text, subscriptions))
        except WebSocketDisconnect:
            pass
        finally:
            tg.cancel_scope.cancel()


def _socket_reply(text: str, subscriptions: set[str]) -> dict[str, Any]:
    """One client message: RunnerHub's `subscribe:repository` / `unsubscribe:repository` (as
    `{"type": ..., "repository": ...}`, or socket.io's `[event, repository]`), or `ping`."""
    try:
        message = json.loads(text)
    except ValueError:
        return {"type": "error", **body("invalid_message", "send a JSON object")}
    if isinstance(message, list) and len(message) == 2:
        kind, repository = message
    elif isinstance(message, dict):
        kind, repository = (
            message.get("type", message.get("event")),
            message.get("repository", message.get("data")),
        )
    else:
        kind, repository = None, None
    if kind == "ping":
        return {"type": "pong"}
    if kind not in ("subscribe:repository", "unsubscribe:repository"):
        return {
            "type": "error",
            **body("invalid_message", "type is subscribe:repository, unsubscribe:repository or ping"),
        }
    try:
        repository = validate.repository(repository)
    except validate.Invalid as exc:
        return {"type": "error", **body("invalid_repository", str(exc))}
    if kind == "subscribe:repository":
        subscriptions.add(repository.lower())
        return {"type": "subscribed", "repository": repository}
    subscriptions.discard(repository.lower())
    return {"type": "unsubscribed", "repository": repository}


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return JSONResponse(body(exc.code, exc.message), exc.status, headers=exc.headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return JSONResponse(body(code, message), exc.status_code, headers=exc.headers)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for error in exc.errors()[:3]:  # where and what; never the value given
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        return JSONResponse(body("invalid_request", "; ".join(problems) or "invalid request"), 422)

    async def unexpected(request: Request, exc: Exception) -> Response:
        logger.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
        return JSONResponse(body("internal", "the API failed unexpectedly; see its log"), 500)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, unexpected)


class _BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over {limit} bytes")


class _Guard:
    """Caps request bodies (413), adds the rate-limit headers, and counts requests for `/metrics`."""

    def __init__(self, app: ASGIApp, *, max_body: int, runtime: _Runtime) -> None:
        self.app = app
        self.max_body = max_body
        self.runtime = runtime

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.monotonic()
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body:
            await _too_large(send, self.max_body)
            self._count(scope, 413, began)
            return
        received = 0
        started = False
        status = 500

        async def capped_receive() -> MutableMapping[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge(self.max_body)
            return message

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                extra = (scope.get("state") or {}).get("ratelimit") or {}
                message["headers"] = [
                    *message.get("headers", []),
                    *((key.lower().encode(), value.encode()) for key, value in extra.items()
                      if key.lower().encode() not in {name for name, _ in message.get("headers", [])}),
                ]  # fmt: skip
            await send(message)

        try:
            await self.app(scope, capped_receive, send_with_headers)
        except _BodyTooLarge:
            if not started:
                await _too_large(send, self.max_body)
            status = 413
        finally:
            self._count(scope, status, began)

    def _count(self, scope: MutableMapping[str, Any], status: int, began: float) -> None:
        service = self.runtime.service
        if service is None or service.metrics is None:
            return
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        service.metrics.record_request(scope.get("method", "-"), template, status, time.monotonic() - began)


async def _too_large(send: Callable[[MutableMapping[str, Any]], Awaitable[None]], limit: int) -> None:
    payload = json.dumps(body("body_too_large", f"the request body is over {limit} bytes")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
