"""The trainer's entry point: `python -m rl_loop [flags]`, which `rlvr train` runs too, and
which `rlvr serve` starts as its supervised child (`runtime/trainer_process.py`).

Settings are `TrainerConfig` (`rl_loop/trainer_config.py`): defaults < `--config FILE` <
`RLVR_TRAINER_*` variables < flags. The token comes from `--token` (or the file, or
`$RLVR_TRAINER_TOKEN`, what the server hands its child), else `$RLVR_ADMIN_TOKEN`,
`$RLVR_TOKEN`. Without `--base-model` the trainer asks the server which model it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
from pathlib import Path

from rl_loop import trainer_config
from rlvr.settings import LOG_FORMAT, SettingsError
from rlvr.store.training import TRAINER_TOKEN_ENV



class UsageError(Exception):
    """A setting the trainer cannot start with; the message names it."""


def resolve(cfg: trainer_config.TrainerConfig) -> trainer_config.TrainerConfig:
    """The settings the trainer runs with: its token and base model found, paths checked."""
    from clients.client import Client, RlvrError, env_token

    token = env_token(cfg.token, TRAINER_TOKEN_ENV, "RLVR_ADMIN_TOKEN", "RLVR_TOKEN")
    if cfg.root_cert is not None and not cfg.root_cert.is_file():
        raise UsageError(f"--tls-ca: no such file {cfg.root_cert}")
    if cfg.device not in ("auto", "cpu") and not cfg.device.startswith("cuda"):
        raise UsageError(f"--device must be auto, cpu or cuda[:N], got {cfg.device!r}")
    base = cfg.base_model
    if base is None:  # the served model, as the server reports it
        root_cert = cfg.root_cert.read_bytes() if cfg.root_cert else None
        try:
            with Client(cfg.server, token=token, tls=bool(root_cert), root_cert=root_cert) as c:
                base = Path(c.model_info().model_path)
        except RlvrError as err:
            raise UsageError(f"--base-model not given and {cfg.server} did not say which "
                             f"model it serves: {err}") from None
    if not (base / "config.json").is_file():
        raise UsageError(f"--base-model: {base} is not a model folder on this machine (no "
                         "config.json); give the served model's folder")
    return dataclasses.replace(cfg, token=token, base_model=base)


def run(cfg: trainer_config.TrainerConfig) -> None:
    """Train until stopped (or `--steps`), at the configured niceness below serving."""
    from rl_loop.trainer import Trainer

    cfg = resolve(cfg)
    os.nice(cfg.nice)  # the trainer's CPU time yields to serving's on a shared machine
    asyncio.run(Trainer(cfg).run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rl_loop",
                                     description="the online GRPO trainer against a server")
    trainer_config.add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format=LOG_FORMAT)
    try:
        run(trainer_config.from_args(args))
    except (SettingsError, UsageError) as err:
        print(f"rlvr train: error: {err}", file=sys.stderr)
        return 2
    return 0
