"""The cluster layer's cost and its promotions, on this machine, ratios in one run.

1. Throughput: the same closed-loop workload (`concurrency` streams of held-out prompts for
   `seconds`) against a standalone `rlvr serve` and against one replica placed by Ray
   (`rlvr cluster --replicas 1`, cluster mode on Postgres); requests/s and the ratio.
2. Promotions: two replicas placed by Ray, traffic through the round-robin address, `swaps`
   cluster-wide promotions; failed requests, and for each promotion how long after `Promote`
   returned each replica answered with the new version (asked directly).
Needs a Ray head on this machine (`ray start --head`); starts its own Postgres.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path

import ray

from clients.client import AsyncClient, RlvrError
from clients.launch import PostgresServer, ServerProcess, free_port
from clients.ray_cluster import ClusterPlan, RayCluster
from rlvr.store.checkpoints import CheckpointStore
from rl_loop.toy.tasks import load_heldout
from rl_loop.toy.tiny_model import MODEL_DIR

async def _closed_loop(target: str, concurrency: int, seconds: float, stop_at=None) -> dict:
    prompts = [t.prompt for t in load_heldout()]
    ok = failed = 0
    deadline = time.monotonic() + seconds
    async with AsyncClient(target) as client:
        async def worker(i: int) -> None:
            nonlocal ok, failed
            rng = random.Random(i)
            while time.monotonic() < deadline and not (stop_at and stop_at.is_set()):
                try:
                    await client.ask(rng.choice(prompts), budget=16, timeout=120)
                    ok += 1
                except RlvrError:
                    failed += 1
        start = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return {"ok": ok, "failed": failed, "requests_per_s": ok / (time.monotonic() - start)}


def _plan(work: Path, url: str, shared: Path, replicas: int) -> ClusterPlan:
    return ClusterPlan(replicas, url, str(shared), work / f"state-{replicas}", free_port(),
                       free_port(), cpus_per_replica=1.0, train=False)


def _promotions(cluster: RayCluster, versions: list[str], concurrency: int) -> dict:
    stop = asyncio.Event()
    lags: list[float] = []

    async def run() -> dict:
        load = asyncio.create_task(_closed_loop(cluster.address, concurrency, 3600, stop))
        await asyncio.sleep(5)
        async def on(address: str, version: str, since: float) -> float:
            async with AsyncClient(address) as c:
                while (await c.ask("What is 1+1?", budget=4)).weight_version != version:
                    await asyncio.sleep(0.01)
            return time.monotonic() - since

        for version in versions:
            async with AsyncClient(cluster.address, token=cluster.trainer_token) as admin:
                await admin.promote(version)
            returned = time.monotonic()
            lags.extend(await asyncio.gather(*(on(a, version, returned)
                                               for a in cluster.addresses)))
            await asyncio.sleep(3)
        stop.set()
        return await load
    traffic = asyncio.run(run())
    return {"promotions": len(versions), "failed_requests": traffic["failed"],
            "requests": traffic["ok"] + traffic["failed"],
            "replica_on_new_version_after_s_max": round(max(lags), 3),
            "replica_on_new_version_after_s": [round(x, 3) for x in lags]}


def run(seconds: float = 60.0, concurrency: int = 16, swaps: int = 5) -> dict:
    work = Path(tempfile.mkdtemp(prefix="rlvr-bench-cluster-"))
    database = PostgresServer().start()
    shared = work / "checkpoints"
    versions = [f"v{i}" for i in range(1, swaps + 1)]
    for i, version in enumerate(versions):
        CheckpointStore(work / "publisher", shared).publish_folder(
            MODEL_DIR, version, parent=f"v{i}", step=i)
    ray.init(address="auto", include_dashboard=False)
    try:
        standalone = ServerProcess(work / "standalone")
        try:
            standalone.wait_ready()
            alone = asyncio.run(_closed_loop(standalone.target, concurrency, seconds))
        finally:
            standalone.stop()
        one = RayCluster(_plan(work, database.database(), shared, 1)).start()
        try:
            placed = asyncio.run(_closed_loop(one.address, concurrency, seconds))
        finally:
            one.stop()
        two = RayCluster(_plan(work, database.database(), shared, 2)).start()
        try:
            promotions = _promotions(two, versions, concurrency)
        finally:
            two.stop()
    finally:
        ray.shutdown()
        database.remove()
    return {"seconds": seconds, "concurrency": concurrency,
            "standalone_requests_per_s": round(alone["requests_per_s"], 2),
            "ray_replica_requests_per_s": round(placed["requests_per_s"], 2),
            "ratio": round(placed["requests_per_s"] / alone["requests_per_s"], 3),
            "failed": {"standalone": alone["failed"], "ray_replica": placed["failed"]},
            "two_replicas": promotions}
