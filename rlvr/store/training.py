"""What the server and the trainer tell each other besides weights and traces.

- `TrainingControl` (`training_control.json`): written by the server (`Admin.PauseTraining`,
  `ResumeTraining`), read by the trainer before each step.
- `TrainerStatus` (`trainer_status.json`): written by the trainer after each step and gate,
  read by the server (`Admin.GetTrainingStatus`, `/metrics`) and the demo.
- `TrainerState` (`trainer_state.json`): the trainer's own resume point (trace cursor, step).

Both are small JSON files replaced atomically, so a reader sees the old record or the new
one, never half of one. A record that cannot be read (missing, or replaced while being read)
reads as None or as the default; it is never an error for the reader.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from rlvr.store.layout import StateDir, write_json_atomic

TRAINER_TOKEN_ENV = "RLVR_TRAINER_TOKEN"  # how `rlvr serve` hands its trainer child a token


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class TrainingControl:
    paused: bool = False
    at: float = 0.0  # when it was last set (seconds since the epoch)

    @staticmethod
    def read(state: StateDir) -> "TrainingControl":
        data = _read_json(state.training_control)
        return TrainingControl(bool(data.get("paused", False)), float(data.get("at", 0.0))) \
            if isinstance(data, dict) else TrainingControl()

    def write(self, state: StateDir) -> None:
        state.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(state.training_control, dataclasses.asdict(self))


@dataclass
class TrainerStatus:
    """The trainer's report. `counters` holds the step's numbers and running counts (loss,
    mean_reward, groups, promoted, ...: the `/metrics` gauges and counters read them by
    name); the file is one flat JSON object."""

    state: str = "running"
    pid: int = 0
    step: int = 0
    version: str = ""
    cursor: int = 0
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # version: budget: acc
    validation_items: int = 0
    phase_seconds: dict[str, float] = field(default_factory=dict)  # what the loop waited for
    phase_share: dict[str, float] = field(default_factory=dict)
    busy_seconds: dict[str, float] = field(default_factory=dict)   # what the work took
    lag_versions: dict[str, int] = field(default_factory=dict)     # lag: trained rows
    lag_steps: dict[str, int] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    counters: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        named = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                 if f.name != "counters"}
        return {**self.counters, **named}

    @classmethod
    def from_json(cls, data: dict) -> "TrainerStatus":
        names = {f.name for f in dataclasses.fields(cls)} - {"counters"}
        return cls(**{k: v for k, v in data.items() if k in names},
                   counters={k: v for k, v in data.items() if k not in names})

    def write(self, state: StateDir) -> None:
        write_json_atomic(state.trainer_status, self.to_json())

    @staticmethod
    def read(state: StateDir, max_age_s: float | None = None) -> "TrainerStatus | None":
        """The last status, or None: none written, unreadable, or older than `max_age_s`."""
        path = state.trainer_status
        try:
            if max_age_s is not None and time.time() - path.stat().st_mtime > max_age_s:
                return None
        except OSError:
            return None
        data = _read_json(path)
        return TrainerStatus.from_json(data) if isinstance(data, dict) else None


@dataclass(frozen=True)
class TrainerState:
    cursor: int = 0  # the last trace read
    step: int = 0    # optimizer steps taken

    @staticmethod
    def read(state: StateDir) -> "TrainerState":
        data = _read_json(state.trainer_state)
        return TrainerState(int(data.get("cursor", 0)), int(data.get("step", 0))) \
            if isinstance(data, dict) else TrainerState()

    def write(self, state: StateDir) -> None:
        write_json_atomic(state.trainer_state, dataclasses.asdict(self), fsync=True)
