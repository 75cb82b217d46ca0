"""`TokenCache`: one cached token, refreshed single-flight before it expires."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")

__all__ = ["TokenCache"]


class TokenCache(Generic[T]):
    """Holds a value until `refresh_margin` seconds before its expiry.

    `fetch` returns (value, expires_at as a UNIX time, or None when unknown: then
    the value is kept until `invalidate()`). Concurrent callers of `get()` while a
    refresh runs wait for that one refresh instead of starting their own.

    The margin has a floor, so a short-lived token or a skewed clock never causes a
    refresh on every call: a token is kept for at least half the lifetime it had when
    it arrived, and one that arrived already expired by the local clock is kept for
    `refresh_margin` seconds (the server's 401 says when it really is stale).
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[tuple[T, float | None]]],
        *,
        clock: Callable[[], float],
        refresh_margin: float,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._margin = refresh_margin
        self._value: T | None = None
        self._expires_at: float | None = None
        self._refresh_at: float | None = None
        self._lock: anyio.Lock | None = None

    @property
    def expires_at(self) -> float | None:
        return self._expires_at

    @property
    def current(self) -> T | None:
        """The cached value, fresh or not; None before the first fetch or after `invalidate()`."""
        return self._value

    def peek(self) -> T | None:
        """The cached value if it is still fresh, without fetching."""
        return self._value if self._fresh() else None

    def put(self, value: T, expires_at: float | None) -> None:
        """Cache a value obtained elsewhere (the first one, say)."""
        now = self._clock()
        self._value, self._expires_at = value, expires_at
        if expires_at is None:
            self._refresh_at = None
        elif expires_at > now:
            self._refresh_at = expires_at - min(self._margin, (expires_at - now) / 2)
        else:
            self._refresh_at = now + self._margin

    def invalidate(self) -> None:
        self._value = None
        self._expires_at = None
        self._refresh_at = None

    async def get(self) -> T:
        value = self.peek()
        if value is not None:
            return value
        async with self._locked():
            value = self.peek()
            if value is not None:
                return value
            return await self._store()

    async def refresh(self, stale: T | None = None) -> T:
        """Fetch anew, unless another task already replaced `stale` (for 401 handling)."""
        async with self._locked():
            current = self.peek()
            if current is not None and stale is not None and current != stale:
                return current
            return await self._store()

    def _locked(self) -> anyio.Lock:
        if self._lock is None:
            self._lock = anyio.Lock()
        return self._lock

    async def _store(self) -> T:
        value, expires_at = await self._fetch()
        self.put(value, expires_at)
        return value

    def _fresh(self) -> bool:
        if self._value is None:
            return False
        return self._refresh_at is None or self._clock() < self._refresh_at
