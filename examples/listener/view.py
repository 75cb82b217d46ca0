"""What `--simulate` shows: a live table on a terminal, plain lines elsewhere, and the summary.

Nothing here talks to the fake or the listener: `demo.py` fills a `Progress` and a `Summary`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import attrs
from rich.console import RenderableType
from rich.live import Live
from rich.table import Table

__all__ = ["Progress", "Summary", "live", "percentile", "progress_line", "sparkline", "summary_text", "table"]

BLOCKS: Final = "▁▂▃▄▅▆▇█"


@attrs.define
class Progress:
    """The run as last seen: job states from the fake's snapshot, runners from the scalers."""

    total: int
    elapsed: float = 0.0
    queued: int = 0
    """Arrived, not yet assigned to a runner."""
    assigned: int = 0
    """Assigned to the scale set, waiting for a runner to take it."""
    running: int = 0
    completed: int = 0
    registered: int = 0
    starting: int = 0
    api_calls: int = 0
    chaos: list[str] = attrs.field(factory=list)
    """What `--chaos` did so far, in order."""
    depth: list[int] = attrs.field(factory=list)
    """Queue depth (queued + assigned) at every sample."""


@attrs.frozen
class Summary:
    total: int
    completed: int
    seconds: float
    latencies: Sequence[float]
    peak_runners: int
    api_calls: int
    start_failures: int
    faults: Sequence[tuple[str, int]]
    """What was injected and fired, with how often."""
    leaked: int
    depth: Sequence[int]
    chaos: bool

    @property
    def ok(self) -> bool:
        return self.completed == self.total and self.leaked == 0


def sparkline(values: Sequence[float], width: int = 40) -> str:
    """One block per column, the tallest for the largest value; over `width` values, each column
    shows the largest of its share."""
    if not values:
        return ""
    columns = min(width, len(values))
    buckets = [
        max(values[i * len(values) // columns : (i + 1) * len(values) // columns]) for i in range(columns)
    ]
    top = max(buckets)
    if top <= 0:
        return BLOCKS[0] * columns
    return "".join(BLOCKS[round(value / top * (len(BLOCKS) - 1))] for value in buckets)


def percentile(values: Sequence[float], p: float) -> float | None:
    """The `p`th percentile (0-100), interpolated between the closest ranks; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def table(progress: Progress) -> RenderableType:
    grid = Table(title=f"listener demo · {progress.elapsed:4.1f} s", title_justify="left", min_width=58)
    for name in ("queued", "assigned", "running", "runners", "completed"):
        grid.add_column(name, justify="right")
    runners = f"{progress.registered}" + (f" (+{progress.starting})" if progress.starting else "")
    grid.add_row(
        str(progress.queued),
        str(progress.assigned),
        str(progress.running),
        runners,
        f"{progress.completed}/{progress.total}",
    )
    grid.caption = f"queue {sparkline(progress.depth, 36)}  ·  {progress.api_calls} API calls"
    if progress.chaos:
        grid.caption += f"\nchaos: {progress.chaos[-1]} ({len(progress.chaos)} so far)"
    grid.caption_justify = "left"
    return grid


def progress_line(progress: Progress) -> str:
    return (
        f"{progress.elapsed:5.1f}s  queued {progress.queued}  assigned {progress.assigned}  "
        f"running {progress.running}  runners {progress.registered}  "
        f"completed {progress.completed}/{progress.total}"
    )


def summary_text(summary: Summary) -> str:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} s"

    p50, p95 = percentile(summary.latencies, 50), percentile(summary.latencies, 95)
    fired = sum(count for _, count in summary.faults)
    which = ", ".join(f"{name} x{count}" for name, count in summary.faults)
    lines = [
        f"{summary.completed} of {summary.total} jobs completed in {summary.seconds:.1f} s",
        f"  pickup latency   p50 {seconds(p50)}, p95 {seconds(p95)} (queued to taken by a runner)",
        f"  peak runners     {summary.peak_runners}"
        + (f" ({_count(summary.start_failures, 'failed start')} retried)" if summary.start_failures else ""),
        f"  API calls        {summary.api_calls}",
        f"  faults survived  {fired}" + (f": {which}" if which else "" if summary.chaos else " (no --chaos)"),
        f"  runners leaked   {summary.leaked}",
        f"  queue depth      {sparkline(summary.depth, 60)} (max {max(summary.depth, default=0)})",
    ]
    if not summary.ok:
        lines.append(
            f"FAILED: {_count(summary.total - summary.completed, 'job')} not completed, "
            f"{_count(summary.leaked, 'runner')} leaked"
        )
    return "\n".join(lines)


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}" + ("" if number == 1 else "s")


@contextlib.contextmanager
def live(render: Callable[[], RenderableType]) -> Iterator[None]:
    """A live view on stdout, redrawn 4 times a second. When stderr is the same terminal, log
    lines are printed above it rather than through it."""
    stderr = sys.stderr
    shared = stderr.isatty()
    with Live(get_renderable=render, refresh_per_second=4, redirect_stderr=shared, redirect_stdout=False):
        moved = [handler for handler in _stream_handlers() if handler.stream is stderr] if shared else []
        for handler in moved:
            handler.setStream(sys.stderr)  # rich's proxy, which prints above the view
        try:
            yield
        finally:
            for handler in moved:
                handler.setStream(stderr)


def _stream_handlers() -> Iterator[logging.StreamHandler[Any]]:
    """The root logger's stream handlers: `logs.configure` puts its one handler there."""
    yield from (
        handler for handler in logging.getLogger().handlers if isinstance(handler, logging.StreamHandler)
    )
