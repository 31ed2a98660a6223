"""Numeric verifier: the answer must be exactly one number equal to the reference.

Integers, decimals and fractions are parsed exactly with `fractions.Fraction` (no float
rounding), so "9.90" equals "9.9" and "1/2" equals "0.5", while "9.11" never equals "9.9".
"""

from __future__ import annotations

import re
from fractions import Fraction

from runtime.verifiers.base import Verdict, VerificationSpec, correct, incorrect, unparseable

VERSION = "1"
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(/\d+)?$")


def parse_number(text: str) -> Fraction | None:
    """The single number in `text` (surrounding whitespace allowed), else None."""
    cleaned = text.strip()
    if not _NUMBER.match(cleaned):
        return None
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def numeric_equal(answer: str, reference: str, tolerance: float = 0.0) -> bool:
    """True when `answer` is one number within `tolerance` (absolute) of `reference`."""
    got, want = parse_number(answer), parse_number(reference)
    if got is None or want is None:
        return False
    return abs(got - want) <= Fraction(tolerance)


def verify(answer: str, spec: VerificationSpec) -> Verdict:
    if parse_number(spec.reference) is None:
        raise ValueError(f"reference {spec.reference!r} is not a number")
    if not answer.strip():
        return unparseable("empty answer", flags=["empty"])
    if parse_number(answer) is None:
        numbers = re.findall(r"[+-]?\d+(?:\.\d+)?(?:/\d+)?", answer)
        flags = ["several_answers"] if len(set(numbers)) > 1 else []
        return unparseable("the answer must be exactly one number", answer.strip(), flags)
    if numeric_equal(answer, spec.reference, spec.tolerance):
        return correct(answer.strip())
    return incorrect(answer.strip())
