"""The durable trace log that training learns from: one SQLite file in WAL mode.

Requests that carry a verification spec (or later receive feedback) become traces. The server
hands them to `TraceStore.append()`, which only queues them; a writer thread commits them in
batches with `synchronous=FULL`, so a trace is durable once committed and `kill -9` at any
moment loses nothing committed and never corrupts the file (SQLite's WAL guarantees).
Readers (the trainer) see committed rows only and read incrementally by id (a cursor).
`TraceLog` and `TraceSource` are the interfaces the server and the trainer use; `TraceStore`
and `TraceReader` are the embedded implementations (one SQLite file).
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS traces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    choice_index INTEGER NOT NULL,
    source TEXT NOT NULL,
    trainable INTEGER NOT NULL,
    untrusted_reason TEXT NOT NULL DEFAULT '',
    prompt_text TEXT NOT NULL,
    prompt_ids TEXT NOT NULL,
    thinking_ids TEXT NOT NULL,
    answer_ids TEXT NOT NULL,
    thinking_end TEXT NOT NULL,
    thinking_options TEXT NOT NULL,
    sampling_options TEXT NOT NULL,
    weight_version TEXT NOT NULL,
    spec TEXT NOT NULL,
    reward REAL,
    verdict TEXT NOT NULL,
    extracted_answer TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    feedback_at REAL,
    UNIQUE (request_id, choice_index)
);
CREATE INDEX IF NOT EXISTS traces_trainable ON traces (trainable, id);
CREATE INDEX IF NOT EXISTS traces_created ON traces (created_at);
"""
COLUMNS = ("request_id", "choice_index", "source", "trainable", "untrusted_reason",
           "prompt_text", "prompt_ids", "thinking_ids", "answer_ids", "thinking_end",
           "thinking_options", "sampling_options", "weight_version", "spec", "reward",
           "verdict", "extracted_answer", "created_at", "feedback_at")
JSON_COLUMNS = {"prompt_ids", "thinking_ids", "answer_ids", "thinking_options",
                "sampling_options", "spec"}


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
    thinking_options: dict
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

    def row(self) -> tuple:
        values = asdict(self)
        return tuple(json.dumps(values[c]) if c in JSON_COLUMNS else values[c] for c in COLUMNS)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Trace":
        values = {c: (json.loads(row[c]) if c in JSON_COLUMNS else row[c]) for c in COLUMNS}
        values["trainable"] = bool(values["trainable"])
        return cls(id=row["id"], **values)


class DamagedStore(RuntimeError):
    """The trace database cannot be read; the message says where and how to recover."""

    def __init__(self, path: Path, err: Exception):
        super().__init__(
            f"{path}: the trace database is damaged ({err}); nothing was changed. To keep what "
            f"is readable: sqlite3 {path} .recover | sqlite3 {path}.recovered, then move the "
            f"damaged file aside and the recovered one to {path.name}; or start with another "
            "--state-dir")


