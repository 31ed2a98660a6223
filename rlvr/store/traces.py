"""The durable trace log that training learns from.

Requests that carry a verification spec (or later receive feedback) become traces. The server
hands them to `TraceStore.append()`, which only queues them; a writer thread commits them in
batches, retrying until they are committed (a trace accepted is never dropped). Readers (the
trainer) see committed rows only and read incrementally by position (a cursor).
`TraceLog` and `TraceSource` are the interfaces the server and the trainer use; `TraceStore`
and `TraceReader` implement them over a `Database`, chosen by the store's location:
- a path: one SQLite file (`rlvr/store/sqlite.py`), the embedded default;
- `postgresql://...`: a Postgres server (`rlvr/store/postgres.py`) that several serving
  replicas write at once, positions following commit order.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

log = logging.getLogger(__name__)

# A trace's columns and their types in both databases (BOOL and REAL are spelled per database)
COLUMN_TYPES = {
    "request_id": "TEXT NOT NULL", "choice_index": "INTEGER NOT NULL", "source": "TEXT NOT NULL",
    "trainable": "BOOL NOT NULL", "untrusted_reason": "TEXT NOT NULL DEFAULT ''",
    "prompt_text": "TEXT NOT NULL", "prompt_ids": "TEXT NOT NULL", "thinking_ids": "TEXT NOT NULL",
    "answer_ids": "TEXT NOT NULL", "thinking_end": "TEXT NOT NULL",
    "thinking_options": "TEXT NOT NULL", "sampling_options": "TEXT NOT NULL",
    "weight_version": "TEXT NOT NULL", "spec": "TEXT NOT NULL", "reward": "REAL",
    "verdict": "TEXT NOT NULL", "extracted_answer": "TEXT NOT NULL DEFAULT ''",
    "created_at": "REAL NOT NULL", "feedback_at": "REAL"}
COLUMNS = tuple(COLUMN_TYPES)


def column_definitions(bool_type: str, real_type: str) -> str:
    """The trace columns of a CREATE TABLE, in one database's spelling."""
    return ",\n".join(f"    {name} " + kind.replace("BOOL", bool_type).replace("REAL", real_type)
                       for name, kind in COLUMN_TYPES.items())
JSON_COLUMNS = {"prompt_ids", "thinking_ids", "answer_ids", "thinking_options",
                "sampling_options", "spec"}


@dataclass(frozen=True)
class ThinkingOptions:
    """A request's thinking settings as its trace keeps them (from the server's ThinkingPlan):
    the budget asked for (or the server's default), the budget applied, the minimum thinking
    and the answer's token limit. The trainer samples its groups with the same ones."""

    budget: int | None = None
    effective_budget: int | None = None
    min_tokens: int | None = None
    max_answer_tokens: int | None = None

    @classmethod
    def from_dict(cls, values: dict) -> "ThinkingOptions":
        """From a stored trace (keys a trace of an older version lacks read as None)."""
        return cls(**{f.name: values.get(f.name) for f in dataclasses.fields(cls)})


@dataclass
class Trace:
    request_id: str
    choice_index: int
    source: str
    trainable: bool
    prompt_text: str
    prompt_ids: list[int]
    thinking_ids: list[int]
    answer_ids: list[int]
    thinking_end: str
    thinking_options: ThinkingOptions
    sampling_options: dict
    weight_version: str
    spec: dict
    reward: float | None
    verdict: str
    extracted_answer: str = ""
    untrusted_reason: str = ""
    created_at: float = field(default_factory=time.time)
    feedback_at: float | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.thinking_options, dict):
            self.thinking_options = ThinkingOptions.from_dict(self.thinking_options)

    def row(self) -> tuple:
        values = asdict(self)
        return tuple(json.dumps(values[c]) if c in JSON_COLUMNS else values[c] for c in COLUMNS)

    @classmethod
    def from_row(cls, row: Any, position: str = "id") -> "Trace":
        """A row of either database; `id` is the row's delivery position."""
        values = {c: (json.loads(row[c]) if c in JSON_COLUMNS else row[c]) for c in COLUMNS}
        values["trainable"] = bool(values["trainable"])
        return cls(id=row[position], **values)


