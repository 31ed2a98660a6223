"""The GRPO objective, on one screen.

For each prompt, G completions are sampled and rewarded by the runtime's verifiers. Each
completion's advantage is its reward relative to its group (no value network). The policy is
pushed toward high-advantage tokens with a PPO-style clipped ratio; the clip is asymmetric
("clip-higher", DAPO) so that unlikely-but-good tokens can still grow. Samples produced by an
older weight version than the trainer's get a truncated importance weight (the runtime serves
while the trainer learns, so samples can lag), and samples older than `max_staleness`
versions are dropped. A KL penalty to the served version (k3 estimator) is off by default.
With `epochs` or `minibatches` above 1 a step takes several optimizer steps against the
log-probs at its start, so the ratio moves and the clip matters (with one, the ratio is 1).
Losses are averaged over tokens, not sequences (long answers are not down-weighted).
Replay (`replay_coef` > 0): every optimizer step also takes the likelihood of a few
verified-correct samples kept from earlier groups, including groups whose rewards were all
1 (no GRPO signal, dropped above): loss += replay_coef * mean NLL of their sampled tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlvr.settings import setting


@dataclass
class GRPOConfig:
    """The objective's settings; `rlvr train` has a flag for each (`--clip-low`, ...)."""

    clip_low: float = setting(0.2, "PPO clip: ratio floor 1 - clip_low", minimum=0.0)
    clip_high: float = setting(0.28, "PPO clip: ratio ceiling 1 + clip_high (clip-higher, DAPO)",
                              minimum=0.0)
    scale_rewards: bool = setting(True, "divide advantages by the group's reward std "
                                       "(--no-scale-rewards = Dr. GRPO)")
    kl_coef: float = setting(0.0, "> 0 adds kl_coef * k3 KL to the served (gated) version",
                            minimum=0.0)
    is_cap: float = setting(2.0, "cap of the truncated importance weight (behaviour = served)",
                           minimum=1.0)
    max_staleness: int = setting(1, "drop samples more than this many promotions old (the trainer "
                                   "keeps a copy of each such version's weights)", minimum=0)
    epochs: int = setting(1, "passes over each step's batch (> 1: the ratio moves, the clip binds)",
                         minimum=1)
    minibatches: int = setting(1, "optimizer steps per pass (the batch split evenly, shuffled)",
                              minimum=1)
    replay_coef: float = setting(0.0, "> 0 adds replay_coef * NLL of verified-correct samples "
                                     "replayed from earlier groups", minimum=0.0)
    replay_rows: int = setting(16, "verified-correct rows replayed per optimizer step", minimum=1)


def group_advantages(rewards: torch.Tensor, scale: bool = True,
                     eps: float = 1e-4) -> torch.Tensor | None:
    """Rewards of one group -> advantages; None when all rewards are equal (no signal)."""
    if torch.all(rewards == rewards[0]):
        return None
    advantages = rewards - rewards.mean()
    return advantages / (rewards.std() + eps) if scale else advantages


def is_fresh(sample_version: int, trainer_version: int, max_staleness: int) -> bool:
    """Whether a sample from `sample_version` may train the `trainer_version` policy."""
    return trainer_version - sample_version <= max_staleness


def replay_loss(logprobs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Mean negative log-likelihood of the sampled tokens of verified-correct rows.

    logprobs: [B, T] log-probs of the tokens under the policy being trained
    mask:     [B, T] 1 for the sampled completion tokens
    """
    mask = mask.to(logprobs.dtype)
    tokens = mask.sum().clamp(min=1)
    return -(logprobs * mask).sum() / tokens, int(mask.sum())


def grpo_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
              mask: torch.Tensor, cfg: GRPOConfig,
              behavior_logprobs: torch.Tensor | None = None,
              ref_logprobs: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """Token-level clipped policy-gradient loss.

    logprobs:          [B, T] log-probs of the sampled tokens under the policy being trained
    old_logprobs:      [B, T] the same under the policy at the start of this update (no grad)
    advantages:        [B]    one advantage per completion
    mask:              [B, T] 1 for completion tokens that count, 0 for prompt and padding
    behavior_logprobs: [B, T] under the weights that generated the samples, if older
    ref_logprobs:      [B, T] under the reference policy (only used when kl_coef > 0)
    """
    mask = mask.to(logprobs.dtype)
    ratio = torch.exp(logprobs - old_logprobs)
    adv = advantages.unsqueeze(1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - cfg.clip_low, 1 + cfg.clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    is_weight = torch.ones_like(logprobs)
    if behavior_logprobs is not None:
        is_weight = torch.exp(old_logprobs - behavior_logprobs).clamp(max=cfg.is_cap).detach()
        per_token = per_token * is_weight
    kl = torch.zeros_like(logprobs)
    if cfg.kl_coef > 0 and ref_logprobs is not None:
        log_r = ref_logprobs - logprobs
        kl = torch.exp(log_r) - log_r - 1  # k3: unbiased, always >= 0
        per_token = per_token + cfg.kl_coef * kl
    tokens = mask.sum().clamp(min=1)
    loss = (per_token * mask).sum() / tokens
    was_clipped = ((ratio < 1 - cfg.clip_low) & (adv < 0)) | ((ratio > 1 + cfg.clip_high) & (adv > 0))
    stats = {
        "clip_fraction": float((was_clipped.to(mask.dtype) * mask).sum() / tokens),
        "kl": float((kl.detach() * mask).sum() / tokens),
        "is_weight": float((is_weight * mask).sum() / tokens),
        "tokens": int(mask.sum()),
    }
    return loss, stats
