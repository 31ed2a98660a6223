"""The trainer's settings: one typed dataclass, the only place their defaults live.

`rlvr train` flags are generated from the fields (`--group-size` for `group_size`, help from
the field's `help`; the GRPO objective's fields, `rl_loop/grpo.py`, get flags the same way),
and the server's supervised trainer child is started with the same flags, so a setting
exists once. The base model is the served model: the server passes its `--model`,
and standalone `rlvr train` asks the server (`GetModelInfo.model_path`) when it is not given.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from rl_loop.grpo import GRPOConfig


def _f(default, help: str, **kwargs):
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass
class TrainerConfig:
    server: str = _f("localhost:50051", "the runtime's gRPC address")
    state_dir: Path = _f(Path("state"), "the server's state directory (traces, checkpoints)")
    token: str | None = _f(None, "train+admin token (default: $RLVR_TRAINER_TOKEN, "
                                 "$RLVR_ADMIN_TOKEN, $RLVR_TOKEN)")
    base_model: Path | None = _f(None, "the served model's folder (default: ask the server)")
    root_cert: Path | None = _f(None, "PEM certificate to trust when the server uses TLS",
                                flag="--tls-ca")
    group_size: int = _f(8, "completions sampled per prompt", minimum=2)
    prompts_per_step: int = _f(8, "groups with signal wanted per step", minimum=1)
    lr: float = _f(1e-4, "learning rate (AdamW)", minimum=0.0)
    temperature: float = _f(0.8, "sampling temperature of the groups", minimum=0.0)
    publish_every: int = _f(10, "steps between published candidates (each is gated)",
                            minimum=1)
    gate_tasks: int = _f(100, "built-in validation tasks of the model's plug-in (embedded "
                              "model: held-out bucket, outside the reported set)", minimum=0)
    validation_share: float = _f(0.1, "share of trusted traffic prompts (stable hash) held out "
                                      "of training as the gate's validation set", minimum=0.0)
    max_validation: int = _f(200, "validation traces kept (the newest)", minimum=1)
    min_validation: int = _f(20, "fewer validation items than this: no promotion", minimum=1)
    gate_z: float = _f(1.645, "reject a candidate whose paired reward difference to the "
                              "served version is below 0 by more than z standard errors",
                       minimum=0.0)
    gate_answer_tokens: int = _f(32, "answer tokens when a validation item has no own limit",
                                 minimum=1)
    gate_max_budget: int = _f(512, "thinking budget cap for validation items with none",
                              minimum=1)
    max_steps: int = _f(0, "stop after N steps (0 = run until stopped)", minimum=0,
                        flag="--steps")
    poll_s: float = _f(1.0, "seconds between looks at the trace log when idle", minimum=0.0)
    seed: int = _f(0, "random seed")
    device: str = _f("auto", "auto (cuda:1 when there are two GPUs, cuda:0 with one, else "
                             "cpu), cpu, cuda[:N]")
    threads: int = _f(0, "torch CPU threads (0 = torch's default)", minimum=0)
    nice: int = _f(10, "added to the trainer process's niceness (CPU priority below serving's)",
                   minimum=0)
    pool_size: int = _f(512, "recent trainable prompts to sample groups from", minimum=1)
    signal_sampling: bool = _f(True, "draw prompts by their estimated reward variance, where "
                                     "groups carry signal (--no-signal-sampling: uniform)")
    max_sampling_rounds: int = _f(2, "dynamic sampling: rounds of groups per step until "
                                     "enough carry signal", minimum=1)
    pipeline: bool = _f(False, "sample the next batch and gate candidates while a step "
                               "trains (off: sample, train, gate one after another; on 2 shared "
                               "CPU cores it gave 1.6x the steps but no faster held-out gain "
                               "and a slower p50 for users: docs/bench/pipeline.json)")
    replay_buffer: int = _f(512, "verified-correct samples kept for replay (--replay-coef)",
                            minimum=1)
    lora_rank: int = _f(0, "train LoRA adapters of this rank instead of all weights",
                        minimum=0)
    lora_lr_scale: float = _f(10.0, "LoRA adapters train at --lr times this (adapters want "
                                    "about 10x full fine-tuning's rate: Schulman et al., "
                                    "LoRA Without Regret, 2025)", minimum=0.0)
    stage_every: int = _f(1, "with adapters the server serves (--lora-rank <= its "
                             "max_lora_rank): stage the newest adapter in the engine every N "
                             "steps and sample shadow groups from it, users staying on the "
                             "gated version (0: sample from the served version)", minimum=0)
    micro_batch: int = _f(8, "rows per forward/backward (gradients accumulate)", minimum=1)
    logit_chunk: int = _f(512, "positions per log-prob chunk (no full [B, T, V] logits)",
                          minimum=1)
    gradient_checkpointing: bool = _f(False, "recompute activations in backward (less memory)")
    min_free_mb: int = _f(256, "pause while the state directory has less free space (MiB)",
                          minimum=0)
    warmup_steps: int = _f(10, "linear lr warm-up of every new optimizer", minimum=0)
    keep_versions: int = _f(8, "retention: weights of the newest N and last N promoted",
                            minimum=1)
    objective: GRPOConfig = field(default_factory=GRPOConfig,
                                  metadata={"help": "GRPO settings (flags of their own)"})


def _flag_fields() -> list[dataclasses.Field]:
    """TrainerConfig's fields, with the nested objective's fields in its place."""
    fields = []
    for f in dataclasses.fields(TrainerConfig):
        fields += dataclasses.fields(GRPOConfig) if f.name == "objective" else [f]
    return fields


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per field; bad values are usage errors naming the flag."""
    for f in _flag_fields():
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        if kind == "bool":
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=f.default, help=f.metadata["help"])
            continue
        parser.add_argument(flag, dest=f.name, default=f.default, help=f.metadata["help"],
                            type=_parser(flag, kind, f.metadata.get("minimum")))


def _parser(flag: str, kind: str, minimum):
    base = {"int": int, "float": float}.get(kind.split(" ")[0], None)
    if "Path" in kind:
        return Path
    if base is None:
        return str

    def parse(text: str):
        try:
            value = base(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"must be finite, got {text}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value
    return parse


def from_args(args: argparse.Namespace) -> TrainerConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainerConfig)
              if f.name != "objective"}
    objective = GRPOConfig(**{f.name: getattr(args, f.name)
                              for f in dataclasses.fields(GRPOConfig)})
    return TrainerConfig(**values, objective=objective)
