"""`rlvr bench report`: render `docs/benchmarks.md` from the suites' JSON results.

Each suite writes `docs/bench/<suite>.json` (`rlvr bench <suite> --out ...`, all of them:
`make bench`); the demo writes `docs/bench/demo/`. The report shows what is there and says
how to reproduce every figure; a suite that has not been run is listed as missing.
"""

from __future__ import annotations

import json
from pathlib import Path

DOCS = Path("docs")


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def serving(r: dict) -> list[str]:
    raw, grpc = r["raw"], r["grpc"]
    w = r["workload"]
    return [f"{w['requests']} requests, {w['concurrency']} concurrent streams, {w['rounds']} "
            "rounds per side, greedy, embedded model.", "",
            "| side | tokens/s (median) | rounds | TTFT p50 / p99 | inter-token p50 / p99 |",
            "|---|---|---|---|---|",
            *(f"| {s['name']} | {s['tokens_per_s_median']:.0f} | {s['tokens_per_s_all']} | "
              f"{1000 * s['ttft_median_s']:.1f} / {1000 * s['ttft_p99_s']:.1f} ms | "
              f"{1000 * s['itl_median_s']:.2f} / {1000 * s['itl_p99_s']:.2f} ms |"
              for s in (raw, grpc)), "",
            f"**Throughput ratio gRPC/raw: {r['throughput_ratio']:.3f}** (target >= 0.95); "
            f"extra median TTFT {r['ttft_extra_ms']:+.1f} ms."]


def control(r: dict) -> list[str]:
    return [f"{r['requests']} requests with random budgets in [0, 128], {r['with_minimum']} "
            f"with a random minimum, temperature {r['temperature']}.", "",
            "| enforcement | Control | over budget | under minimum |", "|---|---|---|---|",
            f"| rlvr runtime | **{r['control_runtime']:.3f}** | {r['over_budget']['runtime']} | "
            f"{r['under_minimum']['runtime']} |",
            f"| vLLM `thinking_token_budget` (no minimum) | "
            f"{r['control_vllm_thinking_token_budget']:.3f} | {r['over_budget']['vllm']} | "
            f"{r['under_minimum']['vllm']} |"]


def swap(r: dict) -> list[str]:
    a, b = r["latency_around_swaps"], r["latency_away_from_swaps"]
    return [f"{r['swaps']} promotions under {r['concurrency']} concurrent streams: "
            f"**{r['failed_requests']} failed of {r['requests']}** requests (target 0).", "",
            f"- swap (pause, reload, resume): median {1000 * r['swap_s_median']:.1f} ms, "
            f"max {1000 * r['swap_s_max']:.1f} ms",
            f"- trigger to first response on the new version: median "
            f"{1000 * r['trigger_to_first_response_s_median']:.0f} ms",
            f"- user latency p50/p99 around swaps {a['p50_s']:.3f}/{a['p99_s']:.3f} s "
            f"({a['requests']} requests) vs away from swaps {b['p50_s']:.3f}/{b['p99_s']:.3f} s "
            f"({b['requests']})"]


def verifiers(r: dict) -> list[str]:
    code = r["code_test_seconds"]
    return [f"Through the runtime's verifier pool ({r['workers']} worker processes): "
            + ", ".join(f"{k} {v:g}/s" for k, v in r["verifications_per_s"].items()) + ".",
            f"A code test in the sandbox (bubblewrap, no network, limits) takes "
            f"{1000 * code['sandboxed']:.0f} ms against {1000 * code['bare_subprocess']:.0f} ms "
            f"in a bare `python` subprocess (x{code['overhead_ratio']:.2f})."]


def traces(r: dict) -> list[str]:
    lines = [f"{r['traces']} traces the size of a real one, appended through `TraceStore` while "
             "a trainer claims them 256 at a time (`TraceReader.read`), median of "
             f"{r['rounds']} rounds; ratios to SQLite in the same run.", "",
             "| store | writes/s | claim p50 | claim p99 | every trace read once |",
             "|---|---|---|---|---|"]
    for name, s in r["stores"].items():
        ratio = s["ratio_to_sqlite"]
        lines.append(f"| {name} | {s['writes_per_s']:.0f} (x{ratio['writes_per_s']:.2f}) | "
                     f"{s['claim_p50_ms']:.1f} ms (x{ratio['claim_p50_ms']:.2f}) | "
                     f"{s['claim_p99_ms']:.1f} ms (x{ratio['claim_p99_ms']:.2f}) | "
                     f"{'yes' if s['all_delivered'] else 'NO'} |")
    return lines


