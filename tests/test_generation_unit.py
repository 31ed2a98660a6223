"""The budget/generation loop against a scripted fake engine (fast; no vLLM)."""

from __future__ import annotations

import asyncio
import random

import pytest

from rl_loop.toy import tiny_model
from runtime import generation as gen
from runtime.budget import InvalidRequest, make_plan, resolve_budget

TOKENIZER = tiny_model.build_tokenizer()
VOCAB = TOKENIZER.get_vocab()
THINK_END, EOS = VOCAB["</think>"], VOCAB["<eos>"]


def ids(text: str) -> list[int]:
    return TOKENIZER(text, add_special_tokens=False)["input_ids"]


class ScriptedEngine:
    """Thinks `think_len` tokens of 'a' (counting from the last `<think>` or continuation),
    closes, answers `answer` and ends; records every engine request it gets."""

    tokenizer = TOKENIZER
    weight_version = "fake"
    think_end_id, eos_ids = THINK_END, frozenset({EOS})

    def __init__(self, think_len: int, answer: str = "42", end_token: int = THINK_END,
                 chunk: int = 1):
        self.think_len, self.answer, self.end_token = think_len, answer, end_token
        self.chunk = chunk  # tokens per engine output (vLLM merges outputs under load)
        self.requests: list[tuple[list[int], int]] = []

    def sampling_params(self, *, max_tokens, **_):
        return max_tokens

    async def stream(self, prompt_ids, max_tokens, request_id, priority=0, adapter=""):
        self.requests.append((list(prompt_ids), max_tokens))
        context, pending = list(prompt_ids), []
        while len(context) - len(prompt_ids) < max_tokens:
            token = self._next(context)
            context.append(token)
            pending.append(token)
            if len(pending) == self.chunk or token == EOS:
                yield pending, None
                pending = []
                await asyncio.sleep(0)
            if token == EOS:
                return
        if pending:
            yield pending, None

    def _next(self, context: list[int]) -> int:
        if THINK_END in context:
            done = len(context) - context.index(THINK_END) - 1
            answer = ids(self.answer)
            return answer[done] if done < len(answer) else EOS
        a = ids("a")[0]
        run = 0
        for token in reversed(context):
            if token != a:
                break
            run += 1
        return a if run < self.think_len else self.end_token


def run(engine, budget, min_tokens=0, answer_tokens=8, wrap="\nTime is up.\n", cont="Wait",
        stop=()):
    plan = make_plan(requested_budget=budget, min_tokens=min_tokens,
                     max_answer_tokens=answer_tokens, prompt_tokens=10, context_length=512,
                     wrap_up_ids=ids(wrap), continuation_ids=ids(cont))
    prompt = [VOCAB["<|user|>"]] + ids("What?") + [VOCAB["<|assistant|>"], VOCAB["<think>"]]
    choice = gen.ChoiceRun(engine, prompt, plan, gen.Sampling(0.0, 1.0, 0, None, stop), "r", 0)

    async def collect():
        return [e async for e in choice.events()]
    events = asyncio.run(collect())
    finished = events[-1]
    assert isinstance(finished, gen.Finished)
    thinking = "".join(e.text for e in events if isinstance(e, gen.Delta) and e.channel == gen.THINKING)
    answer = "".join(e.text for e in events if isinstance(e, gen.Delta) and e.channel == gen.ANSWER)
    return finished, thinking, answer, events


def test_natural_close_flows_into_answer_in_one_engine_request():
    engine = ScriptedEngine(think_len=5)
    finished, thinking, answer, _ = run(engine, budget=50)
    assert (thinking, answer) == ("aaaaa", "42")
    assert finished.thinking_end == gen.NATURAL and finished.finish_reason == gen.STOP
    assert len(engine.requests) == 1


def test_forced_close_injects_wrap_up_within_budget():
    engine = ScriptedEngine(think_len=100)
    finished, thinking, answer, events = run(engine, budget=20)
    assert finished.thinking_tokens == 20 and thinking == "a" * 7 + "\nTime is up.\n"
    assert finished.thinking_end == gen.FORCED and answer == "42"
    forced = [e for e in events if isinstance(e, gen.Delta) and e.forced]
    assert [e.text for e in forced] == ["\nTime is up.\n"]
    # the answer request starts from thinking + wrap-up + </think>
    assert engine.requests[-1][0][-1] == THINK_END and engine.requests[-1][1] == 8


