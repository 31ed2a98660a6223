"""Verifier case table, strictness against known hacks, and the worker pool's hard timeouts."""

from __future__ import annotations

import asyncio

import pytest

from runtime.verifiers import SpecError, check, validate_spec
from runtime.verifiers.base import VerificationSpec
from runtime.verifiers.pool import VerifierPool

CASES = [
    # kind, reference, answer, verdict
    ("numeric", "46", "46", "correct"),
    ("numeric", "46", " 46\n", "correct"),
    ("numeric", "0.5", "1/2", "correct"),
    ("numeric", "9.9", "9.90", "correct"),
    ("numeric", "9.9", "9.11", "incorrect"),
    ("numeric", "-570", "-570", "correct"),
    ("numeric", "46", "45", "incorrect"),
    ("numeric", "46", "", "unparseable"),
    ("numeric", "46", "46 or 47", "unparseable"),
    ("numeric", "46", "45 46", "unparseable"),
    ("numeric", "46", "forty-six", "unparseable"),
    # numeric answers in prose
    ("numeric", "5198", "The answer is 5198.", "correct"),
    ("numeric", "5198", "The answer is 5199.", "incorrect"),
    ("numeric", "5198", "5,198", "correct"),
    ("numeric", "1234567.5", "1,234,567.5", "correct"),
    ("numeric", "519", "5,19", "unparseable"),
    ("numeric", "123456", "12,3456", "unparseable"),
    ("numeric", "46", "$\\boxed{46}$", "correct"),
    ("numeric", "5", "x = 5", "correct"),
    ("numeric", "46", "So 12 + 34 = 46.", "correct"),
    ("numeric", "46", "So 12 + 34 = 47.", "incorrect"),
    ("numeric", "46", "46. The answer is 46.", "correct"),
    ("numeric", "5", "maybe 5", "unparseable"),
    ("numeric", "3", "either 3 or 4", "unparseable"),
    ("numeric", "5", "It is 5 and also 6", "unparseable"),
    ("numeric", "5198", "4821+377", "unparseable"),
    ("math", "1/2", "0.5", "correct"),
    ("math", "0.5", "\\frac{1}{2}", "correct"),
    ("math", "0.5", "50%", "correct"),
    ("math", "\\frac{1}{2}", "\\boxed{\\frac{2}{4}}", "correct"),
    ("math", "\\{1,2\\}", "\\{2,1\\}", "correct"),
    ("math", "[1,2)", "[1,2)", "correct"),
    ("math", "[1,2)", "[1,2]", "incorrect"),
    ("math", "(x+1)^2", "x^2+2x+1", "correct"),
    ("math", "3x-y+13=0", "3x+4y+14=0", "incorrect"),
    ("math", "3", "3 or 4", "incorrect"),
    ("math", "3", "\\boxed{3} \\boxed{4}", "incorrect"),
    ("math", "3", "", "unparseable"),
    ("math", "3", "no idea", "unparseable"),
    # a numeric reference needs a number literal, not arithmetic that evaluates to it
    ("math", "11", "5+6", "incorrect"),
    ("math", "11", "12-1", "incorrect"),
    ("math", "5198", "4821+377", "incorrect"),
    ("math", "11", "\\boxed{5+6}", "incorrect"),
    ("math", "11", "$5+6$", "incorrect"),
    ("math", "11", "11 = 5+6", "incorrect"),
    ("math", "11", "x = 5+6", "incorrect"),
    ("math", "2", "\\sqrt{4}", "incorrect"),
    ("math", "11", "11", "correct"),
    ("math", "11", "5 + 6 = 11", "correct"),
    ("math", "11", "5 + 6 = 12", "incorrect"),
    ("math", "11", "x = 11", "correct"),
    ("math", "11", "The answer is $11$.", "correct"),
    ("math", "46", "$\\boxed{46}$", "correct"),
    ("math", "5198", "5,198", "correct"),
    ("math", "-3", "-3", "correct"),
    ("math", "1/2", "\\frac{2}{4}", "correct"),
    ("math", "-\\frac{1}{2}", "-0.5", "correct"),
    ("math", "\\frac{1}{2}", "0.5", "correct"),
    ("math", "2\\sqrt{2}", "\\sqrt{8}", "correct"),   # symbolic reference: closed forms
    ("exact", "Paris", "  paris. ", "correct"),
    ("exact", "Paris", "Lyon", "incorrect"),
    ("choice", "B", "B", "correct"),
    ("choice", "B", "(b)", "correct"),
    ("choice", "B", "Answer: B", "correct"),
    ("choice", "B", "A", "incorrect"),
    ("choice", "B", "A or B", "unparseable"),
    ("choice", "B", "", "unparseable"),
]


@pytest.mark.parametrize("kind,reference,answer,verdict", CASES)
def test_case_table(kind, reference, answer, verdict):
    result = check(answer, VerificationSpec(kind, reference))
    assert result.verdict == verdict, result
    assert result.reward == (1.0 if verdict == "correct" else 0.0)
    assert result.verifier == kind and result.version


def test_hedges_are_flagged():
    assert "several_answers" in check("46 or 47", VerificationSpec("numeric", "46")).flags
    assert "hedge" in check("3 or 4", VerificationSpec("math", "3")).flags
    assert "empty" in check("", VerificationSpec("math", "3")).flags


