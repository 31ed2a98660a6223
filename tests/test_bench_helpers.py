"""The benchmark suites' bookkeeping (the suites themselves run the real engine: `rlvr bench`)."""

from __future__ import annotations

import json

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
    assert text.count("Not run yet.") == 11  # every suite but control
    store = {"writes_per_s": 3000.0, "claim_p50_ms": 50.0, "claim_p99_ms": 200.0,
             "ratio_to_sqlite": {"writes_per_s": 1.0, "claim_p50_ms": 1.0, "claim_p99_ms": 1.0},
             "all_delivered": True}
    (tmp_path / "bench" / "traces.json").write_text(json.dumps({
        "traces": 100, "rounds": 3, "writers": 2, "stores": {
            "sqlite": store, "postgres": {**store, "writes_per_s": 2700.0, "ratio_to_sqlite": {
                "writes_per_s": 0.9, "claim_p50_ms": 1.5, "claim_p99_ms": 1.0}}}}))
    text = write_report(tmp_path).read_text()
    assert "| postgres | 2700 (x0.90) | 50.0 ms (x1.50) | 200.0 ms (x1.00) | yes |" in text
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
    from rl_loop.toy.tiny_model import MODEL_DIR

    tok = AutoTokenizer.from_pretrained(MODEL_DIR)
    reward = make_reward(tok)
    think, answer = tok.encode("12+30=42\n", add_special_tokens=False), tok.encode("42")
    end = [tok.convert_tokens_to_ids("</think>")]
    rows = [think + end + answer, think + end + tok.encode("41"), think + answer]
    # the third never closed its thinking: no answer, whatever the digits say
    assert reward(completion_ids=rows, answer=["42", "42", "42"]) == [1.0, 0.0, 0.0]


def test_trl_comparison_medians_ranges_and_ratios_over_seeds():
    from clients.bench_trl import compare

    def run(*points):
        return {"curve": [{"t_s": t, "step": i, "accuracy": a} for i, (t, a) in enumerate(points)]}

    runs = {"trl": [run((0, 0.83), (60, 0.87), (120, 0.91)), run((0, 0.83), (60, 0.9)),
                    run((0, 0.83), (60, 0.85), (180, 0.89))],
            "online": [run((0, 0.83), (50, 0.86), (300, 0.9)), run((0, 0.83), (90, 0.87)),
                       run((0, 0.83), (40, 0.88))]}
    result = compare(runs, {"duration_s": 600})
    trl, online = result["summary"]["trl"], result["summary"]["online"]
    assert trl["0.86"] == {"times_s": [60, 60, 180], "reached": 3, "median_s": 60,
                           "min_s": 60, "max_s": 180}
    # two of three online seeds never reached 90%: they count as slower than any that did,
    # so the median is one of them and there is none
    assert online["0.9"] == {"times_s": [300, None, None], "reached": 1, "median_s": None,
                             "min_s": 300, "max_s": 300}
    assert online["0.88"] == {"times_s": [300, None, 40], "reached": 2, "median_s": 300,
                              "min_s": 40, "max_s": 300}
    assert trl["0.9"]["median_s"] == 120
    assert result["median_time_ratio_online_over_trl"] == {"0.86": 0.833, "0.88": 2.5, "0.9": None}
    assert result["best"] == {"trl": [0.91, 0.9, 0.89], "online": [0.9, 0.87, 0.88]}
    assert result["start"] == 0.83 and result["measured_on"].endswith("1,500 tasks")


def test_the_online_side_is_scored_at_the_versions_served_on_the_grid():
    from clients.bench_trl import served_at_marks

    curve = [{"version": v, "t_s": t} for v, t in
             (("v0", 0.0), ("v1", 20.0), ("v2", 50.0), ("v3", 55.0), ("v4", 170.0))]
    # marks 0, 60, 120, 180: v0, v3 (v1 and v2 were replaced before a mark), v3 again, v4
    assert [p["version"] for p in served_at_marks(curve, 180.0, 60.0)] == ["v0", "v3", "v4"]