class DamagedStore(RuntimeError):
    """The trace database cannot be opened; the message says where, why and what to do."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")


class Database(Protocol):
    """What the writer thread and the reader need of a database (SQLite or Postgres). SQL is
    written once with `?` placeholders; `trainable` is a truth value in both."""

    position: str                  # the column that orders delivery
    shared: bool                   # several servers write it
    transient: tuple[type[Exception], ...]  # errors worth a retry after `reconnect()`

    def upsert(self, rows: list[tuple]) -> None: ...
    def execute(self, sql: str, params: tuple = ()) -> int: ...
    def query(self, sql: str, params: tuple = ()) -> list: ...
    def sequence(self) -> None: ...
    def reconnect(self) -> None: ...
    def close(self) -> None: ...


def open_database(location: Path | str, check: bool = False) -> Database:
    """The database at `location`: a `postgresql://` URL, else a SQLite file's path. `check`:
    verify it (SQLite: every page) and raise DamagedStore when it cannot be used."""
    if is_postgres(location):
        from rlvr.store.postgres import PostgresDatabase, redacted
        try:
            return PostgresDatabase(str(location))
        except ConnectionError as err:
            raise DamagedStore(redacted(str(location)), f"cannot be used ({err})") from None
    from rlvr.store.sqlite import SQLiteDatabase
    return SQLiteDatabase(Path(location), check=check)


def is_postgres(location: Path | str) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


class TraceLog(Protocol):
    """Where the server appends traces (implementation: `TraceStore`)."""

    queue_depth: int
    written: int
    shared: bool  # other servers write it too (unverified traces are stored for feedback)

    def append(self, trace: Trace) -> None: ...
    def flush(self, timeout: float = 10.0) -> bool: ...
    def prune(self) -> int: ...
    def close(self) -> None: ...


class TraceSource(Protocol):
    """How the trainer and `rlvr traces` read traces (implementation: `TraceReader`)."""

    def read(self, after_id: int = 0, limit: int = 1000,
             trainable_only: bool = True) -> list[Trace]: ...
    def read_recent(self, up_to_id: int, limit: int) -> list[Trace]: ...
    def find(self, request_id: str) -> list[Trace]: ...
    def iter_all(self) -> Iterator[Trace]: ...
    def stats(self) -> dict: ...
    def close(self) -> None: ...


class TraceStore:
    """Append traces off the hot path (one writer thread per server)."""

    def __init__(self, location: Path | str, max_rows: int = 1_000_000,
                 max_age_days: float = 30.0, batch: int = 256, flush_s: float = 0.05):
        self.max_rows, self.max_age_s = max_rows, max_age_days * 86400
        self.batch, self.flush_s = batch, flush_s
        self._queue: queue.Queue[Trace | None] = queue.Queue()
        self._committed = threading.Condition()
        self._appended = self._written = 0
        self._db = open_database(location)
        self.shared = self._db.shared
        self._thread = threading.Thread(target=self._write_loop, name="rlvr-traces", daemon=True)
        self._thread.start()

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def written(self) -> int:
        return self._written

    def append(self, trace: Trace) -> None:
        """Queue a trace; returns at once (the writer thread commits it)."""
        self._appended += 1
        self._queue.put(trace)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything appended so far is committed."""
        target = self._appended
        with self._committed:
            return self._committed.wait_for(lambda: self._written >= target, timeout)

    def _write_loop(self) -> None:
        """Commit batches; apply the caps every minute and whenever the rows written since
        the last pass reach a tenth of `max_rows` (at least 64), so the table never holds
        more than `max_rows` plus that slack plus one batch."""
        last_prune, pruned_at = time.monotonic(), 0
        slack = max(64, self.max_rows // 10)
        while True:
            item = self._queue.get()
            items = [item]
            deadline = time.monotonic() + self.flush_s
            while len(items) < self.batch and (timeout := deadline - time.monotonic()) > 0:
                try:
                    items.append(self._queue.get(timeout=timeout))
                except queue.Empty:
                    break
            stop = None in items
            traces = [t for t in items if t is not None]
            if traces:
                self._commit(traces)
            if time.monotonic() - last_prune > 60 or self._written - pruned_at >= slack:
                self.prune()
                last_prune, pruned_at = time.monotonic(), self._written
            if stop:
                return

    def _commit(self, traces: list[Trace]) -> None:
        self._retrying(lambda: self._db.upsert([t.row() for t in traces]), len(traces))
        with self._committed:
            self._written += len(traces)
            self._committed.notify_all()

    def _retrying(self, write, held: int):
        """Run `write` until it succeeds: accepted traces are never dropped (a locked or full
        SQLite file, a Postgres restart: the connection is renewed between tries)."""
        attempt = 0
        while True:
            try:
                return write()
            except self._db.transient as err:
                attempt += 1
                log.error("trace write failed (attempt %d, %d traces held): %s", attempt,
                          held, str(err).strip())
                time.sleep(min(5.0, 0.1 * 2**attempt))
                try:
                    self._db.reconnect()
                except self._db.transient:
                    pass  # still down: the next attempt says so

    def prune(self) -> int:
        """Apply the age and size caps; returns how many traces were deleted."""
        def delete() -> int:
            deleted = self._db.execute("DELETE FROM traces WHERE created_at < ?",
                                       (time.time() - self.max_age_s,))
            return deleted + self._db.execute(
                "DELETE FROM traces WHERE id <= (SELECT MAX(id) FROM traces) - ?",
                (self.max_rows,))
        return self._retrying(delete, 0)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30)
        self._db.close()


