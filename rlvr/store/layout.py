"""The state directory that a server and its trainer share: every record's path, in one place.

| record | path | written by | read by |
|---|---|---|---|
| trace log | `traces.sqlite` | server (`TraceStore`) | trainer, `rlvr traces` (`TraceReader`) |
| checkpoints | `checkpoints/<version>/` | trainer (publish, gate verdict, retention) | server, trainer |
| promotion history | `checkpoints/promoted.json` | server (`Admin`: promote, rollback) | trainer, demo |
| staged adapters | `staged/<name>/` | trainer | server (`Admin.StageAdapter`) |
| trainer status | `trainer_status.json` | trainer | server (`Admin`, `/metrics`), demo |
| trainer state | `trainer_state.json` | trainer (cursor and step, to resume) | trainer |
| training control | `training_control.json` | server (`Admin.PauseTraining`) | trainer |
| server processes | `server_processes.json` | server | the next server (after `kill -9`) |

Each record has one writer; the others only read it. Small records are JSON files replaced
atomically (`write_json_atomic`): a reader sees the old file or the new one.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StateDir:
    root: Path

    @property
    def traces(self) -> Path:
        return self.root / "traces.sqlite"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def staged(self) -> Path:
        return self.root / "staged"

    @property
    def trainer_status(self) -> Path:
        return self.root / "trainer_status.json"

    @property
    def trainer_state(self) -> Path:
        return self.root / "trainer_state.json"

    @property
    def training_control(self) -> Path:
        return self.root / "training_control.json"

    @property
    def server_processes(self) -> Path:
        return self.root / "server_processes.json"


def write_json_atomic(path: Path, data, fsync: bool = False) -> None:
    """Replace `path` with `data` as JSON: a reader sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    try:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk: nothing half-written stays behind
        tmp.unlink(missing_ok=True)
        raise
