"""One consistent promotion across replicas: the two-phase protocol on a real Postgres server,
with fake replicas (fast), and one real server in a cluster with a fake second replica."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import pytest

from clients.client import Client, RlvrError
from clients.launch import ServerProcess
from rlvr.store.checkpoints import CheckpointError, CheckpointStore
from rlvr.store.cluster import ClusterStore, PromotionBusy
from runtime.cluster import ClusterAgent, PromotionFailed
from runtime.config import MODEL_DIR

pytestmark = pytest.mark.heavy


class FakeReplica:
    """A replica's weights: what it serves, and versions it cannot stage."""

    def __init__(self, serving: str = "v0", bad: set[str] | None = None):
        self.serving, self.bad, self.swaps = serving, bad or set(), []

    def stage(self, version: str) -> None:
        if version in self.bad:
            raise CheckpointError(f"checkpoint {version}: model.safetensors missing or checksum "
                                  "mismatch; refusing to load it")

    async def promote(self, version: str):
        previous, self.serving = self.serving, version
        self.swaps.append(version)
        return previous, 0.0

    async def roll_back_to(self, version: str):
        return await self.promote(version)


def _agent(url: str, name: str, **kwargs):
    replica = FakeReplica()
    return ClusterAgent(ClusterStore(url), replica, name, poll_s=0.02, **kwargs), replica


async def running(*pairs):
    """Start the agents' loops (as each server does); returns their tasks."""
    tasks = [asyncio.create_task(agent.run()) for agent, _ in pairs]
    await asyncio.sleep(0.1)  # every replica has reported itself live
    return tasks


def test_a_promotion_reaches_every_replica_or_none(postgres):
    url = postgres.database()

    async def scenario():
        (a, ra), (b, rb) = _agent(url, "a"), _agent(url, "b")
        tasks = await running((a, ra), (b, rb))
        done = await a.coordinate("v1")
        assert done.phase == "committed" and ra.serving == "v1"
        await asyncio.sleep(0.1)
        assert rb.serving == "v1"  # b switched on the commit
        rb.bad.add("v2")
        with pytest.raises(PromotionFailed, match="replica b cannot stage v2: .*checksum"):
            await a.coordinate("v2")
        await asyncio.sleep(0.1)
        assert (ra.serving, rb.serving) == ("v1", "v1")  # nobody switched
        aborted = a.store.get(a.store.committed().id + 1)
        assert aborted.phase == "aborted" and "replica b cannot stage v2" in aborted.reason
        rb.bad.clear()
        await b.coordinate("v2")  # any replica can coordinate
        await asyncio.sleep(0.1)
        assert (ra.serving, rb.serving) == ("v2", "v2")
        await a.coordinate("v1", "rollback")
        await asyncio.sleep(0.1)
        assert (ra.serving, rb.serving) == ("v1", "v1") and rb.swaps == ["v1", "v2", "v1"]
        late, rl = _agent(url, "late")  # starts (or rejoins) after all of it
        await late.tick()
        assert rl.serving == "v1" and rl.swaps == ["v1"]
        for task in tasks:
            task.cancel()
    asyncio.run(scenario())


def test_a_silent_replica_blocks_until_it_is_no_longer_live(postgres):
    url = postgres.database()

    async def scenario():
        (a, ra), (gone, _) = _agent(url, "a", live_s=1.0, stage_timeout_s=0.5), _agent(url, "gone")
        await gone.tick()  # seen once, then silent (killed)
        tasks = await running((a, ra))
        with pytest.raises(PromotionFailed, match="replica\\(s\\) gone did not acknowledge v1"):
            await a.coordinate("v1")
        assert ra.serving == "v0"
        await asyncio.sleep(1.1)  # no longer live: it does not hold the cluster back
        assert (await a.coordinate("v1")).phase == "committed" and ra.serving == "v1"
        for task in tasks:
            task.cancel()
    asyncio.run(scenario())


def test_one_promotion_is_prepared_at_a_time(postgres):
    store = ClusterStore(postgres.database())
    store.begin("v1", "promote", "a", timeout_s=60)
    with pytest.raises(PromotionBusy):
        store.begin("v2", "promote", "b", timeout_s=60)
    stale = ClusterStore(postgres.database())
    stale.begin("v1", "promote", "dead", timeout_s=-1)  # its coordinator died
    assert stale.begin("v2", "promote", "b", timeout_s=60).version == "v2"


@pytest.mark.engine
def test_a_real_server_promotes_and_rolls_back_with_its_cluster(postgres, tmp_path):
    """A real server (`cluster = true`) and a second replica (a fake one, in this process:
    two engines would not fit this machine's two cores) share Postgres and a checkpoint
    folder."""
    url, shared = postgres.database(), tmp_path / "shared"
    CheckpointStore(tmp_path / "trainer", shared).publish_folder(MODEL_DIR, "v1", parent="v0",
                                                                 step=1)
    CheckpointStore(tmp_path / "trainer", shared).publish_folder(MODEL_DIR, "v2", parent="v1",
                                                                 step=2)
    other, replica = _agent(url, "other", live_s=5.0)
    stop = threading.Event()

    def run_other():
        async def loop():
            while not stop.is_set():
                await other.tick()
                await asyncio.sleep(0.05)
        asyncio.run(loop())
    thread = threading.Thread(target=run_other)
    thread.start()
    server = ServerProcess(tmp_path / "server", trace_store=url, checkpoint_store=shared,
                           cluster=True, replica_name="real", admin_tokens=["adm"])
    try:
        server.wait_ready()
        with Client(server.target, token="adm") as admin:
            assert admin.promote("v1").current == "v1"
            assert admin.ask("What is 2+2?", budget=8).weight_version == "v1"
            assert replica.serving == "v1"
            replica.bad.add("v2")
            with pytest.raises(RlvrError) as err:
                admin.promote("v2")
            assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
            assert "replica other cannot stage v2" in err.value.message
            assert admin.ask("What is 2+2?", budget=8).weight_version == "v1"
            assert admin.rollback().current == "v0"
            deadline = time.monotonic() + 30
            while replica.serving != "v0" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert replica.serving == "v0"
    finally:
        stop.set()
        thread.join(10)
        assert server.stop() == 0
