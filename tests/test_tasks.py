"""Task generators: deterministic, correct references (checked independently), disjoint held-out set."""

import random
import re
from fractions import Fraction

import pytest

from rl_loop import tasks


def independent_answer(prompt: str) -> Fraction:
    """Solve a prompt with Python's own arithmetic, without the generators' code."""
    if m := re.fullmatch(r"What is (\d+)([+*-])(\d+)\?", prompt):
        a, op, b = int(m[1]), m[2], int(m[3])
        return Fraction({"+": a + b, "-": a - b, "*": a * b}[op])
    if m := re.fullmatch(r"Which is bigger, ([\d.]+) or ([\d.]+)\?", prompt):
        return max(Fraction(m[1]), Fraction(m[2]))
    if m := re.fullmatch(r"Solve (\d+)\*x([+-])(\d+)=(\d+) for x\.", prompt):
        a, sign, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        return Fraction(c - b if sign == "+" else c + b, a)
    raise AssertionError(f"unrecognised prompt {prompt!r}")


@pytest.mark.parametrize("family", list(tasks.FAMILIES))
def test_references_are_correct(family):
    rng = random.Random(7)
    for _ in range(400):
        task = tasks.sample_task(rng, family)
        assert Fraction(task.answer) == independent_answer(task.prompt), task
        assert task.verifier == "numeric"


@pytest.mark.parametrize("family", list(tasks.FAMILIES))
def test_trace_ends_with_the_answer(family):
    """The last line of every complete trace carries the answer (as written or stripped)."""
    rng = random.Random(3)
    for _ in range(300):
        task = tasks.sample_task(rng, family)
        last = task.thinking.rstrip("\n").rsplit("\n", 1)[-1]
        assert Fraction(re.split(r"[=,]", last)[-1]) == Fraction(task.answer), task


def test_generators_are_deterministic():
    for family in tasks.FAMILIES:
        a = [tasks.sample_task(random.Random(11), family) for _ in range(3)]
        b = [tasks.sample_task(random.Random(11), family) for _ in range(3)]
        assert a == b


@pytest.mark.parametrize("family", list(tasks.FAMILIES))
def test_thinking_grows_with_difficulty(family):
    generator, difficulties = tasks.FAMILIES[family]
    rng = random.Random(5)
    means = [sum(len(generator(rng, d).thinking) for _ in range(200)) / 200 for d in difficulties]
    assert means == sorted(means) and means[-1] > means[0] * 1.3, means


def test_heldout_file_is_fixed_by_seed_and_balanced():
    committed = tasks.load_heldout()
    assert committed == tasks.build_heldout()
    counts = {f: sum(t.family == f for t in committed) for f in tasks.FAMILIES}
    assert set(counts.values()) == {60}
    assert len({t.prompt for t in committed}) == len(committed)


def test_heldout_is_disjoint_from_training():
    """Held-out prompts lie in the reserved hash bucket, which the training sampler never yields."""
    heldout = {t.prompt for t in tasks.load_heldout()}
    assert all(tasks.is_heldout(p) for p in heldout)
    rng = random.Random(0)
    for family in tasks.FAMILIES:
        for _ in range(4000):
            prompt = tasks.sample_task(rng, family, split="train").prompt
            assert not tasks.is_heldout(prompt)
            assert prompt not in heldout


def test_gate_sample_is_validation_data_outside_the_reported_heldout_set():
    from rl_loop.gate import gate_sample

    sample = gate_sample(100)
    assert sample == gate_sample(100) and len({t.prompt for t in sample}) == 100
    assert {f: sum(t.family == f for t in sample) for f in tasks.FAMILIES} == \
        dict.fromkeys(tasks.FAMILIES, 20)
    assert all(tasks.is_heldout(t.prompt) for t in sample)  # never drawn for training
    assert not {t.prompt for t in sample} & {t.prompt for t in tasks.load_heldout()}


def test_training_examples_come_only_from_the_train_split():
    from rl_loop import pretrain

    cfg = pretrain.PretrainConfig()
    rng = random.Random(1)
    heldout = {t.prompt for t in tasks.load_heldout()}
    for _ in range(3000):
        context, target = pretrain.make_example(rng, cfg)
        prompt = context.removeprefix("<|user|>").split("<|assistant|>")[0]
        assert prompt not in heldout and not tasks.is_heldout(prompt)
        assert target.endswith("<eos>") and "</think>" in target
