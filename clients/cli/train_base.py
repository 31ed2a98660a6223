"""`rlvr train-base`: train the embedded tiny model from scratch (supervised)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from runtime.config import MODEL_DIR


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-base", help="train the embedded tiny model from scratch")
    p.add_argument("--out", type=Path, default=MODEL_DIR)
    p.add_argument("--steps", type=int, default=0, help="override the number of steps")
    p.add_argument("--converge", action="store_true",
                   help="train to convergence (the reference for how far RL could go)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snapshot-every", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train the embedded model from scratch (supervised)."""
    from rl_loop.toy import pretrain

    steps = args.steps or (pretrain.CONVERGED_STEPS if args.converge else pretrain.SHIPPED_STEPS)
    cfg = pretrain.PretrainConfig(out_dir=args.out, steps=steps, seed=args.seed,
                                  snapshot_every=args.snapshot_every, threads=args.threads)
    command = "rlvr " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    out = pretrain.train(cfg, command=command)
    print(f"saved {out}; write its card with: rlvr eval --model {out} "
          f"--budget 0,8,16,32,64,unlimited --card", file=sys.stderr)
    return 0
