"""Clean up after a server that was killed with SIGKILL.

vLLM runs its engine in child processes. When the server dies by `kill -9` they are orphaned
and keep their memory (on a GPU: the GPU memory the restarted server needs). The server
records its child processes in the state directory once it is ready; the next server on the
same state directory kills the recorded ones that outlived their server. A process counts as
the same one only if its start time matches (pids are reused), and nothing is killed while the
recorded server itself is still alive. Processes this project starts itself (the trainer, a
demo's server) ask the kernel to end them with their parent instead: `die_with_parent`.
"""

from __future__ import annotations

import json
import logging
import ctypes
import os
import signal
import sys
from pathlib import Path

import psutil

from rlvr.store.layout import StateDir, write_json_atomic

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Run in a child before exec: SIGTERM it when its parent dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _identity(proc: psutil.Process) -> list:
    return [proc.pid, proc.create_time()]


def _same(pid: int, created: float) -> psutil.Process | None:
    try:
        proc = psutil.Process(pid)
        return proc if abs(proc.create_time() - created) < 1e-3 else None
    except psutil.Error:
        return None


def record(state_dir: Path) -> None:
    """Write this server and its current child processes to the state directory."""
    me = psutil.Process(os.getpid())
    entry = {"server": _identity(me),
             "children": [_identity(c) for c in me.children(recursive=True)]}
    write_json_atomic(StateDir(state_dir).server_processes, entry)


def reap(state_dir: Path) -> list[int]:
    """Kill the recorded children of a dead server; returns their pids."""
    path = StateDir(state_dir).server_processes
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if _same(*entry["server"]) is not None:
        return []  # that server is still running: not ours to clean
    killed = []
    for pid, created in entry["children"]:
        proc = _same(pid, created)
        if proc is not None:
            proc.kill()
            killed.append(pid)
    if killed:
        log.warning("killed %d processes left behind by a server that was killed: %s",
                    len(killed), killed)
    path.unlink(missing_ok=True)
    return killed
