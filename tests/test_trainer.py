"""The trainer's step on hand-made groups (no server): full fine-tuning and LoRA."""

from __future__ import annotations

import time

import pytest
import torch

from rl_loop.toy.tasks import add_trace
from rl_loop.toy.tiny_model import chat_prompt_ids
from runtime.config import MODEL_DIR
from rl_loop.grpo import GRPOConfig
from rl_loop.trainer import Sample, Trainer, TrainerConfig

pytestmark = pytest.mark.heavy  # trains the tiny model (`make test-fast` skips it)


def groups_for(trainer: Trainer) -> list[list[Sample]]:
    """One group with signal ("46" right, "47" wrong) and one without (all rewards equal)."""
    tok = trainer.tokenizer
    prompt = chat_prompt_ids(tok, [{"role": "user", "content": "What is 12+34?"}])

    def sample(answer: str, reward: float) -> Sample:
        ids = tok(add_trace(12, 34)[0], add_special_tokens=False)["input_ids"] + \
            [trainer.format.think_end_id] + tok(answer, add_special_tokens=False)["input_ids"] + \
            [tok.eos_token_id]
        return Sample(prompt, ids, [1] * len(ids), reward, "v0")
    return [[sample("46", 1.0), sample("47", 0.0)] * 2, [sample("46", 1.0)] * 4]


def logprob_of(trainer: Trainer, model, sample: Sample) -> float:
    ids, attention, mask = trainer.update.batch([sample])
    with torch.no_grad():
        return float((trainer.update.logprobs(model, ids, attention) * mask[:, 1:]).sum())


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_a_step_moves_probability_toward_the_rewarded_answer(tmp_path, lora_rank):
    trainer = Trainer(TrainerConfig(base_model=MODEL_DIR, state_dir=tmp_path, gate_tasks=5, lr=1e-3, warmup_steps=1,
                                    lora_rank=lora_rank))
    groups = groups_for(trainer)
    good, bad = groups[0][0], groups[0][1]
    before = {k: v.clone() for k, v in trainer.policy.served.state_dict().items()}
    good0 = logprob_of(trainer, trainer.policy.model, good)
    bad0 = logprob_of(trainer, trainer.policy.model, bad)
    report = trainer.train_step(groups)
    assert trainer.step == 1 and report["loss"] is not None
    assert trainer.stats["dropped_groups"] == 1 and report["is_weight"] == pytest.approx(1.0)
    policy = trainer.policy.merged()
    assert logprob_of(trainer, policy, good) > good0 and logprob_of(trainer, policy, bad) < bad0
    # the served copy (behaviour policy) is untouched until a promotion
    assert all(torch.equal(before[k], v) for k, v in trainer.policy.served.state_dict().items())
    assert type(policy).__name__ == "Qwen2ForCausalLM"
    assert set(policy.state_dict()) == set(before)
    if lora_rank:
        trainable = [n for n, p in trainer.policy.model.named_parameters() if p.requires_grad]
        assert trainable and all("lora_" in n for n in trainable)


def test_every_new_optimizer_warms_up(tmp_path):
    trainer = Trainer(TrainerConfig(base_model=MODEL_DIR, state_dir=tmp_path, gate_tasks=5, lr=1e-3, warmup_steps=4))
    groups = groups_for(trainer)
    lrs = []
    for _ in range(5):
        lrs.append(trainer.policy.opt.param_groups[0]["lr"])
        trainer.train_step(groups)
    assert lrs == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])
    trainer.policy.fresh()  # after a rejection: the served weights and a new warm-up
    assert trainer.policy.opt.param_groups[0]["lr"] == pytest.approx(2.5e-4)