@pytest.mark.parametrize("answer", ["5+6", "12-1", "\\boxed{5+6}", "$5+6$", "11 = 5+6"])
def test_unevaluated_arithmetic_is_flagged(answer):
    verdict = check(answer, VerificationSpec("math", "11"))
    assert verdict.verdict == "incorrect" and verdict.flags == ["unevaluated"], verdict
    assert "number literal" in verdict.detail


@pytest.mark.parametrize("answer,flags", [
    ("maybe 5", ["hedge"]),
    ("either 5 or 6", ["hedge", "several_answers"]),
    ("It is 5 and also 6", ["several_answers"]),
])
def test_numeric_prose_hedges_are_flagged(answer, flags):
    assert check(answer, VerificationSpec("numeric", "5")).flags == flags


def test_numeric_reports_the_extracted_number():
    verdict = check("So 4821 + 377 = 5,198.", VerificationSpec("numeric", "5198"))
    assert verdict.extracted_answer == "5198" and verdict.version == "2"
    assert check("11", VerificationSpec("math", "11")).version == "2"


def test_tolerance():
    assert check("3.14", VerificationSpec("numeric", "3.14159", tolerance=0.01)).reward == 1.0
    assert check("3.14", VerificationSpec("numeric", "3.14159")).reward == 0.0


@pytest.mark.parametrize("spec,field,needle", [
    (VerificationSpec("telepathy", "1"), "kind", "unknown verifier kind"),
    (VerificationSpec("numeric", ""), "reference", "must not be empty"),
    (VerificationSpec("numeric", "abc"), "reference", "not a number"),
    (VerificationSpec("numeric", "The answer is 5"), "reference", "not a number"),
    (VerificationSpec("numeric", "5,198"), "reference", "not a number"),
    (VerificationSpec("choice", "BB"), "reference", "one letter"),
    (VerificationSpec("numeric", "1", tolerance=-1), "tolerance", "must be >= 0"),
    (VerificationSpec("math", "1" * 5000), "reference", "longer than 4096"),
    (VerificationSpec("code", tests=("assert True",) * 65), "tests", "at most 64 tests"),
    (VerificationSpec("numeric", "1", timeout_s=0), "timeout_s", "positive"),
])
def test_bad_specs_are_rejected_naming_the_field(spec, field, needle):
    with pytest.raises(SpecError, match=needle) as err:
        validate_spec(spec)
    assert err.value.field == field


def test_pool_kills_a_hung_verifier_and_keeps_serving(monkeypatch):
    pool = VerifierPool(1)
    try:
        # sympy expanding two huge polynomials runs far past the 1 s limit
        slow = VerificationSpec("math", "(x+1)^{3000}", timeout_s=1.0)
        verdict = pool.verify_blocking("(x+2)^{3000}-1", slow)
        assert verdict.verdict == "timeout" and verdict.seconds < 5
        assert pool.verify_blocking("46", VerificationSpec("numeric", "46")).verdict == "correct"
    finally:
        pool.close()


POISON = VerificationSpec("math", "2^{2^{100}}", timeout_s=3.0)  # comparing never ends


def test_pool_gives_one_caller_at_most_its_share():
    """A caller whose jobs hang holds one worker of two; another caller's job runs at once."""
    pool = VerifierPool(2, per_caller=1)
    try:
        finished = []
        flood = [pool.submit("verify", "5", POISON, "flood") for _ in range(3)]
        for future in flood:
            future.add_done_callback(lambda _: finished.append("flood"))
        quick = pool.submit("verify", "46", VerificationSpec("numeric", "46"), "user")
        assert quick.result(timeout=60).verdict == "correct"
        assert finished == []  # the user did not wait for any of the flood's jobs
        assert [f.result(timeout=60).verdict for f in flood] == ["timeout"] * 3
    finally:
        pool.close()


def test_pool_serves_waiting_callers_in_turn():
    pool = VerifierPool(1)
    try:
        order = []
        numeric = VerificationSpec("numeric", "1")
        jobs = [("a1", "5", POISON, "a"), ("a2", "1", numeric, "a"), ("a3", "1", numeric, "a"),
                ("b1", "1", numeric, "b")]
        futures = []
        for name, answer, spec, caller in jobs:  # a1 holds the worker while the rest queue
            futures.append(pool.submit("verify", answer, spec, caller))
            futures[-1].add_done_callback(lambda _, name=name: order.append(name))
        for future in futures:
            future.result(timeout=60)
        assert order == ["a1", "b1", "a2", "a3"]  # b was never served, so it goes before a
    finally:
        pool.close()


def test_references_are_checked_under_a_short_timeout():
    pool = VerifierPool(1)
    try:
        def problem(reference: str) -> str:
            return asyncio.run(pool.check_reference(VerificationSpec("math", reference), "c",
                                                    timeout_s=2.0))
        assert problem(r"\frac{3}{4}") == "" and problem("(10^{3})!") == ""
        assert "did not parse and compare within 2s" in problem("2^{2^{100}}")
        assert "cannot be parsed as math" in problem("\\")
        assert problem("12") == ""  # the pool is healthy after killing the stuck worker
    finally:
        pool.close()
