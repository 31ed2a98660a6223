"""The online loop end to end on the real server: traffic -> traces -> GRPO -> gate -> swap."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import torch

from clients.client import AsyncClient, Client
from rlvr.store.checkpoints import CheckpointStore
from rlvr.store.traces import ThinkingOptions
from rl_loop.prompt_pool import PromptPool
from rl_loop.toy.tasks import reference_for
from rl_loop.toy.tiny_model import MODEL_DIR, chat_prompt_ids
from rl_loop.trainer import Trainer, TrainerConfig
from rl_loop.toy.traffic import Traffic, run_traffic
from tests.conftest import ADMIN_TOKEN, API_TOKEN, TRAIN_TOKEN, ServerProcess, metric_value

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def test_traffic_trains_publishes_gates_and_swaps(server):
    report = asyncio.run(run_traffic(server.target, rate=6, duration=8, token=TRAIN_TOKEN,
                                     budgets=(64, 256)))
    assert report["requests"] >= 20 and report["failed"] == 0
    cfg = TrainerConfig(base_model=MODEL_DIR, server=server.target, state_dir=server.state_dir, token=ADMIN_TOKEN,
                        max_steps=2, publish_every=2, prompts_per_step=6, group_size=6,
                        gate_tasks=30, gate_z=1e9, min_validation=1, poll_s=0.2,
                        pipeline=True)
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
        assert manifest.status == "promoted" and "gate_accuracy" in manifest.metrics
        by_budget = manifest.metrics["accuracy_by_budget"]
        assert set(by_budget) == {"unlimited", "16"} and all(0 <= v <= 1 for v in by_budget.values())
        metrics = manifest.metrics  # the 30 built-in tasks plus the traffic's validation slice
        assert metrics["gate_items"] > 30 and 0 <= metrics["gate_accuracy"] <= 1
        assert set(metrics["traffic_accuracy_by_budget"]) <= {"64", "256"}
        assert admin.training_status().state in ("running", "waiting")
    with Client(server.target, token=API_TOKEN) as user:
        assert user.ask("What is 12+34?", budget=16).weight_version == promoted

    # a deliberately degraded candidate fails the gate and serving stays on `promoted`
    trainer.cfg.gate_z = 1.645
    with torch.no_grad():
        for p in trainer.policy.model.parameters():
            p.copy_(p[torch.randperm(p.shape[0])] if p.dim() > 1 else p)
    async def gate():
        from clients.client import AsyncClient
        async with AsyncClient(server.target, token=ADMIN_TOKEN) as client:
            return await trainer.publish_and_gate(client)
    outcome = asyncio.run(gate())
    assert "rejected" in outcome
    rejected = [m for m in CheckpointStore(server.state_dir).versions() if m.status == "rejected"]
    assert rejected and rejected[-1].reason.startswith("gate:")
    with Client(server.target, token=ADMIN_TOKEN) as admin:
        assert admin.list_versions().current == promoted
        admin.rollback()  # leave the shared server on the base model
        assert admin.list_versions().current == "v0"


# training-split comparisons the shipped model gets right in only ~30% / ~70% of samples at
# temperature 0.8 (measured with transformers' sampling): room for the reward to rise
SHAKY_COMPARISONS = ["Which is bigger, 47.2 or 47.528?", "Which is bigger, 54.9 or 53.7?",
                     "Which is bigger, 73.2244 or 73.9333?", "Which is bigger, 76.5 or 76.2?"]


def test_mean_reward_rises_on_an_easy_family(server):
    """GRPO through the real server on four fixed decimal comparisons: the served version's
    sampled reward on them goes up (the trainer's pool is pinned to those prompts)."""
    prompts = SHAKY_COMPARISONS
    cfg = TrainerConfig(base_model=MODEL_DIR, server=server.target, state_dir=server.state_dir, token=ADMIN_TOKEN,
                        publish_every=4, prompts_per_step=4, group_size=8, lr=3e-4,
                        gate_tasks=10, gate_z=1e9, min_validation=1, poll_s=0.2, max_sampling_rounds=1)
    trainer = Trainer(cfg)
    trainer.read_traces = lambda: None  # learn from the four prompts only
    trainer.pool = PromptPool(len(prompts))
    for prompt in prompts:
        trainer.pool.add((prompt, {"kind": "numeric", "reference": reference_for(prompt)},
                          ThinkingOptions()))
    trainer.cfg.max_steps = trainer.step + 24

    async def served_reward() -> float:
        from clients.client import AsyncClient
        trainer.rng.seed(5)
        async with AsyncClient(server.target, token=ADMIN_TOKEN) as client:
            groups = await trainer.sample_groups(client, list(trainer.pool) * 2)
        rewards = [s.reward for g in groups for s in g]
        return sum(rewards) / len(rewards)

    before = asyncio.run(served_reward())
    try:
        asyncio.run(trainer.run())
        assert trainer.stats["promoted"] == 6
        after = asyncio.run(served_reward())
        assert after >= before + 0.15, (before, after)
        with Client(server.target, token=ADMIN_TOKEN) as admin:
            assert admin.ask(prompts[0], budget=64).weight_version == trainer.version
    finally:
        with Client(server.target, token=ADMIN_TOKEN) as admin:
            admin.promote("v0")  # leave the shared server on the base model
            assert admin.list_versions().current == "v0"

def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(what)


def trainer_status(state_dir) -> dict:
    try:
        return json.loads((state_dir / "trainer_status.json").read_text())
    except (OSError, ValueError):
        return {}


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except OSError:
        return False


def committed_traces(state_dir) -> int:
    with sqlite3.connect(state_dir / "traces.sqlite") as conn:
        return conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0]


