"""Code verifier: run model-written Python against tests in a sandboxed subprocess.

Tests are `assert EXPR == LITERAL` (or `assert EXPR`) lines. Only the expressions enter the
sandbox; the expected values stay here. The sandbox evaluates each expression after running the
solution and reports the value through a strict encoder that accepts only plain builtin types
(exact `int`, `float`, `str`, `bool`, `None`, `list`, `tuple`, `dict`). So:
- `sys.exit(0)` or a crash before the tests means no values, so no test passes;
- an object whose `__eq__` always returns True is not a builtin value, so it cannot pass;
- patching the harness cannot forge a pass without knowing expected values it never sees.

Isolation (see README): bubblewrap when installed (read-only root, private /tmp, the work
folder the only writable place, no network, own PID/IPC/UTS namespaces, empty environment),
always as uid `nobody` via setpriv, with CPU-time, address-space, process-count, file-size and
open-file limits, a wall-clock timeout per test and capped output. Without bubblewrap it falls
back to `unshare -n` (no network) plus the same uid and limits; /tmp is then shared.
"""

from __future__ import annotations

import ast
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from runtime.verifiers.base import CORRECT, INCORRECT, Verdict, VerificationSpec, unparseable

VERSION = "1"
NOBODY = 65534
PER_TEST_S = 2.0
MEMORY_BYTES = 512 * 1024 * 1024
MAX_OUTPUT = 1 << 20
MARK = "\x1eRLVR-RESULT "

HARNESS = r'''
import json, signal, sys


def make_runner(exprs, _eval=eval, _type=type, _int=int, _float=float, _str=str, _bool=bool,
                _list=list, _tuple=tuple, _dict=dict, _sorted=sorted, _repr=repr,
                _dumps=json.dumps, _write=sys.__stdout__.write, _flush=sys.__stdout__.flush,
                _setitimer=signal.setitimer, _timer=signal.ITIMER_REAL, _mark="\x1eRLVR-RESULT "):
    # Everything the runner uses is bound here, before the solution runs, so patching
    # builtins or modules from the solution cannot change how results are produced.
    def encode(v, depth=0):
        if depth > 20:
            raise TypeError("too deep")
        t = _type(v)
        if t is _int or t is _float or t is _str or t is _bool or v is None:
            return [t.__name__, v]
        if t is _list or t is _tuple:
            return [t.__name__, [encode(x, depth + 1) for x in v]]
        if t is _dict:
            return ["dict", _sorted([encode(k, depth + 1), encode(x, depth + 1)]
                                    for k, x in v.items())]
        raise TypeError("unsupported result type " + t.__name__)

    def run(namespace):
        for i, expr in enumerate(exprs):
            _setitimer(_timer, PER_TEST)
            try:
                value = ["ok", encode(_eval(expr, namespace))]
            except BaseException as err:
                value = ["error", (_type(err).__name__ + ": " + _repr(err))[:200]]
            _setitimer(_timer, 0)
            _write(_mark + _dumps([i, value]) + "\n")
            _flush()
    return run


def alarm(*_):
    raise TimeoutError("test timed out")


signal.signal(signal.SIGALRM, alarm)
run = make_runner(json.load(open("exprs.json")))
namespace = {"__name__": "__main__"}
source = open("solution.py").read()
del make_runner
exec(compile(source, "solution.py", "exec"), namespace)
run(namespace)
'''


def encode(value) -> list:
    """The same encoding as the harness, for the expected literals."""
    kind = type(value)
    if kind in (int, float, str, bool) or value is None:
        return [kind.__name__, value]
    if kind in (list, tuple):
        return [kind.__name__, [encode(x) for x in value]]
    if kind is dict:
        return ["dict", sorted([encode(k), encode(x)] for k, x in value.items())]
    raise TypeError(f"unsupported literal type {kind.__name__}")