def cluster(r: dict) -> list[str]:
    two = r["two_replicas"]
    return [f"One replica placed by Ray: {r['ray_replica_requests_per_s']:.1f} requests/s against "
            f"{r['standalone_requests_per_s']:.1f} for a standalone `rlvr serve` (**x"
            f"{r['ratio']:.3f}**; {r['concurrency']} streams, {r['seconds']:.0f} s each).",
            f"Two replicas, traffic through the round-robin address, {two['promotions']} "
            f"cluster-wide promotions: {two['failed_requests']} failed of {two['requests']} "
            f"requests; every replica answered on the new version at most "
            f"{two['replica_on_new_version_after_s_max']:.3f} s after `Promote` returned."]


def _settings(run: dict) -> str:
    return ", ".join(f"`{k}` {v}" for k, v in run.items() if k.startswith(("max_", "verifier_")))


def fairness(r: dict) -> list[str]:
    return [f"One caller floods, another sends {r['probes']} requests one at a time; its p99 "
            f"latency flooded against unloaded, same run ({r['target']}).", "",
            "| flood | settings | unloaded p99 | flooded p99 | ratio |", "|---|---|---|---|---|",
            *(f"| {run['scenario']} | {_settings(run)} | {run['unloaded_p99_s']:.3f} s | "
              f"{run['flooded_p99_s']:.3f} s | **{run['ratio']:g}x** |" for run in r["runs"])]


def pipeline(r: dict) -> list[str]:
    """The pipelined trainer against the one-after-another loop, same demo run length."""
    def row(name: str, run: dict) -> str:
        waits, busy = run["phase_seconds"] or {}, run["busy_seconds"] or {}
        times = " / ".join(_seconds(v) for v in run["time_to_heldout_s"].values())
        lat = run["latency"]
        return (f"| {name} | {run['steps']} | {run['promoted']} ({run['rejected']} rejected) | "
                f"{times} | {run['best_heldout']:.3f} | "
                f"{waits.get('sampling', 0):.0f} / {busy.get('sampling', 0):.0f} | "
                f"{waits.get('gate', 0):.0f} / {busy.get('gate', 0):.0f} | "
                f"{lat['running']['latency_p50_s']:.2f} / {lat['paused']['latency_p50_s']:.2f} |")
    return [f"Two `rlvr demo` runs of {r['duration_s']:.0f} s each, same traffic and settings.",
            "", "| loop | steps | promoted | held-out 86% / 88% / 90% at | best held-out | "
            "sampling waited / took (s) | gate waited / took (s) | user p50 training / paused "
            "(s) |", "|---|---|---|---|---|---|---|---|",
            *(row(name, run) for name, run in r["runs"].items()), "",
            f"**Steps in the same time, pipeline over series: x{r['steps_speedup']:.2f}.** "
            "Trained rows with the pipeline by lag (lag: rows), in promotions: "
            f"{_counts(r['runs']['pipeline']['lag_versions'])}; in optimizer steps: "
            f"{_counts(r['runs']['pipeline']['lag_steps'])}."]


def _counts(counts: dict) -> str:
    return ", ".join(f"{lag}: {n}" for lag, n in counts.items())


def api_budgets(r: dict) -> list[str]:
    budgets = r["budgets"]
    policies = list(next(iter(budgets.values())))
    return [f"{r['measure']}, {r['model']}, {r['decoding']}; wrap-up policy at a forced close.",
            "", "| budget | " + " | ".join(policies) + " |", "|---" * (len(policies) + 1) + "|",
            *(f"| {b} | " + " | ".join(f"{t[p]['accuracy']:.3f}" for p in policies) + " |"
              for b, t in budgets.items())]


def _seconds(value: float | None) -> str:
    return f"{value:.0f} s" if value is not None else "not reached"


def _spread(level: dict) -> str:
    seeds = len(level["times_s"])
    if not level["reached"]:
        return f"not reached (0/{seeds})"
    median = _seconds(level["median_s"]) if level["median_s"] is not None else "not reached"
    return (f"{median} ({level['min_s']:.0f}–{level['max_s']:.0f} s, "
            f"{level['reached']}/{seeds} reached)")