@pytest.mark.reliability
def test_serve_runs_the_trainer_which_survives_kill_9_of_itself_and_of_the_server(tmp_path):
    """`rlvr serve` supervises the trainer; kill -9 of the trainer, then of the server
    mid-traffic: the restart serves the last promoted version, the trainer resumes from its
    cursor and step, and every committed trace is still there."""
    trainer = {"publish_every": 2, "prompts_per_step": 4, "group_size": 4, "gate_tasks": 10,
               "gate_z": 1e9, "min_validation": 1, "poll_s": 0.2}
    first = ServerProcess(tmp_path, train="on", trainer=trainer, admin_tokens=[ADMIN_TOKEN])
    state = first.state_dir
    try:
        first.wait_ready()
        traffic = asyncio.run(run_traffic(first.target, rate=6, duration=6, token=ADMIN_TOKEN,
                                          budgets=(64, 256)))
        assert traffic["failed"] == 0
        with Client(first.target, token=ADMIN_TOKEN) as admin:
            promoted = wait_for(lambda: admin.list_versions().current != "v0" and
                                admin.list_versions().current, 300, "no version promoted")
        metrics = wait_for(lambda: (m := first.metrics()) and
                           metric_value(m, "rlvr_train_steps") >= 2 and m, 60, "no metrics")
        assert 0 <= metric_value(metrics, "rlvr_heldout_accuracy",
                                 f'budget="16",version="{promoted}"') <= 1
        assert 'rlvr_heldout_accuracy{budget="unlimited",version="v0"}' in metrics
        assert metric_value(metrics, "rlvr_versions", 'status="promoted"') >= 1
        for phase in ("sampling", "training", "publish"):  # where the time went: the steps
            assert metric_value(metrics, "rlvr_train_phase_seconds_total",
                                f'phase="{phase}"') > 0, phase
        for phase in ("sampling", "gate", "publish"):  # and what that work took
            assert metric_value(metrics, "rlvr_train_busy_seconds_total",
                                f'phase="{phase}"') > 0, phase

        victim = trainer_status(state)["pid"]
        assert os.getpriority(os.PRIO_PROCESS, victim) == os.getpriority(os.PRIO_PROCESS, 0) + 10
        os.kill(victim, signal.SIGKILL)  # the server restarts its trainer, which resumes
        status = wait_for(lambda: (s := trainer_status(state)).get("pid") not in (None, victim)
                          and s, 120, "trainer not restarted")
        assert status["step"] >= 2

        cut = Traffic(first.target, rate=6, token=ADMIN_TOKEN, budgets=(64,))
        background = threading.Thread(target=lambda: asyncio.run(cut.run(4)))
        background.start()
        time.sleep(2)
        engine_pids = [pid for pid, _ in json.loads(
            (state / "server_processes.json").read_text())["children"]]
        first.proc.kill()  # kill -9 of the server mid-traffic (the trainer dies with it)
        background.join()
        failed = [r.code for r in cut.records if not r.ok]  # in flight or sent after the kill
        assert failed and set(failed) == {"UNAVAILABLE"}, failed
        assert any(alive(pid) for pid in engine_pids)  # vLLM's engine outlives it ...
        last_promoted = CheckpointStore(state).current()
        traces_before, cursor_before = committed_traces(state), \
            json.loads((state / "trainer_state.json").read_text())["cursor"]
        wait_for(lambda: not alive(trainer_status(state)["pid"]), 30,
                 "the trainer outlived the server")
    finally:
        first.stop()

    second = ServerProcess(tmp_path / "again", train="on", trainer=trainer,
                           admin_tokens=[ADMIN_TOKEN], state_dir=state)
    try:
        second.wait_ready()
        assert not any(alive(pid) for pid in engine_pids)  # ... until the restart reaps it
        with Client(second.target, token=ADMIN_TOKEN) as admin:
            assert admin.list_versions().current == last_promoted
            assert admin.ask("What is 12+34?", budget=16).weight_version == last_promoted
        assert committed_traces(state) >= traces_before
        resumed = wait_for(lambda: (s := trainer_status(state)).get("cursor", 0) >= cursor_before
                           and s.get("pid") != status["pid"] and s, 120, "trainer not resumed")
        assert resumed["step"] >= status["step"]
    finally:
        second.stop()


