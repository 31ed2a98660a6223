"""Verifiable task families for the embedded model: generators with step-by-step thinking traces.

Every task has a prompt, a thinking trace (written the way the model is taught to think), a
reference answer and the kind of verifier that checks it. Traces are computed column by column,
so their length grows with difficulty, and each line carries the partial result so far: a trace
cut short still holds the low digits of the answer.

The problem space is split by a hash of the prompt: prompts in the held-out bucket are never
produced for training (`sample_task(..., split="train")` rejects them), so the committed held-out
set is disjoint from training data by construction.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

HELDOUT_MODULUS = 20  # 1 in 20 prompts belongs to the held-out bucket


@dataclass(frozen=True)
class Task:
    """One problem: what the user asks, how the model should think, and what is correct."""

    family: str
    difficulty: int
    prompt: str
    thinking: str
    answer: str
    verifier: str  # verifier kind that checks `answer` ("numeric", "exact", ...)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def is_heldout(prompt: str) -> bool:
    """True when the prompt belongs to the held-out bucket (never used for training)."""
    digest = hashlib.sha256(prompt.encode()).digest()
    return int.from_bytes(digest[:8], "big") % HELDOUT_MODULUS == 0


def _number(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1), 10**digits - 1)


def _rest(text: str, k: int) -> str:
    """`text` without its last k characters (the digits already used)."""
    return text[: max(0, len(text) - k)]


def _last_digit(text: str) -> int:
    return int(text[-1]) if text else 0


def add_trace(a: int, b: int) -> tuple[str, str]:
    """Column addition with carries; returns (trace lines, sum as text).

    Each line restates what is left of both operands, so the next digits to add are always
    the last ones on the line: every step only looks at its own line and the one before.
    """
    sa, sb = str(a), str(b)
    partial, carry, lines = "", 0, []
    for k in range(max(len(sa), len(sb))):
        ra, rb = _rest(sa, k), _rest(sb, k)
        x, y = _last_digit(ra), _last_digit(rb)
        s = x + y + carry
        partial = str(s % 10) + partial
        lines.append(f"{ra}+{rb}:{x}+{y}+{carry}={s},{partial}\n")
        carry = s // 10
    if carry:
        partial = "1" + partial
        lines.append(f"c=1,{partial}\n")
    return "".join(lines), str(a + b)


def sub_trace(a: int, b: int) -> tuple[str, str]:
    """Column subtraction a-b (a >= b) with borrows, ending in the stripped result.

    "12-5=7" shows a borrow (the top digit got 10 added); the next column then takes 1 off.
    """
    sa, sb = str(a), str(b)
    partial, borrow, lines = "", 0, []
    for k in range(len(sa)):
        ra, rb = _rest(sa, k), _rest(sb, k)
        top, y = _last_digit(ra) - borrow, _last_digit(rb)
        borrow = int(top < y)
        top += 10 * borrow
        partial = str(top - y) + partial
        lines.append(f"{ra}-{rb}:{top}-{y}={top - y},{partial}\n")
    lines.append(f"={a - b}\n")
    return "".join(lines), str(a - b)


def mul1_trace(a: int, y: int) -> tuple[str, str]:
    """a times a single digit y, digit by digit with carries (operand shrinking as above)."""
    sa = str(a)
    partial, carry, lines = "", 0, []
    for k in range(len(sa)):
        ra = _rest(sa, k)
        x = _last_digit(ra)
        p = x * y + carry
        partial = str(p % 10) + partial
        lines.append(f"{ra}*{y}:{x}*{y}+{carry}={p},{partial}\n")
        carry = p // 10
    if carry:
        partial = str(carry) + partial
        lines.append(f"c={carry},{partial}\n")
    return "".join(lines), str(a * y)


def div_trace(n: int, d: int) -> tuple[str, str]:
    """Long division of n by a single digit d (exact), left to right.

    Each line starts with the digits still to bring down, the current one first.
    """
    sn = str(n)
    rem, quotient, lines = 0, "", []
    for k in range(len(sn)):
        cur = rem * 10 + int(sn[k])
        q, rem = divmod(cur, d)
        quotient += str(q)
        lines.append(f"{sn[k:]}:{cur}/{d}={q}r{rem},{quotient}\n")
    return "".join(lines), str(int(quotient))


def gen_add(rng: random.Random, difficulty: int) -> Task:
    a, b = _number(rng, difficulty), _number(rng, rng.randint(2, difficulty))
    if rng.random() < 0.5:
        a, b = b, a
    thinking, answer = add_trace(a, b)
    return Task("add", difficulty, f"What is {a}+{b}?", thinking, answer, "numeric")


def gen_sub(rng: random.Random, difficulty: int) -> Task:
    a, b = _number(rng, difficulty), _number(rng, rng.randint(2, difficulty))
    if rng.random() < 0.5:
        a, b = b, a
    if a >= b:
        thinking, answer = sub_trace(a, b)
    else:
        lines, diff = sub_trace(b, a)
        thinking, answer = f"{b}-{a}\n" + lines + f"=-{diff}\n", f"-{diff}"
    return Task("sub", difficulty, f"What is {a}-{b}?", thinking, answer, "numeric")


def gen_mul(rng: random.Random, difficulty: int) -> Task:
    """difficulty = digits of the multi-digit factor plus digits of the small factor."""
    small_digits = 1 if difficulty == 3 else rng.randint(1, 2)
    a = _number(rng, difficulty - small_digits)
    b = _number(rng, small_digits) if small_digits == 2 else rng.randint(2, 9)
    if b < 10:
        thinking, answer = mul1_trace(a, b)
    else:
        low_lines, low = mul1_trace(a, b % 10)
        high_lines, high = mul1_trace(a, b // 10)
        sum_lines, answer = add_trace(int(low), int(high) * 10)
        thinking = (f"*{b % 10}\n{low_lines}*{b // 10}0\n{high_lines}"
                    f"{low}+{int(high) * 10}\n{sum_lines}")
    return Task("mul", difficulty, f"What is {a}*{b}?", thinking, answer, "numeric")


def _decimal(rng: random.Random, int_part: int, places: int) -> str:
    frac = "".join(str(rng.randint(0, 9)) for _ in range(places - 1)) + str(rng.randint(1, 9))
    return f"{int_part}.{frac}"


def gen_cmp(rng: random.Random, difficulty: int) -> Task:
    """Decimal comparison; difficulty = most decimal places (1 to 4)."""
    int_a = rng.randint(0, 99)
    int_b = int_a if rng.random() < 0.7 else rng.randint(0, 99)
    while True:
        a = _decimal(rng, int_a, rng.randint(1, difficulty))
        b = _decimal(rng, int_b, difficulty)
        if rng.random() < 0.5:
            a, b = b, a
        if float(a) != float(b):
            break
    ia, fa = a.split(".")
    ib, fb = b.split(".")
    places = max(len(fa), len(fb))
    fa, fb = fa.ljust(places, "0"), fb.ljust(places, "0")
    lines = [f"{ia}.{fa} vs {ib}.{fb}\n"]
    if int(ia) != int(ib):
        lines.append(f"{ia}{'>' if int(ia) > int(ib) else '<'}{ib}\n")
    else:
        lines.append(f"{ia}={ib}\n")
        for x, y in zip(fa, fb):
            lines.append(f"{x}{'>' if x > y else '<' if x < y else '='}{y}\n")
            if x != y:
                break
    answer = a if float(a) > float(b) else b
    lines.append(f"={answer}\n")
    return Task("cmp", difficulty, f"Which is bigger, {a} or {b}?", "".join(lines), answer,
                "numeric")


def gen_lin(rng: random.Random, difficulty: int) -> Task:
    """Solve a*x+b=c or a*x-b=c for integer x; difficulty = digits of a*x."""
    a = rng.randint(2, 9)
    lo, hi = 10 ** (difficulty - 1), 10**difficulty - 1
    x = rng.randint(max(1, -(-lo // a)), hi // a)
    b = rng.randint(1, 99)
    if rng.random() < 0.5 or a * x <= b:
        c = a * x + b
        steps, ax = sub_trace(c, b)
        head, prompt = f"{a}*x={c}-{b}\n", f"Solve {a}*x+{b}={c} for x."
    else:
        c = a * x - b
        steps, ax = add_trace(c, b)
        head, prompt = f"{a}*x={c}+{b}\n", f"Solve {a}*x-{b}={c} for x."
    div_lines, answer = div_trace(int(ax), a)
    thinking = f"{head}{steps}x={ax}/{a}\n{div_lines}x={answer}\n"
    return Task("lin", difficulty, prompt, thinking, answer, "numeric")


# family -> (generator, difficulties it accepts)
FAMILIES: dict[str, tuple[Callable[[random.Random, int], Task], tuple[int, ...]]] = {
    "add": (gen_add, (2, 3, 4, 5, 6)),
    "sub": (gen_sub, (2, 3, 4, 5, 6)),
    "mul": (gen_mul, (3, 4, 5)),
    "cmp": (gen_cmp, (1, 2, 3, 4)),
    "lin": (gen_lin, (2, 3)),
}


def reference_for(prompt: str) -> str | None:
    """The correct answer to a prompt of one of the families, computed from the prompt alone
    (None for anything else). The server uses it to catch wrong client-supplied references."""
    from fractions import Fraction

    if m := re.fullmatch(r"What is (\d+)([+*-])(\d+)\?", prompt.strip()):
        a, op, b = int(m[1]), m[2], int(m[3])
        return str({"+": a + b, "-": a - b, "*": a * b}[op])
    if m := re.fullmatch(r"Which is bigger, (\d+\.\d+) or (\d+\.\d+)\?", prompt.strip()):
        return m[1] if Fraction(m[1]) > Fraction(m[2]) else m[2]
    if m := re.fullmatch(r"Solve (\d+)\*x([+-])(\d+)=(\d+) for x\.", prompt.strip()):
        a, sign, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        x = Fraction(c - b if sign == "+" else c + b, a)
        return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"
    return None


def sample_task(rng: random.Random, family: str, split: str = "train") -> Task:
    """Draw one task of a family at a random difficulty from the given split's bucket."""
    generator, difficulties = FAMILIES[family]
    want_heldout = split == "heldout"
    while True:
        task = generator(rng, rng.choice(difficulties))
        if is_heldout(task.prompt) == want_heldout:
            return task


