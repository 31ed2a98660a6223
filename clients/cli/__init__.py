"""The `rlvr` command line: one entry point, one module per subcommand.

Each module has `add_parser(sub)` (its flags; nothing heavy imported) and `run(args) -> int`
(set as the parser's `func`). A `CliError` is printed as one line with exit status 2. The
server and the trainer have their own entry points (`runtime/entrypoint.py`,
`rl_loop/entrypoint.py`); `rlvr serve` and `rlvr train` run them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from clients.cli import (admin, ask, bench, build_model, cluster, demo, evaluate, serve, traces,
                         traffic, train, train_base)
from clients.cli.errors import CliError
from rlvr.settings import LOG_FORMAT
from runtime.config import LOG_LEVELS

SUBCOMMANDS = (serve, ask, train, traffic, demo, admin, traces, bench, evaluate, train_base,
               build_model, cluster)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlvr", description=__doc__.split("\n")[0])
    parser.add_argument("--log-level", default=None, choices=LOG_LEVELS,
                        help="default INFO (`rlvr serve`: its config's log_level, which "
                             "$RLVR_LOG_LEVEL sets too)")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # vLLM logs to stdout by default, which would corrupt `--json` output.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    level = args.log_level or "INFO"  # `rlvr serve` then applies its config's log_level
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING" if level == "INFO" else level)
    logging.basicConfig(level=level, format=LOG_FORMAT)
    try:
        return args.func(args)
    except CliError as err:
        print(f"rlvr: error: {err}", file=sys.stderr)
        return 2


__all__ = ["CliError", "build_parser", "main"]
