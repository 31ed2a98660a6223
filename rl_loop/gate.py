"""The promotion gate's measurement: greedy accuracy of a model on validation tasks at budgets.

Runs in the trainer with transformers, because a candidate is not served until it passes. A
budget is enforced the way `rlvr eval` enforces it through vLLM's `thinking_token_budget`:
after B thinking tokens `</think>` is forced, and the answer gets ANSWER_TOKENS of its own.
The gate decides on unlimited thinking; the other budgets are reported per version.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from rl_loop.evaluate import ANSWER_TOKENS, budget_label
from rl_loop.tasks import FAMILIES, Task, build_validation
from runtime.verifiers.numeric import numeric_equal

REPORT_BUDGETS: tuple[int | None, ...] = (None, 16)  # None = unlimited (the gate's budget)


class ForceThinkEnd(LogitsProcessor):
    """Force `</think>` as the (budget+1)-th generated token of rows still thinking."""

    def __init__(self, budget: int, prompt_len: int, think_end_id: int):
        self.budget, self.prompt_len, self.think_end_id = budget, prompt_len, think_end_id

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        generated = input_ids[:, self.prompt_len:]
        if generated.shape[1] != self.budget:
            return scores
        thinking = ~(generated == self.think_end_id).any(dim=1)
        scores[thinking] = float("-inf")
        scores[thinking, self.think_end_id] = 0.0
        return scores


def gate_sample(n: int) -> list[Task]:
    """n // families validation tasks per family (the same sample every time; disjoint from
    training and from the reported held-out set)."""
    return build_validation(max(1, n // len(FAMILIES)))


@torch.no_grad()
def accuracy(model, tokenizer, tasks: list[Task], budget: int | None) -> float:
    """Greedy accuracy of `model` on `tasks` with at most `budget` thinking tokens."""
    was_training = model.training
    model.eval()
    tokenizer.padding_side = "left"
    think_end_id = tokenizer.convert_tokens_to_ids("</think>")
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": t.prompt}],
                                             add_generation_prompt=True, tokenize=False)
               for t in tasks]
    batch = tokenizer(prompts, return_tensors="pt", padding=True,
                      add_special_tokens=False).to(model.device)
    prompt_len = batch["input_ids"].shape[1]
    room = model.config.max_position_embeddings - prompt_len
    processors = LogitsProcessorList()
    if budget is not None:
        processors.append(ForceThinkEnd(budget, prompt_len, think_end_id))
    out = model.generate(**batch, do_sample=False, logits_processor=processors,
                         max_new_tokens=room if budget is None else
                         min(room, budget + 1 + ANSWER_TOKENS),
                         pad_token_id=tokenizer.pad_token_id)
    correct = 0
    for task, row in zip(tasks, out[:, prompt_len:].tolist()):
        answer = row[row.index(think_end_id) + 1:] if think_end_id in row else []
        correct += numeric_equal(tokenizer.decode(answer, skip_special_tokens=True), task.answer)
    model.train(was_training)
    return correct / len(tasks)


def accuracy_by_budget(model, tokenizer, tasks: list[Task],
                       budgets=REPORT_BUDGETS) -> dict[str, float]:
    """{"unlimited": .., "16": ..}: the gate's budget first."""
    return {budget_label(b): accuracy(model, tokenizer, tasks, b) for b in budgets}
