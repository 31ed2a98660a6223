"""Train the embedded tiny reasoner from scratch on the task families (supervised, next token).

Run as `rlvr train-base`. Deterministic for a given seed; the learning rate is constant after
warm-up, so a run of N steps equals the first N steps of any longer run (snapshots of a long run
reproduce shorter ones). The shipped model stops early on purpose: online RL needs headroom.

A few complete traces go on after the continuation word the server injects to enforce a
minimum thinking length ("Wait"), restating the result, so forced continuations stay sane.
Some examples have their thinking cut at a random point (sometimes followed by the wrap-up text
the server injects at a forced close) and still end in the correct answer, so the model learns
to give its best answer when the thinking budget runs out.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from rl_loop.toy import tasks, tiny_model
from runtime.budget import DEFAULT_CONTINUATION, DEFAULT_WRAP_UP

log = logging.getLogger(__name__)

SHIPPED_STEPS = 3000
CONVERGED_STEPS = 6000


@dataclass
class PretrainConfig:
    out_dir: Path = tiny_model.MODEL_DIR
    steps: int = SHIPPED_STEPS
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    seed: int = 0
    truncate_prob: float = 0.3
    wrap_up_prob: float = 0.5
    recheck_prob: float = 0.05  # full trace, then "Wait" and the result restated (min thinking)
    family_weights: dict[str, float] = field(
        default_factory=lambda: {"add": 1.0, "sub": 1.0, "mul": 1.0, "cmp": 1.0, "lin": 1.0})
    snapshot_every: int = 0  # save out_dir/step-N every N steps (0: only the final model)
    threads: int = 0  # torch threads (0: torch's default)


def make_example(rng: random.Random, cfg: PretrainConfig) -> tuple[str, str]:
    """Draw a training task and render (context, target), sometimes with truncated thinking."""
    families = list(cfg.family_weights)
    family = rng.choices(families, weights=[cfg.family_weights[f] for f in families])[0]
    task = tasks.sample_task(rng, family, split="train")
    thinking = task.thinking
    if rng.random() < cfg.recheck_prob:
        last_line = thinking.rstrip("\n").rsplit("\n", 1)[-1]
        thinking += f"{DEFAULT_CONTINUATION}\n{last_line}\n" * rng.randint(1, 2)
    elif rng.random() < cfg.truncate_prob:
        thinking = thinking[: rng.randint(0, len(thinking))]
        if rng.random() < cfg.wrap_up_prob:
            thinking += DEFAULT_WRAP_UP
    return tiny_model.training_text(task.prompt, thinking, task.answer)


def make_batches(rng: random.Random, cfg: PretrainConfig, vocab: dict[str, int], pad_id: int,
                 pool: int = 8) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """`pool` batches of (input ids, attention mask, labels), grouped by length to cut padding."""
    rows = []
    for _ in range(cfg.batch_size * pool):
        context, target = make_example(rng, cfg)
        ctx, tgt = encode(context, vocab), encode(target, vocab)
        rows.append((ctx + tgt, [-100] * len(ctx) + tgt))
    rows.sort(key=lambda row: len(row[0]))
    batches = [collate(rows[i:i + cfg.batch_size], pad_id)
               for i in range(0, len(rows), cfg.batch_size)]
    rng.shuffle(batches)
    return batches


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int):
    """Right-pad rows into tensors: input ids, attention mask, labels (-100 is ignored)."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row_ids, row_labels) in enumerate(rows):
        ids[i, : len(row_ids)] = torch.tensor(row_ids)
        labels[i, : len(row_labels)] = torch.tensor(row_labels)
        mask[i, : len(row_ids)] = 1
    return ids, mask, labels


def encode(text: str, vocab: dict[str, int]) -> list[int]:
    """Fast encoding of ASCII task text (one token per character, special tokens whole);
    equal to the tokenizer's own encoding (tests check it)."""
    symbols = tiny_model.byte_symbols()
    ids, i = [], 0
    while i < len(text):
        if text[i] == "<":
            special = next((s for s in tiny_model.SPECIAL_TOKENS if text.startswith(s, i)), None)
            if special:
                ids.append(vocab[special])
                i += len(special)
                continue
        ids.append(vocab[symbols[ord(text[i])]])
        i += 1
    return ids


def save(model, tokenizer, out_dir: Path) -> None:
    """Write a standard Hugging Face folder (config, safetensors weights, tokenizer)."""
    from transformers import GenerationConfig

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                     bos_token_id=model.config.bos_token_id).save_pretrained(out_dir)


def train(cfg: PretrainConfig, command: str = "rlvr train-base") -> Path:
    """Train from scratch and save the model folder; returns its path."""
    from transformers import Qwen2ForCausalLM

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    tokenizer = tiny_model.build_tokenizer()
    model = Qwen2ForCausalLM(tiny_model.build_config(tokenizer))
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    log.info("training %d parameters for %d steps (batch %d, lr %g, seed %d)",
             n_params, cfg.steps, cfg.batch_size, cfg.lr, cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: min(1.0, (step + 1) / cfg.warmup_steps))
    vocab = tokenizer.get_vocab()
    start = time.monotonic()
    bar = tqdm(range(1, cfg.steps + 1), desc="train-base", unit="step")
    batches: list = []
    for step in bar:
        if not batches:
            batches = make_batches(rng, cfg, vocab, tokenizer.pad_token_id)
        ids, mask, labels = batches.pop()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % 100 == 0:
            log.info("step %d loss %.4f elapsed %.0fs", step, loss.item(),
                     time.monotonic() - start)
        if cfg.snapshot_every and step % cfg.snapshot_every == 0 and step < cfg.steps:
            save(model, tokenizer, cfg.out_dir / f"step-{step}")
    save(model, tokenizer, cfg.out_dir)
    seconds = time.monotonic() - start
    record = {"command": command, "seconds": round(seconds, 1), "steps": cfg.steps,
              "batch_size": cfg.batch_size, "lr": cfg.lr, "seed": cfg.seed,
              "threads": torch.get_num_threads(), "parameters": n_params}
    (cfg.out_dir / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    log.info("saved %s after %.0fs", cfg.out_dir, seconds)
    return cfg.out_dir
