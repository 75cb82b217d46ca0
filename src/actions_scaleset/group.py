"""`ListenerGroup`: many `Listener`s in one task group, each scale set's failures kept to itself.

One process can serve many scale sets (ARC #4169 asks for it). Share one
`ScaleSetClient` per config URL among their listeners: one registration exchange and
one admin token serve them all, and the client's long polls have a pool of their own.
See docs/protocol.md, "Listener semantics" and "A 409 from a stale session".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Iterator, Mapping
from types import MappingProxyType
from typing import Final, Generic, TypeVar

import anyio
import attrs
from anyio.abc import TaskGroup

from ._http import RetryPolicy
from .errors import ActionsScaleSetError
from .listener import Listener, ListenerStatus

__all__ = ["DEFAULT_OPEN_CONCURRENCY", "DEFAULT_START_JITTER", "RESTART_BACKOFF", "ListenerGroup"]

logger = logging.getLogger("actions_scaleset.group")

K = TypeVar("K", bound=Hashable)

DEFAULT_OPEN_CONCURRENCY: Final = 10
"""Session creations in flight at once across the group."""
DEFAULT_START_JITTER: Final = 1.0
"""Each listener starts after a random pause of up to this many seconds."""
RESTART_BACKOFF: Final = RetryPolicy(max_attempts=1_000_000, initial_delay=5.0, max_delay=300.0, jitter=0.25)
"""The wait before restarting a listener that stopped on a fatal error: 5 s doubling to 5 min."""


@attrs.define
class _Member:
    listener: Listener
    restarts: int = 0
    failures: int = 0
    """Fatal errors in a row; back to 0 once the listener polled after a restart."""
    scope: anyio.CancelScope | None = None
    done: anyio.Event | None = None


class ListenerGroup(Generic[K]):
    """Runs many `Listener`s, keyed by your names for them, until cancelled.

    - A listener that raises (its scale set was deleted and it has no `ensure=`, the
      credentials for it were refused, a bug in its scaler's set-up) is logged, its
      error kept in its status, and it is restarted after `restart_backoff` (5 s
      doubling to 5 min); the other listeners go on.
    - `add(key, listener)` and `await remove(key)` work before and while it runs (a
      config reload); `remove` returns once the listener has stopped and deleted its
      session. Cancelling `run()` stops every listener, each deleting its session.
    - Start-up does not stampede the service: each listener starts after a random pause
      of up to `start_jitter` seconds, and at most `open_concurrency` session creations
      are in flight at once (an int, or an `anyio.CapacityLimiter` to share with other
      groups). A listener waiting out a 409 does not hold its place meanwhile.
    - `status()` gives each set's `ListenerStatus` (session open, last poll and message,
      desired runners, last error, restarts), for metrics and a CLI.

    Every listener is its own task on its own long poll, so a set's pickup latency does
    not grow with the number of idle sets.
    """

    def __init__(
        self,
        *,
        open_concurrency: int | anyio.CapacityLimiter = DEFAULT_OPEN_CONCURRENCY,
        start_jitter: float = DEFAULT_START_JITTER,
        restart_backoff: RetryPolicy = RESTART_BACKOFF,
    ) -> None:
        if isinstance(open_concurrency, int) and open_concurrency < 1:
            raise ValueError("open_concurrency must be at least 1")
        if not start_jitter >= 0:
            raise ValueError("start_jitter must be 0 or more seconds")
        self.start_jitter = start_jitter
        self.restart_backoff = restart_backoff
        self._open_concurrency = open_concurrency
        self._limiter: anyio.CapacityLimiter | None = None
        self._members: dict[K, _Member] = {}
        self._tg: TaskGroup | None = None

    def __repr__(self) -> str:
        return f"ListenerGroup({len(self._members)} listeners, {'running' if self._tg else 'not running'})"

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._members))

    def __contains__(self, key: object) -> bool:
        return key in self._members

    def __getitem__(self, key: K) -> Listener:
        return self._members[key].listener

    @property
    def open_limiter(self) -> anyio.CapacityLimiter:
        """The limiter on session creations that the group gives its listeners (made on first use)."""
        if self._limiter is None:
            concurrency = self._open_concurrency
            self._limiter = (
                concurrency
                if isinstance(concurrency, anyio.CapacityLimiter)
                else anyio.CapacityLimiter(concurrency)
            )
        return self._limiter

    def add(self, key: K, listener: Listener) -> None:
        """Add a listener under `key`; it starts now if the group is running. `KeyError` if `key` is taken."""
        if not isinstance(listener, Listener):
            raise TypeError(f"ListenerGroup.add takes a Listener, not {type(listener).__name__}")
        if key in self._members:
            raise KeyError(f"{key!r} is already in the group: remove it first")
        member = self._members[key] = _Member(listener)
        if self._tg is not None:
            self._start(key, member, self._tg)

    async def remove(self, key: K) -> Listener:
        """Stop the listener under `key` and wait until its session is deleted; returns it.

        `KeyError` if there is none.
        """
        member = self._members.pop(key)
        if member.scope is not None:
            member.scope.cancel()
        if member.done is not None:
            await member.done.wait()
        return member.listener

    def status(self) -> Mapping[K, ListenerStatus]:
        """Each listener's status now, in the order they were added (a read-only snapshot)."""
        return MappingProxyType(
            {
                key: attrs.evolve(member.listener.status, restarts=member.restarts)
                for key, member in self._members.items()
            }
        )

    async def run(self) -> None:
        """Run every listener, and those added later, until cancelled."""
        if self._tg is not None:
            raise RuntimeError("this ListenerGroup is already running")
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for key, member in self._members.items():
                    self._start(key, member, tg)
                await anyio.sleep_forever()
        finally:
            self._tg = None
            for member in self._members.values():
                member.scope = member.done = None

    def _start(self, key: K, member: _Member, tg: TaskGroup) -> None:
        if member.listener.open_limiter is None:
            member.listener.open_limiter = self.open_limiter
        member.scope = anyio.CancelScope()
        member.done = anyio.Event()
        tg.start_soon(self._supervise, key, member, member.scope, member.done, name=f"listener {key!r}")

    async def _supervise(self, key: K, member: _Member, scope: anyio.CancelScope, done: anyio.Event) -> None:
        """Run one listener; restart it with backoff whenever it raises."""
        listener = member.listener
        http = listener.client.http
        try:
            with scope:
                if self.start_jitter > 0:
                    await http.sleep(http.random() * self.start_jitter)
                while True:
                    started = time.time()
                    try:
                        await listener.run()
                    except Exception as exc:  # noqa: BLE001 - kept to this scale set, reported, retried
                        await self._after_failure(key, member, exc, started)
                    else:
                        logger.info("the listener for %r returned; it is not restarted", key)
                        return
        finally:
            done.set()

    async def _after_failure(self, key: K, member: _Member, exc: Exception, started: float) -> None:
        listener = member.listener
        if listener.last_poll_at is not None and listener.last_poll_at >= started:
            member.failures = 0  # it worked for a while: start the backoff over
        member.failures += 1
        member.restarts += 1
        listener.last_error = _one_line(exc)
        http = listener.client.http
        wait = self.restart_backoff.capped_wait(member.failures, random=http.random())
        logger.error(
            "the listener for %r (scale set %s) stopped: %s; restarting it in %.0f s (restart %d)",
            key,
            listener.scale_set_id,
            listener.last_error,
            wait,
            member.restarts,
            exc_info=not isinstance(exc, ActionsScaleSetError),  # a bug: show where
            extra={"scale_set_id": listener.scale_set_id, "wait": wait, "restarts": member.restarts},
        )
        await http.sleep(wait)


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
