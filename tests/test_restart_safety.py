"""Restart safety without the engine: kill -9 during a checkpoint publish, trainer resume."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch

from clients.launch import REPO
from rlvr.store.checkpoints import CheckpointError, CheckpointStore
from rlvr.store.layout import StateDir
from rl_loop.gate import ForceThinkEnd

pytestmark = [pytest.mark.reliability, pytest.mark.heavy]

WRITER = """
import sys, time
from pathlib import Path
from rlvr.store.checkpoints import CheckpointStore

def write(folder):
    (folder / "model.safetensors").write_bytes(b"half" * 1000)
    print("writing", flush=True)
    time.sleep(120)

CheckpointStore(Path(sys.argv[1])).publish(write, "v1", parent="v0", step=5)
"""


def test_kill_9_while_publishing_never_yields_a_version(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], cwd=REPO,
                            stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"writing"
    proc.kill()
    proc.wait()
    store = CheckpointStore(tmp_path)
    assert len(list(store.root.glob(".tmp-v1-*"))) == 1  # the half-written folder is there ...
    assert store.versions() == [] and store.current() == "v0"  # ... but it is no version
    with pytest.raises(CheckpointError):
        store.verified_path("v1")
    assert [name.startswith(".tmp-v1-") for name in store.sweep()] == [True]
    assert not list(store.root.glob(".tmp-*"))

    def write(folder):
        (folder / "model.safetensors").write_bytes(b"whole")
    store.publish(write, "v1", parent="v0", step=5)  # the name is free again
    assert store.verified_path("v1").name == "v1"
    assert [m.version for m in store.versions()] == ["v1"]


def test_retention_keeps_newest_and_rollback_targets_and_every_manifest(tmp_path):
    store = CheckpointStore(tmp_path)
    for i in range(1, 8):
        store.publish(lambda folder: (folder / "model.safetensors").write_bytes(b"w" * 100),
                      f"v{i}", parent=f"v{i - 1}", step=i)
        time.sleep(0.01)  # distinct creation times: versions() orders by them
    for version in ("v1", "v2", "v5"):
        store.record_promotion(version)
    # kept: the 2 newest (v6, v7) and the last 2 promoted (v2, v5)
    assert store.prune(keep=2) == ["v1", "v3", "v4"]
    assert [m.version for m in store.versions()] == [f"v{i}" for i in range(1, 8)]
    assert [p.name for p in store.path("v3").iterdir()] == ["manifest.json"]
    assert store.manifest("v3").pruned and store.manifest("v3").step == 3
    with pytest.raises(CheckpointError, match="retention"):
        store.verified_path("v1")
    assert store.verified_path("v2") == store.path("v2")
    assert store.prune(keep=2) == []


def test_trainer_resumes_cursor_and_refills_its_pool(tmp_path):
    """A restarted trainer continues at its saved cursor and step and, so that no trace read
    before the crash is skipped, refills its prompt pool with the traces up to the cursor."""
    from runtime.config import MODEL_DIR
    from rl_loop.trainer import Trainer, TrainerConfig
    from rlvr.store.traces import Trace, TraceStore

    store = TraceStore(tmp_path / "traces.sqlite")
    for i in range(6):
        store.append(Trace(request_id=f"r{i}", choice_index=0, source="test", trainable=True,
                           prompt_text=f"What is {i}+1?", prompt_ids=[], thinking_ids=[],
                           answer_ids=[], thinking_end="natural",
                           thinking_options={"budget": 16}, sampling_options={},
                           weight_version="v0", reward=1.0, verdict="correct",
                           spec={"kind": "numeric", "reference": str(i + 1)}))
    store.close()
    (tmp_path / "trainer_state.json").write_text(json.dumps({"cursor": 4, "step": 7}))
    trainer = Trainer(TrainerConfig(base_model=MODEL_DIR, state_dir=tmp_path, gate_tasks=5))
    assert (trainer.cursor, trainer.step) == (4, 7)
    assert [p for p, _, _ in trainer.pool] == [f"What is {i}+1?" for i in range(4)]
    trainer.read_traces()
    assert trainer.cursor == 6 and len(trainer.pool) == 6
    assert trainer.device.type in ("cpu", "cuda") and trainer.version == "v0"


def test_force_think_end_closes_only_open_rows_at_the_budget():
    proc = ForceThinkEnd(budget=2, prompt_len=3, think_end_id=9)
    ids = torch.tensor([[1, 1, 1, 5, 6], [1, 1, 1, 9, 6]])
    scores = proc(ids, torch.zeros(2, 10))
    assert scores[0].argmax() == 9 and torch.isinf(scores[0, :9]).all()
    assert torch.equal(scores[1], torch.zeros(10))  # already answered: untouched
    early = proc(ids[:, :4], torch.zeros(2, 10))
    assert torch.equal(early, torch.zeros(2, 10))  # below the budget: untouched


def test_an_end_of_sequence_while_thinking_closes_thinking_as_serving_does():
    proc = ForceThinkEnd(budget=8, prompt_len=3, think_end_id=9, eos_ids=frozenset({2}))
    ids = torch.tensor([[1, 1, 1, 5], [1, 1, 1, 9]])
    scores = torch.zeros(2, 10)
    scores[:, 2] = 5.0  # both rows would end the sequence
    out = proc(ids, scores.clone())
    assert out[0].argmax() == 9  # thinking: closed with </think>, the answer follows
    assert out[1].argmax() == 2  # answering: the end of sequence stands


def test_reap_kills_only_what_a_dead_server_left_behind(tmp_path):
    import psutil

    from runtime import orphans

    dead = subprocess.Popen(["sleep", "0"])
    dead_identity = [dead.pid, psutil.Process(dead.pid).create_time()]
    dead.wait()
    child = subprocess.Popen(["sleep", "60"])
    child_identity = [child.pid, psutil.Process(child.pid).create_time()]
    path = StateDir(tmp_path).server_processes

    me = psutil.Process()
    path.write_text(json.dumps({"server": [me.pid, me.create_time()],
                                "children": [child_identity]}))
    assert orphans.reap(tmp_path) == [] and child.poll() is None  # its server is alive

    path.write_text(json.dumps({"server": dead_identity,
                                "children": [child_identity, [child.pid, 1.0]]}))
    assert orphans.reap(tmp_path) == [child.pid]  # the stale identity [pid, 1.0] is not it
    assert child.wait(10) == -9 and not path.exists()


@pytest.fixture()
def small_disk(tmp_path):
    """A 24 MiB tmpfs (needs root, as on the development and CI machines)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path) -> None:
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass


