"""`FakeGitHub`: the facade tests and users drive."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import httpx

from .._secret import Secret
from ._actions import ROUTES as ACTIONS_ROUTES
from ._app import AsgiApp
from ._broker import ROUTES as BROKER_ROUTES
from ._core import Core
from ._faults import Faults
from ._model import JobState, ScopeKey, Settings, Tenant
from ._rest import ROUTES as REST_ROUTES
from ._run import ROUTES as RUN_ROUTES
from ._state import StateError
from ._tokens import TokenKind
from ._transport import InProcessTransport
from ._views import JobInfo, RecordedRequest, RunnerInfo, Snapshot, job_info, runner_info, scale_set_info
from ._wire import Statistics
from ._workload import Workload

if TYPE_CHECKING:
    from ..auth import GitHubApp, PersonalAccessToken

__all__ = ["FakeGitHub"]

DEFAULT_HOST = "fake-github.local"


def parse_scope(scope: str) -> ScopeKey:
    """`acme` → organization, `acme/app` → repository, `enterprises/big` → enterprise."""
    parts = [p for p in scope.strip().strip("/").split("/") if p]
    if len(parts) == 1:
        return ("org", parts[0].lower())
    if len(parts) == 2 and parts[0].lower() == "enterprises":
        return ("enterprise", parts[1].lower())
    if len(parts) == 2:
        return ("repo", f"{parts[0]}/{parts[1]}".lower())
    raise ValueError(f"{scope!r} is not an organization, 'owner/repo' or 'enterprises/<slug>'")


class FakeGitHub:
    """A stateful, strict, offline GitHub: REST, the Actions service, the message queue,
    and the runner side (OAuth, broker, run service, results), as one ASGI app.

    Drive it in-process with `http_client()`, or on a loopback port with
    `async with fake.serve() as base_url:`. `clock` (seconds since the epoch) rules
    token lifetimes, session expiry, assignment timeouts and simulated job durations;
    pass a clock you move by hand to make time jump in tests.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        host: str = DEFAULT_HOST,
        seed: int | None = None,
        poll_hold: float = 0.2,
        session_timeout: float = 120.0,
        assignment_timeout: float = 300.0,
        max_requeues: int = 3,
        lock_duration: float = 600.0,
        admin_token_lifetime: float = 3600.0,
        message_queue_token_lifetime: float = 3000.0,
        runner_token_lifetime: float = 3600.0,
        job_token_lifetime: float = 21600.0,
        registration_token_lifetime: float = 3600.0,
        installation_token_lifetime: float = 3600.0,
        require_acquire: bool = True,
        auto_start_runners: bool = False,
        runner_key_size: int = 2048,
        jit_style: Literal["native", "string"] = "native",
        queue_url_query: bool = False,
        queue_unauthorized_style: Literal["actions", "broker", "oauth"] = "actions",
        refresh_statistics: bool = True,
        acquirable_jobs: bool = True,
    ) -> None:
        self.settings = Settings(
            poll_hold=poll_hold,
            session_timeout=session_timeout,
            assignment_timeout=assignment_timeout,
            max_requeues=max_requeues,
            lock_duration=lock_duration,
            admin_token_lifetime=admin_token_lifetime,
            message_queue_token_lifetime=message_queue_token_lifetime,
            runner_token_lifetime=runner_token_lifetime,
            job_token_lifetime=job_token_lifetime,
            registration_token_lifetime=registration_token_lifetime,
            installation_token_lifetime=installation_token_lifetime,
            require_acquire=require_acquire,
            auto_start_runners=auto_start_runners,
            runner_key_size=runner_key_size,
            jit_style=jit_style,
            queue_url_query=queue_url_query,
            queue_unauthorized_style=queue_unauthorized_style,
            refresh_statistics=refresh_statistics,
            acquirable_jobs=acquirable_jobs,
        )
        self.clock: Callable[[], float] = clock or time.time
        self.host = host
        self._core = Core(self.settings, self.clock, seed)
        routes = [*REST_ROUTES, *ACTIONS_ROUTES, *BROKER_ROUTES, *RUN_ROUTES]
        self.faults = Faults(route.name for route in routes)
        """Fault injection: `fake.faults.add(route="message", status=503, times=3, retry_after=2)`."""
        self.requests: list[RecordedRequest] = []
        """Every request answered, in order: method, path, route, status, token class."""
        self.asgi = AsgiApp(self._core, self.faults, self.requests, routes)
        """The ASGI application (a dropped-connection fault raises out of it)."""
        self._served: str | None = None

    def __repr__(self) -> str:
        return f"FakeGitHub(base_url={self.base_url!r})"

    # ------------------------------------------------------------------ addresses

    @property
    def base_url(self) -> str:
        """`http://fake-github.local` in-process; the loopback URL while `serve()` runs."""
        return self._served or f"http://{self.host}"

    def config_url(self, scope: str = "acme") -> str:
        """The config URL of an organization (`acme`), repository (`acme/app`) or enterprise
        (`enterprises/big`); the scope is created if new. GHES style: REST is `/api/v3`."""
        self._ensure(scope)
        kind, name = parse_scope(scope)
        return f"{self.base_url}/enterprises/{name}" if kind == "enterprise" else f"{self.base_url}/{name}"

    def routes(self) -> list[str]:
        """The route names faults and `requests` use."""
        return [r.name for r in self.asgi.routes]

    # ------------------------------------------------------------------ credentials

    def pat(self) -> PersonalAccessToken:
        """A personal access token the fake accepts for every scope."""
        from ..auth import PersonalAccessToken

        return PersonalAccessToken(self._core.pat)

    def app(
        self, scope: str = "acme", *, with_installation_id: bool = True, use_app_id: bool = False
    ) -> GitHubApp:
        """The fake's GitHub App, installed on `scope`'s organization (or enterprise).

        Without the installation id the client has to look it up (`GET …/installation`).
        """
        from ..auth import GitHubApp

        kind, name = parse_scope(scope)
        self._ensure(scope)
        app = self._core.app
        installation = app.installation((kind, name))
        return GitHubApp(
            client_id=None if use_app_id else app.client_id,
            app_id=app.app_id if use_app_id else None,
            installation_id=installation if with_installation_id else None,
            private_key=app.private_key_pem(),
        )

    def expire_tokens(self, kind: TokenKind | str | None = None) -> None:
        """Make every token of `kind` minted so far invalid now: `admin`, `message_queue`,
        `runner`, `job`, `installation`, `registration`, `remove`, `pat`; None: all but the PAT."""
        self._core.tokens.expire(None if kind is None else TokenKind(kind))

    # ------------------------------------------------------------------ transports

    def http_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An `httpx.AsyncClient` wired to the app in-process (no sockets). Close it yourself."""
        return httpx.AsyncClient(transport=InProcessTransport(self.asgi), **kwargs)

    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve on a loopback port (hypercorn; asyncio or trio); yields the base URL.

        While it runs, `base_url` and `config_url()` point at it.
        """
        from ._server import serve_app

        if self._served is not None:
            raise RuntimeError("this FakeGitHub is already being served")
        async with serve_app(self.asgi, host, port) as url:
            self._served = url
            try:
                yield url
            finally:
                self._served = None

    # ------------------------------------------------------------------ scopes

    def _ensure(self, scope: str) -> Tenant:
        return self._core.state.ensure_scope(parse_scope(scope))

    def add_organization(self, name: str, *, enterprise: str | None = None) -> None:
        """An organization (optionally in an enterprise, whose scale sets then see its jobs)."""
        self._core.state.ensure_scope(("org", name.lower()), enterprise=enterprise)

    def add_runner_group(self, scope: str, name: str) -> int:
        """A runner group in an organization or enterprise; returns its id."""
        try:
            return self._core.state.add_runner_group(self._ensure(scope), name).id
        except StateError as exc:
            raise ValueError(exc.message) from None

    # ------------------------------------------------------------------ jobs and runners

    def enqueue_job(
        self,
        *,
        labels: Sequence[str],
        repository: str,
        display_name: str = "build",
        workflow: str = ".github/workflows/ci.yml",
        ref: str = "refs/heads/main",
        event_name: str = "push",
        duration: float = 0.0,
        conclusion: str = "succeeded",
        at: float | None = None,
    ) -> JobInfo:
        """Queue a workflow job for `repository` (`owner/repo`) with `runs-on: labels`.

        It goes to the matching scale set (every label among the scale set's labels),
        preferring the repository's, then the organization's, then the enterprise's.
        `at` (clock time) delays its arrival; `duration` and `conclusion` are what a
        simulated runner does with it.
        """
        if "/" not in repository.strip("/"):
            raise ValueError("repository must be 'owner/repo'")
        labels = [labels] if isinstance(labels, str) else list(labels)
        if not labels:
            raise ValueError("a job needs at least one runs-on label")
        job = self._core.state.enqueue(
            repository=repository.strip("/"),
            labels=labels,
            display_name=display_name,
            workflow=workflow,
            ref=ref,
            event_name=event_name,
            duration=duration,
            conclusion=conclusion,
            at=at,
        )
        return job_info(job)

    def add_workload(self, workload: Workload) -> list[JobInfo]:
        """Schedule a workload's jobs from now on the fake's clock."""
        now = self.clock()
        return [
            self.enqueue_job(
                labels=workload.labels,
                repository=workload.repository,
                display_name=f"job-{i + 1}",
                duration=planned.duration,
                conclusion=workload.conclusion,
                at=now + planned.offset,
            )
            for i, planned in enumerate(workload.plan())
        ]

    def cancel_job(self, job_id: str) -> None:
        """Cancel a job from GitHub's side (a running one gets a `JobCancellation`)."""
        self._core.state.cancel(self._core.state.jobs[job_id])

    def start_runner(self, jit_config: str | Secret) -> RunnerInfo:
        """Bring a JIT runner online as a simulated runner: it takes its scale set's
        assigned jobs, runs each for the job's `duration` and completes it."""
        runner_id = _agent_id(Secret(jit_config).get_secret_value())
        state = self._core.state
        try:
            runner = state.runner(None, runner_id)
        except StateError:
            raise ValueError(f"no live runner {runner_id} for this JIT config") from None
        state.start_simulated(runner)
        return self._runner_info(runner_id)

    def delete_scale_set(self, scale_set_id: int) -> None:
        """Delete a scale set server-side (as after 7 days of dormancy): its routes then
        answer 404 `RunnerScaleSetNotFoundException`, its runners are gone, its jobs re-queued."""
        scale_set = self._core.state.scale_sets.get(scale_set_id)
        if scale_set is None or scale_set.deleted:
            raise KeyError(scale_set_id)
        self._core.state.delete_scale_set(scale_set, force=True)

    # ------------------------------------------------------------------ looking

    def tick(self) -> None:
        """Apply what the clock made due (the fake also does this on every request)."""
        self._core.state.tick()

    def statistics(self, scale_set_id: int) -> Statistics:
        """A scale set's statistics now, as the next message would carry them."""
        self.tick()
        return self._core.state.statistics(self._core.state.scale_sets[scale_set_id])

    def job(self, job_id: str) -> JobInfo:
        self.tick()
        return job_info(self._core.state.jobs[job_id])

    def _runner_info(self, runner_id: int) -> RunnerInfo:
        state = self._core.state
        runner = state.runners[runner_id]
        busy = runner.job_id is not None and state.jobs[runner.job_id].state is JobState.RUNNING
        return runner_info(runner, busy)

    def snapshot(self) -> Snapshot:
        """Jobs, live runners and scale sets (with statistics) as they are now."""
        self.tick()
        state = self._core.state
        return Snapshot(
            jobs=tuple(job_info(j) for j in state.jobs.values()),
            runners=tuple(self._runner_info(r.id) for r in state.live_runners()),
            scale_sets=tuple(
                scale_set_info(s, state.statistics(s)) for s in state.scale_sets.values() if not s.deleted
            ),
        )

    @property
    def blobs(self) -> Mapping[str, bytes]:
        """Logs uploaded to signed URLs, by blob path."""
        return dict(self._core.blobs)

    def requests_to(self, route: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.route == route]


def _agent_id(blob: str) -> int:
    try:
        outer = json.loads(base64.b64decode(blob))
        runner = json.loads(base64.b64decode(outer[".runner"]))
        return int(runner["AgentId"])
    except (ValueError, KeyError, TypeError):
        raise ValueError("not a JIT config from this fake") from None
