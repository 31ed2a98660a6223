"""The one interface every verifier implements: (answer text, spec) -> Verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

CORRECT, INCORRECT, UNPARSEABLE, TIMEOUT, ERROR = (
    "correct", "incorrect", "unparseable", "timeout", "error")


@dataclass(frozen=True)
class VerificationSpec:
    """What to check an answer against: a kind plus a reference answer, or tests for code."""

    kind: str
    reference: str = ""
    tolerance: float = 0.0           # numeric: absolute tolerance
    tests: tuple[str, ...] = ()      # code: assert-based Python tests
    timeout_s: float = 10.0          # hard limit for the whole verification

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Verdict:
    """Reward in [0, 1] plus why, and what was extracted from the answer."""

    reward: float
    verdict: str
    extracted_answer: str = ""
    verifier: str = ""
    version: str = ""
    seconds: float = 0.0
    detail: str = ""
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def correct(extracted: str) -> Verdict:
    return Verdict(1.0, CORRECT, extracted)


def incorrect(extracted: str, detail: str = "", flags: list[str] | None = None) -> Verdict:
    return Verdict(0.0, INCORRECT, extracted, detail=detail, flags=flags or [])


def unparseable(detail: str, extracted: str = "", flags: list[str] | None = None) -> Verdict:
    return Verdict(0.0, UNPARSEABLE, extracted, detail=detail, flags=flags or [])
