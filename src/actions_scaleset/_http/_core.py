"""`HTTPCore`: one `httpx.AsyncClient`, the retry loop, error mapping and redacted logs.

Every layer sends its requests through `HTTPCore.request`. It owns nothing but the
client (when it made it) and the injected clock, sleep and randomness.

One HTTP client per top-level object, in spirit: when `HTTPCore` makes its client it
also makes a second one, used only for the message queue's long polls
(`request(..., long_poll=True)`), whose pool has no limit. A thousand parked polls
then never take the connections that acquisitions and session calls need, and
httpx's default limit of 100 connections never leaves a scale set unheard.
`aclose()` closes both. A client you pass in carries every request, polls too (its
proxies and CA are yours); when its pool cannot hold the polls, a warning says so
once (`PollPool.hold`).

Nothing httpx raises leaves `request` untyped: a URL that is not absolute http(s) is a
`NetworkError` before anything is sent (as httpx's `UnsupportedProtocol` already was),
text HTTP cannot carry is a `ConfigurationError`, and a reply that cannot be read (a
body its `Content-Encoding` cannot decode, a redirect loop) is an `InvalidResponseError`.
"""

from __future__ import annotations

import json as jsonlib
import logging
import platform
import random as random_module
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Mapping
from contextlib import aclosing
from typing import Any, Final, TypeVar, cast

import anyio
import httpx

from .._redact import redact_url
from .._version import __version__
from ..errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidResponseError,
    NetworkError,
    RequestError,
    RequestTimeoutError,
    error_from_response,
)
from ..models import json_problem, load_json, structure
from ._retry import RetryPolicy
from ._urls import url_problem, with_query

__all__ = [
    "DEFAULT_TIMEOUT",
    "POLL_LIMITS",
    "POLL_TIMEOUT",
    "HTTPCore",
    "PollPool",
    "decode_json",
    "decode_model",
    "invalid_response",
    "pool_limit",
    "user_agent",
]

T = TypeVar("T")

logger = logging.getLogger("actions_scaleset.http")

DEFAULT_TIMEOUT: Final = httpx.Timeout(30.0, connect=10.0)
POLL_TIMEOUT: Final = httpx.Timeout(70.0, connect=10.0)
"""Above the ~50 s the message queue holds a long poll before it answers 202 (docs/protocol.md,
"The long poll")."""

POLL_LIMITS: Final = httpx.Limits(max_connections=None, max_keepalive_connections=None)
"""The long-poll client's pool: one connection per parked poll, however many scale sets."""

_UNSET: Final[Any] = object()
_MAX_REMEMBERED_ORIGINS: Final = 1024

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


def user_agent(suffix: str | None = None) -> str:
    """`actions-scaleset/<version> (+python/<ver>; httpx/<ver>)`, then the caller's suffix."""
    base = f"actions-scaleset/{__version__} (+python/{platform.python_version()}; httpx/{httpx.__version__})"
    return f"{base} {suffix.strip()}" if suffix and suffix.strip() else base


