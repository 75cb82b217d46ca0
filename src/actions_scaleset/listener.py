"""`Listener`: the loop most users want: poll, acquire, tell the `Scaler`, ack.

See docs/protocol.md, "Listener semantics", and "Quirks and why the SDK handles them" for
what crashes GitHub's listener, each handled here.
"""

from __future__ import annotations

import inspect
import logging
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol, runtime_checkable

import anyio
import attrs

from ._http import RetryPolicy
from .actions import ScaleSetClient
from .errors import (
    ActionsScaleSetError,
    AuthenticationError,
    HTTPStatusError,
    InvalidResponseError,
    MessageQueueTokenExpiredError,
    PermissionDeniedError,
    RateLimitError,
    RequestError,
    ScaleSetNotFoundError,
    ServerError,
    SessionConflictError,
    TransportError,
)
from .models import (
    JobCompleted,
    JobStarted,
    Label,
    RunnerScaleSetMessage,
    RunnerScaleSetStatistic,
    RunnerSetting,
)
from .session import MessageSession

__all__ = [
    "EnsureScaleSet",
    "Listener",
    "ListenerStatus",
    "MetricsRecorder",
    "NoopMetrics",
    "Scaler",
    "desired_runners",
]

logger = logging.getLogger("actions_scaleset.listener")

MAX_RUNNERS_LIMIT: Final = 2**31 - 1
RECONNECT_BACKOFF: Final = RetryPolicy(max_attempts=1_000_000, initial_delay=1.0, max_delay=60.0, jitter=0.25)
HANDLER_RETRY_DELAY: Final = 5.0


@runtime_checkable
class Scaler(Protocol):
    """What your autoscaler implements. Every method is an `async def`, awaited by the listener.

    The listener never cancels a call to your scaler half way: when it is cancelled
    (SIGTERM, say) it lets the call finish, then stops. So a runner you were starting
    is never orphaned, but keep each call bounded (time out your own provisioning calls).
    """

    async def handle_desired_runner_count(self, count: int) -> int:
        """Make `count` runners exist (idle or busy); return the count you settled on."""
        ...

    async def handle_job_started(self, job: JobStarted) -> None:
        """A runner of yours took a job: mark it busy so scaling down spares it."""
        ...

    async def handle_job_completed(self, job: JobCompleted) -> None:
        """A job finished (or was cancelled): the runner can go."""
        ...


class MetricsRecorder(Protocol):
    """Where the listener reports what ARC exports as `gha_*` metrics (docs/protocol.md,
    "Listener semantics")."""

    def record_statistics(self, statistics: RunnerScaleSetStatistic) -> None: ...
    def record_job_started(self, job: JobStarted) -> None: ...
    def record_job_completed(self, job: JobCompleted) -> None: ...
    def record_desired_runners(self, count: int) -> None: ...


class NoopMetrics:
    """The default `MetricsRecorder`: records nothing."""

    def record_statistics(self, statistics: RunnerScaleSetStatistic) -> None:
        pass

    def record_job_started(self, job: JobStarted) -> None:
        pass

    def record_job_completed(self, job: JobCompleted) -> None:
        pass

    def record_desired_runners(self, count: int) -> None:
        pass


def desired_runners(statistics: RunnerScaleSetStatistic, *, minimum: int, maximum: int) -> int:
    """`min(maximum, minimum + totalAssignedJobs)`: scale on assigned jobs, never on message counts.

    `minimum` is the number of idle runners to keep (ARC ADR 2023-11-02, docs/protocol.md,
    "Listener semantics").
    """
    return max(0, min(maximum, minimum + max(0, statistics.total_assigned_jobs)))


@attrs.frozen
class EnsureScaleSet:
    """How to re-create the scale set when GitHub deletes it (7 days without a listener)."""

    name: str
    runner_group: str = "default"
    labels: Sequence[str | Label] | None = None
    runner_setting: RunnerSetting | None = None


