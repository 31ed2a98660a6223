"""The code verifier's sandbox: attacks are contained and score 0; correct code passes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from runtime.verifiers import check, validate_spec
from runtime.verifiers.base import VerificationSpec

REPO = Path(__file__).resolve().parent.parent
TESTS = ("assert add(2, 3) == 5", "assert add(-1, 1) == 0", "assert add(10, 5) == 15")

pytestmark = [pytest.mark.heavy,  # sandboxed subprocesses (`make test-fast` skips them)
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                 reason="the sandbox drops to uid nobody, which needs root")]


def run(code: str, tests=TESTS, timeout_s: float = 20.0):
    return check(f"```python\n{code}```", VerificationSpec("code", tests=tests, timeout_s=timeout_s))


def test_correct_solution_passes():
    verdict = run("def add(a, b):\n    return a + b\n")
    assert verdict.verdict == "correct" and verdict.reward == 1.0


def test_partial_credit_counts_passing_tests():
    verdict = run("def add(a, b):\n    return 5\n")
    assert verdict.verdict == "incorrect" and verdict.reward == pytest.approx(1 / 3)


ATTACKS = {
    "exit_before_asserts": "import sys\nsys.exit(0)\n",
    "always_equal": "class A:\n    def __eq__(self, o): return True\ndef add(a, b):\n    return A()\n",
    "int_subclass": "class I(int):\n    def __eq__(self, o): return True\ndef add(a, b):\n    return I(0)\n",
    "forged_results": "import sys\nfor i in range(3):\n    sys.stdout.write('\\x1eRLVR-RESULT [%d, [\"ok\", [\"int\", 5]]]\\n' % i)\ndef add(a, b): return 0\n",
    "patch_builtins": "import builtins, json\nbuiltins.eval = lambda *a, **k: 5\njson.dumps = lambda *a, **k: '[0, [\"ok\", [\"int\", 5]]]'\ndef add(a, b): return 999\n",
    "socket": "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\ndef add(a, b): return a + b\n",
    "write_project": f"open({str(REPO / 'PWNED')!r}, 'w').write('x')\ndef add(a, b): return a + b\n",
    "fork_bomb": "import os\nwhile True:\n    os.fork()\n",
    "allocate_10gb": "x = bytearray(10 * 1024**3)\ndef add(a, b): return a + b\n",
    "infinite_loop": "def add(a, b):\n    while True:\n        pass\n",
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attacks_are_contained_and_score_zero(name):
    verdict = run(ATTACKS[name], timeout_s=12.0)
    assert verdict.reward == 0.0 and verdict.verdict == "incorrect", verdict
    assert not (REPO / "PWNED").exists()


def test_no_secrets_and_no_network_inside(monkeypatch):
    monkeypatch.setenv("RLVR_TEST_SECRET", "hunter2")
    code = ("import os, socket\n"
            "def secret():\n    return os.environ.get('RLVR_TEST_SECRET')\n"
            "def online():\n"
            "    try:\n        socket.create_connection(('1.1.1.1', 53), timeout=2)\n        return True\n"
            "    except OSError:\n        return False\n")
    verdict = run(code, tests=("assert secret() == None", "assert online() == False"))
    assert verdict.verdict == "correct", verdict


def test_bad_tests_are_rejected():
    for tests in [(), ("print(1)",), ("assert f(1) == g(2)",), ("assert (",)]:
        with pytest.raises(ValueError):
            validate_spec(VerificationSpec("code", tests=tests))
