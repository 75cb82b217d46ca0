"""`RunnerClient`: a Python program as a self-hosted runner (docs/protocol.md, "The runner side",
"Polling and runner messages").

The client opens a session (broker v2, or pipelines v1 for GHES), polls for
messages in a background task, hands job requests to `job_requests()`,
acquires jobs and keeps their locks, and deletes the session on exit. Error
classification and backoff are pure functions at the top of the module.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal, Self

import anyio
import anyio.lowlevel
import httpx
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._http import HTTPCore, decode_json, invalid_response, resolve_url
from ..errors import (
    AcknowledgeJobNotFoundError,
    AuthenticationError,
    BrokerRunnerNotFoundError,
    ConflictError,
    HostedRunnerDeprovisionedError,
    HTTPStatusError,
    InvalidJitConfigError,
    InvalidResponseError,
    OAuthError,
    PermissionDeniedError,
    RequestError,
    RunnerNotFoundError,
    RunnerSessionConflictError,
    RunnerSessionInvalidError,
    RunnerVersionTooOldError,
)
from ._broker import (
    DEFAULT_RUNNER_VERSION,
    SESSION_DELETE_TIMEOUT,
    BrokerConnection,
    RunnerIdentity,
    default_os_description,
    default_owner_name,
    runner_architecture,
    runner_os,
)
from ._jitconfig import OAUTH_SCHEME, JitConfig
from ._jobmessage import JobMessage, parse_job_message
from ._jobs import (
    RENEW_INTERVAL,
    RUN_SERVICE_RETRY,
    Annotation,
    Job,
    JobRequest,
    _PipelinesBackend,
    _RunServiceBackend,
    acquire_body,
    as_run_service_error,
)
from ._messages import (
    AgentRefresh,
    BrokerMigration,
    ForceTokenRefresh,
    JobCancellation,
    PipelineJobRequest,
    RunnerJobRequest,
    RunnerMessage,
    RunnerRefresh,
    RunnerRefreshConfig,
    RunnerShutdown,
    UnknownMessage,
)
from ._oauth import CLOCK_SKEW_MARKER, RunnerTokens
from ._pipelines import PipelinesConnection

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

__all__ = ["RunnerClient", "classify_poll_error", "poll_backoff"]

logger = logging.getLogger("actions_scaleset.runner")

SESSION_CONFLICT_TIMEOUT: Final = 240.0
"""A 409 on session create is retried for 4 minutes (docs/protocol.md, "Sessions")."""
SESSION_RETRY_INTERVAL: Final = 30.0
CLOCK_SKEW_TIMEOUT: Final = 1800.0
"""`Current server time is` token errors are retried for 30 minutes (docs/protocol.md,
"The OAuth client assertion")."""
MAX_POLL_FAILURES: Final = 10
"""Consecutive failed polls before the runner gives up (broker listener, docs/protocol.md,
"Polling and runner messages")."""
MAX_ACQUIRE_THROTTLE: Final = 60.0

PollErrorAction = Literal["recreate", "fatal", "retry"]
Status = Literal["Online", "Busy"]

_FATAL_TYPE_KEYS: Final = (
    "TaskAgentPoolNotFoundException",
    "TaskAgentAccessTokenExpiredException",
    "AccessDeniedException",
)


def _type_key(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        return str(body.get("typeKey") or body.get("typeName") or "")
    return ""


def survives_auth_migration(exc: BaseException) -> bool:
    """False for the errors the listeners rethrow even while auth migration is on.

    `MessageListener`/`BrokerMessageListener` rethrow a revoked token
    (`TaskAgentAccessTokenExpiredException`) and a deprovisioned hosted runner
    whatever the migration state; any other failure turns migration off and is retried.
    """
    if isinstance(exc, HostedRunnerDeprovisionedError):
        return False
    return "TaskAgentAccessTokenExpiredException" not in _type_key(exc)


def classify_poll_error(exc: BaseException) -> PollErrorAction:
    """What the listener does after a failed poll (docs/protocol.md, "Polling and runner messages").

    `recreate`: the session expired (broker `RunnerSessionInvalid`, v1
    `TaskAgentSessionExpiredException`). `fatal`: the registration is gone, the
    version is refused, or access is denied after a token refresh. `retry`:
    anything else, with `poll_backoff`.
    """
    if isinstance(exc, RunnerSessionInvalidError) or "TaskAgentSessionExpiredException" in _type_key(exc):
        return "recreate"
    if isinstance(
        exc,
        BrokerRunnerNotFoundError
        | RunnerNotFoundError
        | HostedRunnerDeprovisionedError
        | RunnerVersionTooOldError
        | AuthenticationError
        | PermissionDeniedError
        | OAuthError,
    ):
        return "fatal"
    if any(key in _type_key(exc) for key in _FATAL_TYPE_KEYS):
        return "fatal"
    return "retry"


def poll_backoff(consecutive_failures: int, random: float) -> float:
    """15-30 s for the first 5 failures in a row, 30-60 s after (docs/protocol.md,
    "Polling and runner messages")."""
    if consecutive_failures <= 5:
        return 15.0 + 15.0 * random
    return 30.0 + 30.0 * random


def acquire_throttle(consecutive_failures: int) -> float:
    """Before the next poll after failed acquisitions: 1 s, 2 s, 4 s … up to 60 s (docs/protocol.md,
    "Acquire, renew, complete")."""
    if consecutive_failures <= 0:
        return 0.0
    return min(MAX_ACQUIRE_THROTTLE, 2.0 ** min(consecutive_failures - 1, 30))  # never overflows


class _Stop:
    """Sentinel in the request stream: no more job requests."""


class JobRequests:
    """`async for request in runner.job_requests()`.

    A plain iterator rather than a generator: a consumer cancelled mid-loop leaves
    nothing suspended for trio to finalise late.
    """

    def __init__(self, runner: RunnerClient) -> None:
        self._runner = runner

    def __aiter__(self) -> JobRequests:
        return self

    async def __anext__(self) -> JobRequest:
        return await self._runner._next_request()

    async def aclose(self) -> None:
        """Nothing to release (works with `contextlib.aclosing`); leaving the runner stops polling."""


class RunnerClient:
    """Be a self-hosted runner for one JIT (or configured) runner config.

    ```python
    async with RunnerClient(JitConfig.decode(blob)) as runner:
        async for request in runner.job_requests():
            job = await runner.acquire_job(request)
            ...
            await job.complete("succeeded")
    ```

    Entering opens the session (the first request fetches the OAuth token; a
    409 conflict is retried every 30 s for up to `session_conflict_timeout`).
    When `.credentials` enables auth migration, broker and run-service calls
    use `authorizationUrlV2` tokens; a failed session create, poll or acquisition
    turns that off for an hour and is retried (see `_migration`).
    Leaving stops polling and lock renewal and deletes the session with its own
    30 s timeout. Pass `http=HTTPCore(client, sleep=..., clock=...)` to control
    time in tests; `http_client` is used as given and never closed here.
    """

    def __init__(
        self,
        config: JitConfig,
        *,
        http_client: httpx.AsyncClient | None = None,
        http: HTTPCore | None = None,
        runner_version: str = DEFAULT_RUNNER_VERSION,
        os_name: str | None = None,
        architecture: str | None = None,
        os_description: str | None = None,
        owner_name: str | None = None,
        disable_update: bool | None = None,
        session_conflict_timeout: float = SESSION_CONFLICT_TIMEOUT,
        session_retry_interval: float = SESSION_RETRY_INTERVAL,
        clock_skew_timeout: float = CLOCK_SKEW_TIMEOUT,
        max_poll_failures: int = MAX_POLL_FAILURES,
        renew_interval: float = RENEW_INTERVAL,
        user_agent: str | None = None,
    ) -> None:
        settings = config.runner
        if settings.use_v2_flow and not settings.server_url_v2:
            raise InvalidJitConfigError("`.runner` sets UseV2Flow but has no ServerUrlV2")
        if not settings.uses_broker and not settings.server_url:
            raise InvalidJitConfigError(
                "`.runner` has neither a ServerUrlV2 (with UseV2Flow) nor a ServerUrl"
            )
        private_key: RSAPrivateKey | None = None
        if config.credentials.scheme == OAUTH_SCHEME or not settings.uses_broker:
            private_key = config.private_key()
        self.config = config
        self._owns_http = http is None
        self.http = http if http is not None else HTTPCore(http_client, user_agent_suffix=user_agent)
        self.identity = RunnerIdentity(
            agent_id=settings.agent_id,
            agent_name=settings.agent_name,
            version=runner_version,
            os=os_name or runner_os(),
            architecture=architecture or runner_architecture(),
            os_description=os_description if os_description is not None else default_os_description(),
            owner_name=owner_name or default_owner_name(),
            disable_update=settings.disable_update if disable_update is None else disable_update,
        )
        self.tokens = RunnerTokens(self.http, config.credentials, private_key)
        self.connection: BrokerConnection | PipelinesConnection
        if settings.uses_broker:
            self.connection = BrokerConnection(self.http, self.tokens, settings.server_url_v2, self.identity)
        else:
            self.connection = PipelinesConnection(
                self.http,
                self.tokens,
                settings.server_url,
                settings.pool_id,
                self.identity,
                private_key=private_key,
            )
        self.session_conflict_timeout = session_conflict_timeout
        self.session_retry_interval = session_retry_interval
        self.clock_skew_timeout = clock_skew_timeout
        self.max_poll_failures = max_poll_failures
        self.renew_interval = renew_interval
        self.update_offer: RunnerRefresh | AgentRefresh | None = None
        """The last self-update offer: reported here and in the log, never acted on."""
        self.shutdown_reason: str | None = None
        self.jobs: dict[str, Job] = {}
        """Jobs acquired and not yet completed, by job id."""
        self._entered = False
        self._tg: TaskGroup | None = None
        self._send: MemoryObjectSendStream[JobRequest | BaseException | _Stop] | None = None
        self._receive: MemoryObjectReceiveStream[JobRequest | BaseException | _Stop] | None = None
        self._polling = False
        self._poll_scope: anyio.CancelScope | None = None
        self._polled_status: Status | None = None
        self._acquired = 0
        self._acquire_failures = 0
        self._finished = False
        self._early_cancellations: dict[str, JobCancellation] = {}

    def __repr__(self) -> str:
        return (
            f"RunnerClient(agent_name={self.identity.agent_name!r}, flow={self.connection.flow!r}, "
            f"session_id={self.session_id!r}, status={self.status!r})"
        )

    # lifecycle ------------------------------------------------------------------------------

    @property
    def session_id(self) -> str | None:
        return self.connection.session_id

    @property
    def status(self) -> Status:
        """`Busy` while a job is held, else `Online` (sent on every poll)."""
        return "Busy" if self.jobs else "Online"

    @property
    def ephemeral(self) -> bool:
        return self.config.runner.ephemeral

    async def __aenter__(self) -> Self:
        if self._tg is not None:
            raise RuntimeError("a RunnerClient can be entered only once")
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._send, self._receive = anyio.create_memory_object_stream(math.inf)
        try:
            await self._create_session()
        except BaseException as exc:
            tg.cancel_scope.cancel()
            try:
                await tg.__aexit__(None, None, None)
            finally:
                self._finish()
                self._close_streams()
                await self._close_http()
            raise exc from exc.__cause__
        self._entered = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._entered or self._tg is None:
            return
        self._entered = False
        try:
            self._tg.cancel_scope.cancel()
            with anyio.CancelScope(shield=True):
                await self._fail_held_jobs()
                await self._delete_session()
            self._finish()
            # The caller's exception propagates on its own; the task group only sees its children.
            await self._tg.__aexit__(None, None, None)
        finally:
            self._close_streams()
            await self._close_http()

    def _close_streams(self) -> None:
        if self._send is not None:
            self._send.close()
        if self._receive is not None:
            self._receive.close()

    async def _close_http(self) -> None:
        if self._owns_http:
            with anyio.CancelScope(shield=True):
                await self.http.aclose()

    async def aclose(self) -> None:
        await self.__aexit__(None, None, None)

    async def _fail_held_jobs(self) -> None:
        """Complete jobs still held at exit as failed, as the listener does for a crashed worker
        (docs/protocol.md, "Acquire, renew, complete").

        Without it the job would stay "in progress" and the runner's slot taken.
        """
        for job in list(self.jobs.values()):
            logger.warning("job %s was never completed; reporting it as failed", job.job_id)
            with anyio.move_on_after(SESSION_DELETE_TIMEOUT):
                try:
                    await job.complete(
                        "failed",
                        annotations=[
                            Annotation("The runner stopped before the job completed.", level="failure")
                        ],
                    )
                except (HTTPStatusError, RequestError) as exc:
                    logger.warning("could not fail job %s: %s", job.job_id, exc.message)
            self.jobs.pop(job.job_id, None)

    async def _delete_session(self) -> None:
        if self.shutdown_reason is not None:
            logger.info("not deleting the session after RunnerShutdown (%s)", self.shutdown_reason)
            return
        if self.session_id is None:
            return
        with anyio.move_on_after(SESSION_DELETE_TIMEOUT) as scope:
            try:
                await self.connection.delete_session()
            except (HTTPStatusError, RequestError) as exc:
                logger.warning("could not delete session %s: %s", self.session_id, exc.message)
        if scope.cancelled_caught:
            logger.warning("deleting session %s timed out", self.session_id)

    def _defer_auth_migration(self, exc: HTTPStatusError | RequestError, what: str) -> bool:
        """Under auth migration, turn it off for an hour and say the failure is to be retried.

        The official listeners and `Runner.cs` do so on a failed broker session
        create, poll or job acquisition, so that the next try uses `authorizationUrl`.
        """
        migration = self.tokens.migration
        if not migration.allowed or not survives_auth_migration(exc):
            return False
        migration.defer(f"{what} failed: {exc.message}")
        return True

    async def _create_session(self) -> None:
        """Create the session; retry a 409 and token clock skew as the official listener does
        (docs/protocol.md, "Polling and runner messages").

        Under auth migration any broker session failure is retried after 30 s
        with migration off (`BrokerMessageListener.CreateSessionAsync`).
        """
        started = self.http.clock()
        while True:
            try:
                await self.connection.create_session()
            except (HTTPStatusError, RequestError) as exc:
                if isinstance(self.connection, BrokerConnection) and self._defer_auth_migration(
                    exc, "creating the broker session"
                ):
                    logger.warning(
                        "creating the session failed (%s); retrying in %.0f s",
                        exc.message,
                        self.session_retry_interval,
                    )
                elif isinstance(exc, ConflictError):
                    waited = self.http.clock() - started
                    if waited + self.session_retry_interval > self.session_conflict_timeout:
                        raise self._conflict_error(exc, waited) from None
                    logger.warning(
                        "runner %r already has a session (a previous process did not delete it?); "
                        "retrying in %.0f s (waited %.0f s of %.0f s)",
                        self.identity.agent_name,
                        self.session_retry_interval,
                        waited,
                        self.session_conflict_timeout,
                    )
                elif isinstance(exc, OAuthError):
                    waited = self.http.clock() - started
                    skew = CLOCK_SKEW_MARKER in (exc.error_description or "")
                    if not skew or waited + self.session_retry_interval > self.clock_skew_timeout:
                        if exc.registration_deleted:
                            logger.error("the runner registration has been deleted (OAuth invalid_client)")
                        raise
                    logger.warning(
                        "the token service reports clock skew; retrying in %.0f s",
                        self.session_retry_interval,
                    )
                else:
                    raise
            else:
                return
            await self.http.sleep(self.session_retry_interval)

    def _conflict_error(self, exc: ConflictError, waited: float) -> RunnerSessionConflictError:
        minutes, seconds = divmod(int(waited), 60)
        return exc.as_error(
            RunnerSessionConflictError,
            f"runner {self.identity.agent_name!r} (id {self.identity.agent_id}) already has an active "
            "session. It usually expires a few minutes after its runner process died; "
            f"waited {minutes} min {seconds} s",
            error_kind=getattr(exc, "error_kind", None),
        )

    # job requests ---------------------------------------------------------------------------

    def job_requests(self) -> JobRequests:
        """Job requests as they arrive; pass each to `acquire_job`.

        Polling runs in the background (with `status=Busy` while a job is held, so
        cancellations arrive). An ephemeral runner's iterator ends after its one
        acquired job; any runner's ends on `RunnerShutdown`. A fatal error
        (registration deleted, version refused, too many failed polls) is raised here.
        """
        self._start_polling()
        return JobRequests(self)

    async def _next_request(self) -> JobRequest:
        assert self._receive is not None
        if self._finished_with_jobs():
            raise StopAsyncIteration
        try:
            item = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None
        if isinstance(item, _Stop):
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def _finished_with_jobs(self) -> bool:
        return self._finished or (self.ephemeral and self._acquired > 0)

    def _start_polling(self) -> None:
        if self._polling:
            return
        if self._tg is None or not self._entered:
            raise RuntimeError("use `async with RunnerClient(...)` before asking for job requests")
        self._polling = True
        self._tg.start_soon(self._poll_loop)

    def _finish(self, item: BaseException | None = None) -> None:
        if self._finished:
            return
        self._finished = True
        if self._send is not None:
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._send.send_nowait(item if item is not None else _Stop())
            self._send.close()

    async def _poll_loop(self) -> None:
        try:
            await self._poll_until_done()
        except Exception as exc:  # noqa: BLE001 - delivered to the caller of job_requests(), not lost in the group
            logger.error("the runner stopped polling: %s", exc)
            self._finish(exc)
        else:
            self._finish()

    async def _poll_until_done(self) -> None:
        failures = 0
        while not self._finished and not (self.ephemeral and self._acquired > 0 and not self.jobs):
            throttle = acquire_throttle(self._acquire_failures)
            if throttle:
                await self.http.sleep(throttle)
            else:
                await anyio.lowlevel.checkpoint()  # a server that answers at once must not starve the caller
            status = self.status
            message: RunnerMessage | None = None
            error: HTTPStatusError | RequestError | None = None
            with anyio.CancelScope() as scope:
                self._poll_scope, self._polled_status = scope, status
                try:
                    message = await self.connection.get_message(status)
                except (HTTPStatusError, RequestError) as exc:
                    error = exc
            self._poll_scope = None
            if scope.cancelled_caught:
                continue  # the status changed: poll again with the new one
            if error is None:
                failures = 0
                if message is not None:
                    await self._dispatch(message)
                continue
            action = classify_poll_error(error)
            if self._defer_auth_migration(error, "polling for messages"):
                action = "retry"  # the listeners retry anything under migration, with it off
            if action == "recreate" and not self.config.runner.skip_session_recover:
                logger.warning("session %s expired; creating a new one", self.session_id)
                await self._create_session()
                continue
            failures += 1
            if action != "retry" or failures >= self.max_poll_failures:
                raise error
            wait = poll_backoff(failures, self.http.random())
            logger.warning(
                "polling for messages failed (%s, %d in a row); retrying in %.0f s",
                error.message,
                failures,
                wait,
            )
            await self.http.sleep(wait)

    def _status_changed(self) -> None:
        if self._poll_scope is not None and self._polled_status != self.status:
            self._poll_scope.cancel()

    async def _dispatch(self, message: RunnerMessage) -> None:
        delete = True
        if isinstance(message, RunnerJobRequest | PipelineJobRequest):
            delete = await self._offer(message)
        elif isinstance(message, JobCancellation):
            jobs = [job for job in self.jobs.values() if job.matches(message)]
            if not jobs:
                # It may be for a request handed out but not acquired yet: remembered for acquire_job.
                logger.info("cancellation for job %s, which this runner does not hold", message.job_id)
                self._early_cancellations[message.job_id.lower()] = message
            for job in jobs:
                job._cancel("cancelled by the server", message.timeout)
        elif isinstance(message, ForceTokenRefresh):
            logger.info("the server asked for new tokens")
            self.tokens.invalidate()
        elif isinstance(message, BrokerMigration):
            self.connection.migrate(message.broker_base_url)
        elif isinstance(message, RunnerRefresh | AgentRefresh):
            self.update_offer = message
            logger.warning(
                "the server offers runner version %s; this runner does not update itself (reported only)",
                message.target_version,
            )
        elif isinstance(message, RunnerRefreshConfig):
            logger.warning(
                "the server asked for a %s config refresh; not supported, ignored", message.config_type
            )
        elif isinstance(message, RunnerShutdown):
            logger.warning(
                "the server asked the runner to shut down: %s", message.reason or "no reason given"
            )
            self.shutdown_reason = message.reason or "RunnerShutdown"
            self._finish()
            return
        elif isinstance(message, UnknownMessage):
            logger.info("ignoring a message of unknown type %r", message.message_type)
        if delete:
            try:
                await self.connection.delete_message(message)
            except (HTTPStatusError, RequestError) as exc:
                logger.warning("could not delete message %s: %s", message.message_id, exc.message)

    async def _offer(self, request: JobRequest) -> bool:
        """Acknowledge a job request and hand it to `job_requests()`; False leaves a v1 message undeleted."""
        if self.ephemeral and (self._acquired > 0 or self._finished):
            # A run-once runner leaves a second job for another runner (docs/protocol.md,
            # "Polling and runner messages").
            logger.info(
                "ignoring job request %s: this ephemeral runner already took its job",
                request.runner_request_id,
            )
            return False
        if isinstance(request, RunnerJobRequest) and request.should_acknowledge:
            try:
                await self.connection.acknowledge(request, self.status)
            except AcknowledgeJobNotFoundError:
                logger.warning("job request %s no longer exists; dropped", request.runner_request_id)
                if self.ephemeral:
                    self._finish()
                return True
            except (HTTPStatusError, RequestError) as exc:
                logger.warning(
                    "could not acknowledge job request %s: %s", request.runner_request_id, exc.message
                )
        if self._finished or self._send is None:
            return False
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._send.send_nowait(request)
        return True

    # jobs -----------------------------------------------------------------------------------

    async def acquire_job(self, request: JobRequest) -> Job:
        """Take the job: `acquirejob` (v2) with the runner token, then the first lock renewal.

        404, 409 and 422 raise `RunServiceError` at once (not found, taken by
        another runner, unprocessable) and slow the next polls down (1 s → 60 s).
        If the first renewal fails 5 times the job is not held and its error is raised.
        """
        if self._tg is None:
            raise RuntimeError("use `async with RunnerClient(...)` before acquiring jobs")
        job: Job
        if isinstance(request, PipelineJobRequest):
            if not isinstance(self.connection, PipelinesConnection):
                raise InvalidResponseError("a v1 job request arrived on a broker session")
            job = Job(
                self.http,
                request,
                request.job,
                _PipelinesBackend(self.connection, request.job),
                on_release=self._released,
            )
        else:
            message = await self._acquire(request)
            job = Job(
                self.http, request, message, _RunServiceBackend(self.http, message), on_release=self._released
            )
        early = self._early_cancellations.pop(job.job_id.lower(), None) or self._early_cancellations.pop(
            request.runner_request_id.lower(), None
        )
        if early is not None:
            job._cancel("cancelled by the server", early.timeout)
        await job._first_renewal()
        self._acquire_failures = 0
        self._acquired += 1
        self.jobs[job.job_id] = job
        self._status_changed()
        self._tg.start_soon(job._keep_lock, self.renew_interval)
        logger.info("acquired job %s (%s)", job.job_id, job.display_name)
        return job

    async def _acquire(self, request: RunnerJobRequest) -> JobMessage:
        if not request.run_service_url:
            raise InvalidResponseError(
                "the job request has no run_service_url (older services fetch jobs from the pipelines "
                "service, which this runner does not support)"
            )
        url = resolve_url(request.run_service_url, "acquirejob")
        try:
            response = await self.http.request(
                "POST",
                url,
                policy=RUN_SERVICE_RETRY,
                auth=self.tokens.auth_for(url, v2=True),
                headers={"Accept": "application/json"},
                json=acquire_body(request, self.identity.os),
            )
        except HTTPStatusError as exc:
            if exc.status_code in (404, 409, 422):
                self._acquire_failures += 1
                raise as_run_service_error(exc) from None
            self._defer_auth_migration(exc, "acquiring a job")
            raise
        except RequestError as exc:
            self._defer_auth_migration(exc, "acquiring a job")
            raise
        payload = decode_json(response, "a job message")
        try:
            return parse_job_message(payload)
        except InvalidResponseError as exc:
            raise invalid_response(response, exc.reason) from None

    def _released(self, job: Job) -> None:
        self.jobs.pop(job.job_id, None)
        self._status_changed()
