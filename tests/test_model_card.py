"""`rlvr eval` (greedy, through vLLM) reproduces the shipped model card; headroom is as promised."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rl_loop.tiny_model import MODEL_DIR
from tests.conftest import REPO

CARD = json.loads((MODEL_DIR / "eval.json").read_text())


def test_card_promises_headroom_and_budget_sensitivity():
    unlimited = CARD["unlimited"]
    assert 0.25 <= unlimited["total"]["accuracy"] <= 0.65
    for family, row in unlimited.items():
        assert 0 < row["accuracy"] <= 0.90, family
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