class RedactURLsFilter(logging.Filter):
    """Redacts URL arguments of log records: httpx logs each request's full URL at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, httpx.URL) for arg in record.args):
            record.args = tuple(
                redact_url(str(arg)) if isinstance(arg, httpx.URL) else arg for arg in record.args
            )
        return True


def _redact_httpx_log() -> None:
    # A signed blob URL carries its credential in the query; httpx would log it verbatim.
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, RedactURLsFilter) for f in httpx_logger.filters):
        httpx_logger.addFilter(RedactURLsFilter())


def pool_limit(client: httpx.AsyncClient) -> int | None:
    """The most connections `client`'s pool opens; None when unlimited or unreadable.

    httpx does not expose it: this reads its internals (`AsyncHTTPTransport._pool`),
    defensively, so an httpx that moved them only loses the warning.
    """
    try:
        pool = getattr(getattr(client, "_transport", None), "_pool", None)
        limit = getattr(pool, "_max_connections", None)
    except Exception:  # noqa: BLE001 - a property of somebody's transport; never worth a crash
        return None
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < sys.maxsize:
        return limit
    return None


class PollPool:
    """The connections long polls use, and how many polls are held.

    When the core made its client, polls get a client of their own (made at the first
    poll, pool unlimited: `POLL_LIMITS`). A client passed in carries the polls too;
    `hold()` warns once when the sessions holding polls fill its pool.
    """

    def __init__(self, client: httpx.AsyncClient, *, owned: bool) -> None:
        self._shared = client
        self._owned = owned
        self._own: httpx.AsyncClient | None = None
        self._closed = False
        self._warned = False
        self.held = 0
        """Message sessions open on this core, each keeping one long poll parked."""

    def client(self) -> httpx.AsyncClient:
        if not self._owned or self._closed:
            return self._shared  # once closed, the shared client's own error says so
        if self._own is None:
            self._own = httpx.AsyncClient(timeout=POLL_TIMEOUT, limits=POLL_LIMITS)
        return self._own

    def hold(self) -> None:
        """A message session opened: one more poll to park. Warns once when they fill your pool."""
        self.held += 1
        if self._owned or self._warned:
            return
        limit = pool_limit(self._shared)
        if limit is not None and self.held >= limit:
            self._warned = True
            logger.warning(
                "%d message sessions now share the http_client you gave, whose pool holds at most %d "
                "connections: each parks a long poll on one, so further polls wait (their scale sets "
                "hear of no jobs) and so does every other call. Make the pool larger than the number of "
                "scale sets: httpx.AsyncClient(limits=httpx.Limits(max_connections=...)), or None; or "
                "let the ScaleSetClient make its own client, which gives long polls a pool of their own.",
                self.held,
                limit,
            )

    def release(self) -> None:
        """A message session closed."""
        self.held = max(0, self.held - 1)

    async def aclose(self) -> None:
        self._closed = True
        if self._own is not None:
            await self._own.aclose()


class HTTPCore:
    """Sends requests with a retry policy and turns failures into typed errors.

    `http_client` is used as given (proxies, CA bundles and transports are yours);
    when None, one is made and closed by `aclose()`. `sleep`, `clock` and `random`
    are injectable so tests never wait.
    """

    def __init__(
        self,
        http_client: httpx.AsyncClient | None = None,
        *,
        user_agent_suffix: str | None = None,
        sleep: Sleep = anyio.sleep,
        clock: Clock = time.time,
        random: Callable[[], float] = random_module.random,
    ) -> None:
        self._owns_client = http_client is None
        self.client = http_client if http_client is not None else httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)
        self.polls = PollPool(self.client, owned=self._owns_client)
        """Where long polls go, and how many are held (see the module's docstring)."""
        self.user_agent = user_agent(user_agent_suffix)
        self.sleep = sleep
        self.clock = clock
        self.random = random
        self._usable_origins: set[str] = set()
        """`scheme://host:port` parts already found usable: each is checked once, not per request."""
        _redact_httpx_log()

    async def aclose(self) -> None:
        """Close the clients this core made (the long-poll client too); a client passed in is yours."""
        if self._owns_client:
            try:
                await self.polls.aclose()
            finally:
                await self.client.aclose()

    async def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        policy: RetryPolicy,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json: Any = _UNSET,
        content: bytes | None = None,
        data: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        expect: Collection[int] = (200,),
        unauthorized: type[AuthenticationError] = AuthenticationError,
        long_poll: bool = False,
    ) -> httpx.Response:
        """Send, retrying as `policy` says; return the response whose status is in `expect`.

        `long_poll=True` sends it on the long-poll client (`polls`), when this core made its own.

        `params` are added to the query `url` already has (a server-given URL keeps its own).

        An error status raises its typed `HTTPStatusError`; a 2xx outside `expect`, a body
        that cannot be decoded or a redirect loop raises `InvalidResponseError`; a transport
        failure, or a URL that is not absolute http(s), raises `TransportError`; text that
        HTTP cannot carry (a lone surrogate in the JSON body, say) raises `ConfigurationError`.
        The body is read before returning.
        """
        url, all_headers, content = self._prepare(
            method, url, headers=headers, params=params, json=json, content=content
        )
        shown_url = _ShownURL(url)  # redacted only when a log line or an error shows it
        build = {
            "headers": all_headers,
            "content": content,
            "data": data,
            "timeout": timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        }
        client = self.polls.client() if long_poll else self.client
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                response = await self._send(method, url, auth, shown_url, build, client=client)
            except httpx.TransportError as exc:
                elapsed_ms = (time.perf_counter() - started) * 1000
                wait = policy.delay_for_exception(attempt, exc, random=self.random())
                _log(
                    logging.DEBUG,
                    "%s %s failed after %.1f ms: %s",
                    method,
                    shown_url,
                    elapsed_ms,
                    type(exc).__name__,
                    attempt=attempt,
                    elapsed_ms=elapsed_ms,
                )
                if wait is None:
                    raise _transport_error(exc, method, str(url), attempt) from None
                _log(
                    logging.INFO,
                    "retrying %s %s in %.1f s after %s (attempt %d of %d)",
                    method,
                    shown_url,
                    wait,
                    type(exc).__name__,
                    attempt,
                    policy.max_attempts,
                    attempt=attempt,
                )
                await self.sleep(wait)
                continue

            elapsed_ms = (time.perf_counter() - started) * 1000
            status = response.status_code
            _log(
                logging.DEBUG,
                "%s %s -> %d in %.1f ms",
                method,
                shown_url,
                status,
                elapsed_ms,
                attempt=attempt,
                elapsed_ms=elapsed_ms,
                status_code=status,
            )
            if status in expect:
                return response
            if 200 <= status < 300:
                raise InvalidResponseError(
                    f"unexpected status {status} (expected {', '.join(map(str, sorted(expect)))})",
                    **_ids(response, method, str(url)),
                )
            wait = policy.delay_for_status(
                attempt, status, response.headers, response.content, now=self.clock(), random=self.random()
            )
            if wait is None:
                raise error_from_response(
                    method=method,
                    url=str(response.request.url),
                    status_code=status,
                    headers=response.headers,
                    body=response.content,
                    now=self.clock(),
                    unauthorized=unauthorized,
                )
            _log(
                logging.INFO,
                "retrying %s %s in %.1f s after status %d (attempt %d of %d)",
                method,
                shown_url,
                wait,
                status,
                attempt,
                policy.max_attempts,
                attempt=attempt,
                status_code=status,
            )
            await self.sleep(wait)

    def _check_origin(self, method: str, url: str) -> None:
        """A URL that is not absolute http(s) with a valid host and port is a `NetworkError`.

        Server-given URLs are checked when they arrive; this catches the rest once per
        origin, off the hot path. A bad character later in the URL fails in `_send`.
        """
        origin = "/".join(url.split("/", 3)[:3])
        if origin in self._usable_origins:
            return
        problem = url_problem(url)
        if problem is not None:
            raise NetworkError(
                f"cannot send the request: the URL cannot be used: {problem}", method=method, url=url
            )
        if len(self._usable_origins) < _MAX_REMEMBERED_ORIGINS:
            self._usable_origins.add(origin)

    def _prepare(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        json: Any,
        content: bytes | None,
    ) -> tuple[str | httpx.URL, dict[str, str], bytes | None]:
        """The URL with `params`, the headers and the body; what cannot be sent raises a typed error."""
        self._check_origin(method, str(url))
        all_headers = {"User-Agent": self.user_agent}
        if json is not _UNSET:
            content = _json_body(json, method, str(url))
            all_headers["Content-Type"] = "application/json"
        if headers:
            all_headers.update(headers)
        if params:
            try:
                url = with_query(url, params)  # never `params=`: httpx would drop the URL's own query
            except UnicodeEncodeError:
                raise _unsendable(
                    method, redact_url(str(url)), "a query parameter holds a lone surrogate"
                ) from None
        return url, all_headers, content

    async def _send(
        self,
        method: str,
        url: str | httpx.URL,
        auth: httpx.Auth | None,
        shown_url: _ShownURL,
        build: dict[str, Any],
        *,
        client: httpx.AsyncClient,
    ) -> httpx.Response:
        """Build, send and read one attempt. Transport errors pass through for the retry loop;
        anything else httpx raises becomes its typed error here."""
        try:
            request = client.build_request(method, url, **build)
        except UnicodeEncodeError:
            raise _unsendable(method, str(shown_url), f"a header or form field {_HEADER_TEXT}") from None
        except httpx.InvalidURL as exc:
            raise NetworkError(
                f"cannot send the request: the URL cannot be used ({exc})", method=method, url=str(shown_url)
            ) from None
        try:
            response = await client.send(
                request, auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT, stream=True
            )
        except (httpx.TooManyRedirects, httpx.DecodingError, httpx.InvalidURL) as exc:
            raise _unreadable_reply(exc, method, str(url), client.max_redirects) from None
        except UnicodeEncodeError:
            raise _unsendable(method, str(shown_url), f"a credential or header {_HEADER_TEXT}") from None
        return await _read(response)


