"""Fair sharing between callers, measured: one caller floods n=16 requests, another sends
ordinary ones; the other's p99 latency against its unloaded p99, with the per-caller share
on (`max_choices_per_caller`, default 128) and off (0), in the same run.

    python -m clients.bench_fairness --out docs/bench/fairness.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from clients.client import AsyncClient, RlvrError
from clients.launch import ServerProcess

PROBES, FLOOD = 40, 100


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def probe(target: str) -> list[float]:
    """The other caller: sequential short requests, their latencies."""
    async with AsyncClient(target, token="user") as client:
        latencies = []
        for i in range(PROBES):
            start = time.perf_counter()
            await client.ask(f"What is {i}+34?", budget=16)
            latencies.append(time.perf_counter() - start)
        return latencies


async def flood(target: str, stop: asyncio.Event, counts: dict) -> None:
    async with AsyncClient(target, token="flood") as client:
        async def one(i: int) -> None:
            while not stop.is_set():
                try:
                    await client.ask_n("What is 4821+377?", n=16, budget=64, seed=i,
                                       temperature=1.0)
                    counts["ok"] += 1
                except RlvrError as err:
                    counts[err.code.name] = counts.get(err.code.name, 0) + 1
                    await asyncio.sleep(0.2)
        await asyncio.gather(*(one(i) for i in range(FLOOD)))


async def loaded(target: str) -> tuple[list[float], dict]:
    stop, counts = asyncio.Event(), {"ok": 0}
    flooding = asyncio.create_task(flood(target, stop, counts))
    await asyncio.sleep(5)  # let the flood fill the engine
    latencies = await probe(target)
    stop.set()
    await flooding
    return latencies, counts


def measure(share: int, workdir: Path) -> dict:
    server = ServerProcess(workdir, api_tokens=["flood", "user"], max_pending=512,
                           max_choices_per_caller=share).wait_ready()
    try:
        unloaded = asyncio.run(probe(server.target))
        under_flood, counts = asyncio.run(loaded(server.target))
    finally:
        server.stop()
    return {"max_choices_per_caller": share, "unloaded_p99_s": p99(unloaded),
            "flooded_p99_s": p99(under_flood), "ratio": p99(under_flood) / p99(unloaded),
            "flood_outcomes": counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    report = {"probes": PROBES, "flood_requests_in_flight": FLOOD,
              "runs": [measure(share, Path(f"build/bench-fair-{share}")) for share in (128, 0)]}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
