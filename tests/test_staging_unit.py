"""Staged adapters in the engine layer, without vLLM: the base check, the cap, retiring."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runtime.config import MODEL_DIR
from runtime.engine import MAX_STAGED, Engine


class AddsAdapters:
    def __init__(self):
        self.loaded = []

    async def add_lora(self, request):
        self.loaded.append((request.lora_name, request.lora_int_id))


def test_staged_adapters_apply_to_the_held_weights_up_to_a_cap_until_retired():
    engine = Engine(MODEL_DIR)
    engine.llm = AddsAdapters()

    async def stage(name: str, base: str = "v0"):
        return await engine.stage_adapter(Path("/staged") / name, name, base)

    with pytest.raises(ValueError, match="base_version: the adapter was trained on v3, the "
                                         "engine holds the full weights of v0"):
        asyncio.run(stage("a", "v3"))
    for i in range(MAX_STAGED):
        asyncio.run(stage(f"step-{i}"))
    with pytest.raises(OverflowError, match="retire some first"):
        asyncio.run(stage("one-more"))
    asyncio.run(stage("step-0"))  # staging a name again replaces it (new weights, new id)
    assert list(engine.staged)[-1] == "step-0" and len(engine.staged) == MAX_STAGED
    engine.retire_adapters(["step-1", "step-2", "unknown"])
    asyncio.run(stage("one-more"))
    assert len(engine.staged) == MAX_STAGED - 1
    ids = [i for _, i in engine.llm.loaded]
    assert len(set(ids)) == len(ids)  # every load is a new adapter id: vLLM reloads it
    assert engine.weight_version == "v0" and engine.lora is None  # users: the served version
