"""The online loop on the real second model (SmolLM2-135M with thinking), measured.

    python -m clients.bench_real --duration 600 --out docs/bench/real_model.json

Starts `rlvr serve --train on` on the thinking variant (`rlvr build-test-model`), sends trusted
verified traffic of one-digit additions (`math` verifier) at thinking budgets 0 and 32 for
`--duration` seconds, then reports the served versions' accuracy on the same prompts (greedy,
through the API), the trainer's per-step mean reward and every gate decision.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from clients.client import Client
from clients.launch import ServerProcess
from rlvr.store.checkpoints import CheckpointStore

PAIRS = [(a, b) for a in range(1, 10) for b in range(1, 10)]
BUDGETS = (0, 32)
TRAINER = {"publish_every": 4, "group_size": 8, "prompts_per_step": 4, "max_sampling_rounds": 2,
           "validation_share": 0.25, "min_validation": 10, "gate_max_budget": 32,
           "micro_batch": 8, "temperature": 0.8, "lr": 2e-5}


def accuracy(target: str, token: str) -> dict:
    """Greedy accuracy per budget on all 81 prompts, and the version that answered."""
    def ask(job):
        (a, b), budget = job
        with Client(target, token=token) as c:
            r = c.ask(f"What is {a}+{b}?", budget=budget, max_answer_tokens=16,
                      verify=f"math:{a + b}")
        return budget, r.verification["reward"], r.weight_version
    with ThreadPoolExecutor(8) as pool:
        rows = list(pool.map(ask, [(p, b) for b in BUDGETS for p in PAIRS]))
    return {"by_budget": {str(b): sum(r for bb, r, _ in rows if bb == b) / len(PAIRS)
                          for b in BUDGETS}, "versions": sorted({v for _, _, v in rows})}


def run(duration: float, out: Path | None) -> dict:
    from rl_loop import smollm2

    _, thinking = smollm2.build()
    work = Path("build/bench-real")
    server = ServerProcess(work, model=thinking, train="on", admin_tokens=["admin"],
                           train_tokens=["traffic"], trainer=TRAINER)
    try:
        server.wait_ready(600)
        start = time.monotonic()
        report = {"trainer": TRAINER, "base": accuracy(server.target, "traffic")}
        while time.monotonic() - start < duration:
            accuracy(server.target, "traffic")  # the traffic the trainer learns from
        report["final"] = accuracy(server.target, "traffic")
        report["versions"] = [{k: getattr(m, k) for k in ("version", "parent", "step", "status",
                                                           "reason")} | {"gate": m.metrics}
                              for m in CheckpointStore(server.state_dir).versions()]
    finally:
        server.stop()
    steps = re.findall(r"step (\d+): (\{.*\})", server.log_path.read_text())
    report["reward_curve"] = [(int(s), float(re.search(r"'mean_reward': ([0-9.]+)", d)[1]))
                              for s, d in steps if "'loss': None" not in d]
    report["duration_s"] = duration
    if out:
        out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    print(json.dumps(run(args.duration, args.out), indent=2))