def trl(r: dict) -> list[str]:
    st, summary = r["settings"], r["summary"]
    names = {"trl": f"TRL GRPOTrainer {st['trl']}", "online": "rlvr online loop (demo)"}
    levels = list(summary["trl"])
    latency = [run["latency"] for run in r["runs"]["online"]]
    return [f"Same model, tasks and measurement ({r['measured_on']}, greedy, {st['budget']} "
            f"thinking; the shipped model scores {r['start']:.3f}), {st['seeds']} seeds a side, "
            f"{st['duration_s']:.0f} s a run: TRL trains offline with the cores to itself, the "
            "online loop learns from its own traffic (2 req/s, no thinking budget) while "
            f"serving it. Group size {st['group_size']}, {st['prompts_per_step']} prompts per "
            f"step, lr {st['lr']:g} ({st['warmup_steps']} warm-up steps), temperature "
            f"{st['temperature']}, {st['threads']} CPU threads. Weights scored every "
            f"{st['grid_s']:.0f} s. Time to each level: median over seeds (range of the seeds "
            "that reached it).", "",
            "| trainer | " + " | ".join(f"time to {float(k):.0%}" for k in levels)
            + " | optimizer steps | best held-out per seed |", "|---" * (len(levels) + 3) + "|",
            *(f"| {names[side]} | " + " | ".join(_spread(summary[side][k]) for k in levels)
              + f" | {', '.join(str(run['steps']) for run in r['runs'][side])} | "
              + ", ".join(f"{b:.3f}" for b in r["best"][side]) + " |" for side in names),
            "", "Median time ratio online/TRL (<= 0.5 is the target at 90%): " + ", ".join(
                f"{float(k):.0%}: {v:g}" if v is not None else f"{float(k):.0%}: n/a (a median "
                "not reached)" for k, v in r["median_time_ratio_online_over_trl"].items()),
            "", "Users of the online side, p50 / p99 latency with training on, then paused: "
            + "; ".join(f"{x['running']['latency_p50_s']:.2f} / {x['running']['latency_p99_s']:.2f}"
                        f" s, then {x['paused']['latency_p50_s']:.2f} / "
                        f"{x['paused']['latency_p99_s']:.2f} s "
                        f"({x['running']['failed'] + x['paused']['failed']} failed)"
                        for x in latency) + "."]


def options(r: dict) -> list[str]:
    """The trainer's options one at a time against its defaults, one demo run each."""
    levels = list(r["variants"]["default"]["time_to_s"])

    def row(name: str, v: dict) -> str:
        times = " | ".join(_seconds(t) + (f" (x{q:g})" if q is not None and name != "default"
                                          else "")
                           for t, q in zip(v["time_to_s"].values(),
                                           v["time_ratio_to_default"].values()))
        head = f"| {name} | {v['change']} | {times} | {v['best']:.3f} | {v['end']:.3f} | " \
            f"{v['steps']} | "
        if v["user_p50_s"] is None:  # the offline reference: no serving, no gate
            return head + "- | - | - | - |"
        waits = v["phase_seconds"] or {}
        return (head + f"{v['promoted']} ({v['rejected']} rejected) | "
                f"{waits.get('training', 0):.0f} / {waits.get('sampling', 0):.0f} / "
                f"{waits.get('gate', 0):.0f} | {v['user_p50_s']['training']:.2f} / "
                f"{v['user_p50_s']['paused']:.2f} | {v['failed']} |")
    return [f"One `rlvr demo` run of {r['duration_s']:.0f} s per variant (unlimited thinking, "
            f"same traffic and seed {r['seed']}), the versions served every {r['grid_s']:.0f} s "
            f"scored on the {r['measured_on']} (the shipped model: {r['start']:.3f}). Each "
            "variant changes one thing; ratios are to `default` from the same invocation. One "
            "run each: the default's spread across 3 seeds (the TRL comparison) is the noise.",
            "", "| variant | change | " + " | ".join(f"time to {float(k):.0%}" for k in levels)
            + " | best | at the end | optimizer steps | promoted | waited: training / sampling"
            " / gate (s) | user p50 training / paused (s) | failed |",
            "|---" * (len(levels) + 9) + "|",
            *(row(name, v) for name, v in r["variants"].items())]


def budget_table(evals: dict[str, dict], scaling: dict[str, float]) -> list[str]:
    """Full held-out accuracy (mean thinking tokens) per budget and version, and Scaling."""
    budgets = list(next(iter(evals.values())))
    return ["Full held-out set (300 tasks, greedy, vLLM): accuracy (mean thinking tokens)", "",
            "| version | " + " | ".join(budgets) + " | Scaling (per 100 tokens) |",
            "|---" * (len(budgets) + 2) + "|",
            *(f"| {version} | " + " | ".join(
                f"{t[b]['accuracy']:.3f} ({t[b]['mean_thinking_tokens']:.0f})" for b in budgets)
              + f" | {scaling.get(version, 0):.3f} |" for version, t in evals.items())]


