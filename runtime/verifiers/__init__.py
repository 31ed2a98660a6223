"""Verifier registry: one interface (answer text, VerificationSpec) -> Verdict for every kind.

`check(answer, spec)` runs a verifier in the current process (use it in worker processes);
the server goes through `pool.VerifierPool`, which adds hard per-item timeouts and fairness.
`validate_spec` is the cheap in-process check of a spec; `check_reference` is the one that
may be slow (math: parse and compare the reference), so the pool runs it under a timeout.
"""

from __future__ import annotations

import time
from typing import Callable

from runtime.verifiers import code, numeric, text
from runtime.verifiers import math as math_verifier
from runtime.verifiers.base import CORRECT, ERROR, Verdict, VerificationSpec

MAX_REFERENCE_CHARS, MAX_TESTS, MAX_TEST_CHARS = 4096, 64, 4096

# kind -> (verifier, version)
REGISTRY: dict[str, tuple[Callable[[str, VerificationSpec], Verdict], str]] = {
    "numeric": (numeric.verify, numeric.VERSION),
    "exact": (text.verify_exact, text.VERSION),
    "choice": (text.verify_choice, text.VERSION),
    "math": (math_verifier.verify, math_verifier.VERSION),
    "code": (code.verify, code.VERSION),
}


class SpecError(ValueError):
    """A spec that cannot be used; `field` is the spec field at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def validate_spec(spec: VerificationSpec) -> None:
    """Cheap checks of a spec before any generation; raises SpecError naming the field."""
    if spec.kind not in REGISTRY:
        raise SpecError("kind", f"unknown verifier kind {spec.kind!r} (one of "
                        f"{', '.join(REGISTRY)})")
    if len(spec.reference) > MAX_REFERENCE_CHARS:
        raise SpecError("reference", f"longer than {MAX_REFERENCE_CHARS} characters")
    if spec.kind == "code":
        if not spec.tests:
            raise SpecError("tests", "code verification needs at least one test")
        if len(spec.tests) > MAX_TESTS or any(len(t) > MAX_TEST_CHARS for t in spec.tests):
            raise SpecError("tests", f"at most {MAX_TESTS} tests of at most {MAX_TEST_CHARS} "
                            "characters")
        for test in spec.tests:
            try:
                code.parse_test(test)
            except (SyntaxError, ValueError, TypeError) as err:
                raise SpecError("tests", f"bad test {test!r}: {err}") from None
    elif not spec.reference.strip():
        raise SpecError("reference", "must not be empty")
    if spec.kind == "numeric" and numeric.parse_number(spec.reference) is None:
        raise SpecError("reference", f"{spec.reference!r} is not a number")
    if spec.kind == "choice" and not (len(spec.reference.strip()) == 1
                                      and spec.reference.strip().isalpha()):
        raise SpecError("reference", f"a choice reference must be one letter, got "
                        f"{spec.reference!r}")
    if spec.tolerance < 0 or spec.tolerance != spec.tolerance:
        raise SpecError("tolerance", f"must be >= 0, got {spec.tolerance}")
    if not spec.timeout_s > 0:
        raise SpecError("timeout_s", f"must be positive, got {spec.timeout_s}")


def check_reference(spec: VerificationSpec) -> Verdict:
    """The slow half of validating a spec (run it under a timeout): a math reference must
    parse and compare with a number. CORRECT when usable, else ERROR with the reason."""
    try:
        if spec.kind == "math":
            math_verifier.check_reference(spec.reference)
    except Exception as err:  # noqa: BLE001 - any failure means the reference is unusable
        return Verdict(0.0, ERROR, verifier=spec.kind, detail=str(err))
    return Verdict(1.0, CORRECT, verifier=spec.kind)


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