def choice_run(engine, budget, min_tokens=0, end_token=THINK_END):
    plan = make_plan(requested_budget=budget, min_tokens=min_tokens, max_answer_tokens=8,
                     prompt_tokens=4, context_length=512, wrap_up_ids=ids("\nTime is up.\n"),
                     continuation_ids=ids("Wait"))
    choice = gen.ChoiceRun(engine, [VOCAB["<|user|>"], 40, VOCAB["<|assistant|>"],
                                    VOCAB["<think>"]], plan, gen.Sampling(0.0, 1.0, 0, None),
                           "r", 0)

    async def drain():
        return [e async for e in choice.events()]
    asyncio.run(drain())
    return choice


def test_the_token_trace_marks_exactly_what_the_runtime_injected():
    a, wrap = ids("a")[0], ids("\nTime is up.\n")
    forced = choice_run(ScriptedEngine(think_len=100), budget=20)
    completion, injected, _ = forced.completion()
    assert completion == [a] * 7 + wrap + [THINK_END] + ids("42") + [EOS]
    assert injected == [False] * 7 + [True] * (len(wrap) + 1) + [False] * 3
    natural = choice_run(ScriptedEngine(think_len=3), budget=50)
    assert natural.completion()[0] == [a] * 3 + [THINK_END] + ids("42") + [EOS]
    assert not any(natural.completion()[1])  # the model closed thinking itself
    by_eos = choice_run(ScriptedEngine(think_len=3, end_token=EOS), budget=50)
    assert by_eos.completion()[0] == [a] * 3 + [THINK_END] + ids("42") + [EOS]
    assert by_eos.completion()[1] == [False] * 3 + [True] + [False] * 3  # runtime's </think>
    waited = choice_run(ScriptedEngine(think_len=2), budget=50, min_tokens=4)
    assert waited.completion()[0][:6] == [a, a] + ids("Wait")
    assert waited.completion()[1][:6] == [False, False] + [True] * 4


def test_wrap_up_longer_than_budget_is_skipped():
    finished, thinking, _, _ = run(ScriptedEngine(think_len=100), budget=5)
    assert thinking == "aaaaa" and finished.thinking_tokens == 5


def test_min_tokens_replaces_early_close_with_continuation():
    engine = ScriptedEngine(think_len=4)
    finished, thinking, answer, _ = run(engine, budget=100, min_tokens=14)
    # closes at 4 (<14): "Wait"; at 12 (<14): "Wait"; at 20 it may close
    assert thinking == "aaaaWaitaaaaWaitaaaa"
    assert finished.forced_continuations == 2 and finished.thinking_end == gen.NATURAL
    assert answer == "42"


def test_multi_token_engine_outputs_are_merged_and_cut_exactly():
    engine = ScriptedEngine(think_len=100, chunk=16)
    finished, thinking, answer, events = run(engine, budget=20)
    assert thinking == "a" * 7 + "\nTime is up.\n" and answer == "42"
    deltas = [e for e in events if isinstance(e, gen.Delta)]
    assert [(d.channel, d.token_count, d.forced) for d in deltas] == [
        (gen.THINKING, 7, False), (gen.THINKING, 13, True), (gen.ANSWER, 2, False)]


def test_eos_inside_thinking_counts_as_a_close_attempt():
    engine = ScriptedEngine(think_len=3, end_token=EOS)
    finished, thinking, answer, _ = run(engine, budget=100, min_tokens=5)
    assert thinking.startswith("aaaWait") and answer == "42"


def test_answer_limit_and_stop_strings():
    finished, _, answer, _ = run(ScriptedEngine(think_len=2, answer="123456789"), budget=10,
                                 answer_tokens=3)
    assert answer == "123" and finished.finish_reason == gen.LENGTH and finished.answer_tokens == 3
    finished, _, answer, _ = run(ScriptedEngine(think_len=2, answer="12345"), budget=10,
                                 stop=("34",))
    assert answer == "12" and finished.finish_reason == gen.STOP


