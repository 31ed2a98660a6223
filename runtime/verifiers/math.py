"""Math verifier: equivalence through HF's math-verify (sympy), strict about what counts.

Strict by default: the answer must hold exactly one final answer. Several different answers
("3 or 4", two different boxed values), hedges and empty answers score 0 and are flagged.
Only the answer part (after `</think>`) is ever passed here.

When the reference is a plain number (integer, decimal, fraction "1/2" or "\\frac{1}{2}",
optionally negative), the answer's final expression (the last side of an equation, so
"5 + 6 = 11" ends in "11") must itself be a number literal: an integer, decimal (thousands
separators allowed), fraction or \\frac of integers, optionally negative, a percentage or
degrees. Unevaluated arithmetic such as "5+6" or "4821+377" (restating the question) scores 0
and is flagged `unevaluated`; only that literal is compared with the reference. Symbolic
references keep full equivalence ("\\sqrt{8}" equals "2\\sqrt{2}").
"""

from __future__ import annotations

import functools
import re

from runtime.verifiers.base import Verdict, VerificationSpec, correct, incorrect, unparseable

VERSION = "2"
_HEDGE = re.compile(r"\b(or|either|maybe|possibly)\b", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{")
_PROSE = re.compile(r"[A-Za-z]+(?:[ ,.'!?-]+[A-Za-z]+)+[ .!?]*")  # words, no math at all
_LITERAL = re.compile(  # one number: "-12", "5,198", "0.5", "1/2", "\\frac{1}{2}", "50%"
    r"(\()?[+-]?(?:(?:\d+|\d{1,3}(?:,\d{3})+)(?:\.\d+)?|\.\d+|\d+/\d+"
    r"|\\[dt]?frac\{[+-]?\d+\}\{\d+\})(?:\\?%|\^\\circ)?(?(1)\))")


def _wrap(text: str) -> str:
    """math-verify finds LaTeX inside $...$ or \\boxed{}; plain text is parsed as is."""
    text = text.strip()
    return text if ("$" in text or "\\boxed" in text or "\\(" in text) else f"${text}$"


def _literal(text: str) -> str | None:
    """`text` without spaces if it is one number literal (see the module docstring)."""
    text = re.sub(r"\s|\$", "", text).rstrip(".")
    return text if _LITERAL.fullmatch(text) else None


def _boxed_contents(text: str) -> list[str]:
    contents = []
    for match in _BOXED.finditer(text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        contents.append(text[match.end(): i - 1].strip())
    return contents


@functools.lru_cache(maxsize=256)  # a worker parses each reference once, not per choice
def _gold(reference: str) -> list:
    from math_verify import parse

    gold = parse(_wrap(reference), parsing_timeout=None)
    if not gold:
        raise ValueError(f"reference {reference!r} cannot be parsed as math")
    return gold


def check_reference(reference: str) -> None:
    """Parse the reference and compare it with a number, as every numeric answer will be:
    a reference whose comparison is slow ("2^{2^{100}}", "(10^7)!") shows it here, where
    the caller's pool runs this under a short timeout. Raises ValueError if unparseable."""
    from math_verify import parse
    from math_verify import verify as mv_verify

    mv_verify(_gold(reference), parse("$0$", parsing_timeout=None), timeout_seconds=None)


def verify(answer: str, spec: VerificationSpec) -> Verdict:
    from math_verify import parse
    from math_verify import verify as mv_verify

    gold = _gold(spec.reference)
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
    if _literal(spec.reference):
        literal = _literal(extracted.split("=")[-1])  # "5 + 6 = 11" ends in "11"
        if literal is None:
            return incorrect(extracted, "the reference is a number, so the final answer must be "
                             "a number literal, not an expression to evaluate", ["unevaluated"])
        pred = parse(f"${literal}$", parsing_timeout=None)
    ok = mv_verify(gold, pred, timeout_seconds=None)
    return correct(extracted) if ok else incorrect(extracted)
