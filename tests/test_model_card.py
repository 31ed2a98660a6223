"""`rlvr eval` (greedy, through vLLM) reproduces the shipped model card; headroom is as promised."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rl_loop.toy.tiny_model import MODEL_DIR
from tests.conftest import REPO

CARD = json.loads((MODEL_DIR / "eval.json").read_text())


def test_card_promises_headroom_and_budget_sensitivity():
    unlimited = CARD["unlimited"]
    assert 0.5 <= unlimited["total"]["accuracy"] < 0.9  # the demo's 90% target lies above it
    for family, row in unlimited.items():
        assert 0 < row["accuracy"] < 0.95, family  # every family has room to improve
    # accuracy falls as the thinking budget shrinks
    totals = [CARD[b]["total"]["accuracy"] for b in ("0", "16", "64", "unlimited")]
    assert totals == sorted(totals) and totals[0] < totals[-1]
    readme = (MODEL_DIR / "README.md").read_text()
    assert f"| total | {unlimited['total']['n']} | {unlimited['total']['accuracy']:.3f} |" in readme


@pytest.mark.engine
def test_rlvr_eval_reproduces_the_card():
    out = subprocess.run([sys.executable, "-m", "clients.cli", "eval", "--budget",
                          "0,8,16,32,64,unlimited", "--json"], cwd=REPO, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout)["results"]
    assert set(results) == set(CARD)
    for budget, table in CARD.items():
        for family, row in table.items():
            got = results[budget][family]
            assert got["n"] == row["n"]
            assert got["accuracy"] == pytest.approx(row["accuracy"], abs=1e-9), (budget, family)
            assert got["mean_thinking_tokens"] == pytest.approx(row["mean_thinking_tokens"],
                                                                abs=1e-9), (budget, family)


@pytest.mark.engine
def test_rlvr_eval_samples_reports_pass_at_k():
    out = subprocess.run([sys.executable, "-m", "clients.cli", "eval", "--samples", "4",
                          "--limit", "10", "--json"], cwd=REPO, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    total = report["results"]["total"]
    assert (report["samples"], report["temperature"], total["n"]) == (4, 0.8, 10)
    assert 0 < total["mean_accuracy"] <= total["pass@4"] <= 1  # some sample of 10 tasks is right


@pytest.mark.engine
def test_evaluate_versions_reloads_weights_in_one_engine(tmp_path):
    """Base, a degraded copy, base again in one engine: each scores as if served alone."""
    import shutil

    from safetensors.torch import load_file, save_file

    from rl_loop.toy import evaluate, tasks

    degraded = tmp_path / "degraded"
    shutil.copytree(MODEL_DIR, degraded)
    weights = load_file(degraded / "model.safetensors")
    save_file({k: v * 0.5 if v.dim() == 2 else v for k, v in weights.items()},
              degraded / "model.safetensors", metadata={"format": "pt"})
    heldout = tasks.load_heldout()
    names = {"base": MODEL_DIR, "degraded": degraded, "again": MODEL_DIR}
    results = evaluate.evaluate_versions(names, heldout, {name: [None] for name in names})
    card = CARD["unlimited"]["total"]
    assert results["base"]["unlimited"]["total"] == card  # the card's numbers, exactly
    assert results["again"] == results["base"]
    assert results["degraded"]["unlimited"]["total"]["accuracy"] < card["accuracy"] - 0.3
