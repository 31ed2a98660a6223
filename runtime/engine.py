"""The engine layer: vLLM's AsyncLLM behind a narrow interface of token-id streams.

The server never talks to vLLM directly: it asks for a stream of generated token ids for a
prompt of token ids, and closing that stream aborts the request inside the engine (vLLM
aborts a request whose output generator is closed or cancelled). Detokenization happens in
the server, per channel, so the engine is asked for ids only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing
from pathlib import Path
from typing import AsyncIterator

from rl_loop.tiny_model import chat_prompt_ids
from runtime.engine_args import THINK_END, THINK_START, engine_kwargs, model_context_length

log = logging.getLogger(__name__)


class Engine:
    """One AsyncLLM (continuous batching; its engine core runs in its own process)."""

    def __init__(self, model_dir: Path, *, max_model_len: int = 0, kv_cache_gib: int = 1,
                 seed: int = 0, weight_version: str = "v0", think_start: str = THINK_START,
                 think_end: str = THINK_END, stream_interval: int = 1, max_lora_rank: int = 0):
        self.model_dir = Path(model_dir)
        self.max_model_len = max_model_len or model_context_length(self.model_dir)
        self.kv_cache_gib = kv_cache_gib
        self.seed = seed
        self.weight_version = weight_version
        self.think_start, self.think_end = think_start, think_end
        self.stream_interval = stream_interval
        self.max_lora_rank = max_lora_rank
        self.full_weights = weight_version  # the version whose full weights the engine holds
        self.lora = None  # LoRARequest of the served adapter version (None: full weights only)
        self._lora_ids = 0
        self.llm = None
        self.tokenizer = None
        self.supports_thinking = False
        self.think_end_id: int | None = None  # None for a model without thinking delimiters
        self.eos_id: int | None = None
        self._swap_lock = asyncio.Lock()

    async def start(self) -> None:
        """Load the model into vLLM and run one warm-up request."""
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        vocab = self.tokenizer.get_vocab()
        self.supports_thinking = bool(self.think_start and self.think_end) and all(
            t in vocab for t in (self.think_start, self.think_end))
        self.eos_id = self.tokenizer.eos_token_id
        if self.supports_thinking:
            self.think_end_id = self.tokenizer.convert_tokens_to_ids(self.think_end)
        else:
            log.warning("model %s: no single-token thinking delimiters (%r, %r) configured; "
                        "requests with thinking options will be rejected", self.model_dir,
                        self.think_start, self.think_end)
        args = AsyncEngineArgs(**engine_kwargs(self.model_dir, self.max_model_len,
                                               self.kv_cache_gib, self.seed, self.max_lora_rank),
                               scheduling_policy="priority", disable_log_stats=True)
        # Loading takes seconds: keep the event loop free so health checks answer meanwhile.
        self.llm = await asyncio.to_thread(AsyncLLM.from_engine_args, args)
        await self.warm_up()

    def encode_text(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def render_chat(self, messages: list[dict[str, str]]) -> list[int]:
        """Chat template with the generation prompt (which opens thinking) as token ids."""
        return chat_prompt_ids(self.tokenizer, messages)

    def sampling_params(self, *, max_tokens: int, temperature: float, top_p: float,
                        top_k: int, seed: int | None):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        return SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                              top_k=top_k, seed=seed, detokenize=False,
                              output_kind=RequestOutputKind.DELTA,
                              skip_special_tokens=False, stream_interval=self.stream_interval)

    async def stream(self, prompt_ids: list[int], params, request_id: str,
                     priority: int = 0) -> AsyncIterator[list[int]]:
        """New token ids as the engine produces them; closing the iterator aborts the request.
        The request keeps the adapter served when it started, whatever is swapped meanwhile."""
        generator = self.llm.generate({"prompt_token_ids": prompt_ids}, params, request_id,
                                      lora_request=self.lora, priority=priority)
        async with aclosing(generator):
            async for output in generator:
                ids = list(output.outputs[0].token_ids)
                if ids:
                    yield ids

    async def warm_up(self) -> None:
        """The first batch after start is several times slower: pay for it before serving."""
        ids = self.render_chat([{"role": "user", "content": "What is 1+1?"}])
        params = self.sampling_params(max_tokens=8, temperature=0.0, top_p=1.0, top_k=0,
                                      seed=None)
        async for _ in self.stream(ids, params, "warm-up"):
            pass

    async def swap_weights(self, weights_dir: Path, version: str) -> float:
        """Serve a full-weights version without failing any request: pause scheduling
        (in-flight requests are kept, not aborted), reload, resume. Returns seconds taken."""
        start = time.perf_counter()
        async with self._swap_lock:
            self.lora = None  # requests sent during the reload run on the new weights alone
            if self.full_weights != version:  # else: back from an adapter to its base weights
                await self._reload(weights_dir, version)
            self.weight_version = version
        return time.perf_counter() - start

    async def swap_adapter(self, adapter_dir: Path, version: str, base_dir: Path,
                           base_version: str) -> float:
        """Serve a LoRA adapter version: load it into the engine, then route new requests to
        it; nothing pauses (requests in flight finish on what they started with). When the
        engine holds other full weights than the adapter's base, those are reloaded first."""
        from vllm.lora.request import LoRARequest

        start = time.perf_counter()
        async with self._swap_lock:
            if self.full_weights != base_version:
                self.lora = None
                await self._reload(base_dir, base_version)
            self._lora_ids += 1
            request = LoRARequest(version, self._lora_ids, str(adapter_dir))
            await self.llm.add_lora(request)
            self.lora, self.weight_version = request, version
        return time.perf_counter() - start

    async def _reload(self, weights_dir: Path, version: str) -> None:
        await self.llm.pause_generation(mode="keep", clear_cache=True)
        try:
            await self.llm.collective_rpc("reload_weights",
                                          kwargs={"weights_path": str(weights_dir)})
            self.full_weights = version
        finally:
            await self.llm.resume_generation()

    def shutdown(self) -> None:
        if self.llm is not None:
            self.llm.shutdown()
            self.llm = None
