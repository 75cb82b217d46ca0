"""Per-token rate limits: a token bucket per key, and the `X-RateLimit-*` headers that describe it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import attrs

__all__ = ["Decision", "RateLimiter"]

MAX_KEYS = 10_000
"""Buckets kept at most; full buckets are forgotten first (a full bucket is the default)."""


@attrs.frozen
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int
    """When the bucket is full again, in seconds since the epoch (as GitHub's `X-RateLimit-Reset`)."""
    retry_after: int
    """Seconds until the next request is allowed; 0 when this one was."""

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


@attrs.define
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """`per_minute` requests a minute per key, with bursts of as many; `take(key)` decides."""

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.limit = per_minute
        self.rate = per_minute / 60.0
        self._clock, self._wall = clock, wall
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> Decision:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.limit), now)
        bucket.tokens = min(float(self.limit), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        to_full = (self.limit - bucket.tokens) / self.rate
        retry_after = 0 if allowed else max(1, math.ceil((1.0 - bucket.tokens) / self.rate))
        return Decision(
            allowed=allowed,
            limit=self.limit,
            remaining=int(bucket.tokens),
            reset=math.ceil(self._wall() + to_full),
            retry_after=retry_after,
        )

    def _forget_full(self, now: float) -> None:
        if len(self._buckets) < MAX_KEYS:
            return
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.at) * self.rate >= self.limit:
                del self._buckets[key]
        while len(self._buckets) >= MAX_KEYS:  # all busy: drop the oldest
            del self._buckets[next(iter(self._buckets))]
