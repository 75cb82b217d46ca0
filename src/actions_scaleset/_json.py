"""JSON from the wire, decoded with a bounded depth (docs/protocol.md, "Byte order marks").

Every response body, message body, error body and JIT config file this package reads
goes through `load_json`. A leading UTF-8 byte order mark is skipped. A document
nested deeper than `MAX_JSON_DEPTH` raises `JSONTooDeepError`: Python's decoder would
raise `RecursionError` on about 1,000 levels (a body of 2 KB), and a value just under
that limit would raise it later, in whatever walks it (`repr`, `json.dumps`, `==`).
With the bound, any code may recurse over a decoded value. Real documents are far
shallower: .NET, which writes them, stops at 64 levels by default.

`JSONTooDeepError` is a `ValueError`, so a caller that turns malformed JSON into its
typed error turns a too-deep document into it too; `json_problem` says which it was.
Pure.
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = ["MAX_JSON_DEPTH", "JSONTooDeepError", "json_problem", "load_json"]

MAX_JSON_DEPTH: Final = 256
"""The most objects and arrays a decoded document may nest."""

_BOM_TEXT: Final = "\ufeff"
_BOM_BYTES: Final = b"\xef\xbb\xbf"


class JSONTooDeepError(ValueError):
    """A JSON document nested deeper than `MAX_JSON_DEPTH`."""

    def __init__(self) -> None:
        super().__init__(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def load_json(document: str | bytes) -> Any:
    """The value of a JSON document, skipping a leading BOM.

    Raises `ValueError`: `json.JSONDecodeError` for malformed JSON, `UnicodeDecodeError`
    for bytes that are not UTF-8 (or UTF-16/32), `JSONTooDeepError` for a document
    nested deeper than `MAX_JSON_DEPTH`.
    """
    if isinstance(document, bytes):
        document = document.removeprefix(_BOM_BYTES)
        openers = document.count(b"[") + document.count(b"{")
    else:
        document = document.removeprefix(_BOM_TEXT)
        openers = document.count("[") + document.count("{")
    try:
        value = json.loads(document)
    except RecursionError:
        raise JSONTooDeepError() from None
    # Cheap first: a document with fewer brackets than the bound cannot nest deeper.
    if openers > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise JSONTooDeepError()
    return value


def json_problem(exc: ValueError) -> str:
    """What was wrong with a document `load_json` refused, without quoting it."""
    if isinstance(exc, JSONTooDeepError):
        return str(exc)
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at character {exc.pos}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not {exc.encoding} text"
    return "malformed"


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests more than `limit` lists and dicts; iterative, so any depth is safe."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        inner: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            inner.extend(child for child in children if isinstance(child, dict | list))
        level = inner
    return False