class TraceReader:
    """Read access for the trainer and `rlvr traces` (its own connection)."""

    def __init__(self, location: Path | str):
        self.db = open_database(location)
        self.position = self.db.position

    def _traces(self, sql: str, params: tuple) -> list[Trace]:
        return [Trace.from_row(r, self.position) for r in self.db.query(sql, params)]

    def read(self, after_id: int = 0, limit: int = 1000,
             trainable_only: bool = True) -> list[Trace]:
        """Committed traces past position `after_id`, oldest first (the trainer's cursor)."""
        self.db.sequence()
        where = f"{self.position} > ?" + (" AND trainable" if trainable_only else "")
        return self._traces(f"SELECT * FROM traces WHERE {where} ORDER BY {self.position} "
                            "LIMIT ?", (after_id, limit))

    def read_recent(self, up_to_id: int, limit: int) -> list[Trace]:
        """The `limit` newest trainable traces at positions <= up_to_id, oldest first (a
        restarted trainer refills its prompt pool with what it had read before)."""
        return self._traces(f"SELECT * FROM traces WHERE {self.position} <= ? AND trainable "
                            f"ORDER BY {self.position} DESC LIMIT ?", (up_to_id, limit))[::-1]

    def find(self, request_id: str) -> list[Trace]:
        return self._traces("SELECT * FROM traces WHERE request_id = ? ORDER BY choice_index",
                            (request_id,))

    def iter_all(self) -> Iterator[Trace]:
        cursor = 0
        while batch := self.read(cursor, 1000, trainable_only=False):
            yield from batch
            cursor = batch[-1].id

    def stats(self) -> dict:
        def one(sql: str):
            return next(iter(dict(self.db.query(sql)[0]).values()))

        def grouped(column: str) -> dict:
            rows = self.db.query(f"SELECT {column} AS k, COUNT(*) AS n FROM traces "
                                 f"GROUP BY {column}")
            return {r["k"]: r["n"] for r in rows}
        return {"total": one("SELECT COUNT(*) FROM traces"),
                "trainable": one("SELECT COUNT(*) FROM traces WHERE trainable"),
                "by_verdict": grouped("verdict"),
                "by_weight_version": grouped("weight_version"),
                "mean_reward": one("SELECT AVG(reward) FROM traces")}

    def close(self) -> None:
        self.db.close()
