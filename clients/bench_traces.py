"""The trace store: Postgres against the embedded SQLite on the same workload, same run.

Workload: `traces` traces the size of a real one (a 60-token prompt, 200 thinking and 20
answer tokens, a numeric spec) appended through `TraceStore` as a server does, by `writers`
stores at once (replicas; SQLite has one writer by design, so its row is one writer), while a
trainer reads them through `TraceReader.read(cursor, 256)` every 10 ms.
- write throughput: traces committed per second (append to the last flush);
- claim latency: the duration of each `read` call that returned traces (for Postgres it
  includes giving committed rows their positions), p50 and p99;
- delivered: every trace read exactly once (a check, not a speed).
Rounds alternate the order of the stores; medians are reported with ratios to SQLite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from clients.launch import PostgresServer
from rlvr.store.traces import Trace, TraceReader, TraceStore


def trace(i: int) -> Trace:
    return Trace(request_id=f"r{i}", choice_index=0, source="bench", trainable=True,
                 prompt_text="What is 1234+5678? " * 3, prompt_ids=list(range(60)),
                 thinking_ids=list(range(200)), answer_ids=list(range(20)),
                 thinking_end="natural", thinking_options={"budget": 256},
                 sampling_options={"temperature": 0.8}, weight_version="v3",
                 spec={"kind": "numeric", "reference": "6912"}, reward=1.0, verdict="correct")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def measure(location: Path | str, traces: int, writers: int) -> dict:
    """One run: `writers` stores append `traces` in all while a reader claims them."""
    stores = [TraceStore(location) for _ in range(writers)]
    reader, seen, latencies, done = TraceReader(location), set(), [], threading.Event()

    def claim() -> None:
        cursor = 0
        while not (done.is_set() and len(seen) >= traces):
            start = time.perf_counter()
            batch = reader.read(cursor, 256)
            if batch:
                latencies.append(time.perf_counter() - start)
                seen.update(t.request_id for t in batch)
                cursor = batch[-1].id
            time.sleep(0.01)
    claimer = threading.Thread(target=claim)
    claimer.start()
    start = time.perf_counter()
    for i in range(traces):
        stores[i % writers].append(trace(i))
    for store in stores:
        store.flush(timeout=600)
    seconds = time.perf_counter() - start
    done.set()
    claimer.join(600)
    for store in stores:
        store.close()
    reader.close()
    return {"writes_per_s": round(traces / seconds, 1),
            "claim_p50_ms": round(1000 * percentile(latencies, 0.5), 2),
            "claim_p99_ms": round(1000 * percentile(latencies, 0.99), 2),
            "delivered": len(seen), "traces": traces}


def run(traces: int = 20_000, rounds: int = 3, writers: int = 2) -> dict:
    server = PostgresServer().start()
    runs: dict[str, list[dict]] = {"sqlite": [], "postgres": [], f"postgres x{writers}": []}
    try:
        with tempfile.TemporaryDirectory() as work:
            for r in range(rounds):
                order = list(runs) if r % 2 == 0 else list(runs)[::-1]
                for name in order:
                    location = (Path(work) / f"{name}-{r}.sqlite" if name == "sqlite"
                                else server.database())
                    runs[name].append(measure(location, traces,
                                              writers if "x" in name else 1))
    finally:
        server.remove()
    base = {k: statistics.median(run[k] for run in runs["sqlite"])
            for k in ("writes_per_s", "claim_p50_ms", "claim_p99_ms")}
    stores = {}
    for name, results in runs.items():
        median = {k: statistics.median(run[k] for run in results) for k in base}
        stores[name] = {**median, "ratio_to_sqlite": {k: round(median[k] / base[k], 2)
                                                       for k in base if base[k]},
                        "all_delivered": all(run["delivered"] == traces for run in results)}
    return {"traces": traces, "rounds": rounds, "writers": writers, "stores": stores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    report = run(args.traces, args.rounds, args.writers)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
