"""The trainer's adapters staged in the engine for shadow requests only (`Admin.StageAdapter`).

With LoRA adapters that the server serves, the trainer stages its newest adapter every
`stage_every` steps, and its shadow groups name it (`GenerateRequest.adapter`): they are
sampled by the weights being trained, not by the version promoted up to `publish_every` steps
ago, while users stay on the gated version. A candidate is staged the same way to gate it
through the engine. An adapter is the folder `staged/<name>` of the state directory (peft's
layout, what vLLM loads); the engine holds at most a few, so every call retires what this
trainer no longer needs, and its folders are deleted. The first call learns what an earlier
trainer left staged, so a restart does not leak them.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from clients.client import AsyncClient, RlvrError
from rlvr.store.layout import StateDir
from rl_loop.policy import Policy

log = logging.getLogger(__name__)


class Stager:
    def __init__(self, state_dir: Path):
        self.dir = StateDir(state_dir).staged
        self.current = ""  # what the next shadow groups sample from ("": the served version)
        self.served_with: dict[str, str] = {}  # staged adapter -> the version served when staged
        self.gating = ""  # a candidate staged to gate it through the engine
        self.engine_holds: list[str] = []  # what the engine had staged at the last call

    async def stage(self, client: AsyncClient, policy: Policy, name: str,
                    adapter: dict) -> bool:
        """Write `adapter` as `staged/<name>` and stage it (retiring what is no longer
        needed); False when the server refused (the caller samples from the served version)."""
        folder = self.dir / name
        shutil.rmtree(folder, ignore_errors=True)
        policy.write_adapter(folder, adapter)
        if not self.engine_holds:  # first call: learn what an earlier trainer left
            await self._call(client, policy, "")
        return await self._call(client, policy, name)

    async def _call(self, client: AsyncClient, policy: Policy, name: str) -> bool:
        needed = set(policy.staged) | {self.gating, name} - {""}
        retire = [n for n in self.engine_holds if n not in needed]
        try:
            response = await client.stage_adapter(name, policy.base_version, retire)
        except RlvrError as err:
            log.warning("staging %s failed (%s)", name or "nothing", err)
            return False
        self.engine_holds = list(response.staged)
        for folder in self.dir.iterdir():
            if folder.name not in needed:
                shutil.rmtree(folder, ignore_errors=True)
        return True
