"""The trainer's settings: one typed dataclass, the only place their defaults live.

Layered as the server's (`rlvr/settings.py`): defaults < a TOML file (`--config`, the field
names as keys) < `RLVR_TRAINER_<FIELD>` environment variables < flags (`--group-size` for
`group_size`, generated). The GRPO objective's fields (`rl_loop/grpo.py`) are keys, variables
and flags of their own. The server hands its trainer child its `train_config` file. The base
model is the served model: the server passes its `--model`, and standalone `rlvr train` asks
the server (`GetModelInfo.model_path`) when it is not given.
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rl_loop.grpo import GRPOConfig
from rlvr import settings
from rlvr.settings import setting

ENV_PREFIX = "RLVR_TRAINER_"  # RLVR_TRAINER_TOKEN is the token field's variable, too


@dataclass
class TrainerConfig:
    server: str = setting("localhost:50051", "the runtime's gRPC address")
    state_dir: Path = setting(Path("state"), "the server's state directory (traces, checkpoints)")
    trace_store: str = setting("", "the server's trace_store when it is Postgres "
                                   "(postgresql://...; empty: the state directory's SQLite)")
    checkpoint_store: str = setting("", "the server's checkpoint_store (a shared folder or "
                                        "s3://bucket/prefix; empty: the state directory's)")
    token: str | None = setting(None, "train+admin token (default: $RLVR_TRAINER_TOKEN, "
                                     "$RLVR_ADMIN_TOKEN, $RLVR_TOKEN)")
    base_model: Path | None = setting(None, "the served model's folder (default: ask the server)")
    root_cert: Path | None = setting(None, "PEM certificate to trust when the server uses TLS",
                                    flag="--tls-ca")
    group_size: int = setting(8, "completions sampled per prompt", minimum=2)
    prompts_per_step: int = setting(8, "groups with signal wanted per step", minimum=1)
    lr: float = setting(1e-4, "learning rate (AdamW)", minimum=0.0)
    temperature: float = setting(0.8, "sampling temperature of the groups", minimum=0.0)
    publish_every: int = setting(10, "steps between published candidates (each is gated)",
                                minimum=1)
    gate_tasks: int = setting(100, "built-in validation tasks of the model's plug-in (embedded "
                                  "model: held-out bucket, outside the reported set)", minimum=0)
    validation_share: float = setting(0.1, "share of trusted traffic prompts (stable hash) "
                                           "held out of training as the gate's validation set",
                                      minimum=0.0)
    max_validation: int = setting(200, "validation traces kept (the newest)", minimum=1)
    min_validation: int = setting(20, "fewer validation items than this: no promotion", minimum=1)
    gate_z: float = setting(1.645, "reject a candidate whose paired reward difference to the "
                                  "served version is below 0 by more than z standard errors",
                           minimum=0.0)
    gate_answer_tokens: int = setting(32, "answer tokens when a validation item has no own limit",
                                     minimum=1)
    gate_max_budget: int = setting(512, "thinking budget cap for validation items with none",
                                  minimum=1)
    max_steps: int = setting(0, "stop after N steps (0 = run until stopped)", minimum=0,
                            flag="--steps")
    poll_s: float = setting(1.0, "seconds between looks at the trace log when idle", minimum=0.0)
    seed: int = setting(0, "random seed")
    device: str = setting("auto", "auto (cuda:1 when there are two GPUs, cuda:0 with one, else "
                                 "cpu), cpu, cuda[:N]")
    threads: int = setting(0, "torch CPU threads (0 = torch's default)", minimum=0)
    nice: int = setting(10, "added to the trainer process's niceness (CPU priority below "
                            "serving's)", minimum=0)
    pool_size: int = setting(512, "recent trainable prompts to sample groups from", minimum=1)
    signal_sampling: bool = setting(True, "draw prompts by their estimated reward variance, where "
                                         "groups carry signal (--no-signal-sampling: uniform)")
    max_sampling_rounds: int = setting(2, "dynamic sampling: rounds of groups per step until "
                                         "enough carry signal", minimum=1)
    pipeline: bool = setting(False, "sample the next batch and gate candidates while a step "
                                    "trains (off: sample, train, gate one after another; on 2 "
                                    "shared CPU cores it gave 1.6x the steps but no faster "
                                    "held-out gain and a slower p50 for users: "
                                    "docs/bench/pipeline.json)")
    replay_buffer: int = setting(512, "verified-correct samples kept for replay (--replay-coef)",
                                minimum=1)
    lora_rank: int = setting(0, "train LoRA adapters of this rank instead of all weights",
                            minimum=0)
    lora_lr_scale: float = setting(10.0, "LoRA adapters train at --lr times this (adapters want "
                                        "about 10x full fine-tuning's rate: Schulman et al., "
                                        "LoRA Without Regret, 2025)", minimum=0.0)
    stage_every: int = setting(1, "with adapters the server serves (--lora-rank <= its "
                                 "max_lora_rank): stage the newest adapter in the engine every N "
                                 "steps and sample shadow groups from it, users staying on the "
                                 "gated version (0: sample from the served version)", minimum=0)
    micro_batch: int = setting(8, "rows per forward/backward (gradients accumulate)", minimum=1)
    logit_chunk: int = setting(512, "positions per log-prob chunk (no full [B, T, V] logits)",
                              minimum=1)
    gradient_checkpointing: bool = setting(False, "recompute activations in backward (less memory)")
    min_free_mb: int = setting(256, "pause while the state directory has less free space (MiB)",
                              minimum=0)
    warmup_steps: int = setting(10, "linear lr warm-up of every new optimizer", minimum=0)
    keep_versions: int = setting(8, "retention: weights of the newest N and last N promoted",
                                minimum=1)
    objective: GRPOConfig = setting(factory=GRPOConfig, help="GRPO settings (keys of their own)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`--config FILE` and one flag per setting (the objective's included)."""
    parser.add_argument("--config", type=Path, default=None, help="TOML file of the settings "
                        "below (RLVR_TRAINER_<FIELD> variables override it, flags both)")
    settings.add_arguments(parser, TrainerConfig)


def read_file(path: Path) -> dict[str, Any]:
    """The settings a TOML file sets (key -> value), checked; raises SettingsError."""
    settings.load(TrainerConfig, path, env={})
    return tomllib.loads(path.read_text())


def from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> TrainerConfig:
    """The settings of a parsed command line; raises SettingsError naming a bad one."""
    return settings.load(TrainerConfig, args.config, env, settings.flags_of(args, TrainerConfig),
                         prefix=ENV_PREFIX)