def test_lora_candidates_are_merged_published_and_served(server):
    """`--lora-rank`: adapters are trained, merged into the published checkpoint, and the
    merged weights are hot-swapped into the real server like any other version."""
    report = asyncio.run(run_traffic(server.target, rate=6, duration=4, token=TRAIN_TOKEN,
                                     budgets=(64,)))
    assert report["failed"] == 0
    cfg = TrainerConfig(base_model=MODEL_DIR, server=server.target, state_dir=server.state_dir, token=ADMIN_TOKEN,
                        publish_every=2, prompts_per_step=4, group_size=6, gate_tasks=10,
                        gate_z=1e9, min_validation=1, poll_s=0.2, lora_rank=4, lr=1e-4)
    trainer = Trainer(cfg)
    trainer.cfg.max_steps = trainer.step + 2
    try:
        asyncio.run(trainer.run())
        assert trainer.stats["promoted"] == 1
        store = CheckpointStore(server.state_dir)
        from safetensors.torch import load_file
        weights = load_file(store.verified_path(trainer.version) / "model.safetensors")
        base = load_file(MODEL_DIR / "model.safetensors")
        assert set(weights) == set(base)  # merged: a plain Qwen2 checkpoint, no adapter tensors
        assert any(not torch.equal(weights[k], base[k]) for k in base)  # ... that learned
        with Client(server.target, token=ADMIN_TOKEN) as admin:
            assert admin.ask("What is 12+34?", budget=16).weight_version == trainer.version
    finally:
        with Client(server.target, token=ADMIN_TOKEN) as admin:
            admin.promote("v0")


def hf_greedy(model, tokenizer, prompt: str, max_new_tokens: int = 48) -> str:
    ids = torch.tensor([chat_prompt_ids(tokenizer, [{"role": "user", "content": prompt}])])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=False)


def stage_an_adapter_for_shadow_requests_only(server, store, prompts, before, after):
    """Admin.StageAdapter: shadow requests naming the adapter sample from it (v1's weights,
    greedy: v1's output), users stay on the served v0; every misuse is a precise error."""
    import shutil

    import grpc

    from clients.client import RlvrError

    shutil.copytree(store.verified_path("v1"), server.state_dir / "staged" / "probe")
    options = dict(budget=40, max_answer_tokens=8, hide_thinking=False, temperature=0.0)
    with Client(server.target, token=ADMIN_TOKEN) as admin:
        assert list(admin.stage_adapter("probe", "v0").staged) == ["probe"]
        shadow = admin.ask(prompts[0], shadow=True, adapter="probe", **options)
        user = admin.ask(prompts[0], **options)
        assert (shadow.weight_version, shadow.thinking) == ("probe", after[0].thinking)
        assert (user.weight_version, user.thinking) == ("v0", before[0].thinking)
        for call, code in (
                (lambda: admin.ask(prompts[0], adapter="probe", **options), "INVALID_ARGUMENT"),
                (lambda: admin.ask(prompts[0], shadow=True, adapter="nope", **options),
                 "FAILED_PRECONDITION"),
                (lambda: admin.stage_adapter("..", "v0"), "INVALID_ARGUMENT"),
                (lambda: admin.stage_adapter("missing", "v0"), "NOT_FOUND"),
                (lambda: admin.stage_adapter("probe", "v1"), "FAILED_PRECONDITION")):
            with pytest.raises(RlvrError) as err:
                call()
            assert err.value.code == getattr(grpc.StatusCode, code), err.value


