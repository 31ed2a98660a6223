"""Numeric verifier: the answer's one final number must equal the reference.

Contract. The reference is a bare number: an integer, decimal or fraction ("1/2"). The answer
may be a sentence; `extract_number` reads its final number:

- a number may use thousands separators ("5,198", "1,234,567.5"); a comma that does not start
  a group of exactly three digits ("5,19", "12,3456") makes no number at all;
- $...$, \\(...\\), \\boxed{...}, \\text{...} and \\frac{a}{b} are unwrapped; surrounding words
  and trailing punctuation are ignored; numbers inside other LaTeX ("\\sqrt{16}") are not read;
- the text is split into clauses (at . ! ? ; : , followed by a space, and at line breaks); a
  clause that is an equation whose last side is one number ("12 + 34 = 46", "x = 5") counts
  only its sides that are one number, so the arithmetic before the '=' is working, not an
  answer ("45 = 46" still holds two answers);
- in every other clause each number is a candidate; all candidates must be equal ("46. The
  answer is 46." is fine, "It is 5 and also 6" is flagged `several_answers`);
- hedges ("3 or 4", "maybe 5", "about 5", "x > 5", "not 5") are flagged `hedge`, an empty
  answer `empty`. Any flag, or no number, makes the answer unparseable (reward 0).

Values are exact `fractions.Fraction`s (no float rounding), so "9.90" equals "9.9" and "1/2"
equals "0.5", while "9.11" never equals "9.9"; `tolerance` is absolute. The verdict's extracted
answer is the canonical fraction ("5198", "1/2"). `parse_number` and `numeric_equal` accept only
a bare number (references, trust checks, evaluation).
"""

from __future__ import annotations

import re
from fractions import Fraction

from runtime.verifiers.base import Verdict, VerificationSpec, correct, incorrect, unparseable

VERSION = "2"
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(/\d+)?$")
# one number in prose: not glued to words, other digits, LaTeX braces or exponents
_TOKEN = re.compile(r"(?<![\w.,/{^_])[+-]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)"
                    r"(?:/\d+)?(?![\w/}^_]|[.,]\d)")
_UNWRAP = [  # applied in this order
    (re.compile(r"\{,\}"), ","),
    (re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}"), r"\1/\2"),
    (re.compile(r"\\(?:text|mathrm|boxed)\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\$|\\[()\[\]]"), " "),
]
_HEDGE = re.compile(
    r"\b(?:or|either|maybe|perhaps|possibly|probably|approximately|roughly|about|around|nearly"
    r"|almost|at (?:least|most)|(?:more|less|fewer) than|not)\b|n't\b"
    r"|[<>≈≤≥≠±~]|\\(?:approx|sim|pm|mp|neq?|[lg]eq?|[lg]t)\b", re.IGNORECASE)
_CLAUSE = re.compile(r"[.!?;:,]\s+|\n+")
_WHY = {"empty": "empty answer", "hedge": "hedged answer",
        "several_answers": "several different numbers"}


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


def _one_number(side: str) -> str | None:
    match = _TOKEN.fullmatch(side.strip().rstrip(".!?;:,").rstrip())
    return match.group() if match else None


def _candidates(clause: str) -> list[str]:
    """The clause's answer candidates: its number sides if it is an equation ending in one."""
    sides = clause.split("=")
    if len(sides) > 1 and _one_number(sides[-1]):
        return [number for side in sides if (number := _one_number(side))]
    return [match.group() for match in _TOKEN.finditer(clause)]


def extract_number(text: str) -> tuple[Fraction | None, list[str]]:
    """The final answer of `text` (see the module contract), or None plus the flags why."""
    if not text.strip():
        return None, ["empty"]
    for pattern, replacement in _UNWRAP:
        text = pattern.sub(replacement, text)
    tokens = [token for clause in _CLAUSE.split(text) for token in _candidates(clause)]
    values = [parse_number(token.replace(",", "")) for token in tokens]
    flags = ["hedge"] if _HEDGE.search(text) else []
    if len(set(values)) > 1:
        flags.append("several_answers")
    if flags or not values or values[-1] is None:
        return None, flags
    return values[-1], []


def verify(answer: str, spec: VerificationSpec) -> Verdict:
    reference = parse_number(spec.reference)
    if reference is None:
        raise ValueError(f"reference {spec.reference!r} is not a number")
    value, flags = extract_number(answer)
    if value is None:
        detail = "; ".join(_WHY[flag] for flag in flags) or "no number found"
        return unparseable(detail, answer.strip(), flags)
    if abs(value - reference) <= Fraction(spec.tolerance):
        return correct(str(value))
    return incorrect(str(value))
