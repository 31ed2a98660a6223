"""Damaged or surprising state is named and survivable: a truncated trace database or a
garbled promotion history stops `rlvr serve` / `rlvr traces` with one clear line (no
traceback, nothing changed); a missing served checkpoint falls back to the newest intact
promoted version, not the base; the history means what it says; the trainer's supervisor
honours its restart cap and reports the failure."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from clients.launch import REPO
from rlvr.store.checkpoints import CheckpointStore
from runtime.admin import AdminService, WeightManager
from runtime.config import MODEL_DIR
from runtime.metrics import Metrics
from runtime.trainer_process import TrainerProcess

pytestmark = pytest.mark.heavy  # starts the CLI (`make test-fast` skips it)


def rlvr(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clients.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def serve(state: Path) -> subprocess.CompletedProcess:
    return rlvr("serve", "--state-dir", str(state), "--port", "0", "--metrics-port", "0",
                "--no-train")


def damaged_trace_db(state: Path) -> Path:
    from rlvr.store.sqlite import SCHEMA

    state.mkdir(parents=True)
    path = state / "traces.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
        conn.executemany("INSERT INTO traces (request_id, choice_index, source, trainable, "
                         "prompt_text, prompt_ids, thinking_ids, answer_ids, thinking_end, "
                         "thinking_options, sampling_options, weight_version, spec, verdict, "
                         "created_at) VALUES (?, 0, 's', 1, ?, '[]', '[]', '[]', '', '{}', "
                         "'{}', 'v0', '{}', 'correct', 0)",
                         [(f"r{i}", "x" * 2000) for i in range(400)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_a_truncated_trace_database_is_one_clear_line_and_nothing_changes(tmp_path):
    path = damaged_trace_db(tmp_path / "state")
    before = path.read_bytes()
    for result in (serve(tmp_path / "state"), rlvr("traces", "--state-dir", str(tmp_path / "state"))):
        assert result.returncode == 2, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        assert "the trace database is damaged" in result.stderr and ".recover" in result.stderr
    assert path.read_bytes() == before  # nothing committed is touched by the check


@pytest.mark.parametrize("content", ["{{{ not json", '{"v1": 1}', "[1, 2]"])
def test_a_garbled_promotion_history_is_one_clear_line(tmp_path, content):
    (tmp_path / "state" / "checkpoints").mkdir(parents=True)
    history = tmp_path / "state" / "checkpoints" / "promoted.json"
    history.write_text(content)
    result = serve(tmp_path / "state")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "damaged promotion history" in result.stderr
    assert history.read_text() == content


class FakeEngine:
    """What WeightManager needs of the engine: full-weight swaps, recorded."""

    def __init__(self):
        self.model_dir, self.weight_version, self.max_lora_rank = MODEL_DIR, "v0", 0
        self.swaps: list[str] = []

    async def swap_weights(self, path: Path, version: str) -> float:
        self.swaps.append(version)
        self.weight_version = version
        return 0.01


def store_with(tmp_path: Path, *versions: str) -> CheckpointStore:
    store = CheckpointStore(tmp_path)
    for i, version in enumerate(versions):
        store.publish_folder(MODEL_DIR, version, parent="v0", step=i)
    return store


def test_the_newest_intact_promoted_version_is_served_and_named(tmp_path):
    store = store_with(tmp_path, "v1", "v2", "v3")
    for version in ("v1", "v2", "v3"):
        store.record_promotion(version)
    (store.path("v3") / "model.safetensors").unlink()                 # missing
    (store.path("v2") / "model.safetensors").write_bytes(b"corrupt")  # checksum mismatch
    engine = FakeEngine()
    weights = WeightManager(engine, store, Metrics())
    asyncio.run(weights.restore())
    assert engine.weight_version == "v1" and engine.swaps == ["v1"]  # not the base model
    assert "serving v1" in weights.serving_note and "v3 (" in weights.serving_note \
        and "v2 (" in weights.serving_note
    assert store.last_good() == "v1"  # where the trainer starts too
    listing = asyncio.run(AdminService(weights, tmp_path, lambda: True).ListVersions(None, None))
    assert listing.serving_note == weights.serving_note and listing.current == "v1"


def test_history_means_what_it_says(tmp_path):
    store = store_with(tmp_path, "v1", "v2")
    engine = FakeEngine()
    weights = WeightManager(engine, store, Metrics())
    written = {v: (store.path(v) / "manifest.json").read_bytes() for v in ("v1", "v2")}
    asyncio.run(weights.promote("v1"))
    asyncio.run(weights.promote("v2"))
    previous, seconds = asyncio.run(weights.promote("v2"))  # already served: a no-op
    assert (previous, seconds) == ("v2", 0.0) and store.history() == ["v1", "v2"]
    assert engine.swaps == ["v1", "v2"]
    (store.root / "promoted.json").write_text(json.dumps(["v1", "v2", "v2"]))  # an old file
    before, target, _ = asyncio.run(weights.rollback())
    assert (before, target) == ("v2", "v1") and store.history() == ["v1"]
    assert store.manifest("v2").status == "rolled_back"
    assert store.manifest("v1").status == "promoted"  # the served one is never rolled back
    assert store.manifest("v1").promoted_at is None  # the old file had no times
    # the server wrote only its own record, the history: the manifests are the trainer's
    assert written == {v: (store.path(v) / "manifest.json").read_bytes() for v in ("v1", "v2")}
    asyncio.run(weights.promote("v2"))
    assert store.manifest("v2").status == "promoted" and store.manifest("v2").promoted_at > 0
    assert store.history() == ["v1", "v2"]


def test_the_supervisor_honours_its_restart_cap_and_reports_the_failure(tmp_path):
    proc = TrainerProcess("localhost:1", tmp_path, "token", tmp_path, max_restarts=2,
                          backoff_s=0.01)
    proc.args = [sys.executable, "-c", "raise SystemExit(3)"]

    async def supervise():
        proc.start()
        await proc.task
    asyncio.run(supervise())
    assert proc.restarts == 2 and proc.failure.startswith("failed: exited with status 3")
    admin = AdminService(None, tmp_path, lambda: True, trainer_failure=lambda: proc.failure)
    assert admin._status().state == proc.failure


def test_a_trainer_child_with_bad_settings_is_not_restarted(tmp_path):
    """The real child (`python -m rl_loop`) handed a config file with a bad value exits 2 at
    once; the supervisor reports it instead of restarting it five times."""
    config = tmp_path / "trainer.toml"
    config.write_text("group_size = 1\n")
    proc = TrainerProcess("localhost:1", tmp_path, "token", MODEL_DIR, config, max_restarts=2,
                          backoff_s=0.01)

    async def supervise():
        proc.start()
        await proc.task
    asyncio.run(supervise())
    assert proc.restarts == 0 and "settings are invalid" in proc.failure
