"""The promotion gate: a paired comparison of candidate and served weights on validation items.

Validation items come from the deployment's own traffic (a stable hash slice of trusted
verified prompts, never trained on) and from the model folder's `validation_items` plug-in
(the embedded model's built-in tasks). Each item keeps its own verifier spec, thinking budget
and answer limit. Full-weights candidates are scored in transformers, bounded the way serving
bounds it (at most the budget, then `</think>` is forced, then the answer limit), greedy, for
both sides alike. An adapter candidate that the server can serve is scored through the engine
instead (`score_in_engine`): staged beside the served version, both asked as greedy shadow
requests below users' priority, exactly as users get answers (wrap-up policy included), while
training goes on.

The rule: with d_i = reward(candidate) - reward(served) on the same decisive items, reject
when mean(d) + z * stderr(d) < 0 (the candidate is worse beyond noise: one-sided test at
z = 1.645, 95%); fewer than `min_items` decisive items: no promotion ("too few validation
items"). A 1-2 point difference on 100 items is therefore never decided by a lucky draw.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from runtime.budget import budget_label
from runtime.chat_format import ChatFormat
from runtime.verifiers import check
from runtime.verifiers.base import VerificationSpec

if TYPE_CHECKING:
    from rl_loop.policy import Candidate

BATCH = 32


@dataclass(frozen=True)
class ValidationItem:
    prompt: str
    spec: dict = field(hash=False, compare=False)  # VerificationSpec fields
    budget: int | None = None       # thinking budget; None = unlimited (capped by max_budget)
    answer_tokens: int = 32
    decisive: bool = True           # counts in the decision (False: reported only)
    source: str = "traffic"
    key: str = ""                   # identity (prompt, spec, budget) for caching scores

    @classmethod
    def make(cls, prompt: str, spec: dict, budget: int | None, answer_tokens: int = 32,
             decisive: bool = True, source: str = "traffic") -> "ValidationItem":
        key = hashlib.sha256(repr((prompt, sorted(spec.items()), budget,
                                   answer_tokens)).encode()).hexdigest()[:16]
        return cls(prompt, spec, budget, answer_tokens, decisive, source, key)


def is_validation(prompt: str, share: float) -> bool:
    """Stable hash slice: the same prompt is always on the same side, in every process."""
    bucket = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big") % 10_000
    return bucket < share * 10_000


class ForceThinkEnd(LogitsProcessor):
    """Serving's thinking rules for greedy rows still thinking: `</think>` is forced as the
    (budget+1)-th generated token, and an end of sequence chosen while thinking closes
    thinking instead (the runtime writes `</think>` there and the answer follows)."""

    def __init__(self, budget: int, prompt_len: int, think_end_id: int,
                 eos_ids: frozenset[int] = frozenset()):
        self.budget, self.prompt_len, self.think_end_id = budget, prompt_len, think_end_id
        self.eos_ids = sorted(eos_ids)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        generated = input_ids[:, self.prompt_len:]
        thinking = ~(generated == self.think_end_id).any(dim=1)                    # [B]
        close = thinking if generated.shape[1] == self.budget else thinking & torch.isin(
            scores.argmax(dim=-1), torch.tensor(self.eos_ids, device=scores.device))
        scores[close] = float("-inf")
        scores[close, self.think_end_id] = 0.0
        return scores


def _answer(row: list[int], fmt: ChatFormat, limit: int) -> list[int]:
    """The answer ids of one generated row: after `</think>`, up to an end id, at most limit."""
    if fmt.think_end_id is not None:
        if fmt.think_end_id not in row:
            return []
        row = row[row.index(fmt.think_end_id) + 1:]
    end = next((i for i, t in enumerate(row) if t in fmt.eos_ids), len(row))
    return row[:min(end, limit)]


@torch.no_grad()
def _score_batch(model, fmt: ChatFormat, items: list[ValidationItem], budget: int) -> list[float]:
    """Rewards of items sharing one effective budget, greedy, in one left-padded batch."""
    prompts = [fmt.prompt_ids([{"role": "user", "content": i.prompt}]) for i in items]
    if budget == 0 and fmt.think_end_id is not None:
        prompts = [p + [fmt.think_end_id] for p in prompts]
    width = max(map(len, prompts))
    pad = fmt.tokenizer.pad_token_id if fmt.tokenizer.pad_token_id is not None \
        else min(fmt.eos_ids)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=model.device)
    attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts],
                             device=model.device)
    answer = max(i.answer_tokens for i in items)
    thinking = fmt.think_end_id is not None and budget > 0
    room = model.config.max_position_embeddings - width
    processors = LogitsProcessorList(
        [ForceThinkEnd(budget, width, fmt.think_end_id, fmt.eos_ids)] if thinking else [])
    out = model.generate(input_ids=ids, attention_mask=attention, do_sample=False,
                         logits_processor=processors, pad_token_id=pad,
                         max_new_tokens=max(1, min(room, (budget + 1 if thinking else 0) + answer)),
                         eos_token_id=sorted(fmt.eos_ids))
    rewards = []
    for item, row in zip(items, out[:, width:].tolist()):
        if budget == 0 and fmt.think_end_id is not None:
            row = [fmt.think_end_id] + row
        text = fmt.tokenizer.decode(_answer(row, fmt, item.answer_tokens), skip_special_tokens=True)
        rewards.append(check(text, VerificationSpec(**item.spec)).reward)
    return rewards


def score(model, fmt: ChatFormat, items: list[ValidationItem], max_budget: int) -> dict[str, float]:
    """item key -> reward of `model` on every item."""
    was_training = model.training
    model.eval()
    by_budget: dict[int, list[ValidationItem]] = {}
    for item in items:
        by_budget.setdefault(min(max_budget, item.budget if item.budget is not None
                                 else max_budget), []).append(item)
    rewards: dict[str, float] = {}
    for budget, group in by_budget.items():
        for start in range(0, len(group), BATCH):
            chunk = group[start:start + BATCH]
            rewards |= {i.key: r for i, r in zip(chunk, _score_batch(model, fmt, chunk, budget))}
    model.train(was_training)
    return rewards


async def score_in_engine(client, items: list[ValidationItem], adapter: str = "",
                          concurrency: int = 16) -> dict[str, float]:
    """Rewards as users get them, through the runtime: greedy shadow requests (scheduled below
    users) with each item's spec, thinking budget (none: the server's default) and answer
    limit, verified by the runtime's own verifiers; `adapter`: a staged adapter (a candidate),
    else the served weights."""
    limit = asyncio.Semaphore(concurrency)

    async def one(item: ValidationItem) -> tuple[str, float]:
        async with limit:
            result = await client.ask(item.prompt, budget=item.budget, spec=item.spec,
                                      max_answer_tokens=item.answer_tokens, shadow=True,
                                      adapter=adapter, temperature=0.0, hide_thinking=True)
        return item.key, float(result.verification["reward"]) if result.verification else 0.0
    return dict(await asyncio.gather(*(one(item) for item in items)))


def accuracy_by_budget(items: list[ValidationItem], rewards: dict[str, float],
                       source: str) -> dict[str, float]:
    """Mean reward per budget label ("unlimited", "16", ...) of the items from one source."""
    groups: dict[str, list[float]] = {}
    for item in items:
        if item.source == source:
            groups.setdefault(budget_label(item.budget), []).append(rewards[item.key])
    return {label: sum(r) / len(r) for label, r in groups.items()}


@dataclass
class Decision:
    promote: bool
    reason: str
    candidate: float   # mean reward on the decisive items
    served: float
    stderr: float
    items: int


def decide(items: list[ValidationItem], candidate: dict[str, float], served: dict[str, float],
           z: float, min_items: int) -> Decision:
    """The paired rule of the module docstring."""
    decisive = [i for i in items if i.decisive]
    n = len(decisive)
    if n < min_items:
        return Decision(False, f"too few validation items ({n} < {min_items})", 0.0, 0.0, 0.0, n)
    diffs = [candidate[i.key] - served[i.key] for i in decisive]
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / max(1, n - 1)
    stderr = math.sqrt(var / n)
    cand, base = (sum(candidate[i.key] for i in decisive) / n,
                  sum(served[i.key] for i in decisive) / n)
    if mean + z * stderr < 0:
        return Decision(False, f"worse beyond noise: {cand:.3f} vs served {base:.3f} on {n} "
                        f"paired items (diff {mean:+.3f}, stderr {stderr:.3f}, z {z})",
                        cand, base, stderr, n)
    return Decision(True, f"{cand:.3f} vs served {base:.3f} on {n} paired items "
                    f"(diff {mean:+.3f}, stderr {stderr:.3f})", cand, base, stderr, n)


@dataclass
class GateJob:
    """A candidate on its way through the gate: frozen weights in, decision and scores out."""

    version: str
    parent: str
    served: torch.nn.Module
    candidate: Candidate
    items: list
    decision: Decision | None = None
    scores: dict | None = None
    by_budget: dict | None = None
    gate_path: str = "transformers"  # or "engine": where both sides were scored
