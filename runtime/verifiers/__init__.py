"""Verifier registry: one interface (answer text, VerificationSpec) -> Verdict for every kind.

`check(answer, spec)` runs a verifier in the current process (use it in worker processes);
the server goes through `pool.VerifierPool`, which adds hard per-item timeouts.
"""

from __future__ import annotations

import time
from typing import Callable

from runtime.verifiers import code, numeric, text
from runtime.verifiers import math as math_verifier
from runtime.verifiers.base import ERROR, Verdict, VerificationSpec

# kind -> (verifier, version)
REGISTRY: dict[str, tuple[Callable[[str, VerificationSpec], Verdict], str]] = {
    "numeric": (numeric.verify, numeric.VERSION),
    "exact": (text.verify_exact, text.VERSION),
    "choice": (text.verify_choice, text.VERSION),
    "math": (math_verifier.verify, math_verifier.VERSION),
    "code": (code.verify, code.VERSION),
}


def validate_spec(spec: VerificationSpec) -> None:
    """Cheap checks of a spec before any generation; raises ValueError naming the problem."""
    if spec.kind not in REGISTRY:
        raise ValueError(f"unknown verifier kind {spec.kind!r} (one of {', '.join(REGISTRY)})")
    if spec.kind == "code":
        if not spec.tests:
            raise ValueError("code verification needs at least one test")
        for test in spec.tests:
            try:
                code.parse_test(test)
            except (SyntaxError, ValueError, TypeError) as err:
                raise ValueError(f"bad test {test!r}: {err}") from None
    elif not spec.reference.strip():
        raise ValueError("reference must not be empty")
    if spec.kind == "numeric" and numeric.parse_number(spec.reference) is None:
        raise ValueError(f"reference {spec.reference!r} is not a number")
    if spec.kind == "choice" and not (len(spec.reference.strip()) == 1
                                      and spec.reference.strip().isalpha()):
        raise ValueError(f"choice reference must be one letter, got {spec.reference!r}")
    if spec.tolerance < 0 or spec.tolerance != spec.tolerance:
        raise ValueError("tolerance must be >= 0")
    if not 0 < spec.timeout_s <= 60:
        raise ValueError("timeout_s must be in (0, 60]")


def check(answer: str, spec: VerificationSpec) -> Verdict:
    """Run the spec's verifier here; a bad spec or a verifier crash becomes an ERROR verdict."""
    verifier, version = REGISTRY[spec.kind]
    start = time.perf_counter()
    try:
        verdict = verifier(answer, spec)
    except Exception as err:  # noqa: BLE001 - a verifier must never take serving down
        verdict = Verdict(0.0, ERROR, detail=f"{type(err).__name__}: {err}")
    verdict.verifier, verdict.version = spec.kind, version
    verdict.seconds = time.perf_counter() - start
    return verdict
