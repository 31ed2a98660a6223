"""Fair sharing between callers, measured: one caller floods, another sends ordinary requests
one at a time; the other caller's p99 latency against its own unloaded p99, with the
per-caller share on and off, in the same run.

- engine: the flood is `n=16` requests; `max_choices_per_caller` 128 (default) vs 0 (off),
  and 128 with `max_running_choices` 32 (vLLM runs 32 sequences at once; a request's queue
  priority is its caller's load, so the light caller's requests go first).
- verifier: the flood is verified requests whose code tests never end (each holds a verifier
  worker for its whole timeout) and math references too slow to compare (rejected at
  admission); the other caller's requests are verified too. `verifier_workers_per_caller`
  1 of 2 (default) vs 2 of 2.

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

PROBES = 40
ENDLESS = {"kind": "code", "tests": ["assert any(iter(int, 1))"] * 4, "timeout_s": 8}
FLOODS = {  # scenario -> (requests in flight, their options)
    "engine": (100, lambda i: {"prompt": "What is 4821+377?", "n": 16, "budget": 64, "seed": i,
                               "temperature": 1.0}),
    "verifier": (8, lambda i: {"prompt": "What is 4821+377?", "budget": 16} | (
        {"spec": ENDLESS} if i % 2 else {"verify": "math:2^{2^{100}}"})),
}
SETTINGS = {  # scenario -> server settings compared in the same run (the first: the defaults)
    "engine": ({"max_choices_per_caller": 128}, {"max_choices_per_caller": 0},
               {"max_choices_per_caller": 128, "max_running_choices": 32}),
    "verifier": ({"verifier_workers_per_caller": 1}, {"verifier_workers_per_caller": 2})}


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def probe(target: str, scenario: str) -> list[float]:
    """The other caller: sequential short requests (verified in the verifier scenario)."""
    async with AsyncClient(target, token="user") as client:
        latencies = []
        for i in range(PROBES):
            verify = {"verify": f"numeric:{i + 34}"} if scenario == "verifier" else {}
            start = time.perf_counter()
            await client.ask(f"What is {i}+34?", budget=16, **verify)
            latencies.append(time.perf_counter() - start)
        return latencies


async def flood(target: str, scenario: str, stop: asyncio.Event, counts: dict) -> None:
    in_flight, options = FLOODS[scenario]
    async with AsyncClient(target, token="flood") as client:
        async def one(i: int) -> None:
            while not stop.is_set():
                kwargs = options(i)
                try:
                    await client.ask_n(kwargs.pop("prompt"), **kwargs)
                    counts["ok"] += 1
                except RlvrError as err:
                    counts[err.code.name] = counts.get(err.code.name, 0) + 1
                    await asyncio.sleep(0.2)
        await asyncio.gather(*(one(i) for i in range(in_flight)))


async def loaded(target: str, scenario: str) -> tuple[list[float], dict]:
    stop, counts = asyncio.Event(), {"ok": 0}
    flooding = asyncio.create_task(flood(target, scenario, stop, counts))
    await asyncio.sleep(5)  # let the flood fill the engine / the verifiers
    latencies = await probe(target, scenario)
    stop.set()
    await flooding
    return latencies, counts


def measure(scenario: str, settings: dict, workdir: Path) -> dict:
    server = ServerProcess(workdir, api_tokens=["flood", "user"], max_pending=512,
                           **settings).wait_ready()
    try:
        unloaded = asyncio.run(probe(server.target, scenario))
        under_flood, counts = asyncio.run(loaded(server.target, scenario))
    finally:
        server.stop()
    return {"scenario": scenario, **settings, "unloaded_p99_s": round(p99(unloaded), 4),
            "flooded_p99_s": round(p99(under_flood), 4),
            "ratio": round(p99(under_flood) / p99(unloaded), 2), "flood_outcomes": counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--scenario", choices=[*FLOODS, "all"], default="all")
    args = parser.parse_args()
    scenarios = list(FLOODS) if args.scenario == "all" else [args.scenario]
    runs = [measure(s, settings, Path(f"build/bench-fair-{s}-{i}"))
            for s in scenarios for i, settings in enumerate(SETTINGS[s])]
    report = {"probes": PROBES, "target": "flooded p99 within 2x of unloaded p99 (ratio <= 2)",
              "runs": runs}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
