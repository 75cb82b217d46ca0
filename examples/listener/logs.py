"""Logging for the listener: one handler on the root logger, as text or as one JSON object a line."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Final, TextIO

from .settings import LogFormat

__all__ = ["TEXT_FORMAT", "JsonFormatter", "configure"]

TEXT_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
NOISY_LOGGERS: Final = ("httpx", "httpcore", "hypercorn.error", "hypercorn.access", "actions_scaleset.runner")
"""Loggers that say a line per request (or, for simulated runners, per step): WARNING and above
only, unless the level is debug."""

_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
"""A LogRecord's own attributes; any other attribute came from `extra=`."""


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", ...extra fields, "exc"}` on one line.

    `time` is ISO 8601 in UTC. Extra fields that JSON cannot encode are left out; an exception
    is `exc`, its type and message on one line, never a traceback.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and not key.startswith("_") and _encodable(value):
                entry[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            entry["exc"] = _one_line(record.exc_info[1])
        return json.dumps(entry, ensure_ascii=False, allow_nan=False)


def configure(level: str, fmt: LogFormat, stream: TextIO | None = None) -> None:
    """Log at `level` (debug, info, warning or error) in `fmt` to `stream` (stderr by default).

    Replaces the root logger's handlers, so calling it again reconfigures rather than doubles.
    """
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    debug = level.lower() == "debug"
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.WARNING)


def _encodable(value: object) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def first_line(exc: BaseException) -> str:
    """An error's first line, for a log line or a one-line message; its type when it says nothing."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text or type(exc).__name__