def test_budget_zero_disables_thinking():
    engine = ScriptedEngine(think_len=3)
    finished, thinking, answer, _ = run(engine, budget=0)
    assert thinking == "" and finished.thinking_end == gen.DISABLED and answer == "42"
    assert engine.requests[0][0][-2:] == [VOCAB["<think>"], THINK_END]


def test_random_contract():
    """No violation over random budgets, minimums, wrap-ups and model behaviours."""
    rng = random.Random(0)
    for _ in range(300):
        budget = rng.randint(0, 60)
        minimum = rng.randint(0, budget)
        engine = ScriptedEngine(think_len=rng.randint(0, 80), end_token=rng.choice([THINK_END, EOS]),
                                chunk=rng.choice([1, 3, 16]))
        finished, thinking, answer, _ = run(engine, budget, minimum, rng.randint(1, 5),
                                            wrap=rng.choice(["", "\nTime is up.\n", "x" * 30]),
                                            cont=rng.choice(["Wait", "Hmm, let me check"]))
        # s1's Control: inside [min, max] however thinking ended (a forced close near the
        # minimum drops the wrap-up rather than stop short of the minimum)
        assert minimum <= finished.thinking_tokens == len(thinking) <= budget
        assert finished.answer_tokens == len(answer) >= 1


def test_plan_validation_names_fields():
    presets = {"low": 16, "medium": 64, "high": 256}
    with pytest.raises(InvalidRequest, match="thinking.effort"):
        resolve_budget(5, "low", default=10, maximum=100, presets=presets)
    with pytest.raises(InvalidRequest, match="thinking.effort"):
        resolve_budget(None, "extreme", default=10, maximum=100, presets=presets)
    with pytest.raises(InvalidRequest, match="thinking.budget"):
        resolve_budget(101, None, default=10, maximum=100, presets=presets)
    assert resolve_budget(None, None, default=10, maximum=100, presets=presets) == 10
    with pytest.raises(InvalidRequest, match="prompt"):
        make_plan(requested_budget=5, min_tokens=0, max_answer_tokens=4, prompt_tokens=512,
                  context_length=512, wrap_up_ids=[], continuation_ids=[1])
    fit = dict(prompt_tokens=200, context_length=512, wrap_up_ids=[], continuation_ids=[1])
    plan = make_plan(requested_budget=400, min_tokens=0, max_answer_tokens=32,
                     budget_fits=True, **fit)  # the server default: as much as fits
    assert plan.budget == 512 - 200 - 1 - 32 and plan.requested_budget == 400
    for field, kwargs in (("thinking.budget", dict(requested_budget=400, min_tokens=0,
                                                   max_answer_tokens=32)),
                          ("thinking.min_tokens", dict(requested_budget=400, min_tokens=300,
                                                       max_answer_tokens=32, budget_fits=True)),
                          ("max_answer_tokens", dict(requested_budget=0, min_tokens=0,
                                                     max_answer_tokens=2**31 - 1))):
        with pytest.raises(InvalidRequest, match=field) as err:
            make_plan(**kwargs, **fit)
        assert "leaves 311 of the model's 512" in str(err.value)
    answer = make_plan(requested_budget=0, min_tokens=0, max_answer_tokens=10_000,
                       answer_fits=True, **fit)
    assert answer.answer_tokens == 311


def test_the_default_wrap_up_is_dropped_where_it_would_eat_the_budget():
    fit = dict(min_tokens=0, max_answer_tokens=8, prompt_tokens=4, context_length=512,
               continuation_ids=[1])
    wrap = list(range(13))
    for budget, share, kept in ((60, 0.25, True), (30, 0.25, False), (30, None, True),
                                (30, 1.0, True), (400, 0.0, False)):
        plan = make_plan(requested_budget=budget, wrap_up_ids=wrap, wrap_up_share=share, **fit)
        assert plan.wrap_up_ids == (tuple(wrap) if kept else ()), (budget, share)
        assert plan.sampled_cap == (budget - 13 if kept else budget)
