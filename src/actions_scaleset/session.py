"""`MessageSession`: one scale set's message session, long poll, ack and acquire.

See docs/protocol.md: "The message-queue token", "The long poll",
"Acknowledging and acquiring", "A 409 from a stale session" and "Listener semantics".
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self, TypeVar
from urllib.parse import quote

import anyio
import attrs
import httpx

from ._http import (
    ACTIONS_RETRY,
    MESSAGE_POLL_RETRY,
    POLL_TIMEOUT,
    RetryPolicy,
    decode_json,
    decode_model,
    invalid_response,
    path_id,
    url_problem,
    with_path_segment,
)
from ._jwt import token_expiry
from ._secret import Secret
from .auth import BearerAuth, TokenCache
from .errors import (
    ActionsScaleSetError,
    InvalidResponseError,
    MessageQueueTokenExpiredError,
    NotFoundError,
    ScaleSetNotFoundError,
    SessionConflictError,
)
from .models import (
    Int64List,
    RunnerScaleSetMessage,
    RunnerScaleSetSession,
    RunnerScaleSetStatistic,
    salvage_message,
    session_request_body,
)

if TYPE_CHECKING:
    from .actions import ScaleSetClient

__all__ = ["DEFAULT_CLOSE_TIMEOUT", "DEFAULT_CONFLICT_TIMEOUT", "MessageIterator", "MessageSession"]

logger = logging.getLogger("actions_scaleset.session")

T = TypeVar("T")

DEFAULT_CONFLICT_TIMEOUT: Final = 300.0
"""How long `open()` waits out a stale session (409) before raising."""
DEFAULT_CLOSE_TIMEOUT: Final = 30.0
"""How long deleting the session may take on exit (docs/protocol.md, "Listener semantics": ARC's legacy
listener uses 30 s)."""
CONFLICT_BACKOFF: Final = RetryPolicy(max_attempts=1_000_000, initial_delay=5.0, max_delay=30.0, jitter=0.25)
UNUSABLE_REPLY_BACKOFF: Final = RetryPolicy(
    max_attempts=1_000_000, initial_delay=1.0, max_delay=30.0, jitter=0.25
)
"""The pause after each unusable 200 from the queue in a row: 1 s, 2 s, 4 s … up to 30 s, never a hot loop."""
MQ_TOKEN_MARGIN: Final = 60.0
"""Refresh the message-queue token this long before its JWT `exp`, when it has one."""
_NIL_UUID: Final = "00000000-0000-0000-0000-000000000000"
_POLL_ACCEPT: Final = "application/json; api-version=6.0-preview"
_REMEMBERED_ACQUISITIONS: Final = 10_000


class MessageSession:
    """A message session on one scale set's queue. Use it with `async with`.

    Opening waits out a 409 from a stale session (with capped, jittered backoff, up
    to `conflict_timeout` seconds) instead of failing. A 401 from the queue
    refreshes the session and retries once; the token is also refreshed before its
    expiry when it is a readable JWT; a refresh that finds the session gone deletes
    it (in case it is not) and creates a new one. Leaving the block deletes the
    session within `close_timeout` seconds, even when the block was cancelled, and
    so does a cancellation while the session is being created: the `POST` is
    shielded, and a session it made after all is deleted.

    `open_limiter` (an `anyio.CapacityLimiter` shared by many sessions) caps how many
    session creations are in flight at once. It is held only for each `POST`, never
    while waiting out a 409, so one stale session does not hold up the others.
    """

    def __init__(
        self,
        client: ScaleSetClient,
        scale_set_id: int,
        *,
        owner: str,
        conflict_timeout: float = DEFAULT_CONFLICT_TIMEOUT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        conflict_backoff: RetryPolicy = CONFLICT_BACKOFF,
        poll_retry: RetryPolicy = MESSAGE_POLL_RETRY,
        unusable_backoff: RetryPolicy = UNUSABLE_REPLY_BACKOFF,
        open_limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        self.client = client
        self.scale_set_id = path_id(scale_set_id, "scale_set_id")
        self.owner = owner
        self.conflict_timeout = conflict_timeout
        self.close_timeout = close_timeout
        self.conflict_backoff = conflict_backoff
        self.poll_retry = poll_retry
        self.unusable_backoff = unusable_backoff
        self.open_limiter = open_limiter
        self._holds_poll = False
        self._unusable_replies = 0
        self._acquired: OrderedDict[int, None] = OrderedDict()
        self._cache: TokenCache[RunnerScaleSetSession] = TokenCache(
            self._refetch, clock=client.http.clock, refresh_margin=MQ_TOKEN_MARGIN
        )
        self._statistics = RunnerScaleSetStatistic()
        self._user_agent = client.user_agent(self.scale_set_id)
        # url -> (token, auth): one BearerAuth per queue/admin URL and session token, not one per call
        self._mq_auths: dict[str, tuple[Secret, BearerAuth]] = {}

    def __repr__(self) -> str:
        state = f"session_id={self.session_id!r}" if self._cache.current else "closed"
        return f"MessageSession(scale_set_id={self.scale_set_id}, owner={self.owner!r}, {state})"

    # ------------------------------------------------------------------ state

    @property
    def session_id(self) -> str | None:
        session = self._cache.current
        return session.session_id if session is not None else None

    @property
    def statistics(self) -> RunnerScaleSetStatistic:
        """The latest statistics: from the session, then from every message."""
        return self._statistics

    @property
    def message_queue_url(self) -> str:
        return self._require().message_queue_url

    def _require(self) -> RunnerScaleSetSession:
        session = self._cache.current
        if session is None:
            raise RuntimeError("the message session is not open: use `async with client.session(...)`")
        return session

    def _mq_auth(self, url: str, token: Secret) -> BearerAuth:
        """The message-queue auth for `url` and `token`, built once per session token."""
        cached = self._mq_auths.get(url)
        if cached is not None and cached[0] is token:
            return cached[1]
        if any(known is not token for known, _ in self._mq_auths.values()):
            self._mq_auths.clear()  # a refreshed session: drop the auths of the old token
        auth = BearerAuth.fixed(url, token, kind="message-queue token")
        self._mq_auths[url] = (token, auth)
        return auth

    def _path(self, session_id: str | None = None) -> str:
        sessions = f"_apis/runtime/runnerscalesets/{self.scale_set_id}/sessions"
        return f"{sessions}/{quote(session_id, safe='')}" if session_id is not None else sessions

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> RunnerScaleSetSession:
        """Create the session, waiting out a stale one (409) for up to `conflict_timeout` s.

        `ScaleSetNotFoundError` is raised at once: the scale set is gone.
        """
        session = await self._create()
        self._cache.put(session, _token_expiry(session))
        if not self._holds_poll:
            self._holds_poll = True
            self.client.http.polls.hold()
        return session

    async def _create(self) -> RunnerScaleSetSession:
        clock = self.client.http.clock
        started = clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                # Shielded: a cancel while the POST is in flight must not leave a session behind
                # that the next listener meets as a 409.
                response = await self._post_limited()
            except SessionConflictError as exc:
                waited = clock() - started
                wait = self.conflict_backoff.backoff(attempt, random=self.client.http.random())
                if waited + wait > self.conflict_timeout:
                    raise exc.as_error(
                        SessionConflictError,
                        f"{exc.message}\nA stale session usually expires a few minutes after its listener "
                        f"died; waited {_duration(waited)} (conflict_timeout={self.conflict_timeout:g} s).",
                    ) from None
                logger.warning(
                    "scale set %d already has an active session (a listener that died, or another one "
                    "running); retrying in %.1f s (waited %s of %s)",
                    self.scale_set_id,
                    wait,
                    _duration(waited),
                    _duration(self.conflict_timeout),
                    extra={"scale_set_id": self.scale_set_id, "wait": wait},
                )
                await self.client.http.sleep(wait)
                continue
            session = _checked(decode_model(response, RunnerScaleSetSession, "a message session"), response)
            if session.statistics is None:
                # both of GitHub's listeners refuse a new session without statistics
                raise invalid_response(response, "the message session has no statistics")
            self._statistics = session.statistics
            logger.info(
                "opened message session %s on scale set %d as %r",
                session.session_id,
                self.scale_set_id,
                self.owner,
            )
            return session

    async def _post_limited(self) -> httpx.Response:
        """One shielded `POST`, within `open_limiter` when there is one (released before any 409 wait)."""
        if self.open_limiter is None:
            return await _complete_or_undo(self._post_session, self._undo_create, grace=self.close_timeout)
        async with self.open_limiter:
            return await _complete_or_undo(self._post_session, self._undo_create, grace=self.close_timeout)

    async def _post_session(self) -> httpx.Response:
        return await self.client.actions_request(
            "POST",
            self._path(),
            json=session_request_body(owner_name=self.owner),
            expect=(200, 201),
            scale_set_id=self.scale_set_id,
        )

    async def _undo_create(self, response: httpx.Response) -> None:
        """Cancelled while the session was being created, and the server made it: delete it."""
        try:
            made = _checked(decode_model(response, RunnerScaleSetSession, "a message session"), response)
        except InvalidResponseError:
            return  # nothing usable was made
        logger.info("cancelled while opening a message session; deleting the one the server made")
        await self._delete(made.session_id)

    async def refresh(self) -> RunnerScaleSetSession:
        """Get a new message-queue URL and token (`PATCH` the session); re-create it if it is gone.

        Concurrent callers share one refresh.
        """
        return await self._cache.refresh()

    async def _refetch(self) -> tuple[RunnerScaleSetSession, float | None]:
        """`PATCH` the session for a new token: the one request behind every refresh."""
        old = self._require()
        try:
            response = await self.client.actions_request(
                "PATCH", self._path(old.session_id), scale_set_id=self.scale_set_id
            )
        except ScaleSetNotFoundError:
            raise
        except NotFoundError:
            # scaleset PR #123: the session expired server-side; a new one carries on. Delete the
            # old one first, best effort: if the 404 was wrong, our own session would answer the
            # create with a 409 until it expired.
            logger.warning("message session %s is gone (404 on refresh); creating a new one", old.session_id)
            await self._delete(old.session_id)
            session = await self._create()
            return session, _token_expiry(session)
        session = decode_model(response, RunnerScaleSetSession, "a message session")
        # actions/scaleset `refreshMessageSession` takes the reply as it comes: one without
        # statistics (or without its id) keeps what we knew
        if not session.session_id or session.session_id == _NIL_UUID:
            session = attrs.evolve(session, session_id=old.session_id)
        session = _checked(session, response)
        if session.statistics is not None:
            self._statistics = session.statistics
        logger.info("refreshed the message-queue token of session %s", session.session_id)
        return session, _token_expiry(session)

    async def close(self) -> None:
        """Delete the session, shielded from cancellation, within `close_timeout` seconds."""
        session = self._cache.current
        self._cache.invalidate()
        self._acquired.clear()
        if self._holds_poll:
            self._holds_poll = False
            self.client.http.polls.release()
        if session is None:
            return
        await self._delete(session.session_id)

    async def _delete(self, session_id: str | None) -> None:
        """`DELETE` a session, shielded from cancellation, within `close_timeout` s; never raises."""
        if not session_id:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(self.close_timeout) as scope:
            try:
                await self.client.actions_request(
                    "DELETE",
                    self._path(session_id),
                    expect=(204, 200),
                    scale_set_id=self.scale_set_id,
                )
                logger.info("deleted message session %s", session_id)
            except NotFoundError:
                logger.info("message session %s was already gone", session_id)
            except ActionsScaleSetError as exc:
                logger.warning("could not delete message session %s: %s", session_id, exc)
        if scope.cancelled_caught:
            logger.warning(
                "deleting message session %s took over %g s; it will expire on its own",
                session_id,
                self.close_timeout,
            )

    # ------------------------------------------------------------------ the queue

    async def _with_fresh_token(self, call: Callable[[RunnerScaleSetSession], Awaitable[T]]) -> T:
        """Run `call`; on a 401 from the queue, refresh the session and run it once more.

        The token is refreshed first when it is about to expire. Either way, concurrent
        calls share one refresh.
        """
        self._require()
        session = await self._cache.get()
        try:
            return await call(session)
        except MessageQueueTokenExpiredError:
            logger.info("the message queue refused its token (401); refreshing the session once")
            return await call(await self._cache.refresh(stale=session))

    async def get_message(
        self, last_message_id: int | None = None, *, max_capacity: int
    ) -> RunnerScaleSetMessage | None:
        """Long-poll for the next message; None when the poll ends empty (202).

        A 200 whose body is empty or cannot be decoded is logged and read as "no
        message": GitHub's listener crash-looped on it (ARC #4488). It returns after a
        pause that grows with each unusable reply in a row (`unusable_backoff`), so a
        queue that keeps answering that way is never polled in a hot loop.
        """
        if not 0 <= max_capacity <= 2**31 - 1:
            raise ValueError("max_capacity must be between 0 and 2**31 - 1")

        async def poll(session: RunnerScaleSetSession) -> RunnerScaleSetMessage | None:
            params = (
                {"lastMessageId": str(last_message_id)} if last_message_id and last_message_id > 0 else None
            )
            response = await self.client.http.request(
                "GET",
                session.message_queue_url,
                policy=self.poll_retry,
                auth=self._mq_auth(session.message_queue_url, session.message_queue_access_token),
                headers={
                    "Accept": _POLL_ACCEPT,
                    "X-ScaleSetMaxCapacity": str(max_capacity),
                    "User-Agent": self._user_agent,
                },
                params=params,
                timeout=POLL_TIMEOUT,
                expect=(200, 202),
                long_poll=True,
                unauthorized=MessageQueueTokenExpiredError,
            )
            if response.status_code == 202:
                self._unusable_replies = 0
                return None
            message: RunnerScaleSetMessage | None
            try:
                message = decode_model(response, RunnerScaleSetMessage, "a message")
            except InvalidResponseError as exc:
                message = _salvage(response, exc)
                if message is None:
                    await self._pause_after_unusable_reply(exc)
                    return None
            self._unusable_replies = 0
            if message.statistics is not None:
                self._statistics = message.statistics
            return message

        return await self._with_fresh_token(poll)

    async def _pause_after_unusable_reply(self, error: InvalidResponseError) -> None:
        # ARC #4488: an empty or broken 200 is "no message", never fatal, and never a hot loop
        self._unusable_replies += 1
        wait = self.unusable_backoff.backoff(self._unusable_replies, random=self.client.http.random())
        logger.warning(
            "ignoring an unusable message from the queue (%s; %d in a row); polling again in %.1f s",
            error.reason,
            self._unusable_replies,
            wait,
            extra={"scale_set_id": self.scale_set_id, "wait": wait},
        )
        await self.client.http.sleep(wait)

    async def delete_message(self, message_id: int) -> None:
        """Acknowledge a message: it will not be delivered again."""

        async def delete(session: RunnerScaleSetSession) -> None:
            await self.client.http.request(
                "DELETE",
                with_path_segment(session.message_queue_url, str(int(message_id))),
                policy=ACTIONS_RETRY,
                auth=self._mq_auth(session.message_queue_url, session.message_queue_access_token),
                headers={"Content-Type": "application/json", "User-Agent": self._user_agent},
                expect=(204, 200),
                unauthorized=MessageQueueTokenExpiredError,
            )

        await self._with_fresh_token(delete)

    async def acquire_jobs(self, runner_request_ids: Sequence[int]) -> list[int]:
        """Acquire jobs for this scale set; returns the ids actually acquired.

        Sent to the Actions service with the message-queue token (docs/protocol.md,
        "Acknowledging and acquiring").
        """
        if isinstance(runner_request_ids, str | bytes):
            raise TypeError("runner_request_ids must be a list of ints, not a str")
        ids = [path_id(i, "a runner request id") for i in runner_request_ids]
        if not ids:
            return []
        admin_url = await self.client.admin_url()

        async def acquire(session: RunnerScaleSetSession) -> list[int]:
            response = await self.client.actions_request(
                "POST",
                f"_apis/runtime/runnerscalesets/{self.scale_set_id}/acquirejobs",
                json=ids,
                auth=self._mq_auth(admin_url, session.message_queue_access_token),
                unauthorized=MessageQueueTokenExpiredError,
                scale_set_id=self.scale_set_id,
            )
            return list(decode_model(response, Int64List, "a list of acquired job ids").value)

        acquired = await self._with_fresh_token(acquire)
        self._log_acquired(ids, acquired)
        for job_id in acquired:
            self._acquired[job_id] = None
            self._acquired.move_to_end(job_id)
        while len(self._acquired) > _REMEMBERED_ACQUISITIONS:
            self._acquired.popitem(last=False)
        return acquired

    def _log_acquired(self, ids: Sequence[int], acquired: Sequence[int]) -> None:
        """Say what became of the jobs not acquired now: ours already (at start, say), or gone elsewhere."""
        missing = set(ids) - set(acquired)
        if not missing:
            return
        ours = sum(1 for job_id in missing if job_id in self._acquired)
        if not ours:
            logger.info(
                "acquired %d of %d jobs (others went elsewhere or were cancelled)", len(acquired), len(ids)
            )
            return
        elsewhere = len(missing) - ours
        logger.info(
            "acquired %d of %d jobs: %d already acquired by this session (at start or from an earlier "
            "message)%s",
            len(acquired),
            len(ids),
            ours,
            f", {elsewhere} went elsewhere or cancelled" if elsewhere else "",
        )

    def messages(self, *, max_capacity: int) -> MessageIterator:
        """Messages as they come, each acknowledged once the consumer asks for the next.

        A consumer that raises (or breaks out) leaves its current message
        unacknowledged, so the queue delivers it again. Empty polls are skipped.
        """
        return MessageIterator(self, max_capacity)


class MessageIterator:
    """`async for message in session.messages(...)`: acks the previous message before the next poll.

    A plain iterator, not a generator, so nothing is left suspended when a consumer
    stops early (trio finalises abandoned async generators late).
    """

    def __init__(self, session: MessageSession, max_capacity: int) -> None:
        self.session = session
        self.max_capacity = max_capacity
        self.last_message_id = 0
        self._unacked: int | None = None

    def __aiter__(self) -> MessageIterator:
        return self

    async def __anext__(self) -> RunnerScaleSetMessage:
        if self._unacked is not None:
            await self.session.delete_message(self._unacked)
            self.last_message_id, self._unacked = self._unacked, None
        while True:
            message = await self.session.get_message(self.last_message_id, max_capacity=self.max_capacity)
            if message is not None:
                self._unacked = message.message_id
                return message


def _salvage(response: httpx.Response, error: InvalidResponseError) -> RunnerScaleSetMessage | None:
    """Keep what can be read of a bad message, so its redelivery cannot stop the queue."""
    try:
        payload = decode_json(response, "a message")
    except InvalidResponseError:
        payload = None
    message, problems = salvage_message(payload) if payload is not None else (None, ())
    if message is None:
        return None
    logger.error(
        "message %d could not be fully decoded (%s); handling the %d job events that could",
        message.message_id,
        "; ".join(problems) or error.reason,
        len(message.events),
    )
    return message


async def _complete_or_undo(
    call: Callable[[], Awaitable[T]], undo: Callable[[T], Awaitable[None]], *, grace: float
) -> T:
    """Run `call` shielded from cancellation; a result the caller was cancelled before getting is undone.

    For requests that make something on the server (a session, a runner): cancelling the
    caller mid-request would otherwise leave it made but unknown. Once the caller is
    cancelled, `call` has `grace` more seconds to finish; if it made something, `undo`
    gets it (shielded, within `grace` s too) and the cancellation goes on.
    """
    shield = anyio.CancelScope(shield=True)
    finished = False
    made: list[T] = []
    failed: list[Exception] = []

    async def watch() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            if not finished:  # the caller was cancelled while `call` ran: bound what is left of it
                shield.deadline = min(shield.deadline, anyio.current_time() + grace)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            with shield:
                try:
                    made.append(await call())
                except Exception as exc:  # noqa: BLE001 - re-raised below, outside the task group
                    failed.append(exc)
            finished = True
            tg.cancel_scope.cancel()
        await anyio.lowlevel.checkpoint()  # a cancellation that came just as `call` finished
    except anyio.get_cancelled_exc_class():
        if made:
            with anyio.CancelScope(shield=True), anyio.move_on_after(grace):
                await undo(made[0])
        raise
    if failed:
        raise failed[0]
    return made[0]


def _checked(session: RunnerScaleSetSession, response: httpx.Response) -> RunnerScaleSetSession:
    """A session the queue can be used with: a GUID id, a token and an absolute http(s) URL.

    The id goes into paths, so anything but a GUID is refused (`actions/scaleset` decodes it
    as a `uuid.UUID`); a URL that cannot be used is refused now rather than at the first poll.
    """
    try:
        session_id = str(uuid.UUID(session.session_id))
    except (ValueError, TypeError):
        raise invalid_response(response, "the message session has no usable sessionId") from None
    if session_id == _NIL_UUID:
        raise invalid_response(response, "the message session has no sessionId")
    if not session.message_queue_access_token:
        raise invalid_response(response, "the message session has no messageQueueAccessToken")
    problem = url_problem(session.message_queue_url)
    if problem is not None:
        raise invalid_response(response, f"the message session's messageQueueUrl is unusable: {problem}")
    return session


def _token_expiry(session: RunnerScaleSetSession) -> float | None:
    return token_expiry(session.message_queue_access_token.get_secret_value())


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
