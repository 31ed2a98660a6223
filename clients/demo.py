"""`rlvr demo`: the whole loop on one machine, live.

Starts `rlvr serve` (which starts its trainer) on a fresh state directory, drives synthetic
verified traffic (the embedded task families, mixed thinking budgets), and shows live every
promoted version with its held-out accuracy at unlimited and at a tight thinking budget, next
to the user latency (live numbers are the promotion gate's: 100 validation tasks).
Then it pauses training for a while to measure latency without it and, off the clock, scores
every promoted version on the full held-out set (300 tasks) through vLLM: that curve gives
the time to each target. The base and the last version are also scored at every thinking
budget (accuracy against thinking tokens, s1's Scaling). The run is written as `demo.json`,
`learning_curve.png` and `accuracy_vs_budget.png`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.live import Live
from rich.table import Table

from clients.client import AsyncClient
from clients.launch import ServerProcess
from rlvr.store.checkpoints import BASE_VERSION, CheckpointStore
from rlvr.store.layout import StateDir
from rlvr.store.training import TrainerStatus
from runtime.budget import budget_label
from rl_loop.toy.traffic import BUDGETS, Traffic, summarize

log = logging.getLogger(__name__)

TARGETS = (0.8, 0.9)
LIVE_WINDOW_S = 60.0  # latency percentiles shown live are over this many recent seconds
KEEP_EVERY_VERSION = {"keep_versions": 1_000_000}  # every promoted version is scored afterwards
CURVE_BUDGETS = (None, 16)  # the full held-out curve: unlimited thinking and a tight budget


@dataclass
class DemoConfig:
    out_dir: Path = Path("demo-run")
    duration_s: float = 900.0
    paused_s: float = 60.0
    rate: float = 2.0
    trainer: dict[str, Any] = field(default_factory=dict)  # `rlvr train` settings to change
    final_eval: bool = True
    seed: int = 0
    budgets: tuple[int | None, ...] = BUDGETS  # the traffic's thinking budgets (None: unlimited)
    lora_rank: int = 0  # > 0: the trainer trains LoRA adapters of this rank, the engine serves them


def rss_by_role(server_pid: int) -> dict[str, float]:
    """Resident memory (MiB) of the server process, vLLM's engine processes, the trainer and
    the rest (verifier workers), summed per role."""
    roles: dict[str, float] = {}
    try:
        root = psutil.Process(server_pid)
        procs = [root] + root.children(recursive=True)
    except psutil.Error:
        return roles
    for proc in procs:
        try:
            line = " ".join(proc.cmdline())
            rss = proc.memory_info().rss / 2**20
        except psutil.Error:
            continue
        role = ("server" if proc.pid == server_pid else "trainer" if " train " in line
                else "engine" if "VLLM" in line or "VLLM" in proc.name() else "other")
        roles[role] = roles.get(role, 0.0) + rss
    return roles


def curve(state_dir: Path, started_at: float) -> list[dict]:
    """The base and every promoted version: seconds since start, step, accuracy by budget."""
    status = TrainerStatus.read(StateDir(state_dir)) or TrainerStatus()
    points = []
    if BASE_VERSION in status.accuracy:
        points.append({"version": BASE_VERSION, "t_s": 0.0, "step": 0,
                       "accuracy": status.accuracy[BASE_VERSION]})
    for m in CheckpointStore(state_dir).versions():
        if m.promoted_at:
            points.append({"version": m.version, "t_s": round(m.promoted_at - started_at, 1),
                           "step": m.step, "accuracy": m.metrics.get("accuracy_by_budget", {})})
    return sorted(points, key=lambda p: p["t_s"])


def time_to(points: list[dict], target: float, budget: str = "unlimited",
            measure: str = "accuracy") -> float | None:
    """Seconds until the first promoted version at or above `target` (None: not reached);
    `measure`: "accuracy" (the gate's validation tasks) or "heldout" (the held-out set)."""
    return next((p["t_s"] for p in points if p.get(measure, {}).get(budget, 0.0) >= target),
                None)


def view(cfg: DemoConfig, phase: str, elapsed: float, traffic: Traffic, points: list[dict],
         status: dict) -> Table:
    recent = [r for r in traffic.records if time.monotonic() - r.sent_at < LIVE_WINDOW_S]
    live, total = summarize(recent), summarize(traffic.records)
    table = Table(title=f"rlvr demo: {phase}, {elapsed:.0f}s of {cfg.duration_s:.0f}s | "
                        f"{total['requests']} requests, {total['failed']} failed | latency "
                        f"p50 {live['latency_p50_s']:.2f}s p99 {live['latency_p99_s']:.2f}s "
                        f"(last {LIVE_WINDOW_S:.0f}s) | trainer step {status.get('step', 0)}, "
                        f"reward {status.get('mean_reward', 0):.2f}, "
                        f"rejected {status.get('rejected', 0)}")
    for column in ("version", "promoted at", "step", "gate sample (unlimited)",
                   "gate sample (16)"):
        table.add_column(column, justify="right")
    for p in points[-12:]:
        table.add_row(p["version"], f"{p['t_s']:.0f}s", str(p["step"]),
                      f"{p['accuracy'].get('unlimited', 0):.3f}",
                      f"{p['accuracy'].get('16', 0):.3f}")
    return table


def plot(points: list[dict], path: Path, title: str, end_s: float | None = None,
         measure: str = "accuracy") -> None:
    """Accuracy per budget as steps over minutes; the last level is drawn on to `end_s`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    points = [p for p in points if measure in p]
    for budget in sorted({b for p in points for b in p[measure]}, key=lambda b: b != "unlimited"):
        xs = [p["t_s"] / 60 for p in points if budget in p[measure]]
        ys = [p[measure][budget] for p in points if budget in p[measure]]
        if end_s is not None and xs and end_s / 60 > xs[-1]:
            xs, ys = xs + [end_s / 60], ys + [ys[-1]]
        label = "unlimited thinking" if budget == "unlimited" else f"budget {budget} tokens"
        ax.step(xs, ys, where="post", marker="o", markersize=3, label=label)
    for target in TARGETS:
        ax.axhline(target, color="grey", linestyle=":", linewidth=1)
    ylabel = ("held-out accuracy (300 tasks, greedy)" if measure == "heldout"
              else "gate accuracy (100 validation tasks, greedy)")
    ax.set(xlabel="minutes of traffic", ylabel=ylabel, ylim=(0, 1), title=title)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


async def _phase(cfg: DemoConfig, name: str, seconds: float, traffic: Traffic,
                 server: ServerProcess, started_at: float, live: Live | None,
                 peak_rss: dict[str, float]) -> list:
    """Traffic for `seconds`, refreshing the display and the peak memory per role; returns
    this phase's records."""
    state_dir = server.state_dir
    first = len(traffic.records)
    sender = asyncio.create_task(traffic.run(seconds))
    begin, last_log = time.monotonic(), 0.0
    while not sender.done():
        await asyncio.sleep(1.0)
        for role, mib in rss_by_role(server.proc.pid).items():
            peak_rss[role] = max(peak_rss.get(role, 0.0), round(mib, 1))
        report = TrainerStatus.read(StateDir(state_dir))
        status = report.to_json() if report else {}
        points = curve(state_dir, started_at)
        elapsed = time.monotonic() - begin
        if live is not None:
            live.update(view(cfg, name, elapsed, traffic, points, status))
        elif elapsed - last_log >= 30:
            last_log = elapsed
            best = points[-1] if points else {"version": "-", "accuracy": {}}
            log.info("%s %.0fs: serving %s, held-out %s, %s", name, elapsed, best["version"],
                     best["accuracy"], summarize(traffic.records[first:]))
    await sender
    return traffic.records[first:]


def trainer_phases(state_dir: Path) -> dict:
    """Where the trainer's time went over the run (its last status): what the loop waited for
    by phase, how long sampling, gate and publish took wherever they ran, and how far behind
    the trained rows were (promotions and optimizer steps)."""
    status = TrainerStatus.read(StateDir(state_dir))
    return {k: getattr(status, k) for k in ("phase_seconds", "phase_share", "busy_seconds",
                                            "lag_versions", "lag_steps", "step")} \
        if status else {}


def score_versions(state_dir: Path, points: list[dict]) -> dict[str, dict]:
    """Every point's version on the full held-out set through vLLM, in one engine: at
    `CURVE_BUDGETS`, the base and the last version at every card budget. Adds each point's
    "heldout" accuracy by budget; returns {version: {budget: total score}} for the base and
    the last version (the final evaluation)."""
    from rl_loop.toy import evaluate, tasks
    from rl_loop.toy.tiny_model import MODEL_DIR

    store = CheckpointStore(state_dir)
    folders = {BASE_VERSION: MODEL_DIR}
    for p in points:
        if p["version"] == BASE_VERSION:
            continue
        if store.manifest(p["version"]).pruned:
            log.warning("%s is not scored: its weights were deleted", p["version"])
        else:
            folders[p["version"]] = evaluate.full_weights(store, p["version"], MODEL_DIR,
                                                          state_dir.parent / "merged")
    last = list(folders)[-1]
    budgets = {v: list(evaluate.BUDGETS_FOR_CARD) if v in (BASE_VERSION, last)
               else list(CURVE_BUDGETS) for v in folders}
    scores = evaluate.evaluate_versions(folders, tasks.load_heldout(), budgets)
    for p in points:
        if p["version"] in scores:
            p["heldout"] = {budget_label(b): scores[p["version"]][budget_label(b)]["total"]
                            ["accuracy"] for b in CURVE_BUDGETS}
    return {v: {b: table["total"] for b, table in scores[v].items()}
            for v in dict.fromkeys((BASE_VERSION, last))}


def scaling(by_budget: dict[str, dict]) -> float:
    """s1's Scaling: the mean slope of accuracy against thinking tokens over all pairs of
    budgets, in accuracy per 100 thinking tokens."""
    points = sorted((v["mean_thinking_tokens"], v["accuracy"]) for v in by_budget.values())
    slopes = [(b[1] - a[1]) / (b[0] - a[0]) for i, a in enumerate(points)
              for b in points[i + 1:] if b[0] > a[0]]
    return round(100 * sum(slopes) / len(slopes), 4) if slopes else 0.0


def plot_budget_curves(evals: dict[str, dict], path: Path) -> None:
    """Held-out accuracy against mean thinking tokens, one line per version."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (version, by_budget) in enumerate(evals.items()):
        rows = sorted((v["mean_thinking_tokens"], v["accuracy"], b) for b, v in by_budget.items())
        ax.plot([r[0] for r in rows], [r[1] for r in rows], marker="o",
                label=f"{'shipped model' if version == BASE_VERSION else 'after the demo'} "
                      f"({version}), Scaling {scaling(by_budget):.2f}/100 tokens")
        for x, y, budget in rows if i == 0 else []:  # budget labels once, under the first line
            ax.annotate(budget, (x, y), textcoords="offset points", xytext=(3, -10), fontsize=7)
    ax.set(xlabel="mean thinking tokens used (budgets 0, 8, 16, 32, 64, unlimited)",
           ylabel="held-out accuracy (300 tasks, greedy)", ylim=(0, 1),
           title="accuracy vs thinking budget")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_demo(cfg: DemoConfig) -> dict:
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on the way out
    token = secrets.token_urlsafe(16)
    lora = {"max_lora_rank": cfg.lora_rank} if cfg.lora_rank else {}
    trainer = {**KEEP_EVERY_VERSION, "lora_rank": cfg.lora_rank, **cfg.trainer}
    server = ServerProcess(cfg.out_dir / f"run-{time.strftime('%Y%m%d-%H%M%S')}", train="on",
                           trainer=trainer, admin_tokens=[token], **lora)
    console = Console(stderr=True)
    console.print(f"starting the server and its trainer (log: {server.log_path}) ...")
    try:
        server.wait_ready()
        started_at = time.time()
        traffic = Traffic(server.target, cfg.rate, token, cfg.seed, cfg.budgets)
        peak_rss: dict[str, float] = {}

        async def phases() -> tuple[list, list]:
            with Live(console=console, refresh_per_second=1) if console.is_terminal \
                    else nullcontext() as live:
                training = await _phase(cfg, "training", cfg.duration_s, traffic, server,
                                        started_at, live, peak_rss)
                async with AsyncClient(server.target, token=token) as admin:
                    await admin.pause_training()
                paused = await _phase(cfg, "training paused", cfg.paused_s, traffic, server,
                                      started_at, live, peak_rss)
            return training, paused
        training, paused = asyncio.run(phases())
    finally:
        server.stop()
    points = curve(server.state_dir, started_at)
    if not points or points[0]["version"] != BASE_VERSION:
        points.insert(0, {"version": BASE_VERSION, "t_s": 0.0, "step": 0, "accuracy": {}})
    final = None
    if cfg.final_eval:
        console.print("scoring every promoted version on the full held-out set")
        final = score_versions(server.state_dir, points)
    measure = "heldout" if final else "accuracy"
    report = {"config": {k: str(v) for k, v in asdict(cfg).items()},
              "state_dir": str(server.state_dir), "curve": points, "measure": measure,
              "time_to_accuracy_s": {str(t): time_to(points, t, measure=measure)
                                     for t in TARGETS},
              "time_to_gate_sample_accuracy_s": {str(t): time_to(points, t) for t in TARGETS},
              "rejected": [{"version": m.version, "reason": m.reason}
                           for m in CheckpointStore(server.state_dir).versions()
                           if m.status == "rejected"],
              "latency": {"running": summarize(training), "paused": summarize(paused)},
              "peak_rss_mib": peak_rss, "trainer_phases": trainer_phases(server.state_dir)}
    if final:
        report["final_eval"] = final
        report["scaling"] = {v: scaling(b) for v, b in final.items()}
        plot_budget_curves(final, cfg.out_dir / "accuracy_vs_budget.png")
    (cfg.out_dir / "demo.json").write_text(json.dumps(report, indent=2))
    plot(points, cfg.out_dir / "learning_curve.png",
         f"online GRPO from verified traffic ({cfg.rate:g} req/s)", end_s=cfg.duration_s,
         measure=measure)
    return report
