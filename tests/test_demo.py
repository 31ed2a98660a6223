"""`rlvr demo`'s bookkeeping: the learning curve from the state directory, targets, the plot."""

from __future__ import annotations

import json

from clients.demo import DemoConfig, curve, plot, time_to, view
from rlvr.store.checkpoints import CheckpointStore
from runtime.budget import budget_label
from rl_loop.toy.traffic import Record, Traffic


def publish(store: CheckpointStore, version: str, step: int, accuracy: dict,
            promoted_at: float | None = None, rejected: str = "") -> None:
    store.publish(lambda folder: (folder / "model.safetensors").write_bytes(b"w"), version,
                  parent="v0", step=step, metrics={"accuracy_by_budget": accuracy})
    if promoted_at:
        store.record_promotion(version, at=promoted_at)
    if rejected:
        store.record_verdict(version, "rejected", rejected)


def test_curve_has_the_base_then_promoted_versions_in_time_order(tmp_path):
    store, t0 = CheckpointStore(tmp_path), 1000.0
    (tmp_path / "trainer_status.json").write_text(json.dumps(
        {"accuracy": {"v0": {"unlimited": 0.5, "16": 0.1}}}))
    publish(store, "v1", 5, {"unlimited": 0.6, "16": 0.2}, promoted_at=t0 + 60)
    publish(store, "v2", 10, {"unlimited": 0.3, "16": 0.0}, rejected="gate")
    publish(store, "v3", 15, {"unlimited": 0.85, "16": 0.3}, promoted_at=t0 + 120)
    points = curve(tmp_path, started_at=t0)
    assert [(p["version"], p["t_s"], p["step"]) for p in points] == \
        [("v0", 0.0, 0), ("v1", 60.0, 5), ("v3", 120.0, 15)]
    assert time_to(points, 0.8) == 120.0 and time_to(points, 0.9) is None
    assert time_to(points, 0.2, budget="16") == 60.0
    points[2]["heldout"] = {"unlimited": 0.81}  # the full held-out set, scored afterwards
    assert time_to(points, 0.8, measure="heldout") == 120.0
    assert time_to(points, 0.5, measure="heldout") == 120.0  # v0, v1 not scored: not counted

    plot(points, tmp_path / "curve.png", "test")
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    traffic = Traffic("localhost:1", rate=1.0)
    traffic.records = [Record(0.0, 0.5, True, 1.0, "v1"), Record(0.0, 1.0, False, 0.0, "")]
    table = view(DemoConfig(), "training", 30.0, traffic, points, {"step": 15})
    assert table.row_count == 3 and "2 requests, 1 failed" in str(table.title)


def test_rss_by_role_sums_the_process_tree():
    import os
    import subprocess
    import sys

    from clients.demo import rss_by_role

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        roles = rss_by_role(os.getpid())
        assert roles["server"] > 10 and roles["other"] > 1  # this process, then the child
    finally:
        child.kill()
        child.wait()
    assert rss_by_role(child.pid) == {}


def test_score_versions_scores_every_loadable_promoted_version(tmp_path, monkeypatch):
    """Full held-out scoring after the run: one engine call with every promoted version that
    still has its weights (an adapter merged into its base first); the base and the last at
    every card budget."""
    from clients import demo
    from rl_loop.toy import evaluate

    store = CheckpointStore(tmp_path)
    for version in ("v1", "v2", "v3"):
        publish(store, version, 1, {"unlimited": 0.5}, promoted_at=1.0)
    manifest = store.path("v2") / "manifest.json"  # retention deleted v2's weights
    manifest.write_text(json.dumps(json.loads(manifest.read_text()) | {"pruned": True}))
    store.publish(lambda folder: (folder / "adapter_model.safetensors").write_bytes(b"a"), "v4",
                  parent="v3", step=2, metrics={}, adapter_base="v3")
    calls, merged = [], []
    full_weights = evaluate.full_weights

    def fake_merge(store, version, base_dir, out):
        if store.manifest(version).adapter_base:
            merged.append(version)
            return out / version
        return full_weights(store, version, base_dir, out)

    def fake(folders, tasks, budgets):
        calls.append((dict(folders), budgets))
        return {v: {budget_label(b): {"total": {"accuracy": i / 10, "n": 300}}
                    for b in budgets[v]} for i, v in enumerate(folders)}
    monkeypatch.setattr(evaluate, "evaluate_versions", fake)
    monkeypatch.setattr(evaluate, "full_weights", fake_merge)
    points = [{"version": v, "t_s": float(i)} for i, v in enumerate(("v0", "v1", "v2", "v3", "v4"))]
    final = demo.score_versions(tmp_path, points)
    folders, budgets = calls[0]
    assert list(folders) == ["v0", "v1", "v3", "v4"] and folders["v1"] == store.path("v1")
    assert merged == ["v4"] and folders["v4"] == tmp_path.parent / "merged" / "v4"
    assert budgets["v1"] == budgets["v3"] == [None, 16] and budgets["v0"] == budgets["v4"] == \
        list(evaluate.BUDGETS_FOR_CARD)
    assert [p.get("heldout") for p in points] == [
        {"unlimited": 0.0, "16": 0.0}, {"unlimited": 0.1, "16": 0.1}, None,
        {"unlimited": 0.2, "16": 0.2}, {"unlimited": 0.3, "16": 0.3}]
    assert list(final) == ["v0", "v4"] and final["v4"]["unlimited"] == {"accuracy": 0.3, "n": 300}
