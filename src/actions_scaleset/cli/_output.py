"""Where a command's output goes: JSON lines, plain lines, or rich tables on one stream.

rich (the `cli` extra) is imported only to draw a table or the live view; `--json` and
plain lines work without it. Every write is flushed, so `watch | jq` sees each message
as it comes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from ._errors import UsageError
from ._render import TableData

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = ["Output", "require_rich"]


def require_rich() -> None:
    """`UsageError` (exit 2) when rich is not installed."""
    try:
        import rich  # noqa: F401 - only whether it imports
    except ImportError:
        raise UsageError('tables need rich: pip install "actions-scaleset[cli]"', "or use --json") from None


class Output:
    """One command's stdout: `--json` or tables, and whether it is a terminal."""

    def __init__(self, stream: IO[str], *, json_mode: bool) -> None:
        self.stream = stream
        self.json_mode = json_mode
        self._console: Console | None = None

    @property
    def is_terminal(self) -> bool:
        try:
            return bool(self.stream.isatty())
        except (AttributeError, ValueError, OSError):
            return False

    def json(self, payload: Mapping[str, Any]) -> None:
        """One JSON object on one line."""
        self.line(json.dumps(payload, ensure_ascii=False, default=str))

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def console(self) -> Console:
        if self._console is None:
            require_rich()
            from rich.console import Console

            self._console = Console(file=self.stream, highlight=False, soft_wrap=False)
        return self._console

    def table(self, data: TableData) -> None:
        self.console().print(rich_table(data))
        self.stream.flush()


def rich_table(data: TableData) -> Table:
    """A rich `Table` for `data`."""
    from rich import box
    from rich.table import Table

    table = Table(title=data.title, box=box.SIMPLE_HEAD, title_justify="left", show_edge=False)
    for column in data.columns:
        table.add_column(column, overflow="fold")
    for row in data.rows:
        table.add_row(*row)
    return table
