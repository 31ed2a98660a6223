"""The embedded trace database: one SQLite file in WAL mode, `synchronous=FULL`.

One writer (the server's trace thread) at a time, so row ids grow in commit order and are
the delivery position itself: a reader's cursor is the last id it read. `kill -9` at any
moment loses nothing committed and never corrupts the file (SQLite's WAL guarantees). A
replaced trace (delayed feedback) is deleted and inserted again with a new id, so a reader
past its old id sees it again.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rlvr.store.traces import COLUMNS, DamagedStore, column_definitions

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS traces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
{column_definitions("INTEGER", "REAL")},
    UNIQUE (request_id, choice_index)
);
CREATE INDEX IF NOT EXISTS traces_trainable ON traces (trainable, id);
CREATE INDEX IF NOT EXISTS traces_created ON traces (created_at);
"""


class SQLiteDatabase:
    """The `Database` of `rlvr/store/traces.py` on one SQLite file."""

    position = "id"       # the column readers' cursors follow
    shared = False        # one server writes it
    transient = (sqlite3.OperationalError,)  # a locked database, a full disk: retried

    def __init__(self, path: Path, check: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.executescript(SCHEMA)
            if check and (result := self.conn.execute("PRAGMA quick_check").fetchone()[0]) != "ok":
                raise sqlite3.DatabaseError(result)
        except sqlite3.DatabaseError as err:
            raise DamagedStore(str(self.path), damaged_sqlite_help(self.path, err)) from None

    def upsert(self, rows: list[tuple]) -> None:
        """Insert or replace (same request and choice) in one transaction."""
        sql = (f"INSERT OR REPLACE INTO traces ({', '.join(COLUMNS)}) "
               f"VALUES ({', '.join('?' for _ in COLUMNS)})")
        with self.conn:
            self.conn.executemany(sql, rows)

    def execute(self, sql: str, params: tuple = ()) -> int:
        """One statement in its own transaction; returns the rows it changed."""
        with self.conn:
            return self.conn.execute(sql, params).rowcount

    def query(self, sql: str, params: tuple = ()) -> list:
        return self.conn.execute(sql, params).fetchall()

    def sequence(self) -> None:
        """Ids are already in commit order (one writer)."""

    def reconnect(self) -> None:
        """SQLite's errors here are not about the connection."""

    def close(self) -> None:
        self.conn.close()


def damaged_sqlite_help(path: Path, err: Exception) -> str:
    return (f"the trace database is damaged ({err}); nothing was changed. To keep what is "
            f"readable: sqlite3 {path} .recover | sqlite3 {path}.recovered, then move the "
            f"damaged file aside and the recovered one to {path.name}; or start with another "
            "--state-dir")
