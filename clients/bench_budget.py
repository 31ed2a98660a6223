"""Thinking-budget Control (the s1 paper's metric): the share of requests whose thinking length
lands inside [min, max], with random budgets and random minimums.

The same requests (held-out prompts, sampled at temperature 0.8 with fixed seeds) go through
the gRPC runtime and, as the peer baseline in the same run, through vLLM's own
`thinking_token_budget`, which enforces a maximum but has no minimum.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rl_loop.toy.tasks import load_heldout
from rl_loop.toy.tiny_model import MODEL_DIR, chat_prompt_ids

TEMPERATURE = 0.8
ANSWER_TOKENS = 16


@dataclass
class BudgetRequest:
    prompt: str
    budget: int
    minimum: int
    seed: int


def make_requests(n: int, seed: int = 0, max_budget: int = 128) -> list[BudgetRequest]:
    """Random budgets in [0, max_budget]; half the requests also get a random minimum."""
    rng = random.Random(seed)
    prompts = [t.prompt for t in load_heldout()]
    requests = []
    for i in range(n):
        budget = rng.randint(0, max_budget)
        minimum = rng.randint(0, budget) if rng.random() < 0.5 else 0
        requests.append(BudgetRequest(prompts[i % len(prompts)], budget, minimum, i))
    return requests


def control(requests: list[BudgetRequest], thinking: list[int]) -> float:
    inside = sum(r.minimum <= t <= r.budget for r, t in zip(requests, thinking))
    return inside / len(requests)


async def runtime_thinking(target: str, requests: list[BudgetRequest],
                           concurrency: int) -> list[int]:
    from clients.client import AsyncClient

    sem = asyncio.Semaphore(concurrency)
    async with AsyncClient(target) as client:
        async def one(r: BudgetRequest) -> int:
            async with sem:
                result = await client.ask(r.prompt, budget=r.budget, min_thinking=r.minimum,
                                          temperature=TEMPERATURE, seed=r.seed,
                                          hide_thinking=True, max_answer_tokens=ANSWER_TOKENS)
                return result.usage.thinking_tokens
        return list(await asyncio.gather(*(one(r) for r in requests)))


def vllm_thinking(model: Path, requests: list[BudgetRequest]) -> list[int]:
    """vLLM's native budget: `thinking_token_budget` forces `</think>` at the cap."""
    from vllm import LLM, SamplingParams

    from rl_loop.toy.evaluate import split_completion
    from runtime.engine_args import engine_kwargs

    llm = LLM(**engine_kwargs(model))
    tokenizer = llm.get_tokenizer()
    think_end = tokenizer.convert_tokens_to_ids("</think>")
    prompts = [{"prompt_token_ids": chat_prompt_ids(tokenizer, [{"role": "user",
                                                                  "content": r.prompt}])}
               for r in requests]
    params = [SamplingParams(temperature=TEMPERATURE, seed=r.seed, thinking_token_budget=r.budget,
                             max_tokens=r.budget + 1 + ANSWER_TOKENS, skip_special_tokens=False)
              for r in requests]
    outputs = llm.generate(prompts, params, use_tqdm=False)
    return [split_completion(list(o.outputs[0].token_ids), think_end, tokenizer).thinking_tokens
            for o in outputs]


def run_control_benchmark(model: Path = MODEL_DIR, n: int = 1000, concurrency: int = 64,
                          seed: int = 0) -> dict:
    """Both sides on the same requests, one after the other (never competing for the cores)."""
    from clients.launch import ServerProcess

    requests = make_requests(n, seed)
    peer = vllm_thinking(model, requests)
    server = ServerProcess(Path(tempfile.mkdtemp(prefix="rlvr-bench-")), model=model,
                           max_pending=max(512, n))
    try:
        server.wait_ready()
        ours = asyncio.run(runtime_thinking(server.target, requests, concurrency))
    finally:
        server.stop()
    with_min = [i for i, r in enumerate(requests) if r.minimum > 0]
    return {
        "requests": n, "with_minimum": len(with_min), "temperature": TEMPERATURE,
        "control_runtime": control(requests, ours),
        "control_vllm_thinking_token_budget": control(requests, peer),
        "over_budget": {"runtime": sum(t > r.budget for r, t in zip(requests, ours)),
                        "vllm": sum(t > r.budget for r, t in zip(requests, peer))},
        "under_minimum": {"runtime": sum(t < r.minimum for r, t in zip(requests, ours)),
                          "vllm": sum(t < r.minimum for r, t in zip(requests, peer))},
    }
