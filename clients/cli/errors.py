"""What every subcommand shares: the usage error, and tokens from the environment."""

from __future__ import annotations

from clients.client import env_token


class CliError(Exception):
    """A user mistake on the command line: printed as one line, exit status 2."""


__all__ = ["CliError", "env_token"]