_NOT_ENCODED: Final = frozenset({"", "identity"})


async def _read(response: httpx.Response) -> httpx.Response:
    """`response` with its body read and decoded; a body that cannot be decoded is an
    `InvalidResponseError` keeping the status and ids.

    The raw bytes are read first, and decoded apart: httpx decoding while it reads would
    leave its stream generators unfinished on a decoding error, which trio reports.
    """
    if response.is_stream_consumed:  # read already: by an auth flow, or a mock transport
        return response
    if response.headers.get("content-encoding", "identity").strip().lower() in _NOT_ENCODED:
        try:  # nothing to decode, so nothing to fail half-way: httpx reads it as it is
            await response.aread()
        finally:
            await response.aclose()
        return response
    try:
        # an async generator, typed by httpx as an iterator
        raw_chunks = cast("AsyncGenerator[bytes, None]", response.aiter_raw())
        async with aclosing(raw_chunks) as chunks:
            raw = b"".join([chunk async for chunk in chunks])
    finally:
        await response.aclose()
    read = httpx.Response(
        response.status_code,
        headers=response.headers,
        stream=httpx.ByteStream(raw),  # not `content=`, which would add a Content-Length
        request=response.request,
        extensions=response.extensions,
        history=response.history,
        default_encoding=response.default_encoding,
    )
    try:
        read.read()
    except httpx.DecodingError as exc:
        encoding = response.headers.get("content-encoding", "")
        raise invalid_response(
            response, f"its body cannot be decoded as its Content-Encoding {encoding!r} says ({exc})"
        ) from None
    read.elapsed = response.elapsed
    return read


