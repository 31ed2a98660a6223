"""Soak: mixed traffic with training on, bounded and self-stopping, loopback only.

Trusted verified traffic (what the trainer learns from), untrusted callers sending wrong
references, bad requests, streams cut off by their deadline and feedback for unknown requests,
all at once for at least RLVR_SOAK_S seconds (120 in the README's test command, 600 in
`make reliability`) and until the trainer has published two versions, whichever is later: the
test waits for that condition, not for a duration that assumes a fast machine, and fails
(showing the trainer's status) only after a generous hard deadline, RLVR_SOAK_S +
RLVR_SOAK_PUBLISH_DEADLINE_S (600) seconds. Asserts: no trusted request fails, hostile ones
get only their documented codes, the server stays healthy, the trace store and checkpoint
retention caps hold, and memory and open files stay flat after warm-up.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import time

import psutil
import pytest

from clients.client import AsyncClient, RlvrError
from clients.demo import rss_by_role
from clients.launch import ServerProcess
from rlvr.store.checkpoints import CheckpointStore
from rl_loop.toy.traffic import Traffic, summarize
from tests.conftest import ADMIN_TOKEN, API_TOKEN

pytestmark = [pytest.mark.engine, pytest.mark.slow, pytest.mark.reliability]

SOAK_S = float(os.environ.get("RLVR_SOAK_S", "120"))
# after the minimum soak, traffic goes on in CHUNK_S slices until the trainer has published
# MIN_VERSIONS versions; past SOAK_S + PUBLISH_DEADLINE_S the test fails instead
PUBLISH_DEADLINE_S = float(os.environ.get("RLVR_SOAK_PUBLISH_DEADLINE_S", "600"))
CHUNK_S, MIN_VERSIONS = 30.0, 2
TRACE_CAP, KEEP = 150, 2
# each hostile kind and the outcomes it may have (a 50 ms deadline is sometimes enough)
EXPECTED = {"wrong_reference": {"OK"}, "bad_request": {"INVALID_ARGUMENT"},
            "deadline": {"DEADLINE_EXCEEDED", "OK"}, "unknown_feedback": {"NOT_FOUND"}}


async def hostile(target: str, stop: asyncio.Event, seen: dict[str, int]) -> None:
    """Untrusted requests, each kind in turn, about three a second, until `stop` is set."""
    rng = random.Random(1)
    kinds = {
        "wrong_reference": lambda c: c.ask("What is 12+30?", budget=16, verify="numeric:43"),
        "bad_request": lambda c: c.ask("What is 1+1?", budget=8, temperature=5.0),
        "deadline": lambda c: c.ask("What is 123456+654321?", budget=256, timeout=0.05),
        "unknown_feedback": lambda c: c.feedback(f"nope-{rng.random()}", reward=1.0),
    }
    async with AsyncClient(target, token=API_TOKEN) as client:
        while not stop.is_set():
            name = rng.choice(list(kinds))
            try:
                await kinds[name](client)
                outcome = "OK"
            except RlvrError as err:
                outcome = err.code.name
            seen[f"{name}:{outcome}"] = seen.get(f"{name}:{outcome}", 0) + 1
            await asyncio.sleep(rng.expovariate(3.0))


def sample(server: ServerProcess) -> dict:
    """Memory per role, the server's open files, the state directory's sizes."""
    state = server.state_dir
    files = {p.name: p.stat().st_size for p in state.glob("traces.sqlite*")}
    weights = [p for p in (state / "checkpoints").glob("v*/model.safetensors")]
    return {"t": time.monotonic(), "rss": rss_by_role(server.proc.pid),
            "fds": psutil.Process(server.proc.pid).num_fds(),
            "trace_bytes": sum(files.values()), "weights": len(weights)}


def trainer_status(state_dir) -> str:
    """trainer_status.json as text, for failure messages."""
    try:
        return json.dumps(json.loads((state_dir / "trainer_status.json").read_text()), indent=1)
    except (OSError, ValueError) as err:
        return f"(no readable trainer_status.json: {err})"


async def soak_until(traffic: Traffic, done, min_s: float, hard_s: float,
                     chunk_s: float = CHUNK_S) -> tuple[list, bool, float]:
    """`traffic` for at least `min_s` seconds, then in `chunk_s` slices until `done()` holds
    or `hard_s` seconds have passed. `Traffic.run` appends to `traffic.records` and waits for
    the requests in flight, so nothing sent is lost between slices. Returns the records,
    whether `done()` held, and the seconds it took."""
    start = time.monotonic()
    await traffic.run(min_s)
    while not (ok := done()) and time.monotonic() - start < hard_s:
        await traffic.run(min(chunk_s, max(1.0, hard_s - (time.monotonic() - start))))
    return traffic.records, ok, time.monotonic() - start


@pytest.mark.timeout(int(SOAK_S + PUBLISH_DEADLINE_S + 900))  # + start-up, drain, slices
def test_soak_mixed_traffic_with_training(tmp_path):
    server = ServerProcess(tmp_path, train="on", admin_tokens=[ADMIN_TOKEN],
                           api_tokens=[API_TOKEN], trace_max_rows=TRACE_CAP,
                           trainer={"publish_every": 2, "gate_tasks": 20, "keep_versions": KEEP})
    samples: list[dict] = []
    seen: dict[str, int] = {}
    try:
        server.wait_ready()

        store = CheckpointStore(server.state_dir)

        def published() -> bool:
            return len(store.versions()) >= MIN_VERSIONS

        async def soak() -> tuple[list, bool, float]:
            traffic = Traffic(server.target, 2.0, ADMIN_TOKEN, seed=3)
            stop = asyncio.Event()
            sender = asyncio.create_task(soak_until(traffic, published, SOAK_S,
                                                    SOAK_S + PUBLISH_DEADLINE_S))
            attacker = asyncio.create_task(hostile(server.target, stop, seen))
            try:
                while not sender.done():
                    samples.append(sample(server))
                    await asyncio.wait({sender}, timeout=5)
                return await sender
            finally:
                stop.set()
                await attacker
        records, trained, elapsed = asyncio.run(soak())
        assert trained, (f"the trainer published {len(store.versions())} of {MIN_VERSIONS} "
                         f"versions in {elapsed:.0f} s of soak (minimum {SOAK_S:.0f} s, hard "
                         f"deadline {SOAK_S + PUBLISH_DEADLINE_S:.0f} s); trainer status:\n"
                         f"{trainer_status(server.state_dir)}\nserver log:\n{server.log()}")
        assert server.health("rlvr.v1.Reasoning") == 1  # SERVING after all of it
        rows = sqlite3.connect(server.state_dir / "traces.sqlite").execute(
            "SELECT COUNT(*) FROM traces").fetchone()[0]
        versions = CheckpointStore(server.state_dir).versions()
    finally:
        server.stop()

    report = summarize(records)
    assert report["requests"] >= SOAK_S and report["failed"] == 0, report
    assert all(k.split(":")[1] in EXPECTED[k.split(":")[0]] for k in seen), seen
    assert {k.split(":")[0] for k in seen} == set(EXPECTED), seen
    # caps: trace rows (max + the writer's slack + a batch), checkpoint weights kept
    assert rows <= TRACE_CAP + 64 + 256, rows
    assert len(versions) >= MIN_VERSIONS, "the trainer should have published during the soak"
    assert max(s["weights"] for s in samples) <= 2 * KEEP + 1
    # flat after warm-up: compare the last third with the middle third
    third = len(samples) // 3
    middle, last = samples[third:2 * third], samples[2 * third:]
    for role in ("server", "engine"):
        before = max(s["rss"].get(role, 0.0) for s in middle)
        after = max(s["rss"].get(role, 0.0) for s in last)
        assert after <= 1.15 * before + 64, (role, before, after)
    assert max(s["fds"] for s in last) <= max(s["fds"] for s in middle) + 16
    assert max(s["trace_bytes"] for s in last) <= 2 * max(s["trace_bytes"] for s in middle) \
        + (4 << 20)
