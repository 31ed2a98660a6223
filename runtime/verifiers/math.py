"""Math verifier: equivalence through HF's math-verify (sympy), strict about what counts.

Strict by default: the answer must hold exactly one final answer. Several different answers
("3 or 4", two different boxed values), hedges and empty answers score 0 and are flagged.
Only the answer part (after `</think>`) is ever passed here.
"""

from __future__ import annotations

import re

from runtime.verifiers.base import Verdict, VerificationSpec, correct, incorrect, unparseable

VERSION = "1"
_HEDGE = re.compile(r"\b(or|either|maybe|possibly)\b", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{")
_PROSE = re.compile(r"[A-Za-z]+(?:[ ,.'!?-]+[A-Za-z]+)+[ .!?]*")  # words, no math at all


def _wrap(text: str) -> str:
    """math-verify finds LaTeX inside $...$ or \\boxed{}; plain text is parsed as is."""
    text = text.strip()
    return text if ("$" in text or "\\boxed" in text or "\\(" in text) else f"${text}$"


def _boxed_contents(text: str) -> list[str]:
    contents = []
    for match in _BOXED.finditer(text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        contents.append(text[match.end(): i - 1].strip())
    return contents


def verify(answer: str, spec: VerificationSpec) -> Verdict:
    from math_verify import parse
    from math_verify import verify as mv_verify

    gold = parse(_wrap(spec.reference), parsing_timeout=None)
    if not gold:
        raise ValueError(f"reference {spec.reference!r} cannot be parsed as math")
    text = answer.strip()
    if not text:
        return unparseable("empty answer", flags=["empty"])
    boxed = _boxed_contents(text)
    if len(set(boxed)) > 1:
        return incorrect(text, "several different boxed answers", ["several_answers"])
    if not boxed and _HEDGE.search(text):
        return incorrect(text, "hedged answer", ["hedge"])
    if not boxed and _PROSE.fullmatch(text):
        return unparseable("no mathematical answer found", text)
    pred = parse(f"\\boxed{{{boxed[0]}}}" if boxed else _wrap(text), parsing_timeout=None)
    if not pred:
        return unparseable("no mathematical answer found", text)
    extracted = str(pred[-1])
    ok = mv_verify(gold, pred, timeout_seconds=None)
    return correct(extracted) if ok else incorrect(extracted)
