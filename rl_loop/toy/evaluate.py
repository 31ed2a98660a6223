"""Held-out evaluation through vLLM: greedy decoding at a given thinking budget, per-family accuracy.

Used by `rlvr eval` (and the model card), later by the promotion gate. A budget is enforced by
vLLM's native `thinking_token_budget` (it forces `</think>` after N thinking tokens); the answer
then gets its own `ANSWER_TOKENS`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from rlvr.store.checkpoints import BASE_VERSION, CheckpointStore
from rl_loop.toy.tasks import Task
from rl_loop.toy.tiny_model import chat_prompt_ids
from runtime.budget import budget_label
from runtime.verifiers.numeric import numeric_equal

log = logging.getLogger(__name__)

ANSWER_TOKENS = 32
BUDGETS_FOR_CARD: tuple[int | None, ...] = (0, 8, 16, 32, 64, None)  # None = unlimited


@dataclass
class Completion:
    thinking_tokens: int
    answer: str


def split_completion(token_ids: list[int], think_end_id: int, tokenizer) -> Completion:
    """Split generated ids at `</think>`: thinking token count and decoded answer."""
    if think_end_id in token_ids:
        cut = token_ids.index(think_end_id)
        return Completion(cut, tokenizer.decode(token_ids[cut + 1:], skip_special_tokens=True))
    return Completion(len(token_ids), "")


def generate(llm, tasks: list[Task], budget: int | None) -> list[Completion]:
    """Greedy completions of every task's prompt under one thinking budget."""
    from vllm import SamplingParams

    tokenizer = llm.get_tokenizer()
    think_end_id = tokenizer.convert_tokens_to_ids("</think>")
    context = llm.llm_engine.model_config.max_model_len
    prompts, params = [], []
    for task in tasks:
        ids = chat_prompt_ids(tokenizer, [{"role": "user", "content": task.prompt}])
        room = context - len(ids)
        max_tokens = room if budget is None else min(room, budget + 1 + ANSWER_TOKENS)
        prompts.append({"prompt_token_ids": ids})
        params.append(SamplingParams(temperature=0.0, max_tokens=max_tokens,
                                     thinking_token_budget=budget, skip_special_tokens=False))
    outputs = llm.generate(prompts, params, use_tqdm=False)
    return [split_completion(list(o.outputs[0].token_ids), think_end_id, tokenizer)
            for o in outputs]


def score(tasks: list[Task], completions: list[Completion]) -> dict:
    """Per-family and total accuracy and mean thinking tokens."""
    groups: dict[str, list[tuple[bool, int]]] = defaultdict(list)
    for task, comp in zip(tasks, completions):
        correct = numeric_equal(comp.answer, task.answer)
        groups[task.family].append((correct, comp.thinking_tokens))
    groups["total"] = [row for rows in list(groups.values()) for row in rows]
    return {
        name: {"n": len(rows),
               "accuracy": round(sum(c for c, _ in rows) / len(rows), 4),
               "mean_thinking_tokens": round(sum(t for _, t in rows) / len(rows), 2)}
        for name, rows in groups.items()
    }


def evaluate(model_dir: Path, tasks: list[Task], budgets: list[int | None]) -> dict:
    """Run the held-out tasks at each budget; returns {budget label: score table}."""
    return evaluate_versions({"model": model_dir}, tasks, {"model": budgets})["model"]


def full_weights(store: CheckpointStore, version: str, base_dir: Path, out: Path) -> Path:
    """The folder of `version`'s full weights, which vLLM's reload can score: its own folder,
    or for a LoRA adapter version the weights it applies to with the adapter merged in
    (written once to `out/<version>`; `base_dir` holds the base version's weights)."""
    if version == BASE_VERSION:
        return base_dir
    adapter_base = store.manifest(version).adapter_base
    if not adapter_base:
        return store.verified_path(version)
    merged = out / version
    if not (merged / "config.json").is_file():
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base = full_weights(store, adapter_base, base_dir, out)
        model = AutoModelForCausalLM.from_pretrained(base)
        model = PeftModel.from_pretrained(model, store.verified_path(version)).merge_and_unload()
        model.save_pretrained(merged, safe_serialization=True)
        for extra in base.iterdir():  # tokenizer, chat template, plug-ins: the base's
            if extra.is_file() and extra.suffix != ".safetensors" \
                    and not (merged / extra.name).exists():
                (merged / extra.name).write_bytes(extra.read_bytes())
    return merged


def evaluate_versions(folders: dict[str, Path], tasks: list[Task],
                      budgets: dict[str, list[int | None]]) -> dict[str, dict]:
    """Score several checkpoints of one architecture in one engine, reloading the weights in
    place between them (as a hot-swap does): {name: {budget label: score table}}."""
    from vllm import LLM

    from runtime.engine_args import engine_kwargs

    llm, results = None, {}
    for name, folder in folders.items():
        if llm is None:
            llm = LLM(**engine_kwargs(folder))
        else:
            llm.collective_rpc("reload_weights", kwargs={"weights_path": str(folder)})
            llm.reset_prefix_cache()  # cached KV blocks were computed by the previous weights
        results[name] = {}
        for budget in budgets[name]:
            table = score(tasks, generate(llm, tasks, budget))
            results[name][budget_label(budget)] = table
            log.info("%s, budget %s: total accuracy %.3f", name, budget_label(budget),
                     table["total"]["accuracy"])
    return results


def pass_at_k(model_dir: Path, tasks: list[Task], k: int, temperature: float,
              seed: int = 0) -> dict:
    """`k` samples per task at `temperature` with unlimited thinking: per family the share of
    tasks with at least one correct sample (pass@k, what GRPO can sharpen into greedy
    accuracy) and the mean accuracy of the samples."""
    from vllm import LLM, SamplingParams

    from runtime.engine_args import engine_kwargs

    llm = LLM(**engine_kwargs(model_dir))
    tokenizer = llm.get_tokenizer()
    think_end_id = tokenizer.convert_tokens_to_ids("</think>")
    context = llm.llm_engine.model_config.max_model_len
    prompts = [chat_prompt_ids(tokenizer, [{"role": "user", "content": t.prompt}]) for t in tasks]
    params = [SamplingParams(n=k, temperature=temperature, seed=seed + i, skip_special_tokens=False,
                             max_tokens=context - len(ids)) for i, ids in enumerate(prompts)]
    outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompts], params, use_tqdm=False)
    groups: dict[str, list[tuple[bool, float]]] = defaultdict(list)
    for task, output in zip(tasks, outputs):
        hits = [numeric_equal(split_completion(list(c.token_ids), think_end_id, tokenizer).answer,
                              task.answer) for c in output.outputs]
        groups[task.family].append((any(hits), sum(hits) / len(hits)))
    groups["total"] = [row for rows in list(groups.values()) for row in rows]
    return {name: {"n": len(rows), f"pass@{k}": round(sum(p for p, _ in rows) / len(rows), 4),
                   "mean_accuracy": round(sum(m for _, m in rows) / len(rows), 4)}
            for name, rows in groups.items()}
