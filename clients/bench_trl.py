"""Learning efficiency against TRL: the same model and tasks trained by TRL's `GRPOTrainer`.

Both sides start from the shipped tiny reasoner and are measured the same way: greedy accuracy
on the full held-out set (300 tasks, unlimited thinking, scored through vLLM after the run from
saved weights) against wall-clock seconds. Shared settings: group size 8, 8 prompts per step,
learning rate 1e-4 with a 10-step linear warm-up then constant, sampling temperature 0.8,
token-level loss with clip 0.2 / 0.28 and no KL, 2 CPU threads. TRL is configured as its docs recommend for CPU
(`use_cpu=True`, no bf16/fp16, no vLLM: generation runs in transformers), trains offline on
training-split prompts with both cores to itself, and gets its snapshot time off the clock.
Its completions are decoded with special tokens stripped, so the reward reads the token ids:
the answer is what follows the `</think>` token, scored by the runtime's numeric verifier.
The online side is `rlvr demo` (traffic through the server, the trainer sharing the cores
with serving, gate time on the clock); its curve is read from the demo's `demo.json`.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import torch

from rl_loop import tasks
from rl_loop.tiny_model import MODEL_DIR
from runtime.verifiers.numeric import numeric_equal

log = logging.getLogger(__name__)

GROUP_SIZE = 8
PROMPTS_PER_STEP = 8
LR = 1e-4
WARMUP_STEPS = 10
TEMPERATURE = 0.8
TARGETS = (0.8, 0.9)                     # the targets
LEVELS = (0.8, 0.86, 0.88, 0.9)          # times to these are compared (the shipped model: 0.85)
MEASURED_ON = "full held-out set, 300 tasks"


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


def run_trl(duration_s: float, eval_every: int = 10, out_dir: Path | None = None,
            threads: int = 2, seed: int = 0) -> dict:
    """Train with TRL for `duration_s` seconds of training time, saving the weights every
    `eval_every` steps (off the clock); then score every snapshot: the held-out curve."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rl_loop.evaluate import evaluate_versions

    torch.set_num_threads(threads)
    out_dir = out_dir or Path("/tmp/rlvr-trl")
    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32)
    snapshots: list[dict] = []

    class Clock(TrainerCallback):
        """A weight snapshot every `eval_every` steps, saving time off the clock."""

        def __init__(self):
            self.started = time.monotonic()
            self.off_clock = 0.0

        def elapsed(self) -> float:
            return time.monotonic() - self.started - self.off_clock

        def snapshot(self, step: int) -> None:
            begin = time.monotonic()
            folder = out_dir / "snapshots" / f"step-{step}"
            model.save_pretrained(folder, safe_serialization=True)
            snapshots.append({"step": step, "t_s": round(self.elapsed(), 1), "path": folder})
            self.off_clock += time.monotonic() - begin

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % eval_every == 0:
                self.snapshot(state.global_step)
            if self.elapsed() >= duration_s:
                control.should_training_stop = True
            return control

    config = GRPOConfig(
        output_dir=str(out_dir), use_cpu=True, bf16=False, fp16=False,
        seed=seed, learning_rate=LR, lr_scheduler_type="constant_with_warmup",
        warmup_steps=WARMUP_STEPS, max_steps=100_000, num_generations=GROUP_SIZE,
        per_device_train_batch_size=GROUP_SIZE * PROMPTS_PER_STEP, temperature=TEMPERATURE,
        max_completion_length=448, beta=0.0, epsilon=0.2, epsilon_high=0.28, loss_type="dapo",
        scale_rewards="group", logging_steps=eval_every, save_strategy="no", report_to="none",
        dataloader_num_workers=0)
    trainer = GRPOTrainer(model=model, processing_class=tokenizer,
                          reward_funcs=make_reward(tokenizer),
                          train_dataset=Dataset.from_list(training_prompts(20_000, seed)),
                          args=config, callbacks=[clock := Clock()])
    trainer.train()
    train_seconds = round(clock.elapsed(), 1)
    folders = {"step-0": MODEL_DIR} | {f"step-{s['step']}": s["path"] for s in snapshots}
    scores = evaluate_versions(folders, tasks.load_heldout(), {name: [None] for name in folders})
    curve = [{"step": s["step"], "t_s": s["t_s"],
              "accuracy": scores[f"step-{s['step']}"]["unlimited"]["total"]["accuracy"]}
             for s in [{"step": 0, "t_s": 0.0}] + snapshots]
    return {"settings": {"group_size": GROUP_SIZE, "prompts_per_step": PROMPTS_PER_STEP,
                         "lr": LR, "warmup_steps": WARMUP_STEPS, "temperature": TEMPERATURE,
                         "threads": threads, "eval_every_steps": eval_every,
                         "trl": __import__("trl").__version__},
            "curve": curve, "train_seconds": train_seconds,
            "time_to_accuracy_s": {str(t): time_to(curve, t) for t in TARGETS}}


def online_curve(demo: dict) -> list[dict]:
    """The demo's promoted versions as (t_s, full held-out accuracy at unlimited thinking)."""
    if demo.get("measure") != "heldout":
        raise ValueError("the demo did not score its versions on the full held-out set (run it "
                         "without --no-final-eval)")
    return [{"t_s": p["t_s"], "step": p["step"], "accuracy": p["heldout"]["unlimited"]}
            for p in demo["curve"] if "heldout" in p]


def compare(trl: dict, demo: dict) -> dict:
    """Both curves, time to each level, and ratio online/TRL where both reached it."""
    ours = online_curve(demo)
    ours_to = {str(t): time_to(ours, t) for t in LEVELS}
    trl_to = {str(t): time_to(trl["curve"], t) for t in LEVELS}
    trl = trl | {"time_to_accuracy_s": trl_to}
    return {"measured_on": MEASURED_ON, "trl": trl,
            "online": {"curve": ours, "time_to_accuracy_s": ours_to,
                       "duration_s": float(demo["config"]["duration_s"])},
            "time_ratio_online_over_trl": {
                t: (round(ours_to[t] / trl_to[t], 3) if ours_to[t] and trl_to[t] else None)
                for t in ours_to},
            "best": {"trl": max(p["accuracy"] for p in trl["curve"]),
                     "online": max(p["accuracy"] for p in ours)}}


def plot(result: dict, path: Path) -> None:
    """Held-out accuracy against minutes, both sides in one plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    trl = result["trl"]["curve"]
    ax.plot([p["t_s"] / 60 for p in trl], [p["accuracy"] for p in trl], marker="o",
            markersize=3, label="TRL GRPOTrainer (offline, 2 cores to itself)")
    ours = result["online"]["curve"]
    end = result["online"]["duration_s"] / 60
    ax.step([p["t_s"] / 60 for p in ours] + [end], [p["accuracy"] for p in ours]
            + [ours[-1]["accuracy"]], where="post", marker="o", markersize=3,
            label="rlvr online loop (serving its traffic meanwhile)")
    for target in TARGETS:
        ax.axhline(target, color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="minutes", ylabel="held-out accuracy (300 tasks, greedy, unlimited)",
           ylim=(0, 1), title="learning efficiency: rlvr online vs TRL GRPOTrainer")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
