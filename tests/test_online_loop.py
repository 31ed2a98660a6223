"""The online loop end to end on the real server: traffic -> traces -> GRPO -> gate -> swap."""

from __future__ import annotations

import asyncio
import json

import pytest
import torch

from clients.client import Client
from rl_loop.checkpoints import CheckpointStore
from rl_loop.trainer import Trainer, TrainerConfig
from rl_loop.traffic import run_traffic
from tests.conftest import ADMIN_TOKEN, API_TOKEN, TRAIN_TOKEN

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def test_traffic_trains_publishes_gates_and_swaps(server):
    report = asyncio.run(run_traffic(server.target, rate=6, duration=8, token=TRAIN_TOKEN,
                                     budgets=(64, 256)))
    assert report["requests"] >= 20 and report["failed"] == 0
    cfg = TrainerConfig(server=server.target, state_dir=server.state_dir, token=ADMIN_TOKEN,
                        max_steps=2, publish_every=2, prompts_per_step=6, group_size=6,
                        gate_tasks=30, gate_tolerance=1.0, poll_s=0.2)
    trainer = Trainer(cfg)
    asyncio.run(trainer.run())
    status = json.loads((server.state_dir / "trainer_status.json").read_text())
    assert status["step"] == 2 and status["groups"] >= 12 and status["promoted"] == 1
    assert status["samples"] > 0 and 0.0 <= status["mean_reward"] <= 1.0
    promoted = trainer.version
    with Client(server.target, token=ADMIN_TOKEN) as admin:
        listing = admin.list_versions()
        assert listing.current == promoted and listing.history[-1] == promoted
        manifest = CheckpointStore(server.state_dir).manifest(promoted)
        assert manifest["status"] == "promoted" and "gate_accuracy" in manifest["metrics"]
        assert admin.training_status().state in ("running", "waiting")
    with Client(server.target, token=API_TOKEN) as user:
        assert user.ask("What is 12+34?", budget=16).weight_version == promoted

    # a deliberately degraded candidate fails the gate and serving stays on `promoted`
    trainer.cfg.gate_tolerance = 0.02
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.copy_(p[torch.randperm(p.shape[0])] if p.dim() > 1 else p)
    async def gate():
        from clients.client import AsyncClient
        async with AsyncClient(server.target, token=ADMIN_TOKEN) as client:
            return await trainer.publish_and_gate(client)
    outcome = asyncio.run(gate())
    assert "rejected" in outcome
    rejected = [m for m in CheckpointStore(server.state_dir).versions() if m["status"] == "rejected"]
    assert rejected and rejected[-1]["reason"].startswith("gate:")
    with Client(server.target, token=ADMIN_TOKEN) as admin:
        assert admin.list_versions().current == promoted
        admin.rollback()  # leave the shared server on the base model
        assert admin.list_versions().current == "v0"
