"""Serving-overhead benchmark: the gRPC runtime vs the raw vLLM AsyncLLM, same workload, same run.

`rlvr bench serving` runs N requests (held-out prompts, greedy, natural thinking) with C
concurrent streams, first directly on AsyncLLM inside this process, then through a `rlvr serve`
subprocess via the asyncio client, R rounds each, and prints the median throughput ratio and
time-to-first-token difference. Ratios, not absolute numbers: this machine is shared and noisy.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rl_loop.toy.tasks import load_heldout
from rl_loop.toy.tiny_model import MODEL_DIR, chat_prompt_ids


@dataclass
class Round:
    tokens: int
    seconds: float
    ttfts: list[float]
    itls: list[float]  # per request: (last token - first token) / (tokens - 1), chunking-neutral

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


def timed(count: int, start: float, first: float) -> tuple[int, float, float]:
    """(tokens, time to first token, inter-token latency) of one finished request."""
    end = time.perf_counter() - start
    return count, first, (end - first) / max(1, count - 1)


def _round(done: list[tuple[int, float, float]], seconds: float) -> Round:
    return Round(sum(d[0] for d in done), seconds, [d[1] for d in done], [d[2] for d in done])


async def _bounded(coros, concurrency: int):
    sem = asyncio.Semaphore(concurrency)

    async def run(coro):
        async with sem:
            return await coro
    return await asyncio.gather(*(run(c) for c in coros))


async def raw_rounds(model: Path, prompts: list[str], concurrency: int, rounds: int,
                     max_tokens: int) -> list[Round]:
    """The same workload straight on AsyncLLM (detokenizing, streaming deltas)."""
    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.sampling_params import RequestOutputKind
    from vllm.v1.engine.async_llm import AsyncLLM

    from runtime.engine_args import engine_kwargs

    from transformers import AutoTokenizer

    llm = AsyncLLM.from_engine_args(AsyncEngineArgs(**engine_kwargs(model), disable_log_stats=True))
    tokenizer = AutoTokenizer.from_pretrained(model)
    encoded = [chat_prompt_ids(tokenizer, [{"role": "user", "content": p}]) for p in prompts]
    context = llm.model_config.max_model_len

    async def one(i: int, ids: list[int]) -> tuple[int, float, float]:
        params = SamplingParams(temperature=0.0, max_tokens=min(max_tokens, context - len(ids)),
                                output_kind=RequestOutputKind.DELTA)
        start, first, count = time.perf_counter(), 0.0, 0
        async for out in llm.generate({"prompt_token_ids": ids}, params, f"raw-{i}-{time.time()}"):
            if not first:
                first = time.perf_counter() - start
            count += len(out.outputs[0].token_ids)
        return timed(count, start, first)

    results = []
    try:
        await _bounded([one(i, ids) for i, ids in enumerate(encoded[:8])], concurrency)  # warm up
        for _ in range(rounds):
            start = time.perf_counter()
            done = await _bounded([one(i, ids) for i, ids in enumerate(encoded)], concurrency)
            results.append(_round(done, time.perf_counter() - start))
    finally:
        llm.shutdown()
    return results


async def grpc_rounds(target: str, prompts: list[str], concurrency: int, rounds: int,
                      budget: int) -> list[Round]:
    """The same workload through the gRPC server; tokens = thinking + `</think>` + answer + eos
    as the raw engine counts them."""
    from clients.client import AsyncClient, collect

    async with AsyncClient(target) as client:
        async def one(prompt: str) -> tuple[int, float, float]:
            start, first, events = time.perf_counter(), 0.0, []
            async for event in client.stream(prompt, budget=budget, temperature=0.0):
                if not first and event.WhichOneof("event") == "delta":
                    first = time.perf_counter() - start
                events.append(event)
            r = collect(events)[0]
            close = 1 if r.thinking_end == "natural" else 0
            eos = 1 if r.finish_reason == "stop" else 0
            return timed(r.usage.thinking_tokens + close + r.usage.answer_tokens + eos, start,
                         first)

        await _bounded([one(p) for p in prompts[:8]], concurrency)
        results = []
        for _ in range(rounds):
            start = time.perf_counter()
            done = await _bounded([one(p) for p in prompts], concurrency)
            results.append(_round(done, time.perf_counter() - start))
    return results


def summary(name: str, rounds: list[Round]) -> dict:
    """Median throughput over rounds; latency percentiles over every request of every round."""
    from rl_loop.toy.traffic import percentile

    tps = [r.tokens_per_s for r in rounds]
    ttfts = [t for r in rounds for t in r.ttfts]
    itls = [t for r in rounds for t in r.itls]
    return {"name": name, "tokens_per_s_median": statistics.median(tps),
            "tokens_per_s_all": [round(x, 1) for x in tps],
            "ttft_median_s": statistics.median(ttfts), "ttft_p99_s": percentile(ttfts, 0.99),
            "itl_median_s": statistics.median(itls), "itl_p99_s": percentile(itls, 0.99),
            "tokens": rounds[0].tokens}


def run_serving_benchmark(model: Path = MODEL_DIR, requests: int = 200, concurrency: int = 64,
                          rounds: int = 3) -> dict:
    """Raw engine first (in this process), then the gRPC server (a subprocess); one at a time,
    so the two never compete for the cores."""
    from clients.launch import ServerProcess

    prompts = [t.prompt for t in load_heldout()]
    prompts = (prompts * (requests // len(prompts) + 1))[:requests]
    budget = 512  # above any natural thinking length of the embedded model: both sides agree
    raw = asyncio.run(raw_rounds(model, prompts, concurrency, rounds, max_tokens=512))
    server = ServerProcess(Path(tempfile.mkdtemp(prefix="rlvr-bench-")), model=model,
                           max_pending=max(512, requests))
    try:
        server.wait_ready()
        served = asyncio.run(grpc_rounds(server.target, prompts, concurrency, rounds, budget))
    finally:
        server.stop()
    report = {"workload": {"requests": requests, "concurrency": concurrency, "rounds": rounds,
                           "model": str(model)},
              "raw": summary("raw AsyncLLM", raw), "grpc": summary("rlvr gRPC", served)}
    report["throughput_ratio"] = (report["grpc"]["tokens_per_s_median"]
                                  / report["raw"]["tokens_per_s_median"])
    report["ttft_extra_ms"] = 1000 * (report["grpc"]["ttft_median_s"]
                                      - report["raw"]["ttft_median_s"])
    return report
