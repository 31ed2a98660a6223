"""Serving on the Postgres trace store, end to end: the real server writes its traces there,
and delayed feedback reaches a trace whichever replica receives it (here: a second server
started after the first one stopped, so nothing of the first is left in memory)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from clients.client import Client
from clients.launch import ServerProcess
from rlvr.store.traces import TraceReader
from tests.conftest import REPO, TRAIN_TOKEN

pytestmark = pytest.mark.engine


def wait_for(reader: TraceReader, request_id: str, predicate=lambda t: True,
             timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if traces := [t for t in reader.find(request_id) if predicate(t)]:
            return traces
        time.sleep(0.05)
    raise AssertionError(f"no trace for {request_id}")


def test_replicas_share_traces_and_feedback_on_postgres(postgres, tmp_path):
    url = postgres.database()
    reader = TraceReader(url)
    first = ServerProcess(tmp_path / "a", trace_store=url, train_tokens=[TRAIN_TOKEN])
    try:
        first.wait_ready()
        with Client(first.target, token=TRAIN_TOKEN) as c:
            c.ask("What is 12+34?", budget=64, request_id="pg-verified", verify="numeric:46")
            c.ask("What is 2+3?", budget=16, request_id="pg-later")
        verified, = wait_for(reader, "pg-verified")
        assert verified.trainable and verified.verdict in ("correct", "incorrect")
        cursor = reader.read(0)[-1].id  # the trainer has read the verified trace
        pending, = wait_for(reader, "pg-later")  # stored at once, for any replica's feedback
        assert (pending.trainable, pending.untrusted_reason, pending.reward) == \
            (False, "no_verdict", None)
    finally:
        assert first.stop() == 0
    assert not (tmp_path / "a" / "state" / "traces.sqlite").exists()  # nothing went to SQLite

    second = ServerProcess(tmp_path / "b", trace_store=url, train_tokens=[TRAIN_TOKEN])
    try:
        second.wait_ready()
        with Client(second.target, token=TRAIN_TOKEN) as c:
            response = c.feedback("pg-later", reward=1.0)
        assert response.trainable and response.result.reward == 1.0
        done, = wait_for(reader, "pg-later", lambda t: t.feedback_at is not None)
        assert (done.trainable, done.reward, done.verdict) == (True, 1.0, "feedback")
        assert [t.request_id for t in reader.read(cursor)] == ["pg-later"]  # read again, now
    finally:
        assert second.stop() == 0
    out = subprocess.run([sys.executable, "-m", "clients.cli", "traces", "--trace-store", url,
                          "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["total"] == 2
    reader.close()


def test_a_server_whose_trace_store_is_unreachable_does_not_start(postgres, tmp_path):
    url = f"postgresql://rlvr:secret@127.0.0.1:{postgres.port}/missing"
    out = subprocess.run([sys.executable, "-m", "clients.cli", "serve", "--trace-store", url,
                          "--port", "0", "--metrics-port", "0", "--no-train", "--state-dir",
                          str(tmp_path / "state")], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2 and "missing" in out.stderr and "Traceback" not in out.stderr
    assert "secret" not in out.stderr


@pytest.mark.reliability
def test_a_postgres_restart_under_traffic_loses_no_trace_and_fails_no_request(tmp_path):
    """Postgres stops while users are served: requests keep succeeding (traces are written
    off the request path), the server holds its traces, and once Postgres is back every one
    is committed."""
    from clients.launch import PostgresServer

    database = PostgresServer().start()
    server = None
    try:
        url = database.database()
        server = ServerProcess(tmp_path, trace_store=url, train_tokens=[TRAIN_TOKEN])
        server.wait_ready()
        with Client(server.target, token=TRAIN_TOKEN) as c:
            c.ask("What is 1+1?", budget=8, request_id="before", verify="numeric:2")
            database.stop()
            for i in range(6):
                result = c.ask(f"What is {i}+2?", budget=8, request_id=f"down-{i}",
                               verify=f"numeric:{i + 2}")
                assert result.finish_reason  # served while the store is down
            database.start()
        reader = TraceReader(url)
        for request_id in ["before"] + [f"down-{i}" for i in range(6)]:
            wait_for(reader, request_id, timeout=120)
        reader.close()
        assert "trace write failed" in server.log_path.read_text()  # it was held, then retried
    finally:
        if server is not None:
            assert server.stop() == 0
        database.remove()
