"""The benchmark suites' bookkeeping (the suites themselves run the real engine: `rlvr bench`)."""

from __future__ import annotations

from clients.bench_budget import BudgetRequest, control, make_requests


def test_budget_requests_are_reproducible_and_in_range():
    requests = make_requests(500, seed=3)
    assert requests == make_requests(500, seed=3)
    assert all(0 <= r.minimum <= r.budget <= 128 for r in requests)
    with_min = sum(r.minimum > 0 for r in requests)
    assert 200 <= with_min <= 260  # about half carry a minimum


def test_control_counts_thinking_inside_min_and_max():
    requests = [BudgetRequest("p", 10, 0, 0), BudgetRequest("p", 10, 5, 1),
                BudgetRequest("p", 0, 0, 2), BudgetRequest("p", 10, 5, 3)]
    assert control(requests, [10, 5, 0, 4]) == 0.75   # 4 < minimum 5
    assert control(requests, [11, 5, 0, 6]) == 0.75   # 11 > budget 10


def test_report_renders_what_was_run_and_names_what_was_not(tmp_path):
    import json

    from clients.bench_report import write_report

    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "control.json").write_text(json.dumps({
        "requests": 1000, "with_minimum": 480, "temperature": 0.8, "control_runtime": 1.0,
        "control_vllm_thinking_token_budget": 0.61, "over_budget": {"runtime": 0, "vllm": 3},
        "under_minimum": {"runtime": 0, "vllm": 384}}))
    text = write_report(tmp_path).read_text()
    assert "| rlvr runtime | **1.000** | 0 | 0 |" in text
    assert "(no minimum) | 0.610 | 3 | 384 |" in text
    assert text.count("Not run yet.") == 4
    assert "`rlvr bench control --requests 1000 --out docs/bench/control.json`" in text
