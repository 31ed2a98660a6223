"""Learning efficiency against TRL: the same model and tasks trained by TRL's `GRPOTrainer`,
several seeds a side.

Both sides start from the shipped tiny reasoner and are measured the same way: greedy accuracy
at unlimited thinking on the benchmarks' larger held-out set (`models/heldout_large.jsonl`,
1,500 tasks, disjoint from training, the reported 300 and the gate's items), scored through
vLLM after each run from saved weights. Both train at unlimited thinking: TRL has no thinking
budget, so the online side's traffic asks without one too. Shared settings: group size 8,
8 prompts per step, learning rate 1e-4 with a 10-step linear warm-up then constant, sampling
temperature 0.8, token-level loss with clip 0.2 / 0.28 and no KL, 2 CPU threads.

- TRL is configured as its docs recommend for CPU (`use_cpu=True`, no bf16/fp16, no vLLM:
  generation runs in transformers), trains offline on training-split prompts with both cores to
  itself, and gets its snapshot time off the clock. Its completions are decoded with special
  tokens stripped, so the reward reads the token ids: the answer is what follows the `</think>`
  token, scored by the runtime's numeric verifier.
- The online side is `rlvr demo` (traffic through the server, the trainer sharing the cores
  with serving, gate time on the clock); a version's time is when it was promoted.

Weights are scored on a time grid (every `grid_s` seconds: TRL's snapshot at the first step
past each mark, the online version being served at each mark), so a level may have been reached
up to one grid step earlier on either side. Times to each level are given per seed, with the
median and range; a seed that never reached a level counts as slower than any that did.

    rlvr bench trl --seeds 3 --duration 600 --out docs/bench/trl.json
"""

from __future__ import annotations

import json
import logging
import random
import statistics
import time
from pathlib import Path

from rl_loop.toy import tasks
from rlvr.store.checkpoints import CheckpointStore
from rl_loop.toy.tiny_model import MODEL_DIR
from runtime.verifiers.numeric import numeric_equal

log = logging.getLogger(__name__)

GROUP_SIZE = 8
PROMPTS_PER_STEP = 8
LR = 1e-4
WARMUP_STEPS = 10
TEMPERATURE = 0.8
LEVELS = (0.86, 0.88, 0.9)               # times to these are compared (the shipped model: 0.83)
TARGET = 0.9                             # the target: online at most 0.5x TRL's time
MEASURED_ON = "larger held-out set, 1,500 tasks"
SIDES = ("trl", "online")


