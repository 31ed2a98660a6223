"""Server configuration: one typed place, filled from defaults < config file < env vars < CLI flags.

A config file is TOML with the field names below as top-level keys. Every field can also be set
by an environment variable `RLVR_<FIELD>` (e.g. `RLVR_PORT=50052`, lists comma separated) and
by a flag of `rlvr serve` (`--port`); the layering is `rlvr/settings.py`'s, the trainer's too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvr import settings
from rlvr.settings import setting
from rlvr.store.layout import StateDir
from rlvr.store.traces import is_postgres
from runtime.budget import DEFAULT_CONTINUATION, DEFAULT_WRAP_UP
from runtime.chat_format import THINK_END, THINK_START
from runtime.engine_args import EngineSettings

# The embedded demo model (a folder like any user's; serving code imports nothing from it)
MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "tiny-reasoner"


class ConfigError(ValueError):
    """A bad configuration value; the message names the key."""


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LORA_RANKS = (0, 1, 8, 16, 32, 64, 128, 256, 320, 512)  # 0, then the ranks vLLM accepts
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class ServerConfig:
    model: Path = setting(MODEL_DIR, "the model's folder (Hugging Face layout); default: the "
                                     "embedded demo model")
    host: str = setting("0.0.0.0", "address to listen on")
    port: int = setting(50051, "gRPC port")
    metrics_port: int = setting(9090, "Prometheus /metrics port (0: no endpoint)")
    state_dir: Path = setting(Path("state"), "traces, checkpoints and the trainer's state")
    think_start: str = setting(THINK_START, "token that opens thinking (a single token of the "
                                            "model; empty: the model does not think)")
    think_end: str = setting(THINK_END, "token that closes thinking")
    default_budget: int = setting(256, "thinking budget (tokens) of a request that sets none")
    max_budget: int = setting(4096, "largest thinking budget a request may ask")
    effort_low: int = setting(16, "thinking budget of effort=low")
    effort_medium: int = setting(64, "thinking budget of effort=medium")
    effort_high: int = setting(256, "thinking budget of effort=high")
    default_wrap_up: str = setting(DEFAULT_WRAP_UP, "text injected when the budget runs out")
    wrap_up_max_share: float = setting(
        0.0, "the default wrap-up is injected only where it takes at most this share of the "
             "budget (1: wherever it fits, 0: never; a request's own wrap-up always is); 0 by "
             "measurement: the embedded model scores more at budgets 16-64 with its whole "
             "budget to think in (clients/bench_api_budgets.py)")
    default_continuation: str = setting(DEFAULT_CONTINUATION, "text that opens the answer "
                                                              "after forced end of thinking")
    default_max_answer_tokens: int = setting(32, "answer tokens of a request that sets none")
    default_temperature: float = setting(0.0, "sampling temperature of a request that sets none")
    max_n: int = setting(16, "most choices one request may ask")
    max_pending: int = setting(512, "user requests admitted at once (running plus queued); "
                                    "beyond: RESOURCE_EXHAUSTED")
    max_choices_per_caller: int = setting(
        128, "choices (n summed over requests) one caller (a token, or an anonymous caller's "
             "host) may have in flight; beyond: RESOURCE_EXHAUSTED (0: no limit). In vLLM's "
             "queue a request's priority is its caller's choices in flight, so a light caller "
             "goes first once the engine is full; shadow samples queue below users")
    max_running_choices: int = setting(0, "choices the engine runs at once (vLLM's "
                                          "max_num_seqs; 0: vLLM's default)")
    max_prompt_chars: int = setting(1_000_000, "longest prompt accepted (characters)")
    dtype: str = setting("auto", "auto: the model's own", choices=DTYPES)
    kv_cache_gib: float = setting(0.0, "KV cache size (0: automatic; CPU 1 GiB, GPU from "
                                       "gpu_memory_share)")
    gpu_memory_share: float = setting(0.0, "share of the GPU the engine may take (0: automatic: "
                                           "0.45 beside the trainer on the only GPU, else 0.9)")
    stream_interval: int = setting(4, "tokens per engine output and stream message (the first "
                                      "is sent at once); fewer, larger messages on few cores")
    max_model_len: int = setting(0, "context length (0: the model's own)")
    seed: int = setting(0, "the engine's sampling seed")
    max_lora_rank: int = setting(0, "> 0: serve LoRA adapter versions up to this rank, one of "
                                    "vLLM's (promoting an adapter switches new requests with "
                                    "no pause)", choices=LORA_RANKS)
    drain_grace_s: float = setting(30.0, "on SIGTERM, seconds in-flight requests may finish in")
    api_tokens: list[str] = setting(factory=list, help="bearer tokens accepted (comma "
                                                       "separated; none: no auth)")
    admin_tokens: list[str] = setting(factory=list, help="bearer tokens of the admin service")
    internal_tokens: list[str] = setting(factory=list, help="tokens of a trainer started beside "
                                                           "the server (`rlvr cluster`): train "
                                                           "and admin scope, auth stays as is")
    train_tokens: list[str] = setting(factory=list, help="tokens whose traffic becomes "
                                                         "training data")
    trust_local_anonymous: bool = setting(True, "with auth off, unauthenticated traffic from "
                                                "loopback is trusted for training (the demo)")
    verifier_workers: int = setting(2, "verifier processes (work is queued per caller, round "
                                       "robin)")
    verifier_workers_per_caller: int = setting(0, "verifier workers one caller may hold "
                                                  "(0: half of them, at least one)")
    verifier_timeout_s: float = setting(10.0, "a request's verifier timeout when it sets none")
    max_verifier_timeout_s: float = setting(30.0, "largest verifier timeout a request may ask")
    reference_check_s: float = setting(2.0, "a math reference must parse and compare within "
                                            "this at admission")
    trace_store: str = setting("", "where traces are stored: empty for the state directory's "
                                   "SQLite file, or a Postgres URL (postgresql://user@host/db) "
                                   "that several replicas share")
    checkpoint_store: str = setting("", "where versions are: empty for the state directory's "
                                        "checkpoints/, a folder every replica mounts, or an "
                                        "S3-compatible object store (s3://bucket/prefix)")
    cluster: bool = setting(False, "promote and roll back together with every replica that "
                                   "shares this trace_store (Postgres) and checkpoint_store: "
                                   "two phases, all staged before any switches")
    replica_name: str = setting("", "this replica's name in the cluster (default: host:port)")
    cluster_stage_timeout_s: float = setting(60.0, "a cluster promotion is aborted when a live "
                                                   "replica has not staged it in this time")
    trace_max_rows: int = setting(1_000_000, "traces kept (oldest deleted first)")
    trace_max_age_days: float = setting(30.0, "traces older than this are deleted")
    feedback_window_s: float = setting(86400.0, "seconds after a response its feedback is "
                                                "accepted")
    tls_cert: Path | None = setting(None, "PEM certificate chain (with tls_key: serve TLS)")
    tls_key: Path | None = setting(None, "PEM private key of tls_cert")
    log_level: str = setting("INFO", "logging level", choices=LOG_LEVELS)
    train: str = setting("auto", "online learning: auto (a trainer child for the embedded "
                                 "model only), on (any model), off", choices=("auto", "on", "off"))
    train_config: Path | None = setting(None, "TOML file of the trainer child's settings "
                                              "(`rlvr train`'s fields; RLVR_TRAINER_* variables "
                                              "override it)")

    def effort_budget(self, effort: str) -> int:
        return {"low": self.effort_low, "medium": self.effort_medium,
                "high": self.effort_high}[effort]

    @property
    def runs_trainer(self) -> bool:
        return self.train == "on" or (self.train == "auto" and
                                      self.model.resolve() == MODEL_DIR.resolve())

    def engine_settings(self, gpus: int) -> EngineSettings:
        share = self.gpu_memory_share or (0.45 if self.runs_trainer and gpus == 1 else 0.9)
        return EngineSettings(max_model_len=self.max_model_len, kv_cache_gib=self.kv_cache_gib,
                              max_running=self.max_running_choices,
                              gpu_memory_share=share, dtype=self.dtype, seed=self.seed,
                              max_lora_rank=self.max_lora_rank, think_start=self.think_start,
                              think_end=self.think_end)

    @property
    def verifier_share(self) -> int:
        """Verifier workers one caller may hold at once."""
        return self.verifier_workers_per_caller or max(1, self.verifier_workers // 2)

    @property
    def trace_location(self) -> Path | str:
        """The trace store: its Postgres URL, else the state directory's SQLite file."""
        return self.trace_store or StateDir(self.state_dir).traces

    def validate(self) -> "ServerConfig":
        """Check relations between fields; raises ConfigError naming the field."""
        for name in ("port", "metrics_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ConfigError(f"{name} must be between 0 and 65535")
        for name in ("default_budget", "max_budget", "effort_low", "effort_medium",
                     "effort_high", "default_max_answer_tokens", "max_n", "max_pending",
                     "verifier_workers", "trace_max_rows", "stream_interval"):
            if getattr(self, name) < (0 if name == "default_budget" else 1):
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.wrap_up_max_share <= 1:
            raise ConfigError(f"wrap_up_max_share must be in [0, 1], got {self.wrap_up_max_share}")
        if self.max_running_choices < 0:
            raise ConfigError(f"max_running_choices must be >= 0 (0 = vLLM's default), got "
                              f"{self.max_running_choices}")
        if self.max_choices_per_caller < 0:
            raise ConfigError(f"max_choices_per_caller must be >= 0 (0 = no limit), got "
                              f"{self.max_choices_per_caller}")
        if not 0 <= self.verifier_workers_per_caller <= self.verifier_workers:
            raise ConfigError(f"verifier_workers_per_caller must be in [0, verifier_workers] "
                              f"(0 = half), got {self.verifier_workers_per_caller}")
        for name in ("verifier_timeout_s", "max_verifier_timeout_s", "reference_check_s"):
            if not 0 < getattr(self, name) <= 3600:
                raise ConfigError(f"{name} must be in (0, 3600] seconds, got {getattr(self, name)}")
        if self.verifier_timeout_s > self.max_verifier_timeout_s:
            raise ConfigError("verifier_timeout_s must not exceed max_verifier_timeout_s")
        if not 0 <= self.kv_cache_gib < 1e6:
            raise ConfigError(f"kv_cache_gib must be >= 0 (0 = automatic), got {self.kv_cache_gib}")
        if not 0 <= self.gpu_memory_share <= 1:
            raise ConfigError("gpu_memory_share must be in (0, 1] (0 = automatic), got "
                              f"{self.gpu_memory_share}")
        if self.default_budget > self.max_budget:
            raise ConfigError("default_budget must not exceed max_budget")
        if not (self.model / "config.json").is_file():
            raise ConfigError(f"model: {self.model} is not a model folder (no config.json)")
        if self.train_config is not None and not self.train_config.is_file():
            raise ConfigError(f"train_config: no such file {self.train_config}")
        if self.trace_store and not is_postgres(self.trace_store):
            raise ConfigError("trace_store must be empty (SQLite in state_dir) or a "
                              f"postgresql:// URL, got {self.trace_store!r}")
        if self.cluster and not is_postgres(self.trace_store):
            raise ConfigError("cluster needs a shared trace_store (postgresql://...): the "
                              "promotion record lives there")
        if not 0 < self.cluster_stage_timeout_s <= 86400:
            raise ConfigError("cluster_stage_timeout_s must be in (0, 86400] seconds, got "
                              f"{self.cluster_stage_timeout_s}")
        store = self.checkpoint_store
        if "://" in store and not (store.startswith("s3://") and len(store) > len("s3://")):
            raise ConfigError("checkpoint_store must be empty (state_dir's checkpoints/), a "
                              f"folder, or s3://bucket[/prefix], got {store!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key must be given together")
        return self


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None,
                env: Mapping[str, str] | None = None) -> ServerConfig:
    """Defaults, then the TOML file, then RLVR_* env vars, then explicit overrides (CLI flags)."""
    try:
        return settings.load(ServerConfig, path, env, overrides, prefix="RLVR_").validate()
    except settings.SettingsError as err:
        raise ConfigError(str(err)) from None
