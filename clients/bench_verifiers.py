"""Verifier throughput through the runtime's worker pool (the path serving uses), per kind, and
the code sandbox's overhead per test against running the same test in a bare subprocess."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runtime.verifiers.base import VerificationSpec
from runtime.verifiers.pool import VerifierPool

CASES = {
    "numeric": ("4198", VerificationSpec("numeric", reference="4198")),
    "math": (r"So $x = \frac{3}{4}$.", VerificationSpec("math", reference="0.75")),
    "code": ("```python\ndef add(a, b):\n    return a + b\n```",
             VerificationSpec("code", tests=("assert add(2, 3) == 5",))),
}


async def _throughput(pool: VerifierPool, workers: int, answer: str, spec: VerificationSpec,
                      seconds: float) -> float:
    """Verifications per second with as many in flight as the pool has workers."""
    done, deadline = 0, time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < deadline:
        verdicts = await asyncio.gather(*(pool.verify(answer, spec) for _ in range(workers)))
        assert all(v.verdict == "correct" for v in verdicts), verdicts
        done += len(verdicts)
    return done / (time.monotonic() - start)


def _bare_test_seconds(runs: int = 10) -> float:
    """The same code and test in a plain `python -c` subprocess: no sandbox."""
    code, spec = CASES["code"]
    source = code.split("```python\n")[1].split("```")[0] + "\n" + spec.tests[0] + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.py"
        path.write_text(source)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-I", str(path)], check=True)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_verifier_benchmark(seconds: float = 10.0, workers: int = 2) -> dict:
    pool = VerifierPool(workers)
    try:
        rates = {kind: asyncio.run(_throughput(pool, workers, answer, spec, seconds))
                 for kind, (answer, spec) in CASES.items()}
        code, spec = CASES["code"]
        sandboxed = statistics.median(pool.verify_blocking(code, spec).seconds for _ in range(10))
    finally:
        pool.close()
    bare = _bare_test_seconds()
    return {"workers": workers, "seconds_per_kind": seconds,
            "verifications_per_s": {k: round(v, 1) for k, v in rates.items()},
            "code_test_seconds": {"sandboxed": sandboxed, "bare_subprocess": bare,
                                  "overhead_ratio": sandboxed / bare}}
