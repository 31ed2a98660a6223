"""`rlvr train`: the online GRPO trainer (`rl_loop/entrypoint.py`) against a server."""

from __future__ import annotations

import argparse

from clients.cli.errors import CliError
from rl_loop import trainer_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="run the online GRPO trainer against a server")
    trainer_config.add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The online GRPO trainer, standalone (talks to the server at --server)."""
    from rl_loop import entrypoint
    from rlvr.settings import SettingsError

    try:
        entrypoint.run(trainer_config.from_args(args))
    except (SettingsError, entrypoint.UsageError) as err:
        raise CliError(str(err)) from None
    return 0