def training_prompts(n: int, seed: int = 0) -> list[dict]:
    """`n` training-split tasks, the five families equally, as TRL conversational rows."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        task = tasks.sample_task(rng, list(tasks.FAMILIES)[i % len(tasks.FAMILIES)])
        rows.append({"prompt": [{"role": "user", "content": task.prompt}], "answer": task.answer})
    rng.shuffle(rows)
    return rows


def make_reward(tokenizer):
    """TRL reward function: 1.0 when the text after `</think>` equals the reference."""
    think_end = tokenizer.convert_tokens_to_ids("</think>")

    def correct(completion_ids: list[list[int]], answer: list[str], **_) -> list[float]:
        rewards = []
        for ids, reference in zip(completion_ids, answer):
            text = (tokenizer.decode(ids[ids.index(think_end) + 1:], skip_special_tokens=True)
                    if think_end in ids else "")
            rewards.append(float(numeric_equal(text, reference)))
        return rewards
    return correct


def time_to(curve: list[dict], target: float) -> float | None:
    return next((p["t_s"] for p in curve if p["accuracy"] >= target), None)


def score(points: list[dict]) -> list[dict]:
    """Each point's weights ("path") scored on the larger held-out set, in one engine:
    [{"t_s", "step", "accuracy"}] in time order."""
    from rl_loop.toy.evaluate import evaluate_versions

    folders = {p["name"]: p["path"] for p in points}
    scores = evaluate_versions(folders, tasks.load_heldout(tasks.LARGE_HELDOUT_PATH),
                               {name: [None] for name in folders})
    return [{"t_s": p["t_s"], "step": p["step"],
             "accuracy": scores[p["name"]]["unlimited"]["total"]["accuracy"]}
            for p in sorted(points, key=lambda p: p["t_s"])]


def run_trl(duration_s: float, grid_s: float, out_dir: Path, seed: int, threads: int = 2) -> dict:
    """Train with TRL for `duration_s` seconds of training time, saving the weights at the
    first step past every `grid_s` mark (off the clock); then score every snapshot."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32)
    snapshots = [{"name": "step-0", "path": MODEL_DIR, "t_s": 0.0, "step": 0}]

    class Clock(TrainerCallback):
        """Training time without the snapshots; a snapshot at the first step past each mark."""

        def __init__(self):
            self.started, self.off_clock, self.mark = time.monotonic(), 0.0, grid_s

        def elapsed(self) -> float:
            return time.monotonic() - self.started - self.off_clock

        def snapshot(self, step: int) -> None:
            begin, t_s = time.monotonic(), round(self.elapsed(), 1)
            folder = out_dir / "snapshots" / f"step-{step}"
            model.save_pretrained(folder, safe_serialization=True)
            snapshots.append({"name": f"step-{step}", "path": folder, "t_s": t_s, "step": step})
            self.off_clock += time.monotonic() - begin

        def on_step_end(self, args, state, control, **kwargs):
            done = self.elapsed() >= duration_s
            if self.elapsed() >= self.mark or done:
                self.snapshot(state.global_step)
                while self.mark <= self.elapsed():
                    self.mark += grid_s
            control.should_training_stop = done
            return control

    config = GRPOConfig(
        output_dir=str(out_dir), use_cpu=True, bf16=False, fp16=False,
        seed=seed, learning_rate=LR, lr_scheduler_type="constant_with_warmup",
        warmup_steps=WARMUP_STEPS, max_steps=100_000, num_generations=GROUP_SIZE,
        per_device_train_batch_size=GROUP_SIZE * PROMPTS_PER_STEP, temperature=TEMPERATURE,
        max_completion_length=448, beta=0.0, epsilon=0.2, epsilon_high=0.28, loss_type="dapo",
        scale_rewards="group", logging_steps=10, save_strategy="no", report_to="none",
        dataloader_num_workers=0)
    trainer = GRPOTrainer(model=model, processing_class=tokenizer,
                          reward_funcs=make_reward(tokenizer),
                          train_dataset=Dataset.from_list(training_prompts(20_000, seed)),
                          args=config, callbacks=[clock := Clock()])
    trainer.train()
    return {"seed": seed, "steps": snapshots[-1]["step"], "train_seconds":
            round(clock.elapsed(), 1), "curve": score(snapshots)}


