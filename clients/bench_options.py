"""The trainer's options one at a time against its defaults, measured as the TRL comparison
measures the online loop.

One `rlvr demo` run per variant: unlimited-thinking traffic at 2 req/s, the same traffic and
trainer seed, the server and trainer sharing the two cores. Afterwards the versions served
every `grid_s` seconds are scored on the larger held-out set (1,500 tasks, greedy, vLLM;
adapter versions merged first). A variant is the shipped settings with one thing changed;
`default` runs first in the same invocation and is the baseline of every ratio. A finished
run is kept under `--work` and reused, so an interrupted comparison resumes.

`trl` is TRL's `GRPOTrainer` with the TRL comparison's settings (`clients/bench_trl.py`:
offline, both cores to itself), run on the same machine for reference: the trainer's speed
differs between machines, so the only fair ratio to TRL is one from the same invocation.

One run per variant: the default's own spread across seeds (`docs/bench/trl.json`, 3 seeds)
is the noise a single run's difference must clear.

    rlvr bench options --duration 450 --grid 45 --out docs/bench/options.json
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from clients.bench_trl import LEVELS, MEASURED_ON, run_online, run_trl, time_to

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    change: str          # what differs from the shipped settings, in words
    trainer: dict = field(default_factory=dict)  # the `rlvr train` settings that differ
    lora_rank: int = 0   # > 0: LoRA adapters, served (and staged) by the engine


VARIANTS = {
    "default": Variant("the shipped settings"),
    "minibatches-2": Variant("2 optimizer steps per batch (the clip binds)", {"minibatches": 2}),
    "epochs-2": Variant("2 passes over each batch", {"epochs": 2}),
    "replay": Variant("replay of verified-correct samples, coefficient 0.1",
                      {"replay_coef": 0.1}),
    "dr-grpo": Variant("advantages not divided by the group's std (Dr. GRPO)",
                       {"scale_rewards": False}),
    "kl": Variant("k3 KL to the served version, coefficient 0.05", {"kl_coef": 0.05}),
    "temperature-1.0": Variant("sampling temperature 1.0 (default 0.8)", {"temperature": 1.0}),
    "group-16": Variant("16 completions per prompt and 4 prompts per step (default 8 and 8)",
                        {"group_size": 16, "prompts_per_step": 4}),
    "lora": Variant("LoRA rank 16 (lr x10), staged every step, gated in the engine",
                    lora_rank=16),
    "publish-5": Variant("a candidate every 5 steps (default 10)", {"publish_every": 5}),
    "pipeline": Variant("sampling and gate overlap training", {"pipeline": True}),
    "combined": Variant("the three that helped most alone: 2 optimizer steps per batch, "
                        "a candidate every 5 steps, temperature 1.0",
                        {"minibatches": 2, "publish_every": 5, "temperature": 1.0}),
}
TRL = "trl"  # the reference: TRL's GRPOTrainer, offline, on the same machine
REFERENCE = Variant("TRL GRPOTrainer, offline with both cores (not a trainer option)")


def summary(run: dict, duration_s: float, baseline: dict | None) -> dict:
    """One variant's figures; ratios to the baseline's time to each level where both exist."""
    curve = run["curve"]
    times = {str(level): time_to(curve, level) for level in LEVELS}
    ratios = {level: (round(t / baseline["time_to_s"][level], 2)
                      if baseline and t is not None and baseline["time_to_s"][level] else None)
              for level, t in times.items()}
    latency = run.get("latency")
    return {"steps": run["steps"], "steps_per_min": round(60 * run["steps"] / duration_s, 2),
            "promoted": run.get("promoted"), "rejected": run.get("rejected"), "time_to_s": times,
            "time_ratio_to_default": ratios, "best": max(p["accuracy"] for p in curve),
            "end": curve[-1]["accuracy"],
            "user_p50_s": {"training": latency["running"]["latency_p50_s"],
                           "paused": latency["paused"]["latency_p50_s"]} if latency else None,
            "failed": latency["running"]["failed"] + latency["paused"]["failed"]
            if latency else None,
            "phase_seconds": run.get("phase_seconds"), "busy_seconds": run.get("busy_seconds")}


def run(names: list[str], duration_s: float, grid_s: float, work: Path, seed: int = 0,
        paused_s: float = 30.0) -> dict:
    """`default` and then each named variant, one demo run each (reused when already under
    `work`); the comparison table's data."""
    unknown = sorted(set(names) - set(VARIANTS) - {TRL})
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}; known: "
                         f"{', '.join(VARIANTS)}, {TRL}")
    runs, table = {}, {}
    for name in ["default"] + [n for n in names if n != "default"]:
        variant, path = VARIANTS.get(name, REFERENCE), work / f"{name}.json"
        if not path.is_file():
            result = run_trl(duration_s, grid_s, work / name, seed) if name == TRL else \
                run_online(duration_s, grid_s, work / name, seed, variant.trainer,
                           variant.lora_rank, paused_s)
            path.write_text(json.dumps(result, indent=2, default=str))
        runs[name] = json.loads(path.read_text())
        table[name] = {"change": variant.change, "settings": variant.trainer,
                       "lora_rank": variant.lora_rank,
                       **summary(runs[name], duration_s, table.get("default"))}
        log.info("%s: %s", name, table[name])
    return {"measured_on": MEASURED_ON, "duration_s": duration_s, "grid_s": grid_s,
            "seed": seed, "start": runs["default"]["curve"][0]["accuracy"], "variants": table,
            "runs": runs}
