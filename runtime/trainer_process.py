"""The online trainer as a child process of `rlvr serve`.

Started once the server is ready, with an internal token (passed in the environment, never on
the command line) that lets it send shadow samples and promote versions. Restarted with a
growing back-off when it crashes (it resumes from its checkpoint and trace cursor); stopped
before the server drains. The child is `python -m rl_loop` (`rl_loop/entrypoint.py`); `rlvr
train` runs the same trainer standalone. Its settings are the server's `train_config` file
(and `RLVR_TRAINER_*` variables), plus the facts the server knows: its address, state
directory, model folder and certificate. A child that exits with status 2 (a setting it
cannot start with) is not restarted: the reason is in the server's log and training status.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

from rlvr.store.training import TRAINER_TOKEN_ENV
from runtime.orphans import die_with_parent

log = logging.getLogger(__name__)
USAGE_ERROR = 2  # the trainer's exit status for settings it cannot start with


class TrainerProcess:
    def __init__(self, server: str, state_dir: Path, token: str, base_model: Path,
                 config: Path | None = None, root_cert: Path | None = None,
                 trace_store: str = "", checkpoint_store: str = "", max_restarts: int = 5,
                 backoff_s: float = 2.0):
        self.args = [sys.executable, "-m", "rl_loop", "--server", server,
                     "--state-dir", str(state_dir), "--base-model", str(base_model)]
        self.args += ["--config", str(config)] if config else []
        self.args += ["--tls-ca", str(root_cert)] if root_cert else []
        # secrets travel in the environment, not on a command line others can read
        self.env = {TRAINER_TOKEN_ENV: token, "RLVR_TRAINER_TRACE_STORE": trace_store,
                    "RLVR_TRAINER_CHECKPOINT_STORE": checkpoint_store}
        self.max_restarts, self.backoff_s = max_restarts, backoff_s
        self.proc: asyncio.subprocess.Process | None = None
        self.stopping = False
        self.task: asyncio.Task | None = None
        self.restarts = 0
        self.failure = ""  # set once the trainer has exhausted its restarts

    def start(self) -> None:
        self.task = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        env = dict(os.environ, **self.env)
        for attempt in range(self.max_restarts + 1):
            self.proc = await asyncio.create_subprocess_exec(*self.args, env=env,
                                                             preexec_fn=die_with_parent)
            log.info("trainer started (pid %d)", self.proc.pid)
            code = await self.proc.wait()
            if self.stopping or code == 0:
                log.info("trainer exited (%d)", code)
                return
            if code == USAGE_ERROR:
                self.failure = ("failed: its settings are invalid (see the server log); "
                                "serving goes on without training")
                log.error("trainer %s", self.failure)
                return
            if attempt == self.max_restarts:
                self.failure = (f"failed: exited with status {code} after {self.restarts} "
                                "restarts; serving goes on without training")
                log.error("trainer %s", self.failure)
                return
            self.restarts = attempt + 1
            delay = self.backoff_s * 2 ** attempt
            log.error("trainer exited with status %d; restart %d/%d in %.0fs", code,
                      self.restarts, self.max_restarts, delay)
            await asyncio.sleep(delay)

    async def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the trainer (it finishes nothing half-way: publishes are atomic), then kill."""
        self.stopping = True
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), grace_s)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.task is not None:
            self.task.cancel()
