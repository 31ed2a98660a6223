"""Weight versions through the Admin service: hot-swap under load, rollback, refusals."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time

import grpc
import pytest

from clients.client import AsyncClient, Client, RlvrError
from rlvr.store.checkpoints import CheckpointStore
from rl_loop.toy.tiny_model import MODEL_DIR
from tests.conftest import ADMIN_TOKEN, API_TOKEN, REPO, metric_value

pytestmark = pytest.mark.engine


def test_admin_needs_an_admin_token(server):
    with Client(server.target, token=API_TOKEN) as user, Client(server.target) as anonymous:
        with pytest.raises(RlvrError) as err:
            user.list_versions()
        assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(RlvrError) as err:
            anonymous.promote("v1")
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED


def next_version(store: CheckpointStore) -> str:
    numbers = [int(m.version[1:]) for m in store.versions() if m.version[1:].isdigit()]
    return f"v{max(numbers, default=0) + 1}"


def test_hot_swap_with_32_streams_in_flight_fails_nothing(server):
    store = CheckpointStore(server.state_dir)
    new = next_version(store)
    store.publish_folder(MODEL_DIR, new, parent="v0", step=0)

    async def run():
        async with AsyncClient(server.target, token=API_TOKEN) as users, \
                AsyncClient(server.target, token=ADMIN_TOKEN) as admin:
            streams = [asyncio.create_task(users.ask(
                "What is 654321+123456?", budget=300, min_thinking=250, temperature=1.0, seed=i))
                for i in range(32)]
            await asyncio.sleep(0.3)
            # swap only once streams are producing tokens on v0, however slow the machine
            deadline = time.monotonic() + 120
            while metric_value(await asyncio.to_thread(server.metrics),
                               "rlvr_running_requests") < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            swap = await admin.promote(new)
            results = await asyncio.gather(*streams)  # a failed request raises here
            after = await users.ask("What is 12+34?", budget=16)
            return swap, results, after

    swap, results, after = asyncio.run(run())
    assert (swap.previous, swap.current) == ("v0", new) and swap.swap_seconds < 5
    assert all(r.finish_reason in ("stop", "length") for r in results)
    assert {r.weight_version for r in results} <= {"v0", f"v0->{new}", new}
    assert any(r.weight_version == f"v0->{new}" for r in results)
    assert after.weight_version == new
    with Client(server.target, token=ADMIN_TOKEN) as admin:
        listing = admin.list_versions()
        assert listing.current == new and list(listing.history) == [new]
        assert [v.status for v in listing.versions if v.version == new] == ["promoted"]
        back = admin.rollback()
        assert (back.previous, back.current) == (new, "v0")
        assert admin.list_versions().current == "v0"
        with pytest.raises(RlvrError) as err:
            admin.rollback()
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
    with Client(server.target, token=API_TOKEN) as user:
        assert user.ask("What is 12+34?", budget=16).weight_version == "v0"


@pytest.mark.reliability
def test_corrupt_or_unknown_checkpoints_are_never_served(server):
    store = CheckpointStore(server.state_dir)
    path = store.publish_folder(MODEL_DIR, "v-corrupt", parent="v0", step=0)
    with open(path / "model.safetensors", "r+b") as f:
        f.seek(2000)
        f.write(b"\x00" * 64)
    with Client(server.target, token=ADMIN_TOKEN) as admin:
        with pytest.raises(RlvrError) as err:
            admin.promote("v-corrupt")
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "checksum" in err.value.message
        with pytest.raises(RlvrError) as err:
            admin.promote("v-nope")
        assert err.value.code == grpc.StatusCode.NOT_FOUND
        assert admin.list_versions().current == "v0"
    shutil.rmtree(path)


def test_training_control_round_trips_through_the_state_dir(server):
    with Client(server.target, token=ADMIN_TOKEN) as admin:
        assert admin.training_status().state in ("absent", "running", "waiting", "paused")
        assert admin.pause_training().paused is True
        assert admin.training_status().paused is True
        assert admin.resume_training().paused is False
        assert (server.state_dir / "training_control.json").is_file()


def test_cli_status_json(server):
    out = subprocess.run([sys.executable, "-m", "clients.cli", "status", "--server", server.target,
                          "--token", ADMIN_TOKEN, "--json"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["current"] == "v0" and "state" in status["trainer"]
    assert {"versions", "history"} <= set(status)
    out = subprocess.run([sys.executable, "-m", "clients.cli", "promote", "nope", "--server",
                          server.target, "--token", API_TOKEN], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and "PERMISSION_DENIED" in out.stderr
