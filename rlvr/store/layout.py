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


def _record(relative: str) -> property:
    return property(lambda self: self.root / relative, doc=f"<root>/{relative}")


@dataclass(frozen=True)
class StateDir:
    """The paths of the table above, under `root`."""

    root: Path
    traces = _record("traces.sqlite")
    checkpoints = _record("checkpoints")
    staged = _record("staged")
    trainer_status = _record("trainer_status.json")
    trainer_state = _record("trainer_state.json")
    training_control = _record("training_control.json")
    server_processes = _record("server_processes.json")


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