def build_heldout(seed: int = 1234, per_family: int = 60,
                  exclude: frozenset[str] = frozenset()) -> list[Task]:
    """The fixed held-out set: `per_family` distinct held-out-bucket tasks per family, none of
    whose prompts is in `exclude`."""
    rng = random.Random(seed)
    tasks: list[Task] = []
    for family in FAMILIES:
        seen: set[str] = set()
        while len(seen) < per_family:
            task = sample_task(rng, family, split="heldout")
            if task.prompt not in seen and task.prompt not in exclude:
                seen.add(task.prompt)
                tasks.append(task)
    return tasks


HELDOUT_PATH = Path(__file__).resolve().parents[2] / "models" / "heldout.jsonl"


def load_heldout(path: Path = HELDOUT_PATH) -> list[Task]:
    """Read the committed held-out JSONL file."""
    with open(path) as f:
        return [Task(**json.loads(line)) for line in f if line.strip()]


LARGE_HELDOUT_PATH = HELDOUT_PATH.with_name("heldout_large.jsonl")
LARGE_HELDOUT_PER_FAMILY = 300
VALIDATION_RESERVE = 100  # per family: the gate's built-in items (up to 500) never overlap it


def build_large_heldout() -> list[Task]:
    """The benchmarks' larger held-out set (1,500 tasks, `LARGE_HELDOUT_PATH`): held-out-bucket
    tasks outside the committed 300 and outside every built-in validation item the gate can
    draw, so learning curves measured on it are neither trained on nor chosen by the gate.
    Its standard error at 85% accuracy is 0.009, against 0.021 for the 300-task set."""
    exclude = frozenset(t.prompt for t in load_heldout()) | frozenset(
        t.prompt for t in build_validation(VALIDATION_RESERVE))
    return build_heldout(2026, LARGE_HELDOUT_PER_FAMILY, exclude)


def build_validation(per_family: int, seed: int = 4321) -> list[Task]:
    """Held-out-bucket tasks outside the committed held-out set, for choosing between versions
    (the promotion gate), so the reported held-out numbers never pick what gets promoted."""
    return build_heldout(seed, per_family, frozenset(t.prompt for t in load_heldout()))


def validation_items(n: int) -> list[dict]:
    """The embedded model's built-in validation source for the promotion gate (registered in
    `models/tiny-reasoner/rlvr_plugins.json`): `n` validation tasks at unlimited thinking
    (decisive) and at a 16-token budget (reported only), verified like the traffic."""
    tasks = build_validation(max(1, n // len(FAMILIES))) if n else []
    return [{"prompt": t.prompt, "spec": {"kind": "numeric", "reference": t.answer},
             "budget": budget, "decisive": budget is None, "source": "embedded"}
            for budget in (None, 16) for t in tasks]
