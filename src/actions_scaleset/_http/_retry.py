"""`RetryPolicy`: every retry decision in one value object, with presets per endpoint class.

The delay function is pure: status, headers, body and time come in, seconds (or
"give up") come out. See docs/protocol.md, "Retries and timeouts", and docs/retries.md.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable, Mapping
from typing import Final

import attrs
import httpx

from ..errors import classify_rate_limit, parse_error_body, parse_retry_after

__all__ = [
    "ACTIONS_RETRY",
    "MESSAGE_POLL_RETRY",
    "NO_RETRY",
    "REGISTRATION_RETRY",
    "REST_RETRY",
    "SINGLE_USE_RETRY",
    "RetryPolicy",
]

DEFAULT_MAX_ATTEMPTS: Final = 5
DEFAULT_INITIAL_DELAY: Final = 1.0
DEFAULT_MAX_DELAY: Final = 30.0
DEFAULT_MAX_RETRY_AFTER: Final = 120.0
DEFAULT_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})

# Transport errors after which the request surely never reached the server.
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Transport errors that a retry cannot fix (docs/protocol.md, "Retries and timeouts": redirects, scheme,
# bad certificate).
_NEVER_RETRIED: Final = (httpx.UnsupportedProtocol, httpx.TooManyRedirects, httpx.InvalidURL)


@attrs.frozen
class RetryPolicy:
    """When to try a request again, and how long to wait first.

    `max_attempts` counts the first try: 1 means never retry. The n-th retry waits
    `initial_delay * multiplier**(n-1)`, capped at `max_delay`, less up to
    `jitter` of itself at random; it never overflows, however many attempts there
    were. A `Retry-After` (seconds or HTTP-date) or a GitHub rate-limit reset is
    honoured instead, up to `max_retry_after`; a longer wait gives up at once,
    raising the typed error with its status. A loop that must not give up (the
    listener) waits `capped_wait(...)`: the backoff, or the server's wait cut to
    `max_retry_after`.

    `decide`, if given, replaces the decision for a status: it gets
    (attempt, status, headers) and returns seconds to wait, or None to give up.
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    initial_delay: float = DEFAULT_INITIAL_DELAY
    max_delay: float = DEFAULT_MAX_DELAY
    multiplier: float = 2.0
    jitter: float = 0.25
    retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    retry_transport_errors: bool = True
    only_unsent: bool = False
    """Retry transport errors only when the request surely was not sent (single-use calls)."""
    rate_limit_aware: bool = False
    """Treat a GitHub REST 403/429 rate limit as retryable after its reset time."""
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    decide: Callable[[int, int, Mapping[str, str]], float | None] | None = None

    def __attrs_post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        delays = (self.initial_delay, self.max_delay, self.max_retry_after)
        if any(math.isnan(delay) or delay < 0 for delay in delays):
            raise ValueError("delays must not be negative")
        if math.isnan(self.multiplier) or self.multiplier <= 0:
            raise ValueError("multiplier must be positive")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a fraction between 0 and 1")

    def backoff(self, attempt: int, *, random: float = 0.0) -> float:
        """The wait before retry number `attempt` (1-based), jitter drawn from `random` in [0, 1)."""
        base = min(self.max_delay, self._grown(attempt))
        return base * (1.0 - self.jitter * random)

    def _grown(self, attempt: int) -> float:
        """`initial_delay * multiplier**(attempt-1)` without overflowing (attempt 10**6 is fine)."""
        if attempt <= 1 or self.initial_delay == 0:
            return float(self.initial_delay)
        try:
            return self.initial_delay * float(self.multiplier) ** (attempt - 1)
        except OverflowError:
            return math.inf

    def capped_wait(self, attempt: int, retry_after: float | None = None, *, random: float = 0.0) -> float:
        """The wait before attempt `attempt + 1` of a loop that never gives up (the listener's reconnects).

        The backoff, or the server's `retry_after` when longer, but never more than
        `max_retry_after` (nor `max_delay`, if that is longer): a `Retry-After: 1000000000`
        waits two minutes, not 31 years.
        """
        wait = self.backoff(attempt, random=random)
        if retry_after is None or not retry_after > wait:  # also None-like: NaN
            return wait
        return min(retry_after, max(self.max_retry_after, wait))

    def delay_for_status(
        self,
        attempt: int,
        status_code: int,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        now: float,
        random: float = 0.0,
    ) -> float | None:
        """Seconds to wait before retrying after `attempt` tries got `status_code`; None: give up."""
        if attempt >= self.max_attempts:
            return None
        if self.decide is not None:
            return self.decide(attempt, status_code, headers)
        if self.rate_limit_aware and status_code in (403, 429):
            parsed = parse_error_body(body, headers.get("content-type", ""))
            message = parsed.get("message", "") if isinstance(parsed, dict) else str(parsed or "")
            limited = classify_rate_limit(status_code, headers, str(message), now=now)
            if limited is not None:
                _, wait = limited
                if wait is None:
                    wait = self.backoff(attempt, random=random)
                return wait if wait <= self.max_retry_after else None
        if status_code not in self.retry_statuses:
            return None
        retry_after = parse_retry_after(headers.get("retry-after"), now=now)
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        return self.backoff(attempt, random=random)

    def delay_for_exception(self, attempt: int, exc: BaseException, *, random: float = 0.0) -> float | None:
        """Seconds to wait before retrying after `attempt` tries raised `exc`; None: give up."""
        if attempt >= self.max_attempts or not self.retry_transport_errors:
            return None
        if not isinstance(exc, httpx.TransportError) or isinstance(exc, _NEVER_RETRIED):
            return None
        if _is_certificate_error(exc):
            return None
        if self.only_unsent and not isinstance(exc, _NOT_SENT):
            return None
        return self.backoff(attempt, random=random)


def _is_certificate_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


REST_RETRY: Final = RetryPolicy(max_attempts=4, rate_limit_aware=True)
"""GitHub REST: 5xx and transport errors, and rate limits up to `max_retry_after`."""

REGISTRATION_RETRY: Final = RetryPolicy(
    max_attempts=5, retry_statuses=DEFAULT_RETRY_STATUSES | {401, 403}, max_delay=30.0
)
"""`actions/runner-registration`: a new registration token is accepted lazily (docs/protocol.md,
"From your credentials to the admin token")."""

ACTIONS_RETRY: Final = RetryPolicy(max_attempts=5)
"""The Actions service: transport errors, 429 and 5xx (docs/protocol.md, "Retries and timeouts")."""

MESSAGE_POLL_RETRY: Final = RetryPolicy(max_attempts=3, initial_delay=1.0, max_delay=10.0)
"""The long poll: a few quick retries; the listener reconnects with its own backoff."""

SINGLE_USE_RETRY: Final = RetryPolicy(max_attempts=3, retry_statuses=frozenset({429, 503}), only_unsent=True)
"""Calls that must not run twice (JIT config, acquire): retry only what surely did not run."""

NO_RETRY: Final = RetryPolicy(max_attempts=1)
"""Never retry."""
