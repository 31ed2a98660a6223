"""The server's entry point: `python -m runtime [--config FILE]`; `rlvr serve` runs the same
`serve` with its flags layered on top.

Settings are `ServerConfig` (`runtime/config.py`): defaults < the TOML file < `RLVR_*`
environment variables < flags. Serves until SIGTERM/SIGINT, then drains and returns.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from runtime.config import ConfigError, ServerConfig, load_config

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def serve(config: ServerConfig) -> None:
    """Run the server (and, by its config, its trainer) until a signal stops it; raises
    `runtime.server.StartupError` when it cannot start (the message says why)."""
    from runtime.server import Server

    logging.getLogger().setLevel(config.log_level)
    asyncio.run(Server(config).run())


def main(argv: list[str] | None = None) -> int:
    from runtime.server import StartupError

    parser = argparse.ArgumentParser(prog="python -m runtime", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=None, help="TOML file of ServerConfig "
                        "fields (RLVR_* environment variables override it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format=LOG_FORMAT)
    try:
        serve(load_config(args.config))
    except (ConfigError, StartupError) as err:
        print(f"rlvr serve: error: {err}", file=sys.stderr)
        return 2
    return 0
