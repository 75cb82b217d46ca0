"""The event bus: job and runner events fanned out to every SSE stream and WebSocket.

`publish` never blocks: each subscriber has a bounded queue, and one that falls
`QUEUE_SIZE` events behind is closed (its client reconnects, with `Last-Event-ID` for
SSE). The last `HISTORY` events are kept so a reconnecting stream misses nothing.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any, Final

import anyio
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["Event", "EventBus"]

QUEUE_SIZE: Final = 256
HISTORY: Final = 1000


@attrs.frozen
class Event:
    id: int
    type: str
    """`job:started`, `job:completed`, `runner:created`, `runner:running`, `runner:busy`, ..."""
    repository: str | None
    data: Mapping[str, Any]
    time: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "repository": self.repository, "data": dict(self.data)}

    def matches(self, repositories: frozenset[str]) -> bool:
        """Whether a subscriber to `repositories` (lower case; empty: all) gets this event."""
        return not repositories or (self.repository or "").lower() in repositories


class EventBus:
    def __init__(self) -> None:
        self._next_id = 1
        self._subscribers: set[MemoryObjectSendStream[Event]] = set()
        self._history: collections.deque[Event] = collections.deque(maxlen=HISTORY)

    def __repr__(self) -> str:
        return f"EventBus({len(self._subscribers)} subscribers, last id {self._next_id - 1})"

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, type: str, repository: str | None, data: Mapping[str, Any]) -> Event:
        event = Event(self._next_id, type, repository, dict(data), time.time())
        self._next_id += 1
        self._history.append(event)
        for send in list(self._subscribers):
            try:
                send.send_nowait(event)
            except anyio.WouldBlock:  # too slow: closed, so it reconnects rather than lags
                self._subscribers.discard(send)
                send.close()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.discard(send)
        return event

    def since(self, last_id: int) -> list[Event]:
        """Events after `last_id` still in the history (for SSE's `Last-Event-ID`)."""
        return [event for event in self._history if event.id > last_id]

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[MemoryObjectReceiveStream[Event]]:
        send, receive = anyio.create_memory_object_stream[Event](QUEUE_SIZE)
        self._subscribers.add(send)
        try:
            with receive:
                yield receive
        finally:
            self._subscribers.discard(send)
            send.close()
