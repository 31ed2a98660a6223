"""The GRPO update: rows with advantages -> optimizer steps on the policy.

`GRPOUpdate.run(policy, rows, advantages)` takes `epochs` passes over the rows, each split into
`minibatches` optimizer steps (shuffled), every optimizer step in micro-batches whose
gradients accumulate (the loss stays a mean over every sampled token of its rows). Log-probs
come from `logprobs.token_logprobs` (chunked, no [B, T, V] logits) on the exact token ids the
server sampled; the weights that sampled each row (`Policy.sampler`: the served version, an
earlier one for a batch that spanned a promotion, or a staged adapter) give the behaviour
log-probs (truncated IS), and the served weights the KL reference; with more than one
optimizer step the ratio's denominator is the policy at the start of the step, so the clip
binds. With `replay_coef` > 0 every optimizer step adds the
likelihood of `replay_rows` verified-correct rows drawn from the trainer's replay buffer.
"""

from __future__ import annotations

import random

import torch
from torch.nn.utils.rnn import pad_sequence

from rl_loop.grpo import GRPOConfig, grpo_loss, replay_loss
from rl_loop.logprobs import token_logprobs
from rl_loop.policy import Policy
from rl_loop.samples import Sample


class GRPOUpdate:
    def __init__(self, objective: GRPOConfig, device: torch.device, pad_id: int,
                 temperature: float, micro_batch: int, logit_chunk: int, rng: random.Random):
        self.grpo, self.device, self.pad_id = objective, device, pad_id
        self.temperature, self.micro_batch, self.logit_chunk = temperature, micro_batch, logit_chunk
        self.rng = rng

    def logprobs(self, model, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """Log-probs of each next token at the sampling temperature: [B, T-1]."""
        with torch.autocast("cuda", torch.bfloat16, enabled=self.device.type == "cuda"):
            return token_logprobs(model, ids, attention, self.temperature, self.logit_chunk)

    def batch(self, rows: list[Sample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded ids, attention mask, and the mask of sampled completion tokens."""
        width = max(len(s.prompt_ids) + len(s.completion_ids) for s in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)   # [B, T]
        mask = torch.zeros((len(rows), width))                                # [B, T]
        attention = torch.zeros((len(rows), width), dtype=torch.long)         # [B, T]
        for i, s in enumerate(rows):
            seq = s.prompt_ids + s.completion_ids
            ids[i, : len(seq)] = torch.tensor(seq)
            attention[i, : len(seq)] = 1
            mask[i, len(s.prompt_ids): len(seq)] = torch.tensor(s.sampled_mask, dtype=torch.float)
        return ids.to(self.device), attention.to(self.device), mask.to(self.device)

    def run(self, policy: Policy, rows: list[Sample], advantages: list[float],
            replay: list[Sample] | None = None) -> dict:
        """Every optimizer step of one GRPO step; reports their mean and how many there were.
        `replay`: verified-correct rows to draw each optimizer step's replay rows from."""
        behaviour, reference, start = self._fixed_logprobs(policy, rows)
        order, steps = list(range(len(rows))), []
        for _ in range(self.grpo.epochs):
            if self.grpo.minibatches > 1:
                self.rng.shuffle(order)
            for chunk in (order[i::self.grpo.minibatches] for i in range(self.grpo.minibatches)):
                if chunk:  # more minibatches than rows: the extra ones are empty
                    steps.append(self._optimizer_step(
                        policy, [rows[i] for i in chunk], [advantages[i] for i in chunk],
                        [behaviour[i] for i in chunk], [reference[i] for i in chunk],
                        [start[i] for i in chunk] if start else None, replay or []))
        mean = {k: sum(s[k] for s in steps) / len(steps) for k in steps[0]}
        return mean | {"tokens": sum(sum(s.sampled_mask) for s in rows), "updates": len(steps)}

    def _fixed_logprobs(self, policy: Policy, rows: list[Sample]) -> tuple[list, list, list]:
        """Per-row log-probs that stay fixed through a step ([T_i - 1] each): under the weights
        that sampled the row (behaviour), under the served weights (the KL reference: the same
        unless a staged adapter sampled it) and, when the step takes several optimizer steps,
        under the policy at its start (else None)."""
        several = self.grpo.epochs * self.grpo.minibatches > 1
        behaviour, reference, start = [None] * len(rows), [None] * len(rows), [None] * len(rows)
        by_version: dict[str, list[int]] = {}
        for i, s in enumerate(rows):
            by_version.setdefault(s.version.split("->")[0], []).append(i)

        def fill(out: list, model, indices: list[int]) -> None:
            for first in range(0, len(indices), self.micro_batch):
                part = indices[first: first + self.micro_batch]
                ids, attention, _ = self.batch([rows[i] for i in part])
                values = self.logprobs(model, ids, attention)                      # [b, T-1]
                for j, i in enumerate(part):
                    out[i] = values[j, : len(rows[i].prompt_ids) + len(rows[i].completion_ids) - 1]

        with torch.no_grad():
            for version, indices in by_version.items():
                with policy.sampler(version) as sampler:
                    fill(behaviour, sampler, indices)
                if version in policy.staged and self.grpo.kl_coef > 0:
                    fill(reference, policy.served, indices)
                if several:
                    fill(start, policy.model, indices)
        reference = [r if r is not None else b for r, b in zip(reference, behaviour)]
        return behaviour, reference, (start if several else None)

    def _replay_step(self, policy: Policy, replay: list[Sample]) -> float:
        """Accumulate the gradient of replay_coef * NLL on rows drawn from `replay`; returns
        that loss."""
        if not (self.grpo.replay_coef > 0 and replay):
            return 0.0
        rows = self.rng.sample(replay, min(self.grpo.replay_rows, len(replay)))
        total, loss_sum = sum(sum(s.sampled_mask) for s in rows) or 1, 0.0
        for first in range(0, len(rows), self.micro_batch):
            ids, attention, mask = self.batch(rows[first: first + self.micro_batch])
            logprobs = self.logprobs(policy.model, ids, attention)                 # [b, T-1]
            loss, tokens = replay_loss(logprobs, mask[:, 1:])
            weighted = self.grpo.replay_coef * loss * tokens / total
            weighted.backward()
            loss_sum += weighted.item()
        return loss_sum

    def _optimizer_step(self, policy: Policy, rows: list[Sample], advantages: list[float],
                        behaviour: list, reference: list, start: list | None,
                        replay: list[Sample]) -> dict:
        total = sum(sum(s.sampled_mask) for s in rows) or 1
        policy.opt.zero_grad(set_to_none=True)
        replay_loss_value = self._replay_step(policy, replay)
        loss_sum, sums = 0.0, {"clip_fraction": 0.0, "kl": 0.0, "is_weight": 0.0}
        for first in range(0, len(rows), self.micro_batch):
            part = slice(first, first + self.micro_batch)
            ids, attention, mask = self.batch(rows[part])
            logprobs = self.logprobs(policy.model, ids, attention)                 # [b, T-1]
            behave = pad_sequence(behaviour[part], batch_first=True)               # [b, T-1]
            ref = pad_sequence(reference[part], batch_first=True)                  # [b, T-1]
            old = pad_sequence(start[part], batch_first=True) if start else logprobs.detach()
            loss, stats = grpo_loss(logprobs, old,
                                    torch.tensor(advantages[part], device=self.device),
                                    mask[:, 1:], self.grpo, behavior_logprobs=behave,
                                    ref_logprobs=ref)
            share = stats["tokens"] / total
            (loss * share).backward()
            loss_sum += loss.item() * share
            for key in sums:
                sums[key] += stats[key] * share
        torch.nn.utils.clip_grad_norm_(policy.model.parameters(), 1.0)
        policy.opt.step()
        policy.schedule.step()
        return sums | {"loss": loss_sum, "replay_loss": replay_loss_value}