def test_adapter_versions_publish_the_adapter_and_resume_from_it(tmp_path):
    """Against a server that serves LoRA adapters: a candidate is the adapter alone (relative
    to the base), a promoted adapter is what training continues from, also after a restart."""
    trainer = Trainer(TrainerConfig(base_model=MODEL_DIR, state_dir=tmp_path, gate_tasks=5, lr=1e-3, warmup_steps=1,
                                    lora_rank=4))
    assert not trainer.policy.serve_adapters(0)       # the server cannot: merged weights
    assert trainer.policy.serve_adapters(8)           # rank 4 <= 8: adapters
    trainer.train_step(groups_for(trainer))
    candidate = trainer.policy.snapshot(trainer.step)
    merged = candidate.merged
    store = trainer.checkpoints
    folder = store.publish(lambda f: trainer.policy.write(f, trainer.tokenizer, candidate), "v1",
                           parent="v0", step=1, adapter_base=trainer.policy.base_version)
    assert (folder / "adapter_config.json").is_file() and not (folder / "model.safetensors").exists()
    assert store.manifest("v1").adapter_base == "v0"
    assert store.manifest("v1").weights == ["adapter_model.safetensors"]
    # what the benchmarks score: the adapter merged into its base, a folder vLLM can load
    from transformers import AutoModelForCausalLM

    from rl_loop.toy.evaluate import full_weights
    scored = full_weights(store, "v1", MODEL_DIR, tmp_path / "merged")
    assert full_weights(store, "v0", MODEL_DIR, tmp_path / "merged") == MODEL_DIR
    assert (scored / "tokenizer.json").is_file() and (scored / "chat_template.jinja").is_file()
    reloaded = AutoModelForCausalLM.from_pretrained(scored).state_dict()
    for name, value in merged.state_dict().items():
        assert torch.allclose(reloaded[name], value, atol=1e-6), name
    trainer.policy.accept(candidate, "v1")
    store.record_promotion("v1")
    trainer.train_step(groups_for(trainer))  # training goes on from the promoted adapter
    assert trainer.policy.base_version == "v0"

    restarted = Trainer(TrainerConfig(base_model=MODEL_DIR, state_dir=tmp_path, gate_tasks=5, lora_rank=4))
    assert restarted.version == "v1" and restarted.policy.publish_adapters
    for name, value in merged.state_dict().items():  # served = base + the v1 adapter
        assert torch.allclose(restarted.policy.served.state_dict()[name], value, atol=1e-6)
    fresh = restarted.policy.merged()  # the new policy starts at the served adapter
    assert all(torch.allclose(fresh.state_dict()[k], v, atol=1e-6)
               for k, v in merged.state_dict().items())


def test_micro_batches_accumulate_to_the_same_step(tmp_path):
    """Gradient accumulation over micro-batches of 1 row gives the step of one full batch."""
    weights = []
    for micro_batch in (8, 1):
        torch.manual_seed(0)
        trainer = Trainer(TrainerConfig(base_model=MODEL_DIR, state_dir=tmp_path / str(micro_batch),
                                        gate_tasks=0, lr=1e-3, warmup_steps=1,
                                        micro_batch=micro_batch))
        report = trainer.train_step(groups_for(trainer))
        weights.append((report["loss"], trainer.policy.model.lm_head.weight.detach().clone()))
    (loss_full, full), (loss_micro, micro) = weights
    assert loss_full == pytest.approx(loss_micro, abs=1e-6)
    assert torch.allclose(full, micro, atol=1e-6)


def test_too_few_validation_items_publish_nothing_and_say_why(tmp_path):
    import asyncio

    trainer = Trainer(TrainerConfig(base_model=MODEL_DIR, state_dir=tmp_path, gate_tasks=0,
                                    min_validation=20))
    outcome = asyncio.run(trainer.publish_and_gate(client=None))  # never reaches the server
    assert outcome.startswith("no promotion: too few validation items (0 < 20)")
    assert trainer.stats["gate"] == outcome and trainer.checkpoints.versions() == []


