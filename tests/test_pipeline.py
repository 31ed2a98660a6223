"""The trainer's pipeline without a server: sampling overlaps training, the gate trains on,
lagged rows get the weights that sampled them, a frozen candidate stays frozen."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import pytest
import torch

from rl_loop.grpo import GRPOConfig
from rl_loop.trainer import Trainer, TrainerConfig
from runtime.config import MODEL_DIR
from tests.test_trainer import groups_for, logprob_of

pytestmark = pytest.mark.heavy  # trains the tiny model (`make test-fast` skips it)


class FakeServer:
    """The two Admin/Reasoning calls the loop makes besides sampling."""

    def __init__(self, version: str = "v0"):
        self.version, self.promoted = version, []

    async def model_info(self):
        return SimpleNamespace(weight_version=self.version)

    async def promote(self, version: str):
        self.version = version
        self.promoted.append(version)
        return SimpleNamespace(swap_seconds=0.001)


def trainer_with_fake_sampling(tmp_path, pipeline: bool, events: list, **kw) -> Trainer:
    trainer = Trainer(TrainerConfig(base_model=MODEL_DIR, state_dir=tmp_path, gate_tasks=20,
                                    min_validation=1, gate_z=1e9, lr=1e-3, warmup_steps=1,
                                    pipeline=pipeline, publish_every=kw.pop("publish_every", 2),
                                    **kw))
    trainer.state = lambda: "running"
    trainer.read_traces = lambda: None
    lock = threading.Lock()

    def mark(what: str) -> None:
        with lock:
            events.append((what, time.monotonic()))

    async def collect_groups(client):
        mark("sample start")
        await asyncio.sleep(0.05)
        mark("sample end")
        return groups_for(trainer)
    trainer.collect_groups = collect_groups
    train_step = trainer.train_step

    def timed_train_step(groups):
        mark("train start")
        time.sleep(0.2)  # long enough that a sampler running alongside visibly overlaps
        report = train_step(groups)
        mark("train end")
        return report
    trainer.train_step = timed_train_step
    return trainer


async def run_steps(trainer: Trainer, server: FakeServer, steps: int) -> None:
    from rl_loop.loop import Loop

    loop = Loop(trainer, server)
    try:
        while trainer.step < steps:
            await loop.step()
        await loop.finish()
    finally:
        await loop.cancel()


@pytest.mark.parametrize("pipeline", [True, False])
def test_the_next_batch_is_sampled_while_a_step_trains(tmp_path, pipeline):
    events: list = []
    trainer = trainer_with_fake_sampling(tmp_path, pipeline, events)
    server = FakeServer()
    asyncio.run(run_steps(trainer, server, 4))
    def spans(kind: str) -> list[tuple[float, float]]:
        return [(t, next(e for w, e in events if w == f"{kind} end" and e >= t))
                for what, t in events if what == f"{kind} start"]
    overlapped = sum(any(s < b and e > a for s, e in spans("sample"))
                     for a, b in spans("train"))
    if pipeline:  # every step but the last had its successor's batch sampled meanwhile
        assert overlapped >= 3
    else:
        assert overlapped == 0
    # gates at steps 2 and 4, both finished (the last at the end of the run), both promoted
    assert server.promoted == ["v1", "v2"] and trainer.version == "v2"
    assert trainer.stats["promoted"] == 2
    status = trainer.lags
    assert sum(status["lag_versions"].values()) > 0
    phases = trainer.busy.report()["phase_seconds"]
    assert phases["sampling"] > 0 and phases["gate"] > 0


def test_a_candidate_is_frozen_while_training_goes_on(tmp_path):
    trainer = Trainer(TrainerConfig(base_model=MODEL_DIR, state_dir=tmp_path, gate_tasks=0,
                                    lr=1e-3, warmup_steps=1))
    trainer.train_step(groups_for(trainer))
    candidate = trainer.policy.snapshot(trainer.step)
    frozen = {k: v.clone() for k, v in candidate.merged.state_dict().items()}
    trainer.train_step(groups_for(trainer))
    assert candidate.step == 1
    assert all(p.grad is None and not p.requires_grad for p in candidate.merged.parameters())
    assert all(torch.equal(frozen[k], v) for k, v in candidate.merged.state_dict().items())
    moved = trainer.policy.model.state_dict()
    assert any(not torch.equal(frozen[k], moved[k]) for k in frozen)
    # promoted, then a later candidate rejected: training restarts from the frozen copy
    trainer.policy.accept(candidate, "v1")
    trainer.policy.fresh()
    assert all(p.requires_grad for p in trainer.policy.model.parameters())
    assert trainer.train_step(groups_for(trainer))["loss"] is not None
    moved = trainer.policy.model.state_dict()
    assert any(not torch.equal(frozen[k], moved[k]) for k in frozen)
    assert all(torch.equal(frozen[k], v) for k, v in trainer.policy.served.state_dict().items())


def test_rows_sampled_before_a_promotion_get_their_own_behaviour_weights(tmp_path):
    trainer = Trainer(TrainerConfig(base_model=MODEL_DIR, state_dir=tmp_path, gate_tasks=0,
                                    lr=1e-2, warmup_steps=0))
    v0 = trainer.policy.served
    trainer.train_step(groups_for(trainer))
    trainer.policy.accept(trainer.policy.snapshot(trainer.step), "v1")   # as finish_gate does
    trainer.version = "v1"
    trainer.lineage.append("v1")
    trainer.fork_step["v1"] = trainer.step
    assert trainer.policy.behaviour("v0") is v0 and trainer.policy.behaviour("v1") is not v0

    old = groups_for(trainer)                                            # sampled by v0
    new = groups_for(trainer)
    for sample in (s for g in new for s in g):
        sample.version = "v1"
    rows = old[0] + new[0]
    behaviour, reference, _ = trainer.update._fixed_logprobs(trainer.policy, rows)
    assert all(r is b for r, b in zip(reference, behaviour))  # served samplers: the KL anchor too

    def under(model, row):  # [T-1] log-probs of one row's tokens under `model`
        ids, attention, _ = trainer.update.batch([row])
        with torch.no_grad():
            return trainer.update.logprobs(model, ids, attention)[0]
    assert torch.allclose(behaviour[0], under(v0, rows[0]), atol=1e-5)
    assert torch.allclose(behaviour[-1], under(trainer.policy.served, rows[-1]), atol=1e-5)
    assert not torch.allclose(behaviour[0], under(trainer.policy.served, rows[0]), atol=1e-3)

    for counts in trainer.lags.values():
        counts.clear()  # count this step's rows only
    report = trainer.train_step([old[0], new[0]])
    assert report["loss"] is not None and report["staleness"] == pytest.approx(0.5)
    assert trainer.lags["lag_versions"] == {0: 4, 1: 4}
    assert trainer.lags["lag_steps"][0] == 4  # v1's rows: the policy is v1 before this step
    assert trainer.lags["lag_steps"][1] == 4  # v0's rows: one optimizer step behind
    assert report["is_weight"] != pytest.approx(1.0)  # the v0 rows' weights are not 1


def test_rows_of_a_version_no_longer_kept_are_dropped_as_stale(tmp_path):
    trainer = Trainer(TrainerConfig(base_model=MODEL_DIR, state_dir=tmp_path, gate_tasks=0,
                                    objective=GRPOConfig(max_staleness=0)))
    trainer.train_step(groups_for(trainer))
    trainer.policy.accept(trainer.policy.snapshot(trainer.step), "v1")
    trainer.version = "v1"
    trainer.lineage.append("v1")
    assert trainer.policy.behaviour("v0") is None  # one version kept: v1's
    report = trainer.train_step(groups_for(trainer))  # every row sampled by v0
    assert report["loss"] is None and trainer.stats["stale_samples_dropped"] == 8


class StagingServer(FakeServer):
    """Also stages and retires adapters as Admin.StageAdapter does (the folder must be
    there), and answers greedy shadow requests: 1.0 from a staged candidate, else 0.0."""

    def __init__(self, state_dir, version: str = "v0"):
        super().__init__(version)
        self.state_dir, self.staged, self.holds, self.asked = state_dir, [], [], []

    async def stage_adapter(self, name: str, base_version: str, retire=()):
        self.holds = [n for n in self.holds if n not in retire]
        if name:
            assert (self.state_dir / "staged" / name / "adapter_config.json").is_file()
            assert base_version == "v0"  # adapters apply to the full weights served
            self.staged.append(name)
            self.holds.append(name)
        return SimpleNamespace(load_seconds=0.001, staged=list(self.holds))

    async def ask(self, prompt, *, adapter="", shadow=False, temperature=None, **options):
        assert shadow and temperature == 0.0
        self.asked.append(adapter)
        return SimpleNamespace(verification={"reward": 1.0 if adapter else 0.0})


def test_shadow_groups_sample_from_the_newest_staged_adapter(tmp_path):
    """LoRA adapters the server serves: after every step the adapter is staged, the next
    groups name it, their rows count as 0 steps behind, and their behaviour log-probs are
    the staged weights' (not the served version's, not the policy's after later steps)."""
    events: list = []
    trainer = trainer_with_fake_sampling(tmp_path, False, events, lora_rank=4, publish_every=100)
    trainer.policy.serve_adapters(8)
    asked: list[str] = []

    async def collect_groups(client):
        asked.append(trainer.stager.current)
        groups = groups_for(trainer)
        for sample in (s for g in groups for s in g):
            sample.version = trainer.stager.current or "v0"
        return groups
    trainer.collect_groups = collect_groups
    server = StagingServer(tmp_path)
    asyncio.run(run_steps(trainer, server, 3))
    assert server.staged == ["step-1", "step-2", "step-3"] and trainer.stats["staged"] == 3
    assert asked == ["", "step-1", "step-2"]  # the first batch comes from the served version
    assert trainer.lags["lag_steps"] == {0: 12}  # 4 rows a step, always the newest weights
    assert trainer.lags["lag_versions"] == {0: 12}
    assert sorted(p.name for p in (tmp_path / "staged").iterdir()) == [
        "step-1", "step-2", "step-3"]

    row = groups_for(trainer)[0][0]
    row.version = "step-2"
    with trainer.policy.sampler("step-2") as staged:
        at_step_2 = logprob_of(trainer, staged, row)
    now = logprob_of(trainer, trainer.policy.model, row)
    assert at_step_2 != pytest.approx(now, abs=1e-4)  # step 3 trained on: other weights
    with trainer.policy.sampler("step-3") as staged:
        assert logprob_of(trainer, staged, row) == pytest.approx(now, abs=1e-5)
    assert logprob_of(trainer, trainer.policy.model, row) == pytest.approx(now, abs=1e-6)
    behaviour, reference, _ = trainer.update._fixed_logprobs(trainer.policy, [row])
    assert float(behaviour[0][-len(row.completion_ids):].sum()) == pytest.approx(
        at_step_2, abs=1e-4)
    assert reference[0] is behaviour[0]  # no KL: nothing else computed

    trainer.policy.fresh()  # as a rejection does: the staged drift is dropped
    assert trainer.policy.knows("step-3")


