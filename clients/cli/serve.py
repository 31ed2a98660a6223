"""`rlvr serve`: the server (`runtime/entrypoint.py`), a flag per setting on top of the config
file and `RLVR_*` variables (`--log-level` is `rlvr`'s own flag, before the subcommand)."""

from __future__ import annotations

import argparse
from pathlib import Path

from clients.cli.errors import CliError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from runtime.entrypoint import add_arguments

    p = sub.add_parser("serve", help="serve the model over gRPC (the embedded model by default)")
    add_arguments(p, exclude=("log_level",))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve the model over gRPC until SIGTERM/SIGINT (then drain and exit 0)."""
    from runtime.config import ConfigError
    from runtime.entrypoint import config_from_args, serve
    from runtime.server import StartupError

    try:
        config = config_from_args(args)
        if config.runs_trainer and config.train_config is not None:
            check_trainer_settings(config.train_config)
        serve(config)
    except (ConfigError, StartupError) as err:
        raise CliError(str(err)) from None
    return 0


def check_trainer_settings(path: Path) -> None:
    """The trainer child's file, checked before the server starts (the server itself cannot:
    it imports nothing of the trainer; a child that finds it bad exits and is not restarted)."""
    from rl_loop.trainer_config import read_file
    from rlvr.settings import SettingsError

    try:
        read_file(path)
    except SettingsError as err:
        raise CliError(f"train_config: {err}") from None
