"""The `rlvr` command line: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path

from clients import arguments
from clients.bench_options import VARIANTS
from rl_loop import trainer_config
from rl_loop.traffic import BUDGETS
from runtime.config import LORA_RANKS, MODEL_DIR


class CliError(Exception):
    """A user mistake on the command line: printed as one line, exit status 2."""


def cmd_eval(args: argparse.Namespace) -> int:
    """Greedy held-out evaluation through vLLM at one or more thinking budgets."""
    from rl_loop import evaluate, model_card, tasks

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


def cmd_train_base(args: argparse.Namespace) -> int:
    """Train the embedded model from scratch (supervised)."""
    from rl_loop import pretrain

    steps = args.steps or (pretrain.CONVERGED_STEPS if args.converge else pretrain.SHIPPED_STEPS)
    cfg = pretrain.PretrainConfig(out_dir=args.out, steps=steps, seed=args.seed,
                                  snapshot_every=args.snapshot_every, threads=args.threads)
    command = "rlvr " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    out = pretrain.train(cfg, command=command)
    print(f"saved {out}; write its card with: rlvr eval --model {out} "
          f"--budget 0,8,16,32,64,unlimited --card", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the model over gRPC until SIGTERM/SIGINT (then drain and exit 0)."""
    import asyncio

    from runtime.config import ConfigError, load_config
    from runtime.server import Server, StartupError

    overrides = {"model": args.model, "host": args.host, "port": args.port,
                 "metrics_port": args.metrics_port, "state_dir": args.state_dir,
                 "train": args.train, "train_args": args.train_args}
    try:
        config = load_config(args.config, overrides)
    except ConfigError as err:
        raise CliError(str(err)) from None
    try:
        asyncio.run(Server(config).run())
    except StartupError as err:
        raise CliError(str(err)) from None
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    """Send one prompt and print the thinking and the answer (or one JSON object)."""
    from clients.client import Client, RlvrError, collect

    options = {"budget": args.budget, "min_thinking": args.min_thinking, "effort": args.effort,
               "max_answer_tokens": args.max_answer_tokens, "temperature": args.temperature,
               "seed": args.seed, "request_id": args.request_id or "", "verify": args.verify,
               "n": args.n, "best_of_n": args.best_of_n}
    with Client(args.server, token=args.token or os.environ.get("RLVR_TOKEN")) as client:
        try:
            events = client.stream(args.prompt, timeout=args.timeout, **options)
            if args.stream and not args.json:
                events = _echo(events)
            results = collect(events)
        except RlvrError as err:
            raise CliError(f"{args.server}: {err}") from None
        except ValueError as err:
            raise CliError(str(err)) from None
    result = results[0]
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    elif not args.stream:
        print(f"<think>{result.thinking}</think>")
        print(result.answer)
    if result.verification and not args.json:
        v = result.verification
        print(f"[verified {v['kind']}: {v['verdict']} (reward {v['reward']:g}, extracted "
              f"{v['extracted_answer']!r}); {result.verified_correct} of {len(results)} "
              "choices correct]", file=sys.stderr)
    print(f"[{result.thinking_end} thinking, {result.usage.thinking_tokens} thinking tokens, "
          f"{result.usage.answer_tokens} answer tokens, finish {result.finish_reason}, "
          f"weights {result.weight_version}]", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """The online GRPO trainer, standalone (talks to the server at --server)."""
    import asyncio
    import dataclasses

    from clients.client import Client, RlvrError
    from rl_loop.trainer import Trainer
    from runtime.trainer_process import TOKEN_ENV

    cfg = trainer_config.from_args(args)
    token = cfg.token or os.environ.get(TOKEN_ENV) or os.environ.get("RLVR_ADMIN_TOKEN") \
        or os.environ.get("RLVR_TOKEN")
    if cfg.root_cert is not None and not cfg.root_cert.is_file():
        raise CliError(f"--tls-ca: no such file {cfg.root_cert}")
    if cfg.device not in ("auto", "cpu") and not cfg.device.startswith("cuda"):
        raise CliError(f"--device must be auto, cpu or cuda[:N], got {cfg.device!r}")
    base = cfg.base_model
    if base is None:  # the served model, as the server reports it
        root_cert = cfg.root_cert.read_bytes() if cfg.root_cert else None
        try:
            with Client(cfg.server, token=token, tls=bool(root_cert), root_cert=root_cert) as c:
                base = Path(c.model_info().model_path)
        except RlvrError as err:
            raise CliError(f"--base-model not given and {cfg.server} did not say which model "
                           f"it serves: {err}") from None
    if not (base / "config.json").is_file():
        raise CliError(f"--base-model: {base} is not a model folder on this machine (no "
                       "config.json); give the served model's folder")
    os.nice(cfg.nice)  # the trainer's CPU time yields to serving's on a shared machine
    asyncio.run(Trainer(dataclasses.replace(cfg, token=token, base_model=base)).run())
    return 0


def cmd_traffic(args: argparse.Namespace) -> int:
    """Synthetic verified traffic from the embedded task families."""
    import asyncio

    from rl_loop.traffic import run_traffic

    token = args.token or os.environ.get("RLVR_TOKEN")
    report = asyncio.run(run_traffic(args.server, args.rate, args.duration, token, args.seed))
    print(json.dumps(report, indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Server + trainer + synthetic traffic, live; writes demo.json and learning_curve.png."""
    from clients.demo import DemoConfig, run_demo

    cfg = DemoConfig(out_dir=args.out, duration_s=args.duration, paused_s=args.paused,
                     rate=args.rate, train_args=args.train_args, final_eval=args.final_eval,
                     seed=args.seed, budgets=tuple(args.budgets), lora_rank=args.lora_rank)
    report = run_demo(cfg)
    from clients.bench_report import demo as render

    print("\n".join(render(report)))
    print(f"wrote demo.json and its plots to {args.out}")
    return 0


def cmd_admin(args: argparse.Namespace) -> int:
    """status / promote / rollback through the Admin service (admin token required)."""
    from clients.client import Client, RlvrError

    token = args.token or os.environ.get("RLVR_ADMIN_TOKEN") or os.environ.get("RLVR_TOKEN")
    with Client(args.server, token=token) as client:
        try:
            if args.command == "promote":
                swap = client.promote(args.version)
            elif args.command == "rollback":
                swap = client.rollback()
            else:
                listing, training = client.list_versions(), client.training_status()
        except RlvrError as err:
            raise CliError(f"{args.server}: {err}") from None
    if args.command in ("promote", "rollback"):
        report = {"previous": swap.previous, "current": swap.current,
                  "swap_ms": round(1000 * swap.swap_seconds, 1)}
    else:
        report = {"current": listing.current, "history": list(listing.history),
                  "versions": [{"version": v.version, "parent": v.parent, "step": v.step,
                                "status": v.status, "reason": v.reason,
                                "metrics": json.loads(v.metrics_json or "{}")}
                               for v in listing.versions],
                  "trainer": {"state": training.state, "paused": training.paused,
                              **json.loads(training.status_json or "{}")}}
    print(json.dumps(report, indent=2) if args.json or args.command == "status"
          else f"{report['previous']} -> {report['current']} ({report['swap_ms']} ms)")
    return 0


def cmd_traces(args: argparse.Namespace) -> int:
    """Counts of the trace log (and a JSONL export)."""
    import sqlite3

    from runtime.traces import DamagedStore, TraceReader

    path = args.state_dir / "traces.sqlite"
    if not path.is_file():
        raise CliError(f"no trace log at {path} (is --state-dir the server's state directory?)")
    try:
        return _print_traces(args, TraceReader(path))
    except sqlite3.DatabaseError as err:
        raise CliError(str(DamagedStore(path, err))) from None
    except DamagedStore as err:
        raise CliError(str(err)) from None


def _print_traces(args: argparse.Namespace, reader) -> int:
    from dataclasses import asdict

    try:
        stats = reader.stats()
        if args.export:
            with open(args.export, "w") as f:
                for trace in reader.iter_all():
                    if trace.trainable or not args.trainable_only:
                        f.write(json.dumps(asdict(trace)) + "\n")
            stats["exported_to"] = str(args.export)
    finally:
        reader.close()
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(f"{stats['total']} traces, {stats['trainable']} trainable, mean reward "
              f"{stats['mean_reward'] if stats['mean_reward'] is not None else '-'}")
        print(f"  by verdict: {stats['by_verdict']}")
        print(f"  by weight version: {stats['by_weight_version']}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
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
                                       args.work or Path("build/bench-options"))
        except ValueError as err:
            raise CliError(str(err)) from None
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


def _echo(events):
    """Print deltas as they arrive while passing the events through."""
    from rlvr.v1 import reasoning_pb2 as pb

    in_thinking = False
    for event in events:
        if event.WhichOneof("event") == "delta":
            thinking = event.delta.channel == pb.CHANNEL_THINKING
            if thinking and not in_thinking:
                print("<think>", end="")
            if not thinking and in_thinking:
                print("</think>")
            in_thinking = thinking
            print(event.delta.text, end="", flush=True)
        yield event
    print()


def build_parser() -> argparse.ArgumentParser:
    from rl_loop.tasks import HELDOUT_PATH

    parser = argparse.ArgumentParser(prog="rlvr", description=__doc__)
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="serve the model over gRPC (the embedded model by default)")
    p.add_argument("--model", type=arguments.model_dir, default=None)
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=arguments.non_negative_int, default=None)
    p.add_argument("--metrics-port", type=arguments.non_negative_int, default=None)
    p.add_argument("--state-dir", type=Path, default=None)
    p.add_argument("--config", type=Path, default=None, help="TOML file of ServerConfig fields")
    p.add_argument("--train", choices=["auto", "on", "off"], default=None,
                   help="run the online trainer (auto: for the embedded model)")
    p.add_argument("--no-train", dest="train", action="store_const", const="off",
                   help="serve only (same as --train off)")
    p.add_argument("--train-args", default=None, help="extra `rlvr train` flags, one string")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("ask", help="send one prompt to a running server")
    p.add_argument("prompt")
    p.add_argument("--server", default="localhost:50051")
    p.add_argument("--budget", type=arguments.non_negative_int, default=None,
                   help="max thinking tokens (0 = no thinking)")
    p.add_argument("--min-thinking", type=arguments.non_negative_int, default=None)
    p.add_argument("--effort", choices=["low", "medium", "high"], default=None)
    p.add_argument("--max-answer-tokens", type=arguments.non_negative_int, default=None)
    p.add_argument("--temperature", type=float, default=None,
                   help="0 = greedy (the server checks the range)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--request-id", default=None)
    p.add_argument("--token", default=None, help="bearer token (default: $RLVR_TOKEN)")
    p.add_argument("--timeout", type=float, default=None, help="deadline in seconds")
    p.add_argument("--verify", default=None, metavar="KIND:REFERENCE",
                   help="verify the answer at serve time, e.g. numeric:46 or choice:B")
    p.add_argument("--n", type=arguments.non_negative_int, default=None, help="number of choices")
    p.add_argument("--best-of-n", action="store_true",
                   help="with --verify and --n: return only the best verified choice")
    p.add_argument("--stream", action="store_true", help="print tokens as they arrive")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("train", help="run the online GRPO trainer against a server")
    trainer_config.add_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("traffic", help="send synthetic verified traffic to a server")
    p.add_argument("--server", default="localhost:50051")
    p.add_argument("--rate", type=arguments.positive_float, default=4.0, help="requests per second")
    p.add_argument("--duration", type=arguments.positive_float, default=60.0, help="seconds")
    p.add_argument("--token", default=None, help="bearer token (default: $RLVR_TOKEN)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_traffic)

    p = sub.add_parser("demo", help="server + trainer + synthetic traffic, live learning curve")
    p.add_argument("--duration", type=arguments.positive_float, default=900.0,
                   help="seconds of traffic while training")
    p.add_argument("--paused", type=arguments.non_negative_float, default=60.0,
                   help="then seconds of traffic with training paused (latency baseline)")
    p.add_argument("--rate", type=arguments.positive_float, default=2.0, help="requests per second")
    p.add_argument("--out", type=Path, default=Path("demo-run"), help="output folder")
    p.add_argument("--train-args", default="", help="extra `rlvr train` flags, one string")
    p.add_argument("--no-final-eval", dest="final_eval", action="store_false",
                   help="skip scoring the promoted versions on the full held-out set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budgets", type=arguments.budgets, default=list(BUDGETS),
                   help="the traffic's thinking budgets, comma separated ('unlimited' for none)")
    p.add_argument("--lora-rank", type=int, default=0, choices=LORA_RANKS,
                   help="train LoRA adapters of this rank and serve them (0: all weights)")
    p.set_defaults(func=cmd_demo)

    for name, text in (("status", "weight versions, gate results and trainer state"),
                       ("promote", "hot-swap a published version into serving"),
                       ("rollback", "go back to the previously promoted version")):
        p = sub.add_parser(name, help=text)
        if name == "promote":
            p.add_argument("version")
        p.add_argument("--server", default="localhost:50051")
        p.add_argument("--token", default=None,
                       help="admin token (default: $RLVR_ADMIN_TOKEN, then $RLVR_TOKEN)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_admin)

    p = sub.add_parser("traces", help="inspect (and export) the verified trace log")
    p.add_argument("--state-dir", type=Path, default=Path("state"))
    p.add_argument("--json", action="store_true")
    p.add_argument("--export", type=Path, default=None, help="write traces as JSONL")
    p.add_argument("--trainable-only", action="store_true", help="export trainable traces only")
    p.set_defaults(func=cmd_traces)

    p = sub.add_parser("bench", help="serving: gRPC runtime vs raw vLLM AsyncLLM; control: "
                                      "thinking-budget Control vs vLLM's thinking_token_budget")
    p.add_argument("suite", choices=["serving", "control", "swap", "verifiers", "trl", "options",
                                     "report"],
                   help="trl: learning efficiency vs TRL's GRPOTrainer, both sides, --seeds "
                        "runs each (needs the `bench` extra); options: the trainer's options "
                        "one at a time against its defaults, one demo run each; report: render "
                        "docs/benchmarks.md from docs/bench/*.json")
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
    p.add_argument("--swaps", type=arguments.positive_int, default=5, help="swap: versions promoted")
    p.add_argument("--model", type=arguments.model_dir, default=MODEL_DIR)
    p.add_argument("--requests", type=arguments.non_negative_int, default=200)
    p.add_argument("--concurrency", type=arguments.non_negative_int, default=64)
    p.add_argument("--rounds", type=arguments.non_negative_int, default=3)
    p.add_argument("--out", type=Path, default=None, help="also write the report as JSON")
    p.set_defaults(func=cmd_bench)

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
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train-base", help="train the embedded tiny model from scratch")
    p.add_argument("--out", type=Path, default=MODEL_DIR)
    p.add_argument("--steps", type=int, default=0, help="override the number of steps")
    p.add_argument("--converge", action="store_true",
                   help="train to convergence (the reference for how far RL could go)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snapshot-every", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=cmd_train_base)

    from clients import cmd_build_model
    cmd_build_model.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # vLLM logs to stdout by default, which would corrupt `--json` output.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING" if args.log_level == "INFO" else args.log_level)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except CliError as err:
        print(f"rlvr: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
