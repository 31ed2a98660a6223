"""The Postgres trace store against a real Postgres server (`clients.launch.PostgresServer`): several
writers, rows that commit out of order, feedback from another replica, caps, a restart."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from rlvr.store.postgres import redacted
from rlvr.store.traces import COLUMNS, DamagedStore, TraceReader, TraceStore, open_database
from tests.test_traces import make_trace

pytestmark = pytest.mark.heavy


def test_append_read_find_and_stats_as_with_sqlite(postgres, tmp_path):
    """The same traces through both databases read back the same (positions aside)."""
    results = []
    for location in (postgres.database(), tmp_path / "t.sqlite"):
        store = TraceStore(location, flush_s=0.01)
        for i in range(10):
            store.append(make_trace(i, spec={"kind": "numeric", "reference": str(i)},
                                    prompt_ids=[1, i]))
        assert store.flush()
        reader = TraceReader(location)
        trainable = reader.read(0)
        everything = list(reader.iter_all())
        assert [t.id for t in everything] == sorted(t.id for t in everything)
        results.append(([(t.request_id, t.prompt_ids, t.spec) for t in trainable],
                        [t.request_id for t in everything], reader.find("r3")[0].reward,
                        reader.stats(), [t.request_id for t in reader.read_recent(
                            trainable[-1].id, 2)]))
        store.close()
        reader.close()
    assert results[0] == results[1]
    assert results[0][3]["total"] == 10 and results[0][3]["trainable"] == 5


def test_a_row_that_commits_late_is_read_after_the_rows_before_it(postgres):
    """Replica A takes id 1 and commits after replica B committed ids 2-4; a reader that
    followed ids would skip id 1 forever. Positions follow commit order: it is read next."""
    url = postgres.database()
    open_database(url).close()  # the schema
    late = psycopg.connect(url)  # replica A, mid-transaction
    row = make_trace(100, trainable=True).row()
    late.execute(f"INSERT INTO traces ({', '.join(COLUMNS)}) VALUES "
                 f"({', '.join('%s' for _ in COLUMNS)})", row)
    store = TraceStore(url, flush_s=0.01)  # replica B
    for i in (0, 2, 4):
        store.append(make_trace(i))
    assert store.flush()
    reader = TraceReader(url)
    first = reader.read(0)
    assert [t.request_id for t in first] == ["r0", "r2", "r4"]
    late.commit()
    then = reader.read(first[-1].id)
    assert [t.request_id for t in then] == ["r100"] and then[0].id > first[-1].id
    ids = {t.request_id: t for t in reader.find("r100") + reader.find("r0")}
    assert ids["r100"].id > ids["r0"].id  # its position, not its (smaller) row id
    late.close()
    store.close()
    reader.close()


def test_many_writers_at_once_lose_and_skip_nothing(postgres):
    """Four replicas write 200 traces each while a trainer reads by cursor: every trainable
    trace is read exactly once."""
    url = postgres.database()
    stores = [TraceStore(url, flush_s=0.005, batch=7) for _ in range(4)]
    reader, seen, cursor = TraceReader(url), [], 0

    def write(k: int) -> None:
        for i in range(200):
            stores[k].append(make_trace(k * 1000 + i, trainable=True))
            if i % 25 == 0:
                time.sleep(0.01)
        stores[k].flush()
    writers = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for w in writers:
        w.start()
    while any(w.is_alive() for w in writers) or len(seen) < 800:
        batch = reader.read(cursor, limit=50)
        seen += [t.request_id for t in batch]
        cursor = batch[-1].id if batch else cursor
        assert len(seen) <= 800
        time.sleep(0.005)
    assert sorted(seen) == sorted(f"r{k * 1000 + i}" for k in range(4) for i in range(200))
    for store in stores:
        store.close()
    reader.close()


def test_feedback_through_another_replica_updates_the_trace_and_redelivers_it(postgres):
    url = postgres.database()
    a, b, reader = TraceStore(url, flush_s=0.01), TraceStore(url, flush_s=0.01), TraceReader(url)
    assert a.shared and b.shared
    a.append(make_trace(7, trainable=False, untrusted_reason="no_verdict", reward=None,
                        verdict=""))
    a.flush()
    assert reader.read(0) == []
    cursor = reader.read(0, trainable_only=False)[-1].id
    found = reader.find("r7")[0]  # replica B, which received the feedback, finds it ...
    found.reward, found.verdict, found.trainable, found.untrusted_reason = 1.0, "feedback", True, ""
    found.feedback_at = time.time()
    b.append(found)  # ... and stores the verdict: the same row, a new position
    b.flush()
    again = reader.read(cursor)
    assert [(t.request_id, t.reward, t.trainable) for t in again] == [("r7", 1.0, True)]
    assert reader.stats()["total"] == 1
    for closing in (a, b, reader):
        closing.close()


def test_caps_apply_to_the_shared_store(postgres):
    url = postgres.database()
    store = TraceStore(url, max_rows=4, max_age_days=1)
    store.append(make_trace(0, created_at=time.time() - 3 * 86400))
    for i in range(1, 10):
        store.append(make_trace(i))
    store.flush()
    store.prune()
    reader = TraceReader(url)
    assert [t.request_id for t in reader.iter_all()] == ["r6", "r7", "r8", "r9"]  # newest 4
    store.close()
    reader.close()


@pytest.mark.reliability
def test_a_postgres_restart_loses_no_accepted_trace(tmp_path):
    """Traces appended while Postgres is down are held and committed once it is back."""
    from clients.launch import PostgresServer

    server = PostgresServer().start()
    try:
        url = server.database()
        store = TraceStore(url, flush_s=0.01)
        for i in range(20):
            store.append(make_trace(i))
        assert store.flush()
        server.stop()
        for i in range(20, 40):
            store.append(make_trace(i))
        assert not store.flush(timeout=1.0)  # held, not dropped, not acknowledged
        server.start()
        assert store.flush(timeout=120)
        reader = TraceReader(url)
        assert sorted(t.request_id for t in reader.iter_all()) == sorted(f"r{i}" for i in range(40))
        store.close()
        reader.close()
    finally:
        server.remove()


def test_an_unreachable_or_bad_store_is_one_clear_error(postgres):
    url = f"postgresql://rlvr:secret@127.0.0.1:{postgres.port}/no_such_db"
    with pytest.raises(DamagedStore, match="no_such_db") as err:
        open_database(url)
    assert "secret" not in str(err.value) and redacted(url).count("***") == 1


def test_the_trainer_reads_its_traces_from_postgres(postgres, tmp_path):
    """`trace_store` in the trainer's settings: it follows the shared store's positions, and
    a restarted trainer refills its pool from what it had read (as with SQLite)."""
    from rl_loop.trainer import Trainer
    from rl_loop.trainer_config import TrainerConfig
    from runtime.config import MODEL_DIR

    url = postgres.database()
    store = TraceStore(url, flush_s=0.01)
    for i in range(12):
        store.append(make_trace(i, trainable=True, prompt_text=f"What is {i}+1?",
                                spec={"kind": "numeric", "reference": str(i + 1)}))
    store.flush()
    cfg = TrainerConfig(base_model=MODEL_DIR, state_dir=tmp_path, gate_tasks=0,
                        validation_share=0.0, trace_store=url)
    trainer = Trainer(cfg)
    trainer.read_traces()
    reader = TraceReader(url)
    assert len(trainer.pool) == 12 and trainer.cursor == reader.read(0)[-1].id
    reader.close()
    assert not (tmp_path / "traces.sqlite").exists()  # nothing read from the state directory
    restarted = Trainer(cfg)
    restarted.cursor = trainer.cursor
    restarted.refill_pool()
    assert len(restarted.pool) == 12
    store.close()
