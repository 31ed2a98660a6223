"""The trace log: durable under SIGKILL, readable by cursor, capped by size and age."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from rlvr.store.traces import Trace, TraceReader, TraceStore
from tests.conftest import REPO

WRITER = """
import sys, time
from rlvr.store.traces import Trace, TraceStore
store = TraceStore(sys.argv[1], flush_s=0.01)
i = 0
while True:
    for _ in range(50):
        store.append(Trace(request_id=f"r{i}", choice_index=0, source="s", trainable=True,
                           prompt_text="What is 1+2?", prompt_ids=[1, 2, 3], thinking_ids=[4] * 40,
                           answer_ids=[5], thinking_end="natural", thinking_options={"budget": 8},
                           sampling_options={}, weight_version="v0", spec={"kind": "numeric"},
                           reward=1.0, verdict="correct"))
        i += 1
    store.flush()
    print(i, flush=True)   # acknowledged: committed
"""


def make_trace(i: int, **kw) -> Trace:
    values = dict(request_id=f"r{i}", choice_index=0, source="s", trainable=i % 2 == 0,
                  prompt_text="p", prompt_ids=[1], thinking_ids=[2], answer_ids=[3],
                  thinking_end="natural", thinking_options={}, sampling_options={},
                  weight_version="v0", spec={}, reward=float(i % 2 == 0), verdict="correct")
    values.update(kw)
    return Trace(**values)


@pytest.mark.reliability
def test_sigkill_under_load_loses_no_acknowledged_trace(tmp_path):
    db = tmp_path / "traces.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    # kill mid-write after 3000 acknowledged traces or 20 s, but never before 1000: a slow
    # machine just takes longer (hard deadline 600 s)
    acknowledged, start = 0, time.monotonic()
    while acknowledged < 3000 and (time.monotonic() - start < 20 or acknowledged < 1000) \
            and time.monotonic() - start < 600:
        acknowledged = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert acknowledged >= 1000, f"{acknowledged} traces acknowledged in {time.monotonic() - start:.0f} s"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    count = conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0]
    ids = {r[0] for r in conn.execute("SELECT request_id FROM traces")}
    assert count >= acknowledged and all(f"r{i}" in ids for i in range(acknowledged))
    conn.close()


def test_cursor_reads_only_new_trainable_traces(tmp_path):
    store = TraceStore(tmp_path / "t.sqlite")
    for i in range(10):
        store.append(make_trace(i))
    assert store.flush()
    reader = TraceReader(tmp_path / "t.sqlite")
    first = reader.read(0, limit=3)
    assert [t.request_id for t in first] == ["r0", "r2", "r4"]
    rest = reader.read(first[-1].id)
    assert [t.request_id for t in rest] == ["r6", "r8"]
    assert rest[0].thinking_ids == [2] and rest[0].trainable is True
    assert len(reader.read(0, trainable_only=False)) == 10
    stats = reader.stats()
    assert stats["total"] == 10 and stats["trainable"] == 5 and stats["by_verdict"] == {"correct": 10}
    store.close()
    reader.close()


def test_size_and_age_caps(tmp_path):
    store = TraceStore(tmp_path / "t.sqlite", max_rows=4, max_age_days=1)
    for i in range(6):
        store.append(make_trace(i))
    store.append(make_trace(99, created_at=time.time() - 3 * 86400))
    store.flush()
    assert store.prune() == 3  # the old one, then the oldest beyond 4 rows
    reader = TraceReader(tmp_path / "t.sqlite")
    assert [t.request_id for t in reader.read(0, trainable_only=False)] == ["r2", "r3", "r4", "r5"]
    store.close()


def test_writer_applies_the_size_cap_as_it_writes(tmp_path):
    store = TraceStore(tmp_path / "t.sqlite", max_rows=100)
    counts = []
    for start in range(0, 1000, 50):
        for i in range(start, start + 50):
            store.append(make_trace(i))
        store.flush()
        counts.append(store._db.query("SELECT COUNT(*) AS n FROM traces")[0]["n"])
    assert max(counts) <= 100 + 64 + 50  # max_rows + the writer's slack + one batch at most
    assert counts[-1] >= 100        # and it keeps the newest max_rows
    store.close()