def test_report_renders_the_trl_comparison_over_seeds(tmp_path):
    import json

    from clients.bench_report import write_report
    from clients.bench_trl import compare

    latency = {"running": {"latency_p50_s": 0.5, "latency_p99_s": 2.0, "failed": 0},
               "paused": {"latency_p50_s": 0.4, "latency_p99_s": 1.5, "failed": 0}}

    def run(steps, *points):
        return {"steps": steps, "latency": latency,
                "curve": [{"t_s": t, "step": 0, "accuracy": a} for t, a in points]}

    runs = {"trl": [run(70, (0, 0.83), (60, 0.9)), run(71, (0, 0.83), (120, 0.91))],
            "online": [run(40, (0, 0.83), (300, 0.88)), run(41, (0, 0.83), (200, 0.9))]}
    settings = {"group_size": 8, "prompts_per_step": 8, "lr": 1e-4, "warmup_steps": 10,
                "temperature": 0.8, "threads": 2, "seeds": 2, "duration_s": 600.0,
                "grid_s": 60.0, "budget": "unlimited", "trl": "1.16.0"}
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "trl.json").write_text(json.dumps(compare(runs, settings)))
    text = write_report(tmp_path).read_text()
    assert "| TRL GRPOTrainer 1.16.0 | 90 s (60–120 s, 2/2 reached) | 90 s (60–120 s, 2/2 " \
           "reached) | 90 s (60–120 s, 2/2 reached) | 70, 71 | 0.900, 0.910 |" in text
    # the median of two seeds where one never reached 90%: a missed seed counts as slowest
    assert "| rlvr online loop (demo) | 250 s (200–300 s, 2/2 reached) | 250 s (200–300 s, " \
           "2/2 reached) | not reached (200–200 s, 1/2 reached) | 40, 41 |" in text
    assert "86%: 2.778, 88%: 2.778, 90%: n/a (a median not reached)" in text
    assert "0.50 / 2.00 s, then 0.40 / 1.50 s (0 failed)" in text


def test_options_bench_runs_the_default_first_reuses_runs_and_renders_ratios(tmp_path,
                                                                            monkeypatch):
    import json

    from clients import bench_options
    from clients.bench_report import write_report

    latency = {"running": {"latency_p50_s": 0.6, "latency_p99_s": 2.0, "failed": 0},
               "paused": {"latency_p50_s": 0.5, "latency_p99_s": 1.5, "failed": 1}}
    curves = {"{}": [(0, 0.83), (200, 0.86), (400, 0.87)],
              '{"minibatches": 2}': [(0, 0.83), (100, 0.87), (300, 0.885)]}
    started = []

    def fake_online(duration_s, grid_s, out_dir, seed, trainer, lora_rank, paused_s):
        started.append((out_dir.name, trainer, lora_rank))
        return {"steps": 30, "promoted": 2, "rejected": 0, "latency": latency,
                "phase_seconds": {"training": 100.0, "sampling": 80.0, "gate": 40.0},
                "curve": [{"t_s": t, "step": 0, "accuracy": a} for t, a in curves[json.dumps(trainer)]]}

    monkeypatch.setattr(bench_options, "run_online", fake_online)
    with pytest.raises(ValueError, match="unknown variant.*nope"):
        bench_options.run(["nope"], 450.0, 45.0, tmp_path)
    result = bench_options.run(["minibatches-2"], 450.0, 45.0, tmp_path)
    assert started == [("default", {}, 0), ("minibatches-2", {"minibatches": 2}, 0)]
    mb = result["variants"]["minibatches-2"]
    assert mb["time_to_s"] == {"0.86": 100, "0.88": 300, "0.9": None}
    assert mb["time_ratio_to_default"] == {"0.86": 0.5, "0.88": None, "0.9": None}
    assert (mb["best"], mb["end"], mb["failed"]) == (0.885, 0.885, 1)
    assert result["start"] == 0.83
    bench_options.run(["minibatches-2"], 450.0, 45.0, tmp_path)  # both reused from disk
    assert len(started) == 2
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "options.json").write_text(json.dumps(result))
    text = write_report(tmp_path).read_text()
    assert "| minibatches-2 | 2 optimizer steps per batch (the clip binds) | 100 s (x0.5) | " \
           "300 s | not reached | 0.885 | 0.885 | 30 | 2 (0 rejected) | 100 / 80 / 40 | " \
           "0.60 / 0.50 | 1 |" in text


def test_options_bench_runs_trl_as_a_reference_on_the_same_machine(tmp_path, monkeypatch):
    import json

    from clients import bench_options
    from clients.bench_report import write_report

    latency = {"running": {"latency_p50_s": 0.6, "failed": 0},
               "paused": {"latency_p50_s": 0.5, "failed": 0}}

    def curve(*points):
        return [{"t_s": t, "step": 0, "accuracy": a} for t, a in points]
    monkeypatch.setattr(bench_options, "run_online", lambda *a: {
        "steps": 30, "promoted": 2, "rejected": 0, "latency": latency, "phase_seconds": {},
        "curve": curve((0, 0.83), (300, 0.87))})
    monkeypatch.setattr(bench_options, "run_trl", lambda duration, grid, out, seed: {
        "steps": 80, "curve": curve((0, 0.83), (100, 0.86), (200, 0.88))})
    result = bench_options.run(["trl"], 450.0, 45.0, tmp_path)
    assert result["variants"]["trl"]["time_ratio_to_default"] == \
        {"0.86": 0.33, "0.88": None, "0.9": None}
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "options.json").write_text(json.dumps(result))
    text = write_report(tmp_path).read_text()
    assert "| trl | TRL GRPOTrainer, offline with both cores (not a trainer option) | " \
           "100 s (x0.33) | 200 s | not reached | 0.880 | 0.880 | 80 | - | - | - | - |" in text
