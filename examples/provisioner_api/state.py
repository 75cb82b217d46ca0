"""What survives a restart, in one SQLite file: the runners the API started, the scale sets
it serves and the jobs its listeners saw.

The schema is versioned with `PRAGMA user_version`; a file from a newer version is refused
rather than misread. Every change is committed at once (WAL journal), so a SIGTERM or a
crash loses nothing that was answered. Calls run on a worker thread, one at a time.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import anyio
import attrs

__all__ = [
    "SCHEMA_VERSION",
    "JobRecord",
    "RunnerRecord",
    "RunnerState",
    "ScaleSetRecord",
    "State",
    "StateError",
]

T = TypeVar("T")

SCHEMA_VERSION: Final = 1
RunnerState = Literal["starting", "idle", "busy", "finished", "exited", "failed"]
LIVE_STATES: Final[tuple[RunnerState, ...]] = ("starting", "idle", "busy", "finished")
"""States in which a runner's compute should be running."""

_SCHEMA: Final = """
CREATE TABLE runners (
    name TEXT PRIMARY KEY,
    runner_id INTEGER,
    config_url TEXT NOT NULL,
    repository TEXT,
    scale_set TEXT NOT NULL,
    scale_set_id INTEGER,
    labels TEXT NOT NULL,
    state TEXT NOT NULL,
    ref TEXT,
    job TEXT,
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE scale_sets (
    config_url TEXT NOT NULL,
    name TEXT NOT NULL,
    id INTEGER NOT NULL,
    repository TEXT,
    labels TEXT NOT NULL,
    PRIMARY KEY (config_url, name)
);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    repository TEXT,
    workflow_ref TEXT,
    display_name TEXT,
    workflow_run_id INTEGER,
    event_name TEXT,
    labels TEXT NOT NULL,
    scale_set TEXT NOT NULL,
    runner_name TEXT,
    queued_at TEXT,
    started_at TEXT,
    finished_at TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX jobs_status ON jobs (status, id);
"""


class StateError(Exception):
    """The state file cannot be used; the message is one line that says why."""


@attrs.frozen
class RunnerRecord:
    name: str
    config_url: str
    repository: str | None
    scale_set: str
    labels: tuple[str, ...]
    state: RunnerState
    created_by: str
    created_at: float
    updated_at: float
    runner_id: int | None = None
    scale_set_id: int | None = None
    ref: str | None = None
    """The provisioner's id for the compute: a pid, a container id, a task."""
    job: str | None = None
    """The job it runs or ran (its runner request id)."""


@attrs.frozen
class ScaleSetRecord:
    config_url: str
    name: str
    id: int
    repository: str | None
    labels: tuple[str, ...]


@attrs.frozen
class JobRecord:
    id: int
    """The runner request id: one per attempt at the job."""
    job_id: str
    status: str
    """`running` or `completed`."""
    scale_set: str
    labels: tuple[str, ...] = ()
    result: str | None = None
    repository: str | None = None
    workflow_ref: str | None = None
    display_name: str | None = None
    workflow_run_id: int | None = None
    event_name: str | None = None
    runner_name: str | None = None
    queued_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: float = 0.0


_RUNNER_FIELDS: Final = tuple(field.name for field in attrs.fields(RunnerRecord))
_JOB_FIELDS: Final = tuple(field.name for field in attrs.fields(JobRecord))
_RUNNER_COLUMNS: Final = ", ".join(_RUNNER_FIELDS)
_JOB_COLUMNS: Final = ", ".join(_JOB_FIELDS)


