"""JSON from the wire, decoded with a bounded depth (docs/protocol.md, "Byte order marks").

Every response body, message body, error body and JIT config file this package reads
goes through `load_json` (a job-message body through its two halves, `decode_json` and
`check_json_depth`, so the events read with exact types skip the check: issue 16). A
leading UTF-8 byte order mark is skipped. A document
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

__all__ = [
    "MAX_JSON_DEPTH",
    "JSONTooDeepError",
    "check_json_depth",
    "decode_json",
    "json_problem",
    "load_json",
]

MAX_JSON_DEPTH: Final = 256
"""The most objects and arrays a decoded document may nest."""

_CHARACTERS_PER_STEP: Final = 256
"""The depth walk visits at most one value per this many characters: about half the cost of
counting their brackets."""
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
    value = decode_json(document)
    check_json_depth(document, value)
    return value


def decode_json(document: str | bytes) -> Any:
    """`load_json` but for the depth bound: for a caller that reads every value it keeps with
    exact types, and calls `check_json_depth` before keeping anything else."""
    if isinstance(document, bytes):
        document = document.removeprefix(_BOM_BYTES)
    else:
        document = document.removeprefix(_BOM_TEXT)
    try:
        return json.loads(document)
    except RecursionError:
        raise JSONTooDeepError() from None


def check_json_depth(document: str | bytes, value: Any) -> None:
    """Raise `JSONTooDeepError` if `value`, decoded from `document`, nests deeper than `MAX_JSON_DEPTH`."""
    # A walk costs per value inside a list or an object, counting brackets per character: a message
    # whose events are in a string is walked in a few steps. The walk gives up after a share of
    # the count's cost; then a document with fewer brackets than the bound cannot nest deeper.
    deeper = _deeper_than(value, MAX_JSON_DEPTH, budget=len(document) // _CHARACTERS_PER_STEP)
    if deeper is None:
        if isinstance(document, bytes):
            openers = document.count(b"[") + document.count(b"{")
        else:
            openers = document.count("[") + document.count("{")
        deeper = openers > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH)
    if deeper:
        raise JSONTooDeepError()


def json_problem(exc: ValueError) -> str:
    """What was wrong with a document `load_json` refused, without quoting it."""
    if isinstance(exc, JSONTooDeepError):
        return str(exc)
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at character {exc.pos}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not {exc.encoding} text"
    return "malformed"


def _deeper_than(value: Any, limit: int, budget: int | None = None) -> bool | None:
    """Whether `value` nests more than `limit` lists and dicts; iterative, so any depth is safe.

    None if it holds more than `budget` values in lists and dicts (the walk gave up).
    """
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        inner: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            if budget is not None:
                budget -= len(children)
                if budget < 0:
                    return None
            inner.extend(child for child in children if isinstance(child, dict | list))
        level = inner
    return False