def served_at_marks(curve: list[dict], duration_s: float, grid_s: float) -> list[dict]:
    """The promoted versions being served at 0, `grid_s`, 2 `grid_s`, ... `duration_s`: the
    last one promoted at or before each mark, each once, with its promotion time."""
    marks = [i * grid_s for i in range(int(duration_s // grid_s) + 1)] + [duration_s]
    chosen = {max((p for p in curve if p["t_s"] <= mark), key=lambda p: p["t_s"])["version"]
              for mark in marks}
    return [p for p in curve if p["version"] in chosen]


def run_online(duration_s: float, grid_s: float, out_dir: Path, seed: int,
               trainer: dict | None = None, lora_rank: int = 0, paused_s: float = 60.0) -> dict:
    """`rlvr demo` with unlimited-thinking traffic, trainer seed `seed` and settings `trainer`
    (LoRA adapters of `lora_rank`, merged for scoring); then score the versions served at
    the grid's marks."""
    from clients.demo import DemoConfig, run_demo
    from rl_loop.toy.evaluate import full_weights

    report = run_demo(DemoConfig(out_dir=out_dir, duration_s=duration_s, paused_s=paused_s,
                                 final_eval=False, seed=seed, budgets=(None,),
                                 trainer={"seed": seed, **(trainer or {})},
                                 lora_rank=lora_rank))
    store = CheckpointStore(Path(report["state_dir"]))
    points = [{"name": p["version"], "t_s": p["t_s"], "step": p["step"],
               "path": full_weights(store, p["version"], MODEL_DIR, out_dir / "merged")}
              for p in served_at_marks(report["curve"], duration_s, grid_s)]
    phases = report["trainer_phases"]
    return {"seed": seed, "steps": phases.get("step", 0), "promoted": len(report["curve"]) - 1,
            "rejected": len(report["rejected"]), "latency": report["latency"],
            "phase_seconds": phases.get("phase_seconds"),
            "busy_seconds": phases.get("busy_seconds"), "curve": score(points)}


def spread(times: list[float | None]) -> dict:
    """Median and range of the seeds' times to a level; a seed that never reached it counts as
    slower than every seed that did (the median is None when half or more never did)."""
    reached = sorted(t for t in times if t is not None)
    ranked = reached + [float("inf")] * (len(times) - len(reached))
    median = statistics.median(ranked) if ranked else float("inf")
    return {"times_s": times, "reached": len(reached),
            "median_s": None if median == float("inf") else median,
            "min_s": reached[0] if reached else None, "max_s": reached[-1] if reached else None}


def compare(runs: dict[str, list[dict]], settings: dict) -> dict:
    """Per side and level: every seed's time, the median and range; the ratio of the online
    median to TRL's where both medians exist; best accuracy per seed."""
    summary = {side: {str(level): spread([time_to(r["curve"], level) for r in runs[side]])
                      for level in LEVELS} for side in SIDES}
    ratio = {level: (round(summary["online"][level]["median_s"]
                           / summary["trl"][level]["median_s"], 3)
                     if summary["online"][level]["median_s"] is not None
                     and summary["trl"][level]["median_s"] else None)
             for level in map(str, LEVELS)}
    return {"measured_on": MEASURED_ON, "settings": settings, "runs": runs, "summary": summary,
            "median_time_ratio_online_over_trl": ratio,
            "best": {side: [max(p["accuracy"] for p in r["curve"]) for r in runs[side]]
                     for side in SIDES},
            "start": runs["trl"][0]["curve"][0]["accuracy"] if runs["trl"] else None}


def run(seeds: int, duration_s: float, grid_s: float, work: Path) -> dict:
    """Both sides, seed by seed (TRL then online, so a cut-short run stays balanced); each
    run's result is kept under `work` and reused when the benchmark is run again."""
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    for seed in range(seeds):
        for side in SIDES:
            path = work / f"{side}-seed{seed}.json"
            if not path.is_file():
                folder = work / f"{side}-seed{seed}"
                result = (run_trl(duration_s, grid_s, folder, seed) if side == "trl"
                          else run_online(duration_s, grid_s, folder, seed))
                path.write_text(json.dumps(result, indent=2, default=str))
            runs[side].append(json.loads(path.read_text()))
            log.info("%s seed %d: %s", side, seed, runs[side][-1]["curve"])
    settings = {"group_size": GROUP_SIZE, "prompts_per_step": PROMPTS_PER_STEP, "lr": LR,
                "warmup_steps": WARMUP_STEPS, "temperature": TEMPERATURE, "threads": 2,
                "seeds": seeds, "duration_s": duration_s, "grid_s": grid_s,
                "budget": "unlimited", "trl": __import__("trl").__version__}
    return compare(runs, settings)


def plot(result: dict, path: Path) -> None:
    """Held-out accuracy against minutes, every seed of both sides in one plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    labels = {"trl": "TRL GRPOTrainer (offline, 2 cores to itself)",
              "online": "rlvr online loop (serving its traffic meanwhile)"}
    for color, side in zip(("tab:blue", "tab:orange"), SIDES):
        for i, run_ in enumerate(result["runs"][side]):
            curve = run_["curve"]
            ax.step([p["t_s"] / 60 for p in curve] + [result["settings"]["duration_s"] / 60],
                    [p["accuracy"] for p in curve] + [curve[-1]["accuracy"]], where="post",
                    color=color, alpha=0.8, marker="o", markersize=3,
                    label=f"{labels[side]}, {len(result['runs'][side])} seeds" if i == 0 else None)
    for level in LEVELS:
        ax.axhline(level, color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="minutes", ylabel=f"held-out accuracy ({MEASURED_ON.split(', ')[1]}, greedy)",
           title="learning efficiency: rlvr online vs TRL GRPOTrainer, unlimited thinking")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
