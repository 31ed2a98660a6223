"""The trainer's step on hand-made groups (no server): full fine-tuning and LoRA."""

from __future__ import annotations

import pytest
import torch

from rl_loop.tiny_model import chat_prompt_ids
from rl_loop.trainer import Sample, Trainer, TrainerConfig


def groups_for(trainer: Trainer) -> list[list[Sample]]:
    """One group with signal ("46" right, "47" wrong) and one without (all rewards equal)."""
    tok = trainer.tokenizer
    prompt = chat_prompt_ids(tok, [{"role": "user", "content": "What is 12+34?"}])

    def sample(answer: str, reward: float) -> Sample:
        ids = tok("2+4=6", add_special_tokens=False)["input_ids"] + \
            [trainer.think_end_id] + tok(answer, add_special_tokens=False)["input_ids"] + \
            [trainer.eos_id]
        return Sample(prompt, ids, [1] * len(ids), reward, "v0")
    return [[sample("46", 1.0), sample("47", 0.0)] * 2, [sample("46", 1.0)] * 4]


def logprob_of(trainer: Trainer, model, sample: Sample) -> float:
    ids, attention, mask = trainer._batch([sample])
    with torch.no_grad():
        return float((trainer._logprobs(model, ids, attention) * mask[:, 1:]).sum())


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_a_step_moves_probability_toward_the_rewarded_answer(tmp_path, lora_rank):
    trainer = Trainer(TrainerConfig(state_dir=tmp_path, gate_tasks=5, lr=1e-3, warmup_steps=1,
                                    lora_rank=lora_rank))
    groups = groups_for(trainer)
    good, bad = groups[0][0], groups[0][1]
    before = {k: v.clone() for k, v in trainer.served.state_dict().items()}
    good0, bad0 = logprob_of(trainer, trainer.model, good), logprob_of(trainer, trainer.model, bad)
    report = trainer.train_step(groups)
    assert trainer.step == 1 and report["loss"] is not None
    assert trainer.stats["dropped_groups"] == 1 and report["is_weight"] == pytest.approx(1.0)
    policy = trainer._merged()
    assert logprob_of(trainer, policy, good) > good0 and logprob_of(trainer, policy, bad) < bad0
    # the served copy (behaviour policy) is untouched until a promotion
    assert all(torch.equal(before[k], v) for k, v in trainer.served.state_dict().items())
    assert type(policy).__name__ == "Qwen2ForCausalLM"
    assert set(policy.state_dict()) == set(before)
    if lora_rank:
        trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
        assert trainable and all("lora_" in n for n in trainable)


def test_every_new_optimizer_warms_up(tmp_path):
    trainer = Trainer(TrainerConfig(state_dir=tmp_path, gate_tasks=5, lr=1e-3, warmup_steps=4))
    groups = groups_for(trainer)
    lrs = []
    for _ in range(5):
        lrs.append(trainer.opt.param_groups[0]["lr"])
        trainer.train_step(groups)
    assert lrs == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])
    trainer._fresh_policy()  # after a rejection: the served weights and a new warm-up
    assert trainer.opt.param_groups[0]["lr"] == pytest.approx(2.5e-4)