@pytest.mark.parametrize("epochs,minibatches", [(1, 1), (4, 1), (2, 2)])
def test_several_updates_per_step_make_the_ratio_move_and_the_clip_bind(tmp_path, epochs,
                                                                       minibatches):
    trainer = Trainer(TrainerConfig(base_model=MODEL_DIR, state_dir=tmp_path, gate_tasks=0,
                                    lr=1e-2, warmup_steps=0, objective=GRPOConfig(
                                        epochs=epochs, minibatches=minibatches, kl_coef=0.1)))
    report = trainer.train_step(groups_for(trainer))
    assert report["updates"] == epochs * minibatches and trainer.step == 1
    if epochs == 1 and minibatches == 1:  # one optimizer step from the served weights
        assert report["clip_fraction"] == 0 and report["kl"] == 0
    else:  # later optimizer steps see a policy that moved from the start and the served one
        assert report["clip_fraction"] > 0 and report["kl"] > 0
    assert report["tokens"] == sum(sum(s.sampled_mask) for s in groups_for(trainer)[0])


def test_grpo_settings_are_flags_of_rlvr_train():
    import argparse

    from rl_loop import trainer_config

    parser = argparse.ArgumentParser()
    trainer_config.add_arguments(parser)
    cfg = trainer_config.from_args(parser.parse_args(
        ["--epochs", "3", "--minibatches", "2", "--no-scale-rewards", "--kl-coef", "0.05",
         "--is-cap", "1.5", "--clip-high", "0.3", "--group-size", "4"]))
    assert cfg.objective == GRPOConfig(epochs=3, minibatches=2, scale_rewards=False,
                                       kl_coef=0.05, is_cap=1.5, clip_high=0.3)
    assert cfg.group_size == 4 and not cfg.pipeline and cfg.objective.replay_coef == 0
    cfg = trainer_config.from_args(parser.parse_args(
        ["--pipeline", "--replay-coef", "0.5", "--replay-rows", "8", "--replay-buffer", "64"]))
    assert cfg.pipeline and cfg.replay_buffer == 64
    assert (cfg.objective.replay_coef, cfg.objective.replay_rows) == (0.5, 8)
    assert (cfg.stage_every, cfg.lora_lr_scale) == (1, 10.0)  # defaults: stage every step
    cfg = trainer_config.from_args(parser.parse_args(["--stage-every", "0", "--lora-lr-scale", "4"]))
    assert (cfg.stage_every, cfg.lora_lr_scale) == (0, 4.0)
    for bad in (["--epochs", "0"], ["--replay-rows", "0"], ["--replay-coef", "-1"],
                ["--stage-every", "-1"], ["--lora-lr-scale", "-2"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)  # below its minimum: a usage error


def test_the_phase_clock_accounts_for_the_loop():
    from rl_loop.phases import PHASES, PhaseClock

    clock = PhaseClock()
    with clock.time("training"):
        time.sleep(0.01)
    report = clock.report()
    assert set(report["phase_seconds"]) == set(PHASES)
    assert report["phase_seconds"]["training"] >= 0.01
    assert sum(report["phase_share"].values()) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError, match="unknown phase"):
        with clock.time("thinking"):
            pass


def test_verified_correct_rows_are_replayed_with_a_likelihood_loss(tmp_path):
    """Correct rows, also of all-correct groups that carry no GRPO signal, fill the replay
    buffer; with replay_coef > 0 each optimizer step also raises their likelihood."""
    results = {}
    for coef in (0.0, 1.0):
        torch.manual_seed(0)
        trainer = Trainer(TrainerConfig(base_model=MODEL_DIR, state_dir=tmp_path / str(coef),
                                        gate_tasks=0, lr=1e-3, warmup_steps=1,
                                        objective=GRPOConfig(replay_coef=coef, replay_rows=4)))
        groups = groups_for(trainer)
        correct = groups[1][0]                      # from the all-correct group (no signal)
        before = logprob_of(trainer, trainer.policy.model, correct)
        report = trainer.train_step(groups)
        assert len(trainer.replay) == 6             # 2 correct of the first group, 4 of the second
        assert all(s.reward == 1.0 for s in trainer.replay)
        results[coef] = (report["replay_loss"], logprob_of(trainer, trainer.policy.model,
                                                           correct) - before)
    assert results[0.0][0] == 0.0 and results[1.0][0] > 0.0
    assert results[1.0][1] > results[0.0][1]  # replay pushed the correct answer up further