def test_a_failed_stage_samples_from_the_served_version(tmp_path):
    import grpc

    from clients.client import RlvrError

    trainer = trainer_with_fake_sampling(tmp_path, False, [], lora_rank=4, publish_every=100)
    trainer.policy.serve_adapters(8)
    server = StagingServer(tmp_path)

    async def refuse(name, base_version, retire=()):
        raise RlvrError(grpc.StatusCode.FAILED_PRECONDITION, "base_version: v1 held")
    server.stage_adapter = refuse
    asyncio.run(run_steps(trainer, server, 2))
    assert trainer.stager.current == "" and trainer.stats["stage_failures"] == 2


def test_an_adapter_candidate_is_gated_through_the_engine(tmp_path):
    """Adapters the server serves: the candidate is staged and both sides are asked through
    the server (greedy shadow requests); the decision uses those rewards, the manifest says
    so, and the candidate is retired with the next stage."""
    from rlvr.store.checkpoints import CheckpointStore

    trainer = trainer_with_fake_sampling(tmp_path, False, [], lora_rank=4, publish_every=2)
    trainer.policy.serve_adapters(8)
    server = StagingServer(tmp_path)
    asyncio.run(run_steps(trainer, server, 3))
    assert "candidate-v1" in server.staged and server.promoted == ["v1"]
    metrics = CheckpointStore(tmp_path).manifest("v1").metrics
    assert metrics["gate_path"] == "engine"
    assert (metrics["gate_accuracy"], metrics["gate_baseline"]) == (1.0, 0.0)
    items = len(trainer.gate_items())
    assert server.asked.count("candidate-v1") == items and server.asked.count("") == items
    assert "candidate-v1" not in server.holds  # retired by the stage after the gate
    assert not (tmp_path / "staged" / "candidate-v1").exists()
