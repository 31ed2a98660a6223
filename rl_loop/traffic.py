"""Synthetic user traffic: the embedded task families with mixed thinking budgets, verified.

`rlvr traffic --server ADDR --rate R --duration S` sends R requests per second for S seconds
(each carrying its numeric reference, so the runtime verifies and logs it) and reports the
user latency percentiles and the share of correct answers.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time

from clients.client import AsyncClient, RlvrError
from rl_loop.tasks import FAMILIES, sample_task

BUDGETS = (16, 32, 64, 256)


async def run_traffic(server: str, rate: float, duration: float, token: str | None = None,
                      seed: int = 0, budgets=BUDGETS) -> dict:
    rng = random.Random(seed)
    latencies, rewards, failures = [], [], 0

    async def one(client: AsyncClient) -> None:
        nonlocal failures
        task = sample_task(rng, rng.choice(list(FAMILIES)))
        start = time.perf_counter()
        try:
            result = await client.ask(task.prompt, budget=rng.choice(budgets),
                                      verify=f"{task.verifier}:{task.answer}")
        except RlvrError:
            failures += 1
            return
        latencies.append(time.perf_counter() - start)
        rewards.append(result.verification["reward"] if result.verification else 0.0)

    async with AsyncClient(server, token=token) as client:
        tasks, start = [], time.monotonic()
        while time.monotonic() - start < duration:
            tasks.append(asyncio.create_task(one(client)))
            await asyncio.sleep(rng.expovariate(rate))
        await asyncio.gather(*tasks)
    ordered = sorted(latencies) or [0.0]
    return {"requests": len(tasks), "failed": failures,
            "mean_reward": statistics.fmean(rewards) if rewards else 0.0,
            "latency_p50_s": ordered[len(ordered) // 2],
            "latency_p99_s": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]}