def parse_test(test: str) -> tuple[str, list]:
    """`assert EXPR == LITERAL` -> (EXPR source, encoded LITERAL); `assert EXPR` -> True."""
    tree = ast.parse(test.strip())
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        raise ValueError(f"a test must be one assert statement: {test!r}")
    check = tree.body[0].test
    if (isinstance(check, ast.Compare) and len(check.ops) == 1
            and isinstance(check.ops[0], ast.Eq)):
        return ast.unparse(check.left), json.loads(json.dumps(encode(
            ast.literal_eval(check.comparators[0]))))
    return ast.unparse(check), ["bool", True]


def extract_code(answer: str) -> str:
    """The last fenced code block, else the whole answer."""
    blocks = re.findall(r"```(?:python|py)?\n(.*?)```", answer, re.DOTALL)
    return blocks[-1] if blocks else answer


def _limits(cpu_s: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_NPROC, (16, 16))
    resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def sandbox_command(workdir: Path) -> list[str]:
    """The command that runs the harness in `workdir` with the strongest isolation available."""
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            "--inh-caps=-all"]
    # The base interpreter (a venv's python is a symlink to it; the venv may live under /tmp,
    # which the sandbox replaces): the harness needs only the standard library.
    python = [os.path.realpath(sys.executable), "-I", "-S", "harness.py"]
    if shutil.which("bwrap"):
        return ["bwrap", "--ro-bind", "/", "/", "--tmpfs", "/tmp", "--bind", str(workdir),
                "/tmp/work", "--dev", "/dev", "--proc", "/proc", "--unshare-net",
                "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
                "--new-session", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin",
                "--chdir", "/tmp/work", *drop, *python]
    return ["unshare", "-n", *drop, *python]


def run_tests(code: str, exprs: list[str], per_test_s: float) -> tuple[dict[int, list], str]:
    """Run the harness; returns ({test index: value}, diagnostics)."""
    with tempfile.TemporaryDirectory(prefix="rlvr-code-") as tmp:
        workdir = Path(tmp)
        (workdir / "solution.py").write_text(code)
        (workdir / "exprs.json").write_text(json.dumps(exprs))
        (workdir / "harness.py").write_text(f"PER_TEST = {per_test_s}\n" + HARNESS)
        os.chown(workdir, NOBODY, NOBODY)
        for path in workdir.iterdir():
            os.chown(path, NOBODY, NOBODY)
        wall = per_test_s * len(exprs) + 5
        cpu = int(wall) + 1
        proc = subprocess.Popen(sandbox_command(workdir), cwd=workdir, env={"PATH": "/usr/bin:/bin"},
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, preexec_fn=lambda: _limits(cpu),
                                start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=wall)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            output, _ = proc.communicate()
        text = output[:MAX_OUTPUT].decode(errors="replace")
    results: dict[int, list] = {}
    for line in text.split("\n"):  # not splitlines(): it also splits at the marker's \x1e
        if line.startswith(MARK):
            index, value = json.loads(line[len(MARK):])
            if index in results:  # the solution wrote its own result lines: tampering
                return {}, "duplicate result lines"
            results[index] = value
    return results, text[-500:]


def verify(answer: str, spec: VerificationSpec) -> Verdict:
    tests = [parse_test(t) for t in spec.tests]
    code = extract_code(answer)
    if not code.strip():
        return unparseable("empty answer", flags=["empty"])
    per_test = min(PER_TEST_S, max(0.1, (spec.timeout_s - 2) / max(1, len(tests))))
    results, diagnostics = run_tests(code, [expr for expr, _ in tests], per_test)
    passed = sum(results.get(i) == ["ok", expected] for i, (_, expected) in enumerate(tests))
    reward = passed / len(tests)
    verdict = CORRECT if passed == len(tests) else INCORRECT
    return Verdict(reward, verdict, f"{passed}/{len(tests)} tests passed",
                   detail="" if passed == len(tests) else diagnostics)
