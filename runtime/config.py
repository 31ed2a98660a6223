"""Server configuration: one typed place, filled from defaults < config file < env vars < CLI flags.

A config file is TOML with the field names below as top-level keys. Every field can also be set
by an environment variable `RLVR_<FIELD>` (e.g. `RLVR_PORT=50052`, lists comma separated).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvr.store.layout import StateDir
from runtime.budget import DEFAULT_CONTINUATION, DEFAULT_WRAP_UP
from runtime.chat_format import THINK_END, THINK_START
from runtime.engine_args import EngineSettings

# The embedded demo model (a folder like any user's; serving code imports nothing from it)
MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "tiny-reasoner"


class ConfigError(ValueError):
    """A bad configuration value; the message names the key."""


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LORA_RANKS = (0, 1, 8, 16, 32, 64, 128, 256, 320, 512)  # 0, then the ranks vLLM accepts


@dataclass
class ServerConfig:
    model: Path = MODEL_DIR
    host: str = "0.0.0.0"
    port: int = 50051
    metrics_port: int = 9090  # 0 disables the /metrics endpoint
    state_dir: Path = Path("state")
    # Thinking delimiters (single tokens of the model); empty = the model does not think
    think_start: str = THINK_START
    think_end: str = THINK_END
    # Thinking budgets (tokens)
    default_budget: int = 256
    max_budget: int = 4096
    effort_low: int = 16
    effort_medium: int = 64
    effort_high: int = 256
    default_wrap_up: str = DEFAULT_WRAP_UP
    # The default wrap-up is injected only where it takes at most this share of the budget
    # (1 = wherever it fits, 0 = never); a wrap-up the request sets is always injected.
    # 0 by measurement (clients/bench_api_budgets.py): through the API the embedded model
    # scores more at budgets 16, 32 and 64 with its whole budget to think in.
    wrap_up_max_share: float = 0.0
    default_continuation: str = DEFAULT_CONTINUATION
    default_max_answer_tokens: int = 32
    default_temperature: float = 0.0
    max_n: int = 16
    # Admission: user requests admitted at once (running plus queued); beyond it RESOURCE_EXHAUSTED
    max_pending: int = 512
    # Fair sharing: choices (n summed over requests) one caller may have in flight at once
    # (a token, or the host of an anonymous caller); beyond it RESOURCE_EXHAUSTED. 0 = no
    # limit. Shadow (trainer) samples are scheduled below users in vLLM instead. In vLLM's
    # queue a request's priority is its caller's choices already in flight, so a light
    # caller goes before a heavy one once the engine runs max_running_choices at once
    # (vLLM's max_num_seqs; 0 = vLLM's default).
    max_choices_per_caller: int = 128
    max_running_choices: int = 0
    max_prompt_chars: int = 1_000_000
    # Engine
    dtype: str = "auto"          # the model's own; or float32, bfloat16, float16
    kv_cache_gib: float = 0.0    # 0 = automatic (CPU: 1 GiB; GPU: from gpu_memory_share)
    # Share of the GPU the engine may take; 0 = automatic: 0.45 when the trainer runs beside
    # it on the only GPU, else 0.9 (with two GPUs the trainer takes the second one)
    gpu_memory_share: float = 0.0
    # Engine outputs (and so stream messages) carry up to this many tokens; the first token of
    # every request is sent at once. Fewer, larger messages: more throughput on few cores.
    stream_interval: int = 4
    max_model_len: int = 0  # 0 = the model's own context length
    seed: int = 0
    # > 0: the engine can serve LoRA adapter versions up to this rank (vLLM's enable_lora;
    # one of vLLM's ranks: 1, 8, 16, 32, 64, 128, 256, 320, 512); promoting an adapter then
    # loads it and switches new requests to it, with no pause
    max_lora_rank: int = 0
    # Lifecycle
    drain_grace_s: float = 30.0
    # Security: bearer tokens accepted in `authorization: Bearer <token>` (empty = no auth)
    api_tokens: list[str] = field(default_factory=list)
    admin_tokens: list[str] = field(default_factory=list)
    # Trust: traffic from these tokens (and, with trust_local_anonymous, unauthenticated
    # traffic from loopback when auth is off: the local demo) becomes training data.
    train_tokens: list[str] = field(default_factory=list)
    trust_local_anonymous: bool = True
    # Verification and traces. Verifier work is queued per caller (round robin) and one
    # caller holds at most verifier_workers_per_caller workers (0 = half of them, at least
    # one), so slow references cost their own caller. A request's timeout_s defaults to
    # verifier_timeout_s and may not exceed max_verifier_timeout_s; a math reference must
    # parse and compare within reference_check_s at admission.
    verifier_workers: int = 2
    verifier_workers_per_caller: int = 0
    verifier_timeout_s: float = 10.0
    max_verifier_timeout_s: float = 30.0
    reference_check_s: float = 2.0
    trace_max_rows: int = 1_000_000
    trace_max_age_days: float = 30.0
    feedback_window_s: float = 86400.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_level: str = "INFO"
    # Online learning: "auto" runs the trainer (a child process) for the embedded model only;
    # "on" for any model, "off" never. train_args are extra `rlvr train` flags, e.g. "--lr 1e-4".
    train: str = "auto"
    train_args: str = ""

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
    def traces_path(self) -> Path:
        return StateDir(self.state_dir).traces

    def validate(self) -> "ServerConfig":
        """Check relations between fields; raises ConfigError naming the field."""
        for name in ("port", "metrics_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ConfigError(f"{name} must be between 0 and 65535")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, "
                              f"got {self.log_level!r}")
        if self.max_lora_rank not in LORA_RANKS:
            raise ConfigError(f"max_lora_rank must be one of {', '.join(map(str, LORA_RANKS))} "
                              f"(0 = no adapters), got {self.max_lora_rank}")
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
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError(f"dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")
        if self.default_budget > self.max_budget:
            raise ConfigError("default_budget must not exceed max_budget")
        if not (self.model / "config.json").is_file():
            raise ConfigError(f"model: {self.model} is not a model folder (no config.json)")
        if self.train not in ("auto", "on", "off"):
            raise ConfigError(f"train must be auto, on or off, got {self.train!r}")
        try:
            shlex.split(self.train_args)
        except ValueError as err:
            raise ConfigError(f"train_args: {err}") from None
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key must be given together")
        return self


def _coerce(name: str, kind: Any, value: Any) -> Any:
    """Convert a file/env/CLI value to the field's declared type, or raise ConfigError."""
    text_kind = str(kind)
    try:
        if "list" in text_kind:
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
            raise TypeError("expected a list of strings")
        if value is None:
            return None
        if "Path" in text_kind:
            return Path(value)
        if text_kind in ("int", "<class 'int'>"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError("expected an integer")
            return int(value)
        if text_kind in ("float", "<class 'float'>"):
            return float(value)
        if text_kind in ("bool", "<class 'bool'>"):
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0",
                                                             "false", "no", "off"):
                return value.lower() in ("1", "true", "yes", "on")
            if isinstance(value, bool):
                return value
            raise TypeError("expected true or false")
        return str(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name}: {value!r} is not a valid {text_kind} ({err})") from None


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None,
                env: dict[str, str] | None = None) -> ServerConfig:
    """Defaults, then the TOML file, then RLVR_* env vars, then explicit overrides (CLI flags)."""
    fields = {f.name: f.type for f in dataclasses.fields(ServerConfig)}
    values: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"config file {path}: {err}") from None
        for key, value in data.items():
            if key not in fields:
                raise ConfigError(f"config file {path}: unknown key {key!r}")
            values[key] = _coerce(key, fields[key], value)
    env = os.environ if env is None else env
    for name, kind in fields.items():
        if f"RLVR_{name.upper()}" in env:
            values[name] = _coerce(f"RLVR_{name.upper()}", kind, env[f"RLVR_{name.upper()}"])
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _coerce(name, fields[name], value)
    return ServerConfig(**values).validate()
