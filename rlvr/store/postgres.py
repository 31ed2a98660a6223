"""The shared trace database: Postgres (psycopg 3), for several serving replicas and one trainer.

`trace_store = "postgresql://user@host/db"` in the server's and the trainer's settings.

Several replicas insert at once, so row ids (a sequence, taken at insert) do not follow
commit order: a reader that followed ids would skip a row whose transaction commits after a
later id's. Delivery therefore follows `seq`, a commit-ordered position: rows are inserted
without one, and a reader first gives every committed row that has none the next values of
`trace_seq` (`sequence()`), under a transaction-scoped advisory lock, so that sequencing
passes are serial and each pass's values exceed every value already visible. A row
committed late gets its position when it becomes visible, after everything read before it;
none is skipped. Delayed feedback updates the row in place (whichever replica receives it)
and clears its `seq`, so the trainer reads it again, as SQLite's replace does.

A lost connection (a Postgres restart) is reconnected on the next write; the server's trace
thread holds the batch and retries until it commits.
"""

from __future__ import annotations

import urllib.parse

import psycopg
from psycopg.rows import dict_row

from rlvr.store.traces import COLUMNS, column_definitions

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS traces (
    id BIGSERIAL PRIMARY KEY,
    seq BIGINT UNIQUE,
{column_definitions("BOOLEAN", "DOUBLE PRECISION")},
    UNIQUE (request_id, choice_index)
);
CREATE SEQUENCE IF NOT EXISTS trace_seq;
CREATE INDEX IF NOT EXISTS traces_unsequenced ON traces (id) WHERE seq IS NULL;
CREATE INDEX IF NOT EXISTS traces_trainable ON traces (trainable, seq);
CREATE INDEX IF NOT EXISTS traces_created ON traces (created_at);
"""
SCHEMA_LOCK = 0x72_6c_76_72_01  # advisory lock keys ("rlvr" + 1, + 2)
SEQUENCE_LOCK = 0x72_6c_76_72_02
SEQUENCE_BATCH = 10_000


def redacted(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class PostgresDatabase:
    """The `Database` of `rlvr/store/traces.py` on a Postgres server."""

    position = "seq"
    shared = True  # several replicas write it; delayed feedback is stored, not held in memory
    transient = (psycopg.OperationalError, psycopg.InterfaceError, ConnectionError)

    def __init__(self, url: str, check: bool = False):
        self.url = url
        self.conn = self._connect()

    def _connect(self) -> psycopg.Connection:
        try:
            conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                   connect_timeout=10)
            with conn.transaction():  # DDL only once: it would wait on other writers' locks
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                if conn.execute("SELECT to_regclass('traces') AS t").fetchone()["t"] is None:
                    conn.execute(SCHEMA)
        except psycopg.Error as err:
            raise ConnectionError(f"trace_store {redacted(self.url)}: {err}".strip()) from None
        return conn

    def upsert(self, rows: list[tuple]) -> None:
        """Insert, or update in place (same request and choice) and clear its position."""
        names = ", ".join(COLUMNS)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS)
        sql = (f"INSERT INTO traces ({names}) VALUES ({', '.join('%s' for _ in COLUMNS)}) "
               f"ON CONFLICT (request_id, choice_index) DO UPDATE SET {updates}, seq = NULL")
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(sql, rows)

    def execute(self, sql: str, params: tuple = ()) -> int:
        return self.conn.execute(sql.replace("?", "%s"), params).rowcount

    def query(self, sql: str, params: tuple = ()) -> list:
        return self.conn.execute(sql.replace("?", "%s"), params).fetchall()

    def sequence(self) -> None:
        """Give committed rows without a position the next positions, in id order (see the
        module doc); rows another transaction holds are left for the next pass."""
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (SEQUENCE_LOCK,))
            while ids := [r["id"] for r in self.conn.execute(
                    "SELECT id FROM traces WHERE seq IS NULL ORDER BY id LIMIT %s "
                    "FOR UPDATE SKIP LOCKED", (SEQUENCE_BATCH,))]:
                first = self.conn.execute("SELECT nextval('trace_seq') AS v").fetchone()["v"]
                self.conn.execute("SELECT setval('trace_seq', %s)", (first + len(ids) - 1,))
                self.conn.execute("UPDATE traces SET seq = %s + x.k - 1 FROM unnest(%s::bigint[]) "
                                  "WITH ORDINALITY AS x(id, k) WHERE traces.id = x.id",
                                  (first, ids))

    def reconnect(self) -> None:
        """After a lost connection: a new one (raises ConnectionError while Postgres is down)."""
        try:
            self.conn.close()
        finally:
            self.conn = self._connect()

    def close(self) -> None:
        self.conn.close()
