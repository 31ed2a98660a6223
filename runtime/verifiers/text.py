"""Exact (normalised string) and multiple-choice verifiers."""

from __future__ import annotations

import re
import unicodedata

from runtime.verifiers.base import Verdict, VerificationSpec, correct, incorrect, unparseable

VERSION = "1"
_CHOICE = re.compile(r"^\s*(?:the\s+)?(?:answer|option|choice)?\s*(?:is)?\s*[:\-]?\s*"
                     r"[(\[]?([A-Za-z])[)\].]?\s*$", re.IGNORECASE)


def normalise(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed, surrounding punctuation and quotes dropped."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"\s+", " ", text).strip()
    return text.strip(" .!?\"'`")


def verify_exact(answer: str, spec: VerificationSpec) -> Verdict:
    if not spec.reference.strip():
        raise ValueError("reference must not be empty")
    got = normalise(answer)
    if not got:
        return unparseable("empty answer", flags=["empty"])
    return correct(got) if got == normalise(spec.reference) else incorrect(got)


def extract_choice(answer: str) -> str | None:
    """One option letter ("B", "(B)", "B.", "Answer: B"), else None (hedges included)."""
    match = _CHOICE.match(answer)
    return match.group(1).upper() if match else None


def verify_choice(answer: str, spec: VerificationSpec) -> Verdict:
    reference = spec.reference.strip().upper()
    if len(reference) != 1 or not reference.isalpha():
        raise ValueError(f"choice reference must be one letter, got {spec.reference!r}")
    if not answer.strip():
        return unparseable("empty answer", flags=["empty"])
    letter = extract_choice(answer)
    if letter is None:
        flags = ["several_answers"] if re.search(r"\b[A-Ea-e]\b.*\b(or|and)\b", answer) else []
        return unparseable("the answer must be exactly one option letter", answer.strip(), flags)
    return correct(letter) if letter == reference else incorrect(letter)
