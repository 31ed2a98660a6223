"""Prometheus metrics of the runtime, served on their own HTTP port at /metrics."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from rlvr.store.checkpoints import Checkpoints, CheckpointStore
from rlvr.store.layout import StateDir
from rlvr.store.training import TrainerStatus

# Latency buckets from 1 ms to ~100 s, roughly x2 apart.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 25.0, 50.0, 100.0)
TOKEN_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


class Metrics:
    """All runtime metrics in one registry (one per server, so tests can run several)."""

    def __init__(self, state_dir: Path | None = None,
                 checkpoints: Checkpoints | None = None) -> None:
        self.registry = r = CollectorRegistry()
        if state_dir is not None:
            r.register(TrainingCollector(Path(state_dir),
                                         checkpoints or CheckpointStore(Path(state_dir))))
        self.requests = Counter("rlvr_requests_total", "Finished RPCs by method and status code",
                                ["method", "code"], registry=r)
        self.ttft = Histogram("rlvr_time_to_first_token_seconds",
                              "Time from admission to the first token of a choice",
                              buckets=LATENCY_BUCKETS, registry=r)
        self.itl = Histogram("rlvr_inter_token_latency_seconds",
                             "Time between consecutive tokens of a choice",
                             buckets=LATENCY_BUCKETS, registry=r)
        self.e2e = Histogram("rlvr_e2e_latency_seconds", "Time from admission to the end of a "
                             "choice", buckets=LATENCY_BUCKETS, registry=r)
        self.thinking_tokens = Histogram("rlvr_thinking_tokens", "Thinking tokens per choice",
                                         buckets=TOKEN_BUCKETS, registry=r)
        self.answer_tokens = Histogram("rlvr_answer_tokens", "Answer tokens per choice",
                                       buckets=TOKEN_BUCKETS, registry=r)
        self.thinking_end = Counter("rlvr_thinking_end_total", "How thinking ended, per choice "
                                    "(natural, forced = budget reached, disabled)", ["reason"],
                                    registry=r)
        self.forced_continuations = Counter("rlvr_forced_continuations_total",
                                            "Continuations injected to honour min_tokens",
                                            registry=r)
        self.queue_depth = Gauge("rlvr_queue_depth", "Admitted requests without a first token",
                                 registry=r)
        self.running = Gauge("rlvr_running_requests", "Admitted requests producing tokens",
                             registry=r)
        self.verifications = Counter("rlvr_verifications_total", "Verdicts by verifier kind, "
                                     "verdict and weight version",
                                     ["kind", "verdict", "weight_version"], registry=r)
        self.verifier_seconds = Histogram("rlvr_verifier_seconds", "Time to a verdict",
                                          ["kind"], buckets=LATENCY_BUCKETS, registry=r)
        self.verifier_jobs_waiting = Gauge("rlvr_verifier_jobs_waiting", "Verifier jobs "
                                           "queued (their callers' shares are in use)", registry=r)
        self.verifier_workers_busy = Gauge("rlvr_verifier_workers_busy", "Verifier workers "
                                           "running a job", registry=r)
        self.traces_written = Gauge("rlvr_traces_written", "Traces committed to the trace log "
                                    "since start", registry=r)
        self.trace_queue_depth = Gauge("rlvr_trace_queue_depth", "Traces waiting for the "
                                       "writer", registry=r)
        self.swap_seconds = Histogram("rlvr_swap_seconds", "Hot-swap time: pause, reload, resume",
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.promotions = Counter("rlvr_promotions_total", "Versions promoted into serving",
                                  registry=r)
        self.weight_version = Gauge("rlvr_weight_version_info", "Weight version being served",
                                    ["version"], registry=r)
        self.trainer_restarts = Gauge("rlvr_trainer_restarts",
                                      "Restarts of the supervised trainer after a crash",
                                      registry=r)
        self.skipped_versions = Gauge(
            "rlvr_skipped_promoted_versions", "Promoted versions skipped at start because "
            "their checkpoint did not verify (the newest intact one is served)", registry=r)

    def set_skipped_versions(self, count: int) -> None:
        self.skipped_versions.set(count)

    def set_weight_version(self, version: str) -> None:
        self.weight_version.clear()
        self.weight_version.labels(version=version).set(1)

    def serve(self, host: str, port: int) -> None:
        """Start the /metrics HTTP endpoint in a background thread."""
        start_http_server(port, addr=host, registry=self.registry)


# trainer_status.json key -> (metric name, help); read at scrape time
TRAINER_GAUGES = {
    "step": ("rlvr_train_steps", "GRPO steps the trainer has taken"),
    "loss": ("rlvr_train_loss", "Loss of the last step"),
    "mean_reward": ("rlvr_train_mean_reward", "Mean verifier reward of the last step's samples"),
    "kl": ("rlvr_train_kl", "KL to the reference policy (k3) in the last step"),
    "clip_fraction": ("rlvr_train_clip_fraction", "Share of tokens whose ratio was clipped"),
    "is_weight": ("rlvr_train_is_weight", "Mean truncated importance weight (behaviour = served)"),
    "samples_per_s": ("rlvr_train_samples_per_second", "Samples generated and learned per second"),
    "staleness": ("rlvr_train_sample_staleness_versions", "Mean version lag of trained samples"),
    "swap_ms": ("rlvr_train_last_swap_milliseconds", "Hot-swap time of the last promotion"),
}
TRAINER_COUNTERS = {
    "groups": ("rlvr_train_groups", "GRPO groups sampled"),
    "dropped_groups": ("rlvr_train_dropped_groups", "Groups dropped: all rewards equal"),
    "stale_samples_dropped": ("rlvr_train_stale_samples_dropped",
                              "Samples dropped: older than the staleness bound"),
}


class TrainingCollector:
    """Training metrics on the runtime's /metrics: the trainer's status file and the version
    manifests in the state directory (the only things the trainer and the runtime share)."""

    def __init__(self, state_dir: Path, checkpoints: Checkpoints):
        self.state_dir, self.checkpoints = state_dir, checkpoints

    def collect(self):
        report = TrainerStatus.read(StateDir(self.state_dir))
        status = report.to_json() if report else {}
        for key, (name, text) in TRAINER_GAUGES.items():
            if isinstance(status.get(key), (int, float)):
                yield GaugeMetricFamily(name, text, value=status[key])
        for key, (name, text) in TRAINER_COUNTERS.items():
            if isinstance(status.get(key), (int, float)):
                yield CounterMetricFamily(name, text, value=status[key])
        phases = CounterMetricFamily("rlvr_train_phase_seconds", "Trainer wall-clock seconds "
                                     "per phase of the loop", labels=["phase"])
        for phase, seconds in dict(status.get("phase_seconds", {})).items():
            phases.add_metric([phase], seconds)
        yield phases
        busy = CounterMetricFamily("rlvr_train_busy_seconds", "Trainer seconds spent sampling, "
                                   "gating and publishing, in the loop or alongside its "
                                   "training steps (pipeline)", labels=["phase"])
        for phase, seconds in dict(status.get("busy_seconds", {})).items():
            busy.add_metric([phase], seconds)
        yield busy
        accuracy = GaugeMetricFamily("rlvr_heldout_accuracy", "Greedy accuracy on the gate's "
                                     "validation tasks per weight version and thinking budget",
                                     labels=["version", "budget"])
        versions = GaugeMetricFamily("rlvr_versions", "Published versions by gate outcome",
                                     labels=["status"])
        by_version = dict(status.get("accuracy", {}))
        counts: dict[str, int] = {}
        for manifest in self.checkpoints.versions():
            counts[manifest.status] = counts.get(manifest.status, 0) + 1
            by_version.setdefault(manifest.version,
                                  manifest.metrics.get("accuracy_by_budget", {}))
        for version, table in sorted(by_version.items()):
            for budget, value in table.items():
                accuracy.add_metric([version, budget], value)
        for name, count in sorted(counts.items()):
            versions.add_metric([name], count)
        yield accuracy
        yield versions
