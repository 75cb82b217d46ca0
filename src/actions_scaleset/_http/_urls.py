"""Pure URL helpers for URLs the server hands out (see docs/protocol.md, "Server-given URLs").

A server-given URL is used as it comes: its query is part of it. httpx *replaces* a
URL's query when `params=` is passed, so parameters are merged into the URL's own
query instead, as `actions/scaleset` `getMessage` does with `u.Query()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import quote, unquote_plus, urljoin, urlsplit, urlunsplit

import httpx

__all__ = ["combine_url", "path_id", "resolve_url", "url_problem", "with_path_segment", "with_query"]

_NOT_A_URL: Final = "it is not a valid URL"


def with_query(url: str | httpx.URL, params: Mapping[str, object]) -> str:
    """`url` with `params` added to the query it already has; a key given again is replaced.

    The URL's own query is kept as it came, byte for byte. Values are percent-encoded
    (`True` is `true`, `None` is empty, as httpx writes them). String work only: this runs
    on every poll, and parsing with `httpx.URL` costs more than the rest of the request.
    """
    scheme, netloc, path, query, fragment = urlsplit(str(url))
    kept = [pair for pair in query.split("&") if pair and unquote_plus(pair.partition("=")[0]) not in params]
    added = [f"{quote(key, safe='')}={quote(_query_value(value), safe='')}" for key, value in params.items()]
    return urlunsplit((scheme, netloc, path, "&".join(kept + added), fragment))


def with_path_segment(url: str, segment: str) -> str:
    """`url` with one more path segment (`segment`, percent-encoded), its query kept: the
    message-queue URL and a message id make the URL that deletes the message."""
    scheme, netloc, path, query, fragment = urlsplit(url)
    return urlunsplit((scheme, netloc, f"{path.rstrip('/')}/{quote(segment, safe='')}", query, fragment))


def _query_value(value: object) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    return "" if value is None else str(value)


def path_id(value: int, argument: str) -> int:
    """An id that goes into a URL path: an `int`, never a float or a bool rounded into one."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument} must be an int, not {type(value).__name__} {value!r}")
    return value


def resolve_url(base: str, relative: str) -> str:
    """`relative` resolved against `base` as .NET's `new Uri(base, relative)` does (RFC 3986).

    The C# runner builds its broker, run-service and results URLs so: without a trailing
    slash the base's last segment is replaced, and the base's query is not kept
    (actions/runner `BrokerHttpClient`, `RunServiceHttpClient`, `ResultsHttpClient`).
    """
    return urljoin(base, relative)


def combine_url(base: str, relative: str) -> str:
    """`base` as a folder, then `relative`: how VSS clients join a server URL and a route.

    Trailing slashes of the base path become one, so its last segment is kept
    (actions/runner `UriUtility.Combine`, used by the pipelines (v1) clients).
    """
    scheme, netloc, path, query, _ = urlsplit(base)
    rel_path, _, rel_query = relative.partition("?")
    joined = path.rstrip("/") + "/" + rel_path.lstrip("/")
    return urlunsplit((scheme, netloc, joined, "&".join(q for q in (query, rel_query) if q), ""))


_PARSE_PROBLEMS: Final = (
    ("Invalid IDNA hostname", "its host is not a valid (IDNA) host name"),
    ("Invalid port", "its port is not valid"),
    ("Invalid IPv6 address", "its host is not a valid IPv6 address"),
    ("Invalid IPv4 address", "its host is not a valid IPv4 address"),
)


def url_problem(value: object) -> str | None:
    """Why `value` cannot be used as an absolute http(s) URL, or None when it can.

    The answer never quotes the URL: callers name it themselves, redacted.
    """
    if not isinstance(value, str) or not value.strip():
        return "it is empty"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        return "it holds a control character"
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        said = str(exc)
        return next((problem for start, problem in _PARSE_PROBLEMS if said.startswith(start)), _NOT_A_URL)
    return _parts_problem(url)


def _parts_problem(url: httpx.URL) -> str | None:
    try:
        host = url.host  # decodes an IDNA host: a bad one fails here, not at the first request
    except (httpx.InvalidURL, ValueError, UnicodeError):
        return "its host is not a valid (IDNA) host name"
    if url.scheme not in ("http", "https"):
        return "it is not an http(s) URL"
    if not host:
        return "it has no host"
    if url.port is not None and url.port > 65535:  # asyncio would fail inside a task group, untyped
        return "its port is not valid"
    return None
