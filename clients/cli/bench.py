"""`rlvr bench SUITE`: benchmarks that print ratios against a baseline from the same run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from clients import arguments
from clients.bench_options import VARIANTS
from clients.cli.errors import CliError
from runtime.config import MODEL_DIR


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="serving: gRPC runtime vs raw vLLM AsyncLLM; control: "
                                      "thinking-budget Control vs vLLM's thinking_token_budget")
    p.add_argument("suite", choices=["serving", "control", "swap", "verifiers", "trl", "options",
                                     "traces", "cluster", "report"],
                   help="trl: learning efficiency vs TRL's GRPOTrainer, both sides, --seeds "
                        "runs each (needs the `bench` extra); options: the trainer's options "
                        "one at a time against its defaults, one demo run each; report: render "
                        "docs/benchmarks.md from docs/bench/*.json; traces: the Postgres trace "
                        "store against SQLite; cluster: a Ray-placed replica against a "
                        "standalone server, and promotions across two (needs `ray start "
                        "--head`)")
    p.add_argument("--duration", type=arguments.positive_float, default=600.0,
                   help="trl, options: seconds of training a run (TRL) and of traffic (online)")
    p.add_argument("--seeds", type=arguments.positive_int, default=3, help="trl: runs a side")
    p.add_argument("--grid", type=arguments.positive_float, default=60.0,
                   help="trl, options: seconds between the weights scored on the held-out set")
    p.add_argument("--work", type=Path, default=None,
                   help="trl, options: runs' folders and results (a finished run is reused; "
                        "default build/bench-<suite>)")
    p.add_argument("--variants", type=arguments.names, default=list(VARIANTS),
                   help=f"options: comma separated, of {', '.join(VARIANTS)}, trl (TRL on the "
                        "same machine, for reference; needs the `bench` extra) (default: all "
                        "but trl)")
    p.add_argument("--seed", type=int, default=0,
                   help="options: the traffic's and the trainer's seed of every run")
    p.add_argument("--swaps", type=arguments.positive_int, default=5, help="swap: versions promoted")
    p.add_argument("--model", type=arguments.model_dir, default=MODEL_DIR)
    p.add_argument("--requests", type=arguments.non_negative_int, default=200)
    p.add_argument("--concurrency", type=arguments.non_negative_int, default=64)
    p.add_argument("--rounds", type=arguments.non_negative_int, default=3)
    p.add_argument("--traces", type=arguments.positive_int, default=20_000,
                   help="traces: traces written per store and round")
    p.add_argument("--out", type=Path, default=None, help="also write the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Benchmarks that print ratios against a baseline measured in the same run."""
    from clients import bench_report

    if args.suite == "report":
        print(f"wrote {bench_report.write_report()}")
        return 0
    if args.suite == "serving":
        from clients.bench import run_serving_benchmark
        report = run_serving_benchmark(args.model, args.requests, args.concurrency, args.rounds)
    elif args.suite == "control":
        from clients.bench_budget import run_control_benchmark
        report = run_control_benchmark(args.model, args.requests, args.concurrency)
    elif args.suite == "trl":
        import importlib.util

        from clients import bench_trl
        if importlib.util.find_spec("trl") is None:
            raise CliError("the TRL comparison needs the `bench` extra: "
                           ".venv/bin/pip install -e '.[cpu,bench]' (or `make bench`)")
        report = bench_trl.run(args.seeds, args.duration, args.grid,
                               args.work or Path("build/bench-trl"))
        bench_trl.plot(report, (args.out or Path("trl.json")).with_suffix(".png"))
    elif args.suite == "options":
        from clients import bench_options
        try:
            report = bench_options.run(args.variants, args.duration, args.grid,
                                       args.work or Path("build/bench-options"), args.seed)
        except ValueError as err:
            raise CliError(str(err)) from None
    elif args.suite == "traces":
        from clients.bench_traces import run as run_trace_benchmark
        report = run_trace_benchmark(args.traces, max(1, args.rounds))
    elif args.suite == "cluster":
        from clients.bench_cluster import run as run_cluster_benchmark
        report = run_cluster_benchmark(min(args.duration, 120.0), args.concurrency or 16,
                                       args.swaps)
    elif args.suite == "swap":
        from clients.bench_swap import run_swap_benchmark
        report = run_swap_benchmark(args.swaps, args.concurrency)
    else:
        from clients.bench_verifiers import run_verifier_benchmark
        report = run_verifier_benchmark()
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n".join(bench_report.RENDERERS[args.suite](report)))
    return 0
