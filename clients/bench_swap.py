"""Hot-swap under load: swap latency and user latency around swaps, many concurrent streams.

A `rlvr serve` subprocess serves the embedded model, and copies of its weights are published
as versions. Closed-loop streams send held-out prompts while the benchmark promotes the next
version every `interval_s` seconds. Reported: the server's swap time (pause, reload, resume),
trigger-to-first-response on the new version, user latency p50/p99 of requests that overlapped
a swap against those that did not (same run), and failed requests (target 0).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from clients.client import AsyncClient, RlvrError
from rlvr.store.checkpoints import CheckpointStore
from rl_loop.toy.tasks import load_heldout
from rl_loop.toy.tiny_model import MODEL_DIR
from rl_loop.toy.traffic import percentile


@dataclass
class Request:
    start: float
    end: float
    version: str
    ok: bool


async def _drive(target: str, token: str, versions: list[str], concurrency: int,
                 interval_s: float) -> tuple[list[Request], list[dict]]:
    prompts = [t.prompt for t in load_heldout()]
    records: list[Request] = []
    stop = asyncio.Event()
    async with AsyncClient(target, token=token) as client:
        async def loop(worker: int) -> None:
            rng = random.Random(worker)
            while not stop.is_set():
                start = time.monotonic()
                try:
                    result = await client.ask(rng.choice(prompts), budget=64, temperature=0.0)
                    records.append(Request(start, time.monotonic(), result.weight_version, True))
                except RlvrError:
                    records.append(Request(start, time.monotonic(), "", False))

        workers = [asyncio.create_task(loop(i)) for i in range(concurrency)]
        await asyncio.sleep(interval_s)  # steady state first
        swaps = []
        for version in versions:
            trigger = time.monotonic()
            response = await client.promote(version)
            swaps.append({"version": version, "trigger": trigger, "returned": time.monotonic(),
                          "swap_s": response.swap_seconds})
            await asyncio.sleep(interval_s)
        stop.set()
        await asyncio.gather(*workers)
    return records, swaps


def _latencies(records: list[Request]) -> dict:
    values = [r.end - r.start for r in records if r.ok]
    return {"requests": len(records), "p50_s": percentile(values, 0.5),
            "p99_s": percentile(values, 0.99)}


def run_swap_benchmark(swaps: int = 5, concurrency: int = 64, interval_s: float = 4.0) -> dict:
    from clients.launch import ServerProcess

    token = "bench-admin"
    server = ServerProcess(Path(tempfile.mkdtemp(prefix="rlvr-bench-")),
                           admin_tokens=[token], max_pending=max(512, 2 * concurrency))
    versions = [f"v{i}" for i in range(1, swaps + 1)]
    store = CheckpointStore(server.state_dir)
    for i, version in enumerate(versions):
        store.publish_folder(MODEL_DIR, version, parent=f"v{i}", step=i)
    try:
        server.wait_ready()
        records, events = asyncio.run(_drive(server.target, token, versions, concurrency,
                                             interval_s))
    finally:
        server.stop()
    for swap in events:
        new = [r.end for r in records if r.ok and r.end > swap["trigger"] and
               (r.version == swap["version"] or r.version.endswith("->" + swap["version"]))]
        swap["trigger_to_first_response_s"] = min(new) - swap["trigger"] if new else None
    around = [r for r in records if any(r.start <= s["returned"] and r.end >= s["trigger"]
                                        for s in events)]
    away = [r for r in records if r not in around]
    return {
        "swaps": len(events), "concurrency": concurrency,
        "swap_s_median": statistics.median(s["swap_s"] for s in events),
        "swap_s_max": max(s["swap_s"] for s in events),
        "trigger_to_first_response_s_median": statistics.median(
            s["trigger_to_first_response_s"] for s in events
            if s["trigger_to_first_response_s"] is not None),
        "failed_requests": sum(not r.ok for r in records), "requests": len(records),
        "latency_around_swaps": _latencies(around), "latency_away_from_swaps": _latencies(away),
        "events": [{k: v for k, v in s.items() if k not in ("trigger", "returned")}
                   for s in events],
    }
