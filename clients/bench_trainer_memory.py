"""The trainer's peak memory per row on the real model (SmolLM2-135M, CPU, float32 masters).

    python -m clients.bench_trainer_memory --micro-batch 8 --logit-chunk 512 --tokens 400 \
        [--gradient-checkpointing]

One GRPO step on 8 synthetic rows (a 40-token prompt plus `--tokens` sampled tokens each) in
a fresh process; prints the process's peak RSS. Per-row cost = the difference between runs
with `--micro-batch 8` and `--micro-batch 1`, divided by 7.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch

from rl_loop.trainer import Sample, Trainer, TrainerConfig


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    from rl_loop import smollm2

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--logit-chunk", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=400)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args()
    _, thinking = smollm2.build()
    trainer = Trainer(TrainerConfig(
        base_model=thinking, state_dir=Path(tempfile.mkdtemp()), gate_tasks=0, warmup_steps=1,
        micro_batch=args.micro_batch, logit_chunk=args.logit_chunk,
        gradient_checkpointing=args.gradient_checkpointing))
    rng = torch.Generator().manual_seed(0)

    def row(reward: float) -> Sample:
        ids = torch.randint(100, 40_000, (args.tokens,), generator=rng).tolist()
        return Sample(list(range(100, 140)), ids, [1] * args.tokens, reward, "v0")
    before = peak_mb()
    start = time.perf_counter()
    trainer.train_step([[row(1.0), row(0.0)] * 4])
    print(json.dumps(vars(args) | {"rss_before_mb": round(before), "peak_mb": round(peak_mb()),
                                   "step_s": round(time.perf_counter() - start, 2)}))


if __name__ == "__main__":
    main()