def test_lora_adapters_switch_in_the_live_engine_without_failing_requests(tmp_path):
    """`max_lora_rank`: a promoted adapter is loaded into vLLM and new requests use it (their
    greedy output is the merged weights' output in transformers), requests in flight finish,
    none fails; the trainer publishes adapters to such a server, and a restart restores one."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
    adapted = get_peft_model(AutoModelForCausalLM.from_pretrained(MODEL_DIR), LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                            "gate_proj", "up_proj", "down_proj"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in adapted.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    server = ServerProcess(tmp_path, admin_tokens=[ADMIN_TOKEN], max_lora_rank=8)
    store = CheckpointStore(server.state_dir)
    store.publish(lambda folder: adapted.save_pretrained(folder), "v1", parent="v0", step=0)
    merged = adapted.merge_and_unload().eval()
    prompts = ["What is 12+34?", "Which is bigger, 3.25 or 3.4?", "What is 407*6?"]
    try:
        server.wait_ready()
        with Client(server.target, token=ADMIN_TOKEN) as admin:
            assert admin.model_info().max_lora_rank == 8
            before = [admin.ask(p, budget=40, max_answer_tokens=8) for p in prompts]

            async def promote_under_load():
                async with AsyncClient(server.target, token=ADMIN_TOKEN) as client:
                    streams = [asyncio.create_task(client.ask(f"What is {100 + i}+{i * 7}?",
                                                              budget=256)) for i in range(16)]
                    await asyncio.sleep(0.3)
                    swap = await client.promote("v1")
                    return swap, await asyncio.gather(*streams, return_exceptions=True)
            swap, results = asyncio.run(promote_under_load())
            assert not [r for r in results if isinstance(r, Exception)], results
            assert {r.weight_version for r in results} <= {"v0", "v1", "v0->v1"}
            after = [admin.ask(p, budget=40, max_answer_tokens=8, hide_thinking=False)
                     for p in prompts]
        assert [r.weight_version for r in before] == ["v0"] * 3
        assert all(r.weight_version == "v1" for r in after)
        same = sum(hf_greedy(merged, tokenizer, p).startswith(r.thinking[:24])
                   for p, r in zip(prompts, after))
        assert same >= 2, [(hf_greedy(merged, tokenizer, p), r.thinking) for p, r in
                           zip(prompts, after)]
        assert swap.swap_seconds < 5

        report = asyncio.run(run_traffic(server.target, rate=6, duration=4, token=ADMIN_TOKEN,
                                         budgets=(64,)))
        assert report["failed"] == 0
        with Client(server.target, token=ADMIN_TOKEN) as admin:
            back = admin.promote("v0")  # the trainer starts from the base; adapters apply to it
            assert back.swap_seconds < 0.01  # the base weights never left: the adapter is dropped
            again = [admin.ask(p, budget=40, max_answer_tokens=8) for p in prompts]
            assert [(r.thinking, r.answer, r.weight_version) for r in again] == \
                [(r.thinking, r.answer, r.weight_version) for r in before]
        stage_an_adapter_for_shadow_requests_only(server, store, prompts, before, after)
        trainer = Trainer(TrainerConfig(base_model=MODEL_DIR, server=server.target, state_dir=server.state_dir,
                                        token=ADMIN_TOKEN, publish_every=2, prompts_per_step=4,
                                        group_size=6, gate_tasks=10, gate_z=1e9, min_validation=1,
                                        poll_s=0.2, lora_rank=4, lr=1e-4, max_steps=2))
        asyncio.run(trainer.run())
        manifest = store.manifest(trainer.version)
        assert trainer.stats["promoted"] == 1 and manifest.adapter_base == "v0"
        assert manifest.metrics["gate_path"] == "engine"  # the candidate staged and asked
        # the second step's groups came from the first step's adapter, staged in the engine:
        # no row was an optimizer step behind (sampled by v0 they would have been 1 behind)
        assert trainer.stats["staged"] >= 1 and set(trainer.lags["lag_steps"]) == {0}
        assert (store.path(trainer.version) / "adapter_config.json").is_file()
    finally:
        server.stop()
    again = ServerProcess(tmp_path / "again", admin_tokens=[ADMIN_TOKEN], max_lora_rank=8,
                          state_dir=server.state_dir)
    try:
        again.wait_ready()
        with Client(again.target, token=ADMIN_TOKEN) as admin:
            assert admin.ask("What is 1+2?", budget=16).weight_version == trainer.version
    finally:
        again.stop()
