"""Verifier case table, strictness against known hacks, and the worker pool's hard timeouts."""

from __future__ import annotations

import pytest

from runtime.verifiers import check, validate_spec
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


def test_tolerance():
    assert check("3.14", VerificationSpec("numeric", "3.14159", tolerance=0.01)).reward == 1.0
    assert check("3.14", VerificationSpec("numeric", "3.14159")).reward == 0.0


@pytest.mark.parametrize("spec,needle", [
    (VerificationSpec("telepathy", "1"), "unknown verifier kind"),
    (VerificationSpec("numeric", ""), "reference must not be empty"),
    (VerificationSpec("numeric", "abc"), "not a number"),
    (VerificationSpec("choice", "BB"), "one letter"),
    (VerificationSpec("numeric", "1", tolerance=-1), "tolerance"),
])
def test_bad_specs_are_rejected(spec, needle):
    with pytest.raises(ValueError, match=needle):
        validate_spec(spec)


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
