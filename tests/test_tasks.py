"""Task generators: deterministic, correct references (checked independently), disjoint held-out set."""

import random
import re
from fractions import Fraction

import pytest

from rl_loop.toy import tasks


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


def test_large_heldout_file_is_fixed_balanced_and_disjoint_from_the_rest():
    """The benchmarks' 1,500 tasks: fixed by seed, 300 per family, all in the held-out bucket,
    none in the reported 300, none among the gate's built-in items (at the largest reserve)."""
    from rlvr import plugins
    from runtime.config import MODEL_DIR

    large = tasks.load_heldout(tasks.LARGE_HELDOUT_PATH)
    assert large == tasks.build_large_heldout() and len(large) == 1500
    assert {f: sum(t.family == f for t in large) for f in tasks.FAMILIES} == dict.fromkeys(
        tasks.FAMILIES, 300)
    prompts = {t.prompt for t in large}
    assert len(prompts) == 1500 and all(tasks.is_heldout(p) for p in prompts)
    assert not prompts & {t.prompt for t in tasks.load_heldout()}
    gate_items = plugins.load(MODEL_DIR, "validation_items")(5 * tasks.VALIDATION_RESERVE)
    assert not prompts & {i["prompt"] for i in gate_items}


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


@pytest.mark.heavy  # draws tens of thousands of tasks (`make test-fast` skips it)
def test_builtin_validation_items_lie_outside_training_and_the_reported_heldout_set():
    """The embedded model's plug-in: 100 tasks (20 per family) at unlimited thinking (decisive)
    and at 16 tokens (reported), the same every time, never trained on, never reported."""
    from rlvr import plugins
    from runtime.config import MODEL_DIR

    validation_items = plugins.load(MODEL_DIR, "validation_items")
    items = validation_items(100)
    assert items == validation_items(100) and len(items) == 200
    unlimited = [i for i in items if i["budget"] is None]
    assert all(i["decisive"] for i in unlimited) and not any(
        i["decisive"] for i in items if i["budget"] == 16)
    prompts = {i["prompt"] for i in unlimited}
    assert len(prompts) == 100 and all(tasks.is_heldout(p) for p in prompts)
    assert {f: sum(tasks.reference_for(p) is not None and any(
        t.prompt == p for t in tasks.build_validation(20) if t.family == f) for p in prompts)
        for f in tasks.FAMILIES} == dict.fromkeys(tasks.FAMILIES, 20)
    assert not prompts & {t.prompt for t in tasks.load_heldout()}
    assert all(tasks.reference_for(i["prompt"]) == i["spec"]["reference"] for i in items)


def test_training_examples_come_only_from_the_train_split():
    from rl_loop.toy import pretrain

    cfg = pretrain.PretrainConfig()
    rng = random.Random(1)
    heldout = {t.prompt for t in tasks.load_heldout()}
    for _ in range(3000):
        context, target = pretrain.make_example(rng, cfg)
        prompt = context.removeprefix("<|user|>").split("<|assistant|>")[0]
        assert prompt not in heldout and not tasks.is_heldout(prompt)
        assert target.endswith("<eos>") and "</think>" in target
