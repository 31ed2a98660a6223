"""The benchmark suites' bookkeeping (the suites themselves run the real engine: `rlvr bench`)."""

from __future__ import annotations

import pytest

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
    assert text.count("Not run yet.") == 8
    (tmp_path / "bench" / "fairness.json").write_text(json.dumps({
        "probes": 40, "target": "ratio <= 2", "runs": [
            {"scenario": "verifier", "verifier_workers_per_caller": 1, "unloaded_p99_s": 0.1,
             "flooded_p99_s": 0.19, "ratio": 1.9, "flood_outcomes": {"ok": 4}}]}))
    text = write_report(tmp_path).read_text()
    assert "| verifier | `verifier_workers_per_caller` 1 | 0.100 s | 0.190 s | **1.9x** |" in text
    assert "`rlvr bench control --requests 1000 --out docs/bench/control.json`" in text
    latency = {"running": {"latency_p50_s": 0.4}, "paused": {"latency_p50_s": 0.2}}
    run = {"steps": 30, "promoted": 3, "rejected": 1, "best_heldout": 0.9,
           "time_to_heldout_s": {"0.86": 0.0, "0.88": 120.0, "0.9": None},
           "phase_seconds": {"sampling": 100.0, "gate": 40.0},
           "busy_seconds": {"sampling": 100.0, "gate": 40.0}, "latency": latency,
           "lag_versions": {"0": 90, "1": 10}, "lag_steps": {"0": 50, "3": 50}}
    faster = run | {"steps": 45, "phase_seconds": {"sampling": 10.0, "gate": 1.0}}
    (tmp_path / "bench" / "pipeline.json").write_text(json.dumps({
        "duration_s": 600, "runs": {"series": run, "pipeline": faster}, "steps_speedup": 1.5}))
    text = write_report(tmp_path).read_text()
    assert "| series | 30 | 3 (1 rejected) | 0 s / 120 s / not reached | 0.900 | 100 / 100 | " \
           "40 / 40 | 0.40 / 0.20 |" in text
    assert "| pipeline | 45 |" in text and "10 / 100 | 1 / 40 |" in text
    assert "pipeline over series: x1.50" in text


def test_inter_token_latency_is_per_token_whatever_the_chunking():
    import time

    from clients.bench import timed

    start = time.perf_counter() - 1.0  # finished one second after it started
    count, ttft, itl = timed(11, start, 0.5)
    assert (count, ttft) == (11, 0.5) and abs(itl - 0.05) < 0.01  # 10 gaps in 0.5 s


def test_serving_summary_pools_requests_and_takes_the_median_round():
    from clients.bench import _round, summary

    rounds = [_round([(100, 0.01 * k, 0.002 * k) for k in range(1, 101)], seconds)
              for seconds in (2.0, 1.0, 4.0)]
    s = summary("side", rounds)
    assert s["tokens_per_s_median"] == 10000 / 2.0 and s["tokens_per_s_all"] == [5000, 10000, 2500]
    assert s["ttft_median_s"] == pytest.approx(0.505) and s["ttft_p99_s"] == pytest.approx(1.0)
    assert s["itl_median_s"] == pytest.approx(0.101) and s["itl_p99_s"] == pytest.approx(0.2)


def test_scaling_is_the_mean_pairwise_slope_per_100_tokens():
    from clients.demo import scaling

    by_budget = {"0": {"mean_thinking_tokens": 0, "accuracy": 0.1},
                 "50": {"mean_thinking_tokens": 50, "accuracy": 0.3},
                 "unlimited": {"mean_thinking_tokens": 100, "accuracy": 0.3}}
    # slopes per token: 0.004, 0.002, 0.0 -> mean 0.002 -> 0.2 per 100 tokens
    assert scaling(by_budget) == 0.2
    assert scaling({"0": {"mean_thinking_tokens": 0, "accuracy": 0.5}}) == 0.0


def test_trl_reward_reads_the_answer_after_the_think_token_ids():
    from transformers import AutoTokenizer

    from clients.bench_trl import make_reward
    from rl_loop.tiny_model import MODEL_DIR

    tok = AutoTokenizer.from_pretrained(MODEL_DIR)
    reward = make_reward(tok)
    think, answer = tok.encode("12+30=42\n", add_special_tokens=False), tok.encode("42")
    end = [tok.convert_tokens_to_ids("</think>")]
    rows = [think + end + answer, think + end + tok.encode("41"), think + answer]
    # the third never closed its thinking: no answer, whatever the digits say
    assert reward(completion_ids=rows, answer=["42", "42", "42"]) == [1.0, 0.0, 0.0]


def test_trl_comparison_times_and_ratios():
    import pytest

    from clients.bench_trl import compare

    trl = {"curve": [{"t_s": 0, "accuracy": 0.5}, {"t_s": 100, "accuracy": 0.82},
                     {"t_s": 200, "accuracy": 0.91}],
           "time_to_accuracy_s": {"0.8": 100, "0.9": 200}}
    demo = {"config": {"duration_s": "900"}, "measure": "heldout",
            "curve": [{"t_s": 0, "step": 0, "accuracy": {"unlimited": 0.9},
                       "heldout": {"unlimited": 0.5}},
                      {"t_s": 20, "step": 2, "accuracy": {"unlimited": 0.9}},  # not scored
                      {"t_s": 50, "step": 5, "accuracy": {"unlimited": 0.8},
                       "heldout": {"unlimited": 0.87, "16": 0.2}}]}
    result = compare(trl, demo)
    assert result["online"]["time_to_accuracy_s"] == {"0.8": 50, "0.86": 50, "0.88": None,
                                                      "0.9": None}
    assert result["trl"]["time_to_accuracy_s"]["0.9"] == 200
    assert result["time_ratio_online_over_trl"]["0.8"] == 0.5
    assert result["time_ratio_online_over_trl"]["0.9"] is None
    assert result["best"] == {"trl": 0.91, "online": 0.87}
    assert result["measured_on"] == "full held-out set, 300 tasks"
    with pytest.raises(ValueError, match="full held-out"):  # a gate-sample-only demo run
        compare(trl, demo | {"measure": "accuracy"})
