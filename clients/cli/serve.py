"""`rlvr serve`: the server (`runtime/entrypoint.py`) with its settings as flags on top
of the config file and `RLVR_*` variables."""

from __future__ import annotations

import argparse
from pathlib import Path

from clients import arguments
from clients.cli.errors import CliError


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve the model over gRPC until SIGTERM/SIGINT (then drain and exit 0)."""
    from runtime.config import ConfigError, load_config
    from runtime.entrypoint import serve
    from runtime.server import StartupError

    overrides = {"model": args.model, "host": args.host, "port": args.port,
                 "metrics_port": args.metrics_port, "state_dir": args.state_dir,
                 "train": args.train, "train_args": args.train_args, "log_level": args.log_level}
    try:
        serve(load_config(args.config, overrides))
    except (ConfigError, StartupError) as err:
        raise CliError(str(err)) from None
    return 0