class State:
    """The SQLite file; `open()` creates or checks it, `close()` closes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(1)

    def __repr__(self) -> str:
        return f"State({str(self.path)!r})"

    def open(self) -> None:
        """Open (or create) the file and check its schema. `StateError`, one line, when it cannot be used."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open the state file {self.path}: {exc}") from None
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateError(  # noqa: TRY301
                    f"the state file {self.path} has schema version {version}, newer than this "
                    f"program's {SCHEMA_VERSION}: run the newer version, or give another --state file"
                )
            if version == 0 and tables:
                raise StateError(  # noqa: TRY301
                    f"{self.path} is an SQLite file, but not this API's state: give another --state"
                )
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            if version == 0:
                db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        except sqlite3.DatabaseError as exc:
            db.close()
            raise StateError(
                f"{self.path} is not a usable SQLite file ({exc}): give another --state"
            ) from None
        except StateError:
            db.close()
            raise
        self._db = db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            with self._lock:
                if self._db is None:
                    raise StateError("the state file is closed")
                return work(self._db)

        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    # ------------------------------------------------------------------ runners

    async def _put(self, table: str, fields: tuple[str, ...], record: RunnerRecord | JobRecord) -> None:
        """Insert or replace `record` (its labels as a JSON list) in `table`."""
        row = attrs.asdict(record)
        row["labels"] = json.dumps(list(record.labels))
        marks = ", ".join(f":{name}" for name in fields)
        sql = f"INSERT OR REPLACE INTO {table} ({', '.join(fields)}) VALUES ({marks})"
        await self._run(lambda db: db.execute(sql, row))

    async def put_runner(self, record: RunnerRecord) -> None:
        await self._put("runners", _RUNNER_FIELDS, record)

    async def delete_runner(self, name: str) -> None:
        await self._run(lambda db: db.execute("DELETE FROM runners WHERE name = ?", (name,)))

    async def runners(self) -> list[RunnerRecord]:
        rows = await self._run(
            lambda db: db.execute(f"SELECT {_RUNNER_COLUMNS} FROM runners ORDER BY created_at").fetchall()
        )
        return [_runner(row) for row in rows]

    # ------------------------------------------------------------------ scale sets

    async def put_scale_set(self, record: ScaleSetRecord) -> None:
        row = (record.config_url, record.name, record.id, record.repository, json.dumps(list(record.labels)))
        await self._run(
            lambda db: db.execute("INSERT OR REPLACE INTO scale_sets VALUES (?, ?, ?, ?, ?)", row)
        )

    async def scale_sets(self) -> list[ScaleSetRecord]:
        rows = await self._run(lambda db: db.execute("SELECT * FROM scale_sets").fetchall())
        return [ScaleSetRecord(row[0], row[1], row[2], row[3], tuple(json.loads(row[4]))) for row in rows]

    # ------------------------------------------------------------------ jobs

    async def put_job(self, record: JobRecord) -> None:
        await self._put("jobs", _JOB_FIELDS, record)

    async def job(self, request_id: int) -> JobRecord | None:
        rows = await self._run(
            lambda db: db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (request_id,)).fetchall()
        )
        return _job(rows[0]) if rows else None

    async def jobs(
        self, *, status: str | None, repository: str | None, offset: int, limit: int
    ) -> tuple[list[JobRecord], int]:
        """A page of jobs, newest first, and how many match in all."""
        where, params = _where(status=status, repository=repository)

        def query(db: sqlite3.Connection) -> tuple[list[Any], int]:
            total = db.execute(f"SELECT count(*) FROM jobs {where}", params).fetchone()[0]
            rows = db.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs {where} ORDER BY id DESC LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
            return rows, int(total)

        rows, total = await self._run(query)
        return [_job(row) for row in rows], total

    async def job_counts(self) -> dict[tuple[str, str], int]:
        """Jobs by (status, result), for the metrics."""
        rows = await self._run(
            lambda db: db.execute(
                "SELECT status, coalesce(result, ''), count(*) FROM jobs GROUP BY 1, 2"
            ).fetchall()
        )
        return {(row[0], row[1]): row[2] for row in rows}


def _where(**filters: str | None) -> tuple[str, tuple[str, ...]]:
    clauses, params = [], []
    for column, value in filters.items():
        if value is not None:
            clauses.append(f"lower({column}) = lower(?)")
            params.append(value)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _runner(row: Sequence[Any]) -> RunnerRecord:
    values = dict(zip(_RUNNER_FIELDS, row, strict=True))
    values["labels"] = tuple(json.loads(values["labels"]))
    return RunnerRecord(**values)


def _job(row: Sequence[Any]) -> JobRecord:
    values = dict(zip(_JOB_FIELDS, row, strict=True))
    values["labels"] = tuple(json.loads(values["labels"]))
    return JobRecord(**values)