def decode_json(response: httpx.Response, what: str) -> Any:
    """The JSON of a response body, tolerating a UTF-8 BOM (docs/protocol.md, "Byte order marks").

    An empty or malformed body, or one nested too deeply (`actions_scaleset.models.load_json`),
    raises `InvalidResponseError` naming `what` was expected.
    """
    body = response.content
    if not body.removeprefix(b"\xef\xbb\xbf").strip():
        raise invalid_response(response, f"empty body where {what} was expected")
    try:
        return load_json(body)
    except ValueError as exc:
        raise invalid_response(
            response, f"malformed JSON where {what} was expected ({json_problem(exc)})"
        ) from None


def decode_model(response: httpx.Response, cls: type[T], what: str) -> T:
    """The response body as a `cls`; any unusable body raises `InvalidResponseError` with its ids."""
    payload = decode_json(response, what)
    try:
        return structure(payload, cls, what)
    except InvalidResponseError as exc:
        raise invalid_response(response, exc.reason) from None


def invalid_response(response: httpx.Response, reason: str) -> InvalidResponseError:
    """An `InvalidResponseError` carrying the response's request and ids."""
    return InvalidResponseError(reason, **_ids(response))


def _ids(response: httpx.Response, method: str | None = None, url: str | None = None) -> dict[str, Any]:
    request = response._request
    return {
        "method": method or (request.method if request is not None else None),
        "url": url or (str(request.url) if request is not None else None),
        "status_code": response.status_code,
        "activity_id": response.headers.get("activityid") or None,
        "github_request_id": response.headers.get("x-github-request-id") or None,
    }


def _transport_error(exc: httpx.TransportError, method: str, url: str, attempts: int) -> RequestError:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeoutError(f"request timed out ({type(exc).__name__}){tries}", method=method, url=url)
    return NetworkError(f"request failed ({type(exc).__name__}: {exc}){tries}", method=method, url=url)


def _unreadable_reply(exc: Exception, method: str, url: str, max_redirects: int) -> InvalidResponseError:
    """A reply that arrived but cannot be used: never retried (a retry meets the same reply)."""
    if isinstance(exc, httpx.TooManyRedirects):
        reason = f"the server redirected more than {max_redirects} times (a redirect loop?)"
    elif isinstance(exc, httpx.InvalidURL):
        reason = "a redirect pointed to a URL that is not valid"
    else:  # an auth flow read a body its Content-Encoding cannot decode
        reason = f"a body cannot be decoded as its Content-Encoding says ({exc})"
    return InvalidResponseError(reason, method=method, url=url)


def _json_body(value: Any, method: str, url: str) -> bytes:
    """The JSON request body as UTF-8; a string that is not valid Unicode is the caller's error."""
    text = jsonlib.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        char = f"U+{ord(exc.object[exc.start]):04X}"
        raise ConfigurationError(
            f"cannot send {method} {redact_url(url)}: {_unencodable_path(value)} in the JSON body is not "
            f"valid Unicode text (it holds the lone surrogate {char})"
        ) from None


def _unencodable_path(value: Any) -> str:
    """Where the first string that UTF-8 cannot encode sits in a JSON value: `name`, `labels[1]`."""
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            if not _encodable(item):
                return f"`{path}`" if path else "the value"
        elif isinstance(item, Mapping):
            for key, child in item.items():
                name = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and not _encodable(key):
                    return f"a key of `{path}`" if path else "a key"
                pending.append((name, child))
        elif isinstance(item, list | tuple):
            pending.extend((f"{path}[{index}]", child) for index, child in enumerate(item))
    return "a string"


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


_HEADER_TEXT: Final = (
    "holds text HTTP cannot carry (a header must be ASCII, and no text may hold a lone surrogate)"
)


def _unsendable(method: str, shown_url: str, problem: str) -> ConfigurationError:
    # Never the value: a header may hold a token.
    return ConfigurationError(f"cannot send {method} {shown_url}: {problem}")


class _ShownURL:
    """A request's URL as logs and errors show it: redacted, and only once something shows it
    (redacting parses the URL, which every request would otherwise pay for)."""

    __slots__ = ("_shown", "_url")

    def __init__(self, url: str | httpx.URL) -> None:
        self._url = url
        self._shown: str | None = None

    def __str__(self) -> str:
        if self._shown is None:
            self._shown = redact_url(str(self._url))
        return self._shown


def _log(level: int, msg: str, *args: object, **extra: object) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, msg, *args, extra=extra)
