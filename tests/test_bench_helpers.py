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
