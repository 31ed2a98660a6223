"""What users get at a thinking budget: held-out accuracy through the served API.

Every held-out task (greedy, the server's own numeric verifier) at each budget, through
`rlvr serve` on the embedded model, in the same run with three wrap-up policies at a forced
close: `always` (the default wrap-up text set on the request, so it is injected wherever it
fits), `never` (`wrap_up=""`) and `shipped` (the server's default: `wrap_up_max_share`).

    python -m clients.bench_api_budgets --out docs/bench/api_budgets.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from clients.client import AsyncClient
from clients.launch import ServerProcess
from rl_loop.toy.tasks import load_heldout
from runtime.budget import DEFAULT_WRAP_UP

BUDGETS = (16, 32, 64)
POLICIES = {"always": DEFAULT_WRAP_UP, "never": "", "shipped": None}
CONCURRENCY = 16


async def accuracy(target: str, budget: int, wrap_up: str | None) -> dict:
    """Share of held-out tasks verified correct, and mean thinking tokens."""
    tasks, gate = load_heldout(), asyncio.Semaphore(CONCURRENCY)
    async with AsyncClient(target) as client:
        async def one(task) -> tuple[float, int]:
            async with gate:
                result = await client.ask(task.prompt, budget=budget, temperature=0.0,
                                          wrap_up=wrap_up, verify=f"numeric:{task.answer}")
            return result.verification["reward"], result.usage.thinking_tokens
        scored = await asyncio.gather(*(one(t) for t in tasks))
    return {"accuracy": round(sum(r for r, _ in scored) / len(scored), 4),
            "mean_thinking_tokens": round(sum(n for _, n in scored) / len(scored), 1),
            "tasks": len(scored)}


def run(workdir: Path, **config) -> dict:
    server = ServerProcess(workdir, **config).wait_ready()
    try:
        table = {}
        for budget in BUDGETS:
            table[str(budget)] = {name: asyncio.run(accuracy(server.target, budget, wrap_up))
                                  for name, wrap_up in POLICIES.items()}
            print(budget, table[str(budget)], flush=True)
        return table
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    report = {"model": "embedded tiny-reasoner", "decoding": "greedy",
              "measure": "held-out accuracy through the served API (numeric verifier)",
              "budgets": run(Path("build/bench-api-budgets"))}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
