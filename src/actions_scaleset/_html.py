"""HTML tables for notebooks: what the models' and the JIT config's `_repr_html_` return.

Pure functions on plain values, standard library only. Every caption, name and value
is escaped, so a field holding `<script>` shows as text. Values are shown with
`str()`, which for a `Secret` is its mask: nothing here asks a secret for its value.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import datetime
from typing import Final, TypeAlias

__all__ = ["DASH", "HIDDEN", "LIST_LIMIT", "Row", "cell_text", "html_table", "short_list"]

DASH: Final = "\u2014"
"""How None (and an empty list) shows."""
HIDDEN: Final = "hidden"
"""What stands in for a secret that is not a `Secret` (a JIT config's blob, the runner's RSA key)."""
LIST_LIMIT: Final = 5
"""A list inside a table shows this many items, then how many more there are."""

Row: TypeAlias = tuple[str, object]
"""One table row: the field's name and its value."""


def short_list(items: Iterable[object], limit: int = LIST_LIMIT) -> str:
    """`a, b, c, … (+2 more)`: the first `limit` items as text; an empty list is a dash."""
    values = [cell_text(item) for item in items]
    if not values:
        return DASH
    more = f", \u2026 (+{len(values) - limit} more)" if len(values) > limit else ""
    return ", ".join(values[:limit]) + more


def cell_text(value: object) -> str:
    """A value as plain (unescaped) text: None is a dash, a datetime ISO 8601, a list short."""
    if value is None:
        return DASH
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return short_list(value)
    return str(value)


def html_table(caption: str, rows: Iterable[Row]) -> str:
    """A two-column `<table>` captioned `caption`, one row per `(name, value)`, all escaped."""
    body = "".join(
        f'<tr><th style="text-align:left">{html.escape(name)}</th>'
        f'<td style="text-align:left">{html.escape(cell_text(value))}</td></tr>'
        for name, value in rows
    )
    return f"<table><caption>{html.escape(caption)}</caption>{body}</table>"
