"""The trainer's prompt pool: bounded, newest kept, drawn where groups carry signal."""

from __future__ import annotations

import random

import pytest

from rl_loop.prompt_pool import FLOOR, PromptPool
from rlvr.store.traces import ThinkingOptions


def item(name: str, budget: int | None = None):
    return (name, {"kind": "numeric", "reference": "1"}, ThinkingOptions(budget=budget))


def draws(pool: PromptPool, rounds: int = 2000) -> dict[str, int]:
    rng, counts = random.Random(0), {}
    for _ in range(rounds):
        for prompt, _, _ in pool.sample(1, rng):
            counts[prompt] = counts.get(prompt, 0) + 1
    return counts


def test_prompts_with_signal_are_drawn_most_and_the_others_still_sometimes():
    pool = PromptPool(10)
    for name in ("mixed", "solved", "hopeless", "new"):
        pool.add(item(name))
    pool.record(item("mixed"), [1, 0, 1, 0, 0, 1, 0, 1])
    pool.record(item("solved"), [1] * 8)
    pool.record(item("hopeless"), [0] * 8)
    assert pool.weight(item("mixed")) == pytest.approx(1.0)
    for name in ("solved", "hopeless"):  # Beta(1, 1) means 9/10 and 1/10
        assert pool.weight(item(name)) == pytest.approx(4 * 0.9 * 0.1)
    counts = draws(pool)
    assert counts["mixed"] > 2 * counts["solved"] and counts["new"] > 2 * counts["hopeless"]
    assert counts["solved"] > 0 and counts["hopeless"] > 0  # retried as the policy moves
    many = PromptPool(10)
    many.add(item("solved"))
    many.record(item("solved"), [1] * 200)
    assert many.weight(item("solved")) == FLOOR


def test_newer_evidence_outweighs_older():
    pool = PromptPool(10)
    pool.add(item("p"))
    pool.record(item("p"), [1] * 8)      # solved once ...
    pool.record(item("p"), [0, 1] * 4)   # ... then mixed: mostly the new group counts
    assert pool.weight(item("p")) > 0.9


def test_the_pool_is_bounded_keeps_the_newest_and_tells_budgets_apart():
    pool = PromptPool(3)
    for i in range(5):
        pool.add(item(f"p{i}"), reward=1.0)
    assert [p for p, _, _ in pool] == ["p2", "p3", "p4"]
    pool.add(item("p2"), reward=0.0)     # seen again: now the newest, with both verdicts
    assert [p for p, _, _ in pool] == ["p3", "p4", "p2"]
    assert pool.weight(item("p2")) == pytest.approx(1.0)  # one right, one wrong: p = 1/2
    pool.add(item("p2", budget=16))      # another budget is another entry
    assert len(pool) == 3 and [p for p, _, _ in pool] == ["p4", "p2", "p2"]
    pool.record(item("gone"), [1.0])     # a prompt that left the pool: ignored


def test_uniform_draws_when_not_weighted():
    pool = PromptPool(10, weighted=False)
    for name in ("mixed", "solved"):
        pool.add(item(name))
    pool.record(item("solved"), [1] * 8)
    counts = draws(pool)
    assert abs(counts["mixed"] - counts["solved"]) < 200
    assert len(pool.sample(5, random.Random(0))) == 2  # never more than the pool holds
