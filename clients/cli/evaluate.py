"""`rlvr eval`: held-out accuracy of a model folder at thinking budgets (or pass@K)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clients import arguments
from rl_loop.toy.tasks import HELDOUT_PATH
from runtime.config import MODEL_DIR


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="held-out accuracy of a model folder at thinking budgets")
    p.add_argument("--model", type=arguments.model_dir, default=MODEL_DIR)
    p.add_argument("--budget", type=arguments.budgets, default=[None],
                   help="comma-separated thinking budgets, e.g. 0,16,unlimited (default unlimited)")
    p.add_argument("--heldout", type=Path, default=HELDOUT_PATH)
    p.add_argument("--limit", type=int, default=0, help="use only the first N held-out tasks")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--samples", type=arguments.positive_int, default=None,
                   help="instead: pass@K and mean accuracy of K samples per task (unlimited "
                        "thinking), i.e. what GRPO can sharpen")
    p.add_argument("--temperature", type=arguments.non_negative_float, default=0.8,
                   help="sampling temperature for --samples")
    p.add_argument("--card", action="store_true",
                   help="write README.md, eval.json and the plot into the model folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Greedy held-out evaluation through vLLM at one or more thinking budgets."""
    from rl_loop.toy import evaluate, model_card, tasks

    heldout = tasks.load_heldout(args.heldout)
    if args.limit:
        heldout = heldout[: args.limit]
    if args.samples:
        table = evaluate.pass_at_k(args.model, heldout, args.samples, args.temperature)
        print(json.dumps({"model": str(args.model), "temperature": args.temperature,
                          "samples": args.samples, "results": table}, indent=None if args.json
                         else 2))
        return 0
    results = evaluate.evaluate(args.model, heldout, args.budget)
    if args.card:
        n_params = json.loads((args.model / "training.json").read_text())["parameters"]
        path = model_card.write_card(args.model, results, n_params)
        print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print(json.dumps({"model": str(args.model), "results": results}, indent=2))
    else:
        print_eval_table(results)
    return 0


def print_eval_table(results: dict) -> None:
    for budget, table in results.items():
        print(f"thinking budget {budget}:")
        print(f"  {'family':<8}{'n':>5}{'accuracy':>10}{'thinking':>10}")
        for family, row in table.items():
            print(f"  {family:<8}{row['n']:>5}{row['accuracy']:>10.3f}"
                  f"{row['mean_thinking_tokens']:>10.1f}")