def demo(r: dict) -> list[str]:
    measure = r.get("measure", "accuracy")
    where = ("full held-out set, 300 tasks" if measure == "heldout"
             else "the gate's 100 validation tasks")
    first, last = r["curve"][0], [p for p in r["curve"] if measure in p][-1]
    lines = [f"`rlvr demo` ({r['config']['duration_s']} s of traffic at {r['config']['rate']} "
             f"req/s, then {r['config']['paused_s']} s with training paused), "
             f"{len(r['curve']) - 1} versions promoted, {len(r['rejected'])} rejected.", "",
             f"- held-out accuracy ({where}, greedy): {first['version']} "
             f"{first[measure].get('unlimited', 0):.3f} -> {last['version']} "
             f"{last[measure].get('unlimited', 0):.3f} at unlimited thinking (best "
             f"{max(p[measure].get('unlimited', 0) for p in r['curve'] if measure in p):.3f}), "
             f"{first[measure].get('16', 0):.3f} -> {last[measure].get('16', 0):.3f} at "
             "a 16-token budget",
             f"- time to 80% / 90% ({where}): " + " / ".join(
                 _seconds(v) for v in r["time_to_accuracy_s"].values())]
    if "final_eval" in r:
        lines += ["", *budget_table(r["final_eval"], r.get("scaling", {})), ""]
    for phase, s in r["latency"].items():
        lines.append(f"- user latency with training {phase}: p50 {s['latency_p50_s']:.2f} s, "
                     f"p99 {s['latency_p99_s']:.2f} s ({s['requests']} requests, "
                     f"{s['failed']} failed)")
    if r.get("peak_rss_mib"):
        lines.append(f"- peak resident memory (MiB): {json.dumps(r['peak_rss_mib'])}")
    phases = r.get("trainer_phases", {})
    if shares := phases.get("phase_share"):
        lines.append("- trainer time by phase (what each step waited for): " + ", ".join(
            f"{phase} {share:.0%}" for phase, share in shares.items()))
    if busy := phases.get("busy_seconds"):
        lines.append("- time spent, wherever it ran (s; above the waits when pipelined): " +
                     ", ".join(f"{phase} {seconds:.0f}" for phase, seconds in busy.items()
                               if seconds))
    for key, unit in (("lag_versions", "promotions"), ("lag_steps", "optimizer steps")):
        if lags := phases.get(key):
            lines.append(f"- trained rows by lag in {unit} (lag: rows): {_counts(lags)}")
    return lines


SUITES = [  # (title, result file under docs/, renderer, command, plots under docs/)
    ("Serving overhead", "bench/serving.json", serving,
     "rlvr bench serving --requests 200 --concurrency 64 --out docs/bench/serving.json", []),
    ("Thinking-budget control (s1's Control)", "bench/control.json", control,
     "rlvr bench control --requests 1000 --out docs/bench/control.json", []),
    ("Hot-swap under load", "bench/swap.json", swap,
     "rlvr bench swap --swaps 5 --concurrency 64 --out docs/bench/swap.json", []),
    ("Verifiers", "bench/verifiers.json", verifiers,
     "rlvr bench verifiers --out docs/bench/verifiers.json", []),
    ("Trace store: Postgres against SQLite", "bench/traces.json", traces,
     "rlvr bench traces --out docs/bench/traces.json", []),
    ("Cluster: a Ray-placed replica, and promotions across two", "bench/cluster.json", cluster,
     "ray start --head && rlvr bench cluster --duration 60 --concurrency 16 --swaps 5 "
     "--out docs/bench/cluster.json", []),
    ("Fair sharing between callers", "bench/fairness.json", fairness,
     "python -m clients.bench_fairness --out docs/bench/fairness.json", []),
    ("The trainer's pipeline against its series loop", "bench/pipeline.json", pipeline,
     "python -m clients.bench_pipeline --duration 600 --out docs/bench/pipeline.json", []),
    ("Accuracy at a budget through the API", "bench/api_budgets.json", api_budgets,
     "python -m clients.bench_api_budgets --out docs/bench/api_budgets.json", []),
    ("Learning efficiency vs TRL", "bench/trl.json", trl,
     "rlvr bench trl --seeds 3 --duration 600 --out docs/bench/trl.json",
     ["bench/trl.png"]),
    ("The trainer's options, one at a time", "bench/options.json", options,
     "rlvr bench options --duration 450 --grid 45 --out docs/bench/options.json", []),
    ("Online learning, latency and memory (the demo)", "bench/demo/demo.json", demo,
     "rlvr demo --out docs/bench/demo",
     ["bench/demo/learning_curve.png", "bench/demo/accuracy_vs_budget.png"]),
]


RENDERERS = {"serving": serving, "control": control, "swap": swap, "verifiers": verifiers,
             "trl": trl, "options": options, "traces": traces, "cluster": cluster}


def write_report(docs: Path = DOCS) -> Path:
    lines = ["# Benchmarks", "",
             "Measured on the development machine (2 CPU cores, shared and noisy): every figure "
             "is a ratio or a comparison from one run, both sides measured in that run. "
             "`make bench` runs every suite and rewrites this file (`rlvr bench report`).", ""]
    for title, name, render, command, plots in SUITES:
        result = _load(docs / name)
        lines += [f"## {title}", "", f"`{command}`", ""]
        lines += render(result) if result else ["Not run yet."]
        lines += ["", *(f"![{png}]({png})" for png in plots if (docs / png).is_file())] \
            if result else []
        lines.append("")
    path = docs / "benchmarks.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
