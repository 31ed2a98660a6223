"""The cluster's promotion record, in the shared Postgres store: which replicas are live,
and each promotion (or rollback) in two phases.

A coordinator (the replica that received `Promote` or `Rollback`) writes a promotion in phase
`prepare`; every live replica stages the version (its files fetched and their checksums
checked) and writes its acknowledgement, ok or not with the reason; the coordinator then
decides: `committed` when every live replica acknowledged ok, else `aborted` with the reason
(a replica that failed to stage, or one that did not answer in time). Replicas switch to the
newest committed version; a replica that starts or rejoins later switches to it too. One
promotion is prepared at a time; a prepare older than its deadline (its coordinator died) is
aborted by the next one.

Tables: `replicas` (name, last heartbeat, the version it serves), `promotions`, `acks`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row

SCHEMA = """
CREATE TABLE IF NOT EXISTS replicas (
    name TEXT PRIMARY KEY,
    seen_at DOUBLE PRECISION NOT NULL,
    serving TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS promotions (
    id BIGSERIAL PRIMARY KEY,
    version TEXT NOT NULL,
    action TEXT NOT NULL,
    phase TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    coordinator TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    deadline DOUBLE PRECISION NOT NULL,
    decided_at DOUBLE PRECISION
);
CREATE UNIQUE INDEX IF NOT EXISTS one_prepare ON promotions (phase) WHERE phase = 'prepare';
CREATE TABLE IF NOT EXISTS acks (
    promotion_id BIGINT NOT NULL REFERENCES promotions (id),
    replica TEXT NOT NULL,
    ok BOOLEAN NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (promotion_id, replica)
);
"""
SCHEMA_LOCK = 0x72_6c_76_72_03
ACTIONS = ("promote", "rollback")


class PromotionBusy(RuntimeError):
    """Another promotion is being prepared."""


@dataclass(frozen=True)
class Promotion:
    id: int
    version: str      # what every replica serves once it is committed
    action: str       # promote or rollback
    phase: str        # prepare, committed or aborted
    reason: str
    coordinator: str
    deadline: float


class ClusterStore:
    """The promotion record on a Postgres server (`trace_store`'s database)."""

    def __init__(self, url: str):
        self.conn = psycopg.connect(url, autocommit=True, row_factory=dict_row,
                                    connect_timeout=10)
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            if self.conn.execute("SELECT to_regclass('acks') AS t").fetchone()["t"] is None:
                self.conn.execute(SCHEMA)

    def heartbeat(self, replica: str, serving: str) -> None:
        self.conn.execute("INSERT INTO replicas VALUES (%s, %s, %s) ON CONFLICT (name) DO "
                          "UPDATE SET seen_at = EXCLUDED.seen_at, serving = EXCLUDED.serving",
                          (replica, time.time(), serving))

    def live(self, within_s: float) -> dict[str, str]:
        """Replicas seen in the last `within_s` seconds -> the version each serves."""
        rows = self.conn.execute("SELECT name, serving FROM replicas WHERE seen_at > %s "
                                 "ORDER BY name", (time.time() - within_s,))
        return {r["name"]: r["serving"] for r in rows}

    def leave(self, replica: str) -> None:
        self.conn.execute("DELETE FROM replicas WHERE name = %s", (replica,))

    def begin(self, version: str, action: str, coordinator: str, timeout_s: float) -> Promotion:
        """A new promotion in phase prepare; PromotionBusy while another one is prepared."""
        now = time.time()
        with self.conn.transaction():
            self.conn.execute("UPDATE promotions SET phase = 'aborted', decided_at = %s, "
                              "reason = 'its coordinator did not decide in time' "
                              "WHERE phase = 'prepare' AND deadline < %s", (now, now))
            try:
                row = self.conn.execute(
                    "INSERT INTO promotions (version, action, phase, coordinator, created_at, "
                    "deadline) VALUES (%s, %s, 'prepare', %s, %s, %s) RETURNING *",
                    (version, action, coordinator, now, now + timeout_s)).fetchone()
            except psycopg.errors.UniqueViolation:
                raise PromotionBusy("another promotion is being prepared; try again") from None
        return _promotion(row)

    def ack(self, promotion_id: int, replica: str, ok: bool, reason: str = "") -> None:
        self.conn.execute("INSERT INTO acks VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                          (promotion_id, replica, ok, reason, time.time()))

    def acks(self, promotion_id: int) -> dict[str, tuple[bool, str]]:
        rows = self.conn.execute("SELECT replica, ok, reason FROM acks WHERE promotion_id = %s",
                                 (promotion_id,))
        return {r["replica"]: (r["ok"], r["reason"]) for r in rows}

    def decide(self, promotion_id: int, phase: str, reason: str = "") -> None:
        self.conn.execute("UPDATE promotions SET phase = %s, reason = %s, decided_at = %s "
                          "WHERE id = %s AND phase = 'prepare'",
                          (phase, reason, time.time(), promotion_id))

    def pending(self) -> Promotion | None:
        row = self.conn.execute("SELECT * FROM promotions WHERE phase = 'prepare'").fetchone()
        return _promotion(row) if row else None

    def committed(self) -> Promotion | None:
        """The newest committed promotion: what every replica serves."""
        row = self.conn.execute("SELECT * FROM promotions WHERE phase = 'committed' "
                                "ORDER BY id DESC LIMIT 1").fetchone()
        return _promotion(row) if row else None

    def get(self, promotion_id: int) -> Promotion:
        return _promotion(self.conn.execute("SELECT * FROM promotions WHERE id = %s",
                                            (promotion_id,)).fetchone())

    def close(self) -> None:
        self.conn.close()


def _promotion(row: dict) -> Promotion:
    return Promotion(row["id"], row["version"], row["action"], row["phase"], row["reason"],
                     row["coordinator"], row["deadline"])