def connect(path: Path, check: bool = False) -> sqlite3.Connection:
    """Open (creating) the database; `check` also verifies every page (`quick_check`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(SCHEMA)
        if check and (result := conn.execute("PRAGMA quick_check").fetchone()[0]) != "ok":
            raise sqlite3.DatabaseError(result)
    except sqlite3.DatabaseError as err:
        raise DamagedStore(path, err) from None
    return conn


class TraceLog(Protocol):
    """Where the server appends traces (the embedded implementation: `TraceStore`)."""

    queue_depth: int
    written: int

    def append(self, trace: Trace) -> None: ...
    def flush(self, timeout: float = 10.0) -> bool: ...
    def prune(self) -> int: ...
    def close(self) -> None: ...


class TraceSource(Protocol):
    """How the trainer and `rlvr traces` read traces (embedded: `TraceReader`)."""

    def read(self, after_id: int = 0, limit: int = 1000,
             trainable_only: bool = True) -> list[Trace]: ...
    def read_recent(self, up_to_id: int, limit: int) -> list[Trace]: ...
    def find(self, request_id: str) -> list[Trace]: ...
    def iter_all(self) -> Iterator[Trace]: ...
    def stats(self) -> dict: ...
    def close(self) -> None: ...


class TraceStore:
    """Append traces off the hot path (SQLite WAL, one writer thread)."""

    def __init__(self, path: Path, max_rows: int = 1_000_000, max_age_days: float = 30.0,
                 batch: int = 256, flush_s: float = 0.05):
        self.path = Path(path)
        self.max_rows, self.max_age_s = max_rows, max_age_days * 86400
        self.batch, self.flush_s = batch, flush_s
        self._queue: queue.Queue[Trace | None] = queue.Queue()
        self._committed = threading.Condition()
        self._appended = self._written = 0
        self._conn = connect(self.path)
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
        placeholders = ", ".join("?" for _ in COLUMNS)
        sql = (f"INSERT OR REPLACE INTO traces ({', '.join(COLUMNS)}) VALUES ({placeholders})")
        attempt = 0
        while True:  # accepted traces are never dropped: retry (disk full, locked) until written
            try:
                with self._conn:
                    self._conn.executemany(sql, [t.row() for t in traces])
                break
            except sqlite3.OperationalError as err:
                attempt += 1
                log.error("trace write failed (attempt %d, %d traces held): %s", attempt,
                          len(traces), err)
                time.sleep(min(5.0, 0.1 * 2**attempt))
        with self._committed:
            self._written += len(traces)
            self._committed.notify_all()

    def prune(self) -> int:
        """Apply the age and size caps; returns how many traces were deleted."""
        with self._conn:
            cur = self._conn.execute("DELETE FROM traces WHERE created_at < ?",
                                     (time.time() - self.max_age_s,))
            deleted = cur.rowcount
            cur = self._conn.execute(
                "DELETE FROM traces WHERE id <= (SELECT MAX(id) FROM traces) - ?",
                (self.max_rows,))
        return deleted + cur.rowcount

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30)
        self._conn.close()


class TraceReader:
    """Read-only access for the trainer and `rlvr traces` (its own connection)."""

    def __init__(self, path: Path):
        self.conn = connect(Path(path))

    def read(self, after_id: int = 0, limit: int = 1000,
             trainable_only: bool = True) -> list[Trace]:
        """Committed traces with id > after_id, oldest first (the trainer's cursor)."""
        where = "id > ?" + (" AND trainable = 1" if trainable_only else "")
        rows = self.conn.execute(f"SELECT * FROM traces WHERE {where} ORDER BY id LIMIT ?",
                                 (after_id, limit))
        return [Trace.from_row(r) for r in rows]

    def read_recent(self, up_to_id: int, limit: int) -> list[Trace]:
        """The `limit` newest trainable traces with id <= up_to_id, oldest first (a restarted
        trainer refills its prompt pool with what it had read before)."""
        rows = self.conn.execute("SELECT * FROM traces WHERE id <= ? AND trainable = 1 "
                                 "ORDER BY id DESC LIMIT ?", (up_to_id, limit))
        return [Trace.from_row(r) for r in rows][::-1]

    def find(self, request_id: str) -> list[Trace]:
        rows = self.conn.execute("SELECT * FROM traces WHERE request_id = ? ORDER BY choice_index",
                                 (request_id,))
        return [Trace.from_row(r) for r in rows]

    def iter_all(self) -> Iterator[Trace]:
        cursor = 0
        while batch := self.read(cursor, 1000, trainable_only=False):
            yield from batch
            cursor = batch[-1].id

    def stats(self) -> dict:
        q = self.conn.execute
        return {
            "total": q("SELECT COUNT(*) FROM traces").fetchone()[0],
            "trainable": q("SELECT COUNT(*) FROM traces WHERE trainable = 1").fetchone()[0],
            "by_verdict": dict(q("SELECT verdict, COUNT(*) FROM traces GROUP BY verdict").fetchall()),
            "by_weight_version": dict(q("SELECT weight_version, COUNT(*) FROM traces "
                                        "GROUP BY weight_version").fetchall()),
            "mean_reward": q("SELECT AVG(reward) FROM traces").fetchone()[0],
        }

    def close(self) -> None:
        self.conn.close()
