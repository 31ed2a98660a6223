"""GRPO loss and advantages against hand-computed values."""

import math

import pytest
import torch

from rl_loop.grpo import GRPOConfig, group_advantages, grpo_loss, is_fresh


def test_group_advantages_scaled_and_unscaled():
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), eps=0.0)
    std = math.sqrt(1 / 3)  # unbiased std of [1, 0, 0, 1]
    assert torch.allclose(adv, torch.tensor([0.5, -0.5, -0.5, 0.5]) / std)
    dr = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), scale=False)
    assert torch.allclose(dr, torch.tensor([0.75, -0.25, -0.25, -0.25]))


def test_all_equal_groups_are_dropped():
    assert group_advantages(torch.tensor([1.0, 1.0, 1.0])) is None
    assert group_advantages(torch.tensor([0.0, 0.0])) is None


def one_token(logp, old, adv, cfg=GRPOConfig(), **kw):
    t = lambda x: torch.tensor([[x]], dtype=torch.float64)  # noqa: E731
    extra = {k: t(v) for k, v in kw.items()}
    return grpo_loss(t(logp), t(old), torch.tensor([adv], dtype=torch.float64),
                     torch.ones(1, 1), cfg, **extra)


def test_ratio_is_clipped_high_for_positive_advantage():
    loss, stats = one_token(math.log(1.5), 0.0, 1.0)
    assert loss.item() == pytest.approx(-1.28) and stats["clip_fraction"] == 1.0
    loss, stats = one_token(math.log(1.1), 0.0, 1.0)
    assert loss.item() == pytest.approx(-1.1) and stats["clip_fraction"] == 0.0


def test_ratio_is_clipped_low_for_negative_advantage():
    loss, stats = one_token(math.log(0.5), 0.0, -1.0)
    assert loss.item() == pytest.approx(0.8) and stats["clip_fraction"] == 1.0
    # a growing ratio on a negative advantage is never clipped (pessimistic bound)
    loss, _ = one_token(math.log(1.5), 0.0, -1.0)
    assert loss.item() == pytest.approx(1.5)


def test_truncated_importance_weight_for_stale_samples():
    # old/behavior = 3, capped at 2: the loss doubles
    loss, stats = one_token(0.0, 0.0, 1.0, behavior_logprobs=-math.log(3))
    assert loss.item() == pytest.approx(-2.0) and stats["is_weight"] == pytest.approx(2.0)
    loss, stats = one_token(0.0, 0.0, 1.0, behavior_logprobs=math.log(2))
    assert loss.item() == pytest.approx(-0.5)


def test_kl_k3_on_and_off():
    ref = math.log(0.5)
    off, stats_off = one_token(0.0, 0.0, 1.0, ref_logprobs=ref)
    on, stats_on = one_token(0.0, 0.0, 1.0, GRPOConfig(kl_coef=0.1), ref_logprobs=ref)
    k3 = 0.5 - math.log(0.5) - 1
    assert off.item() == pytest.approx(-1.0) and stats_off["kl"] == 0.0
    assert on.item() == pytest.approx(-1.0 + 0.1 * k3) and stats_on["kl"] == pytest.approx(k3)


def test_token_level_aggregation_and_mask():
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    loss, stats = grpo_loss(logp, logp, torch.tensor([1.0, -1.0]), mask, GRPOConfig())
    assert loss.item() == pytest.approx((-3 + 1) / 4) and stats["tokens"] == 4


def test_gradient_points_toward_positive_advantage():
    logp = torch.zeros(1, 1, requires_grad=True)
    loss, _ = grpo_loss(logp, torch.zeros(1, 1), torch.tensor([1.0]), torch.ones(1, 1), GRPOConfig())
    loss.backward()
    assert logp.grad.item() < 0  # gradient descent raises the log-prob


def test_staleness_bound():
    assert is_fresh(3, 5, 4) and is_fresh(1, 5, 4) and not is_fresh(0, 5, 4)


def test_trainer_takes_the_token_ids_the_server_reports():
    from rl_loop.trainer import samples_from_events
    from rlvr.v1 import reasoning_pb2 as pb

    tokens = pb.TokenTrace(prompt_ids=[1, 2], completion_ids=[7, 8, 9, 4, 5, 3],
                           injected=[False, False, True, True, False, False])
    events = [
        pb.GenerateEvent(delta=pb.Delta(index=0, channel=pb.CHANNEL_ANSWER, text="ignored")),
        pb.GenerateEvent(finished=pb.Finished(index=0, finish_reason=pb.FINISH_REASON_STOP,
                                              weight_version="v3", tokens=tokens,
                                              verification=pb.VerificationResult(reward=1.0))),
    ]
    (sample,) = samples_from_events(events)
    assert sample.completion_ids == [7, 8, 9, 4, 5, 3] and sample.prompt_ids == [1, 2]
    assert sample.sampled_mask == [1, 1, 0, 0, 1, 1]
    assert sample.reward == 1.0 and sample.version == "v3"
