"""Serve-time verification, trust gating, the trace log and delayed feedback, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from clients.client import Client, RlvrError
from rl_loop.toy.tasks import reference_for
from rlvr.store.traces import TraceReader
from tests.conftest import API_TOKEN, REPO, TRAIN_TOKEN, metric_value

pytestmark = pytest.mark.engine


@pytest.fixture()
def trainer_client(server):
    with Client(server.target, token=TRAIN_TOKEN) as c:
        yield c


def wait_for_trace(server, request_id: str, predicate=lambda t: True, timeout: float = 60.0):
    reader = TraceReader(server.state_dir / "traces.sqlite")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            traces = [t for t in reader.find(request_id) if predicate(t)]
            if traces:
                return traces
            time.sleep(0.05)
    finally:
        reader.close()
    raise AssertionError(f"no trace for {request_id}")


def test_verdict_matches_the_true_answer(trainer_client):
    prompt = "What is 4821+377?"
    truth = reference_for(prompt)
    plain = trainer_client.ask(prompt, budget=128)
    result = trainer_client.ask(prompt, budget=128, verify=f"numeric:{truth}",
                                request_id="verify-1")
    assert result.answer == plain.answer  # greedy: verification does not change generation
    v = result.verification
    assert v["kind"] == "numeric" and v["extracted_answer"] == result.answer.strip()
    assert v["verdict"] == ("correct" if result.answer.strip() == truth else "incorrect")
    assert v["reward"] == (1.0 if v["verdict"] == "correct" else 0.0)
    assert result.verified_correct == (1 if v["verdict"] == "correct" else 0)


def test_trust_gating(server, trainer_client, client):
    prompt = "What is 123+456?"
    trainer_client.ask(prompt, budget=64, verify="numeric:579", request_id="trusted-1")
    trainer_client.ask(prompt, budget=64, verify="numeric:580", request_id="poison-1")
    client.ask(prompt, budget=64, verify="numeric:579", request_id="untrusted-1")
    trusted, = wait_for_trace(server, "trusted-1")
    poison, = wait_for_trace(server, "poison-1")
    untrusted, = wait_for_trace(server, "untrusted-1")
    assert trusted.trainable and trusted.untrusted_reason == ""
    assert trusted.thinking_ids and trusted.prompt_ids and trusted.weight_version == "v0"
    assert trusted.thinking_options.budget == 64 and trusted.spec["reference"] == "579"
    assert not poison.trainable and poison.untrusted_reason == "reference_mismatch"
    assert not untrusted.trainable and untrusted.untrusted_reason == "untrusted_source"
    assert untrusted.source.startswith("token:") and untrusted.source != trusted.source


def test_bad_verification_spec_is_invalid_argument(client):
    for verify, field in [("telepathy:1", "verification.kind"), ("numeric:abc", "verification.reference"),
                          ("choice:BB", "verification.reference")]:
        with pytest.raises(RlvrError) as err:
            client.ask("What is 1+2?", verify=verify)
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and field in err.value.message


def test_verification_timeout_is_the_callers_within_the_servers_cap(server, trainer_client):
    spec = {"kind": "numeric", "reference": "46", "timeout_s": 31}
    with pytest.raises(RlvrError) as err:
        trainer_client.ask("What is 12+34?", budget=16, spec=spec)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "verification.timeout_s: must be in (0, 30] seconds" in err.value.message
    trainer_client.ask("What is 12+34?", budget=16, spec=spec | {"timeout_s": 5},
                       request_id="timeout-5")
    trainer_client.ask("What is 12+34?", budget=16, verify="numeric:46",
                       request_id="timeout-default")
    assert wait_for_trace(server, "timeout-5")[0].spec["timeout_s"] == 5
    assert wait_for_trace(server, "timeout-default")[0].spec["timeout_s"] == 10


def test_a_reference_too_slow_to_compare_is_invalid_argument(trainer_client):
    """Parsing "2^{2^{100}}" is instant; comparing anything with it never ends. The admission
    check (2 s, in the caller's verifier share) catches it before any generation."""
    trainer_client.ask("What is 2+2?", budget=16, request_id="slow-reference")
    for call in (lambda: trainer_client.ask("What is 2+2?", budget=16, verify="math:2^{2^{100}}"),
                 lambda: trainer_client.feedback("slow-reference", verify="math:2^{2^{100}}")):
        with pytest.raises(RlvrError) as err:
            call()
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "verification.reference: did not parse and compare within 2s" in err.value.message
    with pytest.raises(RlvrError) as err:
        trainer_client.ask("What is 2+2?", budget=16, verify="math:\\boxed{}")
    assert "verification.reference" in err.value.message and "cannot be parsed" in err.value.message
    ok = trainer_client.ask("What is 2+2?", budget=16, verify="math:4").verification
    assert ok["verdict"] in ("correct", "incorrect")


ENDLESS = {"kind": "code", "tests": ["assert any(iter(int, 1))"] * 4, "timeout_s": 8}


def test_slow_verification_costs_only_its_own_caller(server, client, trainer_client):
    """One caller's endless tests hold one verifier worker of two (its share); the other
    caller's verified request gets the free worker while the first caller's jobs wait."""
    def gauge(name: str) -> float:
        return metric_value(server.metrics(), name)

    with ThreadPoolExecutor(3) as pool:
        flood = [pool.submit(client.ask, "What is 4821+377?", budget=16, spec=ENDLESS)
                 for _ in range(3)]
        deadline = time.monotonic() + 120
        while not (gauge("rlvr_verifier_workers_busy") == 1
                   and gauge("rlvr_verifier_jobs_waiting") == 2):
            assert time.monotonic() < deadline, "the flood's jobs never queued behind its share"
            time.sleep(0.05)
        result = trainer_client.ask("What is 12+34?", budget=16, verify="numeric:46")
        assert result.verification["verdict"] in ("correct", "incorrect")
        assert not any(f.done() for f in flood)  # served while the flood waited for its share
        verdicts = [f.result(timeout=120).verification["verdict"] for f in flood]
    assert set(verdicts) <= {"incorrect", "timeout"}


def test_best_of_n_returns_only_the_best_verified_choice(trainer_client):
    prompt = "What is 4821+377?"
    events = list(trainer_client.stream(prompt, budget=128, n=6, temperature=1.0, seed=3,
                                        verify=f"numeric:{reference_for(prompt)}",
                                        best_of_n=True))
    finished = [e.finished for e in events if e.WhichOneof("event") == "finished"]
    summary = events[-1].summary
    assert len(finished) == 1 and summary.choices == 6
    assert finished[0].index == summary.best_index
    assert (finished[0].verification.verdict == "correct") == (summary.verified_correct > 0)


def test_feedback_turns_a_served_request_into_a_trace(server, trainer_client, client):
    trainer_client.ask("What is 12+34?", budget=64, request_id="fb-1")
    response = trainer_client.feedback("fb-1", reward=1.0)
    assert response.trainable and response.result.reward == 1.0
    trace, = wait_for_trace(server, "fb-1")
    assert trace.reward == 1.0 and trace.verdict == "feedback" and trace.feedback_at
    with pytest.raises(RlvrError) as err:
        trainer_client.feedback("fb-1", reward=0.0)
    assert err.value.code == grpc.StatusCode.ALREADY_EXISTS
    replaced = trainer_client.feedback("fb-1", verify="numeric:46", replace=True)
    assert replaced.result.kind == "numeric" and replaced.result.verdict in ("correct", "incorrect")
    wait_for_trace(server, "fb-1", lambda t: t.verdict == replaced.result.verdict)
    with pytest.raises(RlvrError) as err:
        trainer_client.feedback("no-such-request", reward=1.0)
    assert err.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(RlvrError) as err:
        trainer_client.feedback("fb-1", reward=7.0, replace=True)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    # feedback from an untrusted caller is recorded but never trainable
    client.ask("What is 12+34?", budget=64, request_id="fb-2")
    assert client.feedback("fb-2", reward=1.0).trainable is False


def test_cli_verify_json_and_traces(server):
    out = subprocess.run([sys.executable, "-m", "clients.cli", "ask", "--server", server.target,
                          "--token", API_TOKEN, "--budget", "64", "--verify", "numeric:579",
                          "--request-id", "cli-verify-json", "--json", "What is 123+456?"],
                         cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    v = json.loads(out.stdout)["verification"]
    assert set(v) >= {"kind", "reward", "verdict", "extracted_answer"} and v["kind"] == "numeric"
    wait_for_trace(server, "cli-verify-json")  # committed by the trace writer
    out = subprocess.run([sys.executable, "-m", "clients.cli", "traces", "--state-dir",
                          str(server.state_dir), "--json", "--export",
                          str(server.state_dir / "export.jsonl")], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["total"] >= 1 and stats["by_weight_version"].get("v0", 0) == stats["total"]
    lines = (server.state_dir / "export.jsonl").read_text().splitlines()
    assert len(lines) == stats["total"] and "prompt_ids" in json.loads(lines[0])
    assert metric_value(server.metrics(), "rlvr_verifications_total",
                        f'kind="numeric",verdict="{v["verdict"]}",weight_version="v0"') >= 1


@pytest.mark.reliability
def test_a_poisoning_flood_never_reaches_the_trainers_inputs(server):
    """Untrusted callers flood wrong references and feedback; a trusted caller sends wrong
    references for prompts the server can check. None of it becomes trainable, and a trainer
    reading the log from its cursor gets none of those prompts."""
    import asyncio
    import random

    from clients.client import AsyncClient
    from runtime.config import MODEL_DIR
    from rl_loop.trainer import Trainer, TrainerConfig

    rng = random.Random(3)
    pairs = [(rng.randint(10, 999), rng.randint(10, 999)) for _ in range(120)]

    async def flood(token: str, tag: str) -> None:
        sem = asyncio.Semaphore(24)
        async with AsyncClient(server.target, token=token) as c:
            async def one(i: int, a: int, b: int) -> None:
                async with sem:
                    rid = f"{tag}-{i}"
                    await c.ask(f"What is {a}+{b}?", request_id=rid, budget=0,
                                max_answer_tokens=4, verify=f"numeric:{a + b + 1}")
                    try:
                        await c.feedback(rid, reward=1.0)
                    except RlvrError as err:  # e.g. the trace is not committed yet
                        assert err.code == grpc.StatusCode.NOT_FOUND
            await asyncio.gather(*(one(i, a, b) for i, (a, b) in enumerate(pairs)))

    asyncio.run(flood(API_TOKEN, "flood-untrusted"))
    asyncio.run(flood(TRAIN_TOKEN, "flood-mismatch"))
    for tag in ("flood-untrusted", "flood-mismatch"):
        wait_for_trace(server, f"{tag}-{len(pairs) - 1}")
    reader = TraceReader(server.state_dir / "traces.sqlite")
    try:
        flooded = [t for t in reader.iter_all() if t.request_id.startswith("flood-")]
    finally:
        reader.close()
    assert len(flooded) == 2 * len(pairs) and not any(t.trainable for t in flooded)
    assert {t.untrusted_reason for t in flooded} == {"untrusted_source", "reference_mismatch"}

    trainer = Trainer(TrainerConfig(base_model=MODEL_DIR, state_dir=server.state_dir, gate_tasks=5))
    trainer.read_traces()
    flooded_prompts = {f"What is {a}+{b}?" for a, b in pairs}
    assert not flooded_prompts & {prompt for prompt, _, _ in trainer.pool}
    assert all(spec["reference"] == reference_for(prompt)
               for prompt, spec, _ in trainer.pool if reference_for(prompt) is not None)
