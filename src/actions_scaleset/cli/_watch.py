"""`watch`: hold a message session and show each message as it comes.

A rich live table on a terminal, one line per message elsewhere, one JSON object per
message with `--json`. Jobs are acquired only with `--acquire`. Each message is shown,
then acknowledged; the session is deleted on the way out, whatever the way (`--count`
reached, Ctrl-C, an error). `watch` takes the scale set's one session: it cannot run
while a listener does, and says so at once instead of waiting the listener out.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

import anyio

from ..models import RunnerScaleSet, RunnerScaleSetMessage, RunnerScaleSetStatistic
from ._context import Context
from ._errors import EXIT_OK, PROG
from ._output import Output
from ._render import STATISTICS, event_json, message_json, message_line, statistics_text

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.live import Live

__all__ = ["CLOSE_TIMEOUT", "watch"]

CLOSE_TIMEOUT: Final = 10.0
"""How long deleting the session may take on the way out (a second Ctrl-C waits for it)."""
LIVE_EVENTS: Final = 12
"""The live table shows this many of the latest job events (it fits 80x25)."""
_COUNT_HEADERS: Final = ("available", "acquired", "assigned", "running", "runners", "busy", "idle")
"""Short headers for `STATISTICS`, in its order: jobs, then runners."""


class _View(Protocol):
    def opened(self, scale_set: RunnerScaleSet, statistics: RunnerScaleSetStatistic) -> None: ...
    def message(self, message: RunnerScaleSetMessage, acquired: Sequence[int]) -> None: ...
    def close(self) -> None: ...


class _JsonView:
    def __init__(self, out: Output) -> None:
        self.out = out

    def opened(self, scale_set: RunnerScaleSet, statistics: RunnerScaleSetStatistic) -> None:
        pass

    def message(self, message: RunnerScaleSetMessage, acquired: Sequence[int]) -> None:
        self.out.json(message_json(message, acquired))

    def close(self) -> None:
        pass


class _LineView:
    def __init__(self, ctx: Context) -> None:
        self.out = ctx.out
        self.ctx = ctx

    def opened(self, scale_set: RunnerScaleSet, statistics: RunnerScaleSetStatistic) -> None:
        self.out.line(
            f"Watching scale set {scale_set.name!r} (id {scale_set.id}) in {self.ctx.where}: "
            f"{statistics_text(statistics)}. Ctrl-C stops."
        )

    def message(self, message: RunnerScaleSetMessage, acquired: Sequence[int]) -> None:
        self.out.line(message_line(message, acquired, datetime.now().astimezone()))

    def close(self) -> None:
        pass


class _LiveView:
    """The statistics as they stand, and the latest job events, redrawn on each message."""

    def __init__(self, ctx: Context) -> None:
        self.out = ctx.out
        self.ctx = ctx
        self.acquire = ctx.invocation.acquire
        self.title = ""
        self.statistics: RunnerScaleSetStatistic | None = None
        self.events: deque[tuple[str, dict[str, Any], bool]] = deque(maxlen=LIVE_EVENTS)
        self.messages = 0
        self.live: Live | None = None

    def opened(self, scale_set: RunnerScaleSet, statistics: RunnerScaleSetStatistic) -> None:
        from rich.live import Live

        self.title = f"{scale_set.name!r} in {self.ctx.where}"
        self.statistics = statistics
        self.live = Live(self._render(), console=self.out.console(), auto_refresh=False)
        self.live.start(refresh=True)

    def message(self, message: RunnerScaleSetMessage, acquired: Sequence[int]) -> None:
        self.messages += 1
        if message.statistics is not None:
            self.statistics = message.statistics
        at = f"{datetime.now().astimezone():%H:%M:%S}"
        taken = set(acquired)
        for event in message.events:
            shown = event_json(event)
            self.events.append((at, shown, shown["runner_request_id"] in taken))
        if self.live is not None:
            self.live.update(self._render(), refresh=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _render(self) -> RenderableType:
        from rich import box
        from rich.console import Group
        from rich.table import Table

        mode = "acquiring jobs" if self.acquire else "looking only"
        counts = Table(
            title=f"{self.title}: {self.messages} message{'' if self.messages == 1 else 's'}, {mode}; "
            "Ctrl-C stops",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        for header in _COUNT_HEADERS:
            counts.add_column(header, justify="right", no_wrap=True)
        if self.statistics is not None:
            counts.add_row(*(str(getattr(self.statistics, key)) for key, _ in STATISTICS))
        events = Table(title="latest job events", title_justify="left", box=box.SIMPLE_HEAD)
        for column in ("time", "event", "request"):
            events.add_column(column, no_wrap=True)
        for column in ("repository", "job", "outcome", "acquired"):
            events.add_column(column, overflow="fold")
        for at, event, was_acquired in self.events:
            outcome = ", ".join(str(event[key]) for key in ("runner_name", "result") if event[key])
            events.add_row(
                at,
                str(event["type"]).removeprefix("Job"),
                str(event["runner_request_id"] or "-"),
                str(event["repository"] or "-"),
                str(event["job_display_name"] or "-"),
                outcome or "-",
                "yes" if was_acquired else "",
            )
        return Group(counts, events)


def _view(ctx: Context) -> _View:
    if ctx.out.json_mode:
        return _JsonView(ctx.out)
    if ctx.out.is_terminal:
        return _LiveView(ctx)
    return _LineView(ctx)


async def watch(ctx: Context) -> int:
    invocation = ctx.invocation
    name = invocation.scale_set
    assert name is not None, "argparse requires it"
    view = _view(ctx)
    shown = 0
    opened = False
    try:
        async with ctx.client() as client:
            scale_set = await ctx.find_scale_set(client, name)
            session = client.session(
                scale_set.id,
                owner=f"{PROG}-watch@{socket.gethostname()}",
                conflict_timeout=0.0,  # a listener holds the session: say so now, do not wait it out
                close_timeout=CLOSE_TIMEOUT,
            )
            async with session:
                opened = True
                view.opened(scale_set, session.statistics)
                last_message_id = 0
                while invocation.count is None or shown < invocation.count:
                    await anyio.lowlevel.checkpoint()  # an in-process queue may never suspend on its own
                    message = await session.get_message(last_message_id, max_capacity=invocation.max_capacity)
                    if message is None:
                        continue
                    acquired: list[int] = []
                    if invocation.acquire and message.jobs_available:
                        acquired = await session.acquire_jobs(
                            [job.runner_request_id for job in message.jobs_available]
                        )
                    view.message(message, acquired)
                    shown += 1
                    await session.delete_message(message.message_id)
                    last_message_id = message.message_id
    finally:
        view.close()
        if opened and not ctx.out.json_mode:
            ctx.out.line(f"Stopped after {shown} message{'' if shown == 1 else 's'}; the session is closed.")
    return EXIT_OK