@attrs.frozen
class ListenerStatus:
    """Where one listener stands: `Listener.status`, and per set `ListenerGroup.status()`.

    Times are seconds since the epoch (`time.time()`), None until it happened.
    """

    scale_set_id: int | None
    session_open: bool = False
    """A message session is open: the listener is polling its queue."""
    last_poll_at: float | None = None
    """When the queue last answered a poll (a message, or empty): the listener is alive."""
    last_message_at: float | None = None
    """When the last message with job events or statistics was handled."""
    desired_runners: int | None = None
    """The count the scaler last settled on."""
    last_error: str | None = None
    """The last failure (one line), kept after recovery; None if none yet."""
    restarts: int = 0
    """Times a `ListenerGroup` restarted the listener after a fatal error."""


class Listener:
    """Listens on one scale set and keeps a `Scaler` told, until cancelled.

    - On start: reports the session statistics, scales to them, and acquires jobs
      that were already waiting (ARC #4027).
    - Per message: acquires `JobAvailable` jobs, calls `handle_job_started` and
      `handle_job_completed`, scales to `desired_runners(...)`, then acknowledges.
      Handling is shielded from cancellation. If the scaler raises, the message is
      not acknowledged and comes back.
    - Empty polls re-apply the last statistics.
    - Every call to the scaler is shielded from cancellation, so none is left half
      done; the scaler's methods must be `async def` (checked here, `TypeError`).
    - Transient failures (network, 5xx, rate limits, a 409 that outlasted the
      session's wait) reconnect with capped, jittered backoff, for as long as they
      last; a server's `Retry-After` is honoured up to `reconnect_backoff.max_retry_after`.
    - `ScaleSetNotFoundError` is raised, unless `ensure=EnsureScaleSet(...)` was
      given: then the scale set is re-created and listening carries on.
    - `status` says where it stands (session open, last poll and message, desired
      runners, last error); `open_limiter` caps session creations shared with other
      listeners (`ListenerGroup` sets it).
    """

    def __init__(  # noqa: PLR0917 - the issue's positional order: client, id, scaler, min, max
        self,
        client: ScaleSetClient,
        scale_set_id: int | None = None,
        scaler: Scaler | None = None,
        min_runners: int = 0,
        max_runners: int = MAX_RUNNERS_LIMIT,
        metrics: MetricsRecorder | None = None,
        *,
        ensure: EnsureScaleSet | None = None,
        owner: str | None = None,
        reconnect_backoff: RetryPolicy = RECONNECT_BACKOFF,
        session_options: Mapping[str, Any] | None = None,
        open_limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        if scaler is None:
            raise TypeError("Listener needs a scaler")
        _check_scaler(scaler)
        if scale_set_id is None and ensure is None:
            raise TypeError("Listener needs scale_set_id= or ensure=EnsureScaleSet(...)")
        if not 0 <= min_runners <= max_runners <= MAX_RUNNERS_LIMIT:
            raise ValueError("need 0 <= min_runners <= max_runners <= 2**31 - 1")
        self.client = client
        self.scale_set_id = scale_set_id
        self.scaler = scaler
        self.min_runners = min_runners
        self.max_runners = max_runners
        self.metrics: MetricsRecorder = metrics if metrics is not None else NoopMetrics()
        self.ensure = ensure
        self.owner = owner or socket.gethostname()
        self.reconnect_backoff = reconnect_backoff
        self.session_options = dict(session_options or {})
        self.statistics = RunnerScaleSetStatistic()
        self.last_desired: int | None = None
        self.open_limiter = open_limiter
        self.session_open = False
        self.last_poll_at: float | None = None
        self.last_message_at: float | None = None
        self.last_error: str | None = None
        self._startup_acquire_failed = False
        self._recreated = False
        """The scale set was re-created and no poll has succeeded since."""
        self._failures = 0
        """Reconnects in a row; back to 0 once a poll succeeds."""

    def __repr__(self) -> str:
        return (
            f"Listener(scale_set_id={self.scale_set_id}, min_runners={self.min_runners}, "
            f"max_runners={self.max_runners}, owner={self.owner!r})"
        )

    @property
    def status(self) -> ListenerStatus:
        """A snapshot of where the listener stands."""
        return ListenerStatus(
            scale_set_id=self.scale_set_id,
            session_open=self.session_open,
            last_poll_at=self.last_poll_at,
            last_message_at=self.last_message_at,
            desired_runners=self.last_desired,
            last_error=self.last_error,
        )

    async def run(self) -> None:
        """Listen until cancelled. Raises only what it cannot recover from.

        However long an outage lasts it keeps reconnecting, with waits capped by
        `reconnect_backoff`, and every turn of its loops can be cancelled.
        """
        self._failures = 0
        while True:
            await anyio.lowlevel.checkpoint()  # cancellable on every turn, whatever fails how fast
            try:
                if self.scale_set_id is None:
                    await self._ensure_scale_set()
                assert self.scale_set_id is not None
                options = dict(self.session_options)
                if self.open_limiter is not None:
                    options.setdefault("open_limiter", self.open_limiter)
                session = self.client.session(self.scale_set_id, owner=self.owner, **options)
                async with session:
                    self.session_open = True
                    try:
                        await self._start(session)
                        await self._poll(session)
                    finally:
                        self.session_open = False
            except ScaleSetNotFoundError as exc:
                self.last_error = _one_line(exc)
                if self.ensure is None:
                    logger.error(
                        "scale set %s no longer exists (GitHub deletes scale sets after 7 days without a "
                        "listener): %s. Re-create it (ensure_scale_set) and start the listener again, or "
                        "pass ensure=EnsureScaleSet(...) to have it re-created automatically.",
                        self.scale_set_id,
                        exc.message,
                    )
                    raise
                logger.warning("scale set %s is gone; re-creating %r", self.scale_set_id, self.ensure.name)
                self.scale_set_id = None
                if self._recreated:  # gone again right after re-creating it: do not spin
                    await self._back_off(exc)
                else:
                    self._recreated = True
                    self._failures = max(self._failures, 1)  # a repeat backs off from the second step
            except (AuthenticationError, PermissionDeniedError) as exc:
                if isinstance(exc, MessageQueueTokenExpiredError):
                    await self._back_off(exc)  # a new session brings a new token
                    continue
                self.last_error = _one_line(exc)
                logger.error("credentials were refused: %s", exc)
                raise
            except RequestError as exc:
                if not _transient(exc):
                    self.last_error = _one_line(exc)
                    raise
                await self._back_off(exc)

    async def _back_off(self, exc: ActionsScaleSetError) -> None:
        """Wait before reconnecting: jittered backoff, or the server's wait up to the policy's cap."""
        self._failures += 1
        self.last_error = _one_line(exc)
        policy = self.reconnect_backoff
        asked = exc.retry_after if isinstance(exc, RateLimitError) else None
        wait = policy.capped_wait(self._failures, asked, random=self.client.http.random())
        if logger.isEnabledFor(logging.WARNING):  # formatting the error costs more than the rest
            logger.warning(
                "listener lost its session (%s); reconnecting in %.1f s (attempt %d)",
                _one_line(exc),
                wait,
                self._failures,
                extra={"scale_set_id": self.scale_set_id, "wait": wait, "attempt": self._failures},
            )
        if asked is not None and not asked <= wait:
            logger.warning(
                "the service asked for a wait of %.0f s; waiting %.0f s instead (the reconnect policy's "
                "max_retry_after is %g s)",
                asked,
                wait,
                policy.max_retry_after,
            )
        await self.client.http.sleep(wait)

    async def _ensure_scale_set(self) -> None:
        assert self.ensure is not None
        scale_set = await self.client.ensure_scale_set(
            self.ensure.name,
            runner_group=self.ensure.runner_group,
            labels=self.ensure.labels,
            runner_setting=self.ensure.runner_setting,
        )
        self.scale_set_id = scale_set.id
        logger.info("listening on scale set %d %r", scale_set.id, scale_set.name)

    async def _start(self, session: MessageSession) -> None:
        self._record(session.statistics)
        await self._scale()
        if session.statistics.total_available_jobs > 0:
            await self._acquire_waiting(session)

    async def _acquire_waiting(self, session: MessageSession) -> None:
        """Best effort: acquire jobs that were waiting before this session (ARC #4027).

        GitHub's current listener never calls `acquirablejobs`, and a broker tenant may not
        serve it, so a failure here is logged and listening goes on: the queue redelivers
        what is still available.
        """
        assert self.scale_set_id is not None
        try:
            waiting = await self.client.get_acquirable_jobs(self.scale_set_id)
            if not waiting:
                return
            acquired = await session.acquire_jobs([job.runner_request_id for job in waiting])
        except ActionsScaleSetError as exc:
            level = logging.DEBUG if self._startup_acquire_failed else logging.WARNING
            self._startup_acquire_failed = True
            logger.log(
                level,
                "could not acquire the jobs waiting at start (%s); listening for them instead",
                _one_line(exc),
            )
            return
        logger.info("acquired %d of %d jobs already waiting at start", len(acquired), len(waiting))

    async def _poll(self, session: MessageSession) -> None:
        last_message_id = 0
        while True:
            await anyio.lowlevel.checkpoint()  # an in-process queue may never suspend on its own
            message = await session.get_message(last_message_id, max_capacity=self.max_runners)
            self._failures = 0
            self._recreated = False
            self.last_poll_at = time.time()
            if message is None:
                self._record(session.statistics)
                await self._scale()
                continue
            with anyio.CancelScope(shield=True):
                handled = await self._handle(session, message)
                if handled:
                    await session.delete_message(message.message_id)
                    last_message_id = message.message_id
                    self.last_message_at = time.time()
            if not handled:
                await self.client.http.sleep(HANDLER_RETRY_DELAY)

    async def _handle(self, session: MessageSession, message: RunnerScaleSetMessage) -> bool:
        """Handle one message; False when the scaler failed and the message must come back."""
        if message.statistics is not None:
            self._record(message.statistics)
        available = [job.runner_request_id for job in message.jobs_available]
        if available:
            await session.acquire_jobs(available)
        try:
            for started in message.jobs_started:
                self.metrics.record_job_started(started)
                await self.scaler.handle_job_started(started)
            for completed in message.jobs_completed:
                self.metrics.record_job_completed(completed)
                await self.scaler.handle_job_completed(completed)
            await self._scale(raise_errors=True)
        except Exception:
            logger.exception(
                "the scaler failed on message %d; it stays unacknowledged and will be delivered again",
                message.message_id,
            )
            return False
        return True

    def _record(self, statistics: RunnerScaleSetStatistic) -> None:
        self.statistics = statistics
        self.metrics.record_statistics(statistics)

    async def _scale(self, *, raise_errors: bool = False) -> None:
        """Tell the scaler the target; shielded, so a runner it was starting is never orphaned."""
        target = desired_runners(self.statistics, minimum=self.min_runners, maximum=self.max_runners)
        try:
            with anyio.CancelScope(shield=True):
                settled = await self.scaler.handle_desired_runner_count(target)
        except Exception:
            if raise_errors:
                raise
            logger.exception("the scaler failed to scale to %d runners", target)
            return
        self.last_desired = settled
        self.metrics.record_desired_runners(settled)


_SCALER_METHODS: Final = ("handle_desired_runner_count", "handle_job_started", "handle_job_completed")


def _check_scaler(scaler: object) -> None:
    """Refuse a scaler whose methods are missing or not `async def`: awaiting them would fail later."""
    for name in _SCALER_METHODS:
        method = getattr(scaler, name, None)
        if method is None or not callable(method):
            raise TypeError(f"the scaler {type(scaler).__name__} has no {name}() method (see asc.Scaler)")
        if not (
            inspect.iscoroutinefunction(method)
            or inspect.iscoroutinefunction(type(method).__call__)  # an object with an async __call__
        ):
            raise TypeError(
                f"{type(scaler).__name__}.{name} must be a coroutine function (`async def {name}`): "
                "the listener awaits it"
            )


_TRANSIENT: Final = (SessionConflictError, ServerError, InvalidResponseError, RateLimitError, TransportError)


def _transient(exc: RequestError) -> bool:
    """Network trouble, 5xx, rate limits, unusable bodies and a lasting 409 pass; other 4xx do not."""
    return isinstance(exc, _TRANSIENT) or not isinstance(exc, HTTPStatusError)


def _one_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
