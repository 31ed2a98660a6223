"""The online trainer as a child process of `rlvr serve`.

Started once the server is ready, with an internal token (passed in the environment, never on
the command line) that lets it send shadow samples and promote versions. Restarted with a
growing back-off when it crashes (it resumes from its checkpoint and trace cursor); stopped
before the server drains. The child is `python -m rl_loop` (`rl_loop/entrypoint.py`); `rlvr
train` runs the same trainer standalone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import sys
from pathlib import Path

from rlvr.store.training import TRAINER_TOKEN_ENV
from runtime.orphans import die_with_parent

log = logging.getLogger(__name__)



class TrainerProcess:
    def __init__(self, server: str, state_dir: Path, token: str, extra_args: str = "",
                 max_restarts: int = 5, backoff_s: float = 2.0):
        self.args = [sys.executable, "-m", "rl_loop", "--server", server,
                     "--state-dir", str(state_dir), *shlex.split(extra_args)]
        self.token, self.max_restarts, self.backoff_s = token, max_restarts, backoff_s
        self.proc: asyncio.subprocess.Process | None = None
        self.stopping = False
        self.task: asyncio.Task | None = None
        self.restarts = 0
        self.failure = ""  # set once the trainer has exhausted its restarts

    def start(self) -> None:
        self.task = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        env = dict(os.environ, **{TRAINER_TOKEN_ENV: self.token})
        for attempt in range(self.max_restarts + 1):
            self.proc = await asyncio.create_subprocess_exec(*self.args, env=env,
                                                             preexec_fn=die_with_parent)
            log.info("trainer started (pid %d)", self.proc.pid)
            code = await self.proc.wait()
            if self.stopping or code == 0:
                log.info("trainer exited (%d)", code)
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
