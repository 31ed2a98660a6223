"""The server's entry point: `python -m runtime [--config FILE] [flags]`; `rlvr serve` is the
same command.

Settings are `ServerConfig` (`runtime/config.py`): defaults < the TOML file < `RLVR_*`
environment variables < flags (one per field, generated). Serves until SIGTERM/SIGINT, then
drains and returns.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from rlvr import settings
from runtime.config import ConfigError, ServerConfig, load_config


def serve(config: ServerConfig) -> None:
    """Run the server (and, by its config, its trainer) until a signal stops it; raises
    `runtime.server.StartupError` when it cannot start (the message says why)."""
    from runtime.server import Server

    logging.getLogger().setLevel(config.log_level)
    asyncio.run(Server(config).run())


def add_arguments(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    """`--config FILE` and one flag per `ServerConfig` field (but `exclude`)."""
    parser.add_argument("--config", type=Path, default=None, help="TOML file of the fields "
                        "below (RLVR_<FIELD> environment variables override it, flags both)")
    settings.add_arguments(parser, ServerConfig, exclude)
    parser.add_argument("--no-train", dest="train", action="store_const", const="off",
                        help="serve only (same as --train off)")


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The settings of a parsed command line; raises ConfigError naming a bad one."""
    return load_config(args.config, settings.flags_of(args, ServerConfig))


def main(argv: list[str] | None = None) -> int:
    from runtime.server import StartupError

    parser = argparse.ArgumentParser(prog="python -m runtime", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format=settings.LOG_FORMAT)
    try:
        serve(config_from_args(args))
    except (ConfigError, StartupError) as err:
        print(f"rlvr serve: error: {err}", file=sys.stderr)
        return 2
    return 0
