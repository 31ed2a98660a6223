"""`rlvr demo`: server, trainer and synthetic traffic, live (`clients/demo.py`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from clients import arguments
from clients.cli.errors import CliError
from rl_loop.toy.traffic import BUDGETS
from runtime.config import LORA_RANKS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="server + trainer + synthetic traffic, live learning curve")
    p.add_argument("--duration", type=arguments.positive_float, default=900.0,
                   help="seconds of traffic while training")
    p.add_argument("--paused", type=arguments.non_negative_float, default=60.0,
                   help="then seconds of traffic with training paused (latency baseline)")
    p.add_argument("--rate", type=arguments.positive_float, default=2.0, help="requests per second")
    p.add_argument("--out", type=Path, default=Path("demo-run"), help="output folder")
    p.add_argument("--train-config", type=Path, default=None,
                   help="TOML file of `rlvr train` settings for the trainer (e.g. lr = 2e-5)")
    p.add_argument("--no-final-eval", dest="final_eval", action="store_false",
                   help="skip scoring the promoted versions on the full held-out set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budgets", type=arguments.budgets, default=list(BUDGETS),
                   help="the traffic's thinking budgets, comma separated ('unlimited' for none)")
    p.add_argument("--lora-rank", type=int, default=0, choices=LORA_RANKS,
                   help="train LoRA adapters of this rank and serve them (0: all weights)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Server + trainer + synthetic traffic, live; writes demo.json and learning_curve.png."""
    from clients.demo import DemoConfig, run_demo

    from rl_loop.trainer_config import read_file
    from rlvr.settings import SettingsError

    try:
        trainer = read_file(args.train_config) if args.train_config else {}
    except SettingsError as err:
        raise CliError(str(err)) from None
    cfg = DemoConfig(out_dir=args.out, duration_s=args.duration, paused_s=args.paused,
                     rate=args.rate, trainer=trainer, final_eval=args.final_eval,
                     seed=args.seed, budgets=tuple(args.budgets), lora_rank=args.lora_rank)
    report = run_demo(cfg)
    from clients.bench_report import demo as render

    print("\n".join(render(report)))
    print(f"wrote demo.json and its plots to {args.out}")
    return 0