@pytest.mark.engine
def test_full_disk_serving_goes_on_training_pauses_and_nothing_is_lost(small_disk, tmp_path):
    import asyncio
    import sqlite3
    import time

    from clients.client import Client
    from clients.launch import ServerProcess
    from rl_loop.trainer import Trainer, TrainerConfig
    from runtime.config import MODEL_DIR

    state = small_disk / "state"
    server = ServerProcess(tmp_path / "w", state_dir=state, admin_tokens=["adm"])

    def committed() -> int:
        with sqlite3.connect(state / "traces.sqlite") as conn:
            return conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0]
    try:
        server.wait_ready()
        with Client(server.target, token="adm") as c:
            def ask(i: int) -> str:
                return c.ask(f"What is {i}+1?", budget=16, verify=f"numeric:{i + 1}").finish_reason
            assert [ask(i) for i in range(4)] == ["stop"] * 4
            deadline = time.monotonic() + 60
            while committed() < 4 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert committed() == 4
            fill(small_disk / "filler")
            assert [ask(i) for i in range(4, 8)] == ["stop"] * 4  # serving goes on
            time.sleep(1)
            assert committed() == 4  # ... while the writer holds these traces and retries

            cfg = TrainerConfig(base_model=MODEL_DIR, server=server.target, state_dir=state, token="adm", max_steps=1,
                                publish_every=1, gate_tasks=5, gate_z=1e9, min_validation=1,
                                prompts_per_step=2, group_size=4, poll_s=0.2, min_free_mb=1)
            trainer = Trainer(cfg)
            assert trainer.state() == "paused: disk full"
            with pytest.raises(asyncio.TimeoutError):
                asyncio.run(asyncio.wait_for(trainer.run(), 3))
            assert trainer.step == 0  # paused, not crashed

            (small_disk / "filler").unlink()  # space returns
            deadline = time.monotonic() + 120
            while committed() < 8 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert committed() == 8  # nothing accepted was lost
            asyncio.run(trainer.run())
            assert trainer.step == 1 and trainer.stats["promoted"] == 1  # training resumed
            assert c.ask("What is 2+2?", budget=16).weight_version == trainer.version
    finally:
        server.stop()
