"""Where the trainer's time goes: wall-clock seconds per phase of the loop.

Phases: `sampling` (shadow groups through the server, following admin actions), `training`
(the GRPO update), `gate` (scoring candidate and served versions on validation items),
`publish` (writing the checkpoint, promoting it, staging the newest adapter), `waiting` (no
traffic yet, paused, retrying).
The trainer keeps two clocks: what each step of its loop waited for (`phase_seconds`, the
critical path; with the pipeline, sampling and gating mostly run while a step trains, so
little of them is waited for) and how long sampling, gate and publish took wherever they ran
(`busy_seconds`). Totals since start go to the trainer's status, its metrics
(`rlvr_train_phase_seconds_total`, `rlvr_train_busy_seconds_total`) and `demo.json`.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

PHASES = ("sampling", "training", "gate", "publish", "waiting")


class PhaseClock:
    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)

    @contextmanager
    def time(self, phase: str) -> Iterator[None]:
        if phase not in self.seconds:
            raise ValueError(f"unknown phase {phase!r} (one of {', '.join(PHASES)})")
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[phase] += time.monotonic() - start

    def report(self) -> dict:
        """{"phase_seconds": totals, "phase_share": each phase's share of all of them}."""
        total = sum(self.seconds.values()) or 1.0
        return {"phase_seconds": {p: round(s, 3) for p, s in self.seconds.items()},
                "phase_share": {p: round(s / total, 4) for p, s in self.seconds.items()}}
