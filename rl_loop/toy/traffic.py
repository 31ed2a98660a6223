"""Synthetic user traffic: the embedded task families with mixed thinking budgets, verified.

`rlvr traffic --server ADDR --rate R --duration S` sends R requests per second (Poisson
arrivals) for S seconds, each carrying its numeric reference so the runtime verifies and logs
it, and reports user latency percentiles and the share of correct answers. `rlvr demo` keeps
the per-request records to show latency live.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass

from clients.client import AsyncClient, RlvrError
from rl_loop.toy.tasks import FAMILIES, sample_task

BUDGETS = (16, 32, 64, 256)


@dataclass
class Record:
    sent_at: float     # time.monotonic() when sent
    latency_s: float
    ok: bool
    reward: float
    version: str
    code: str = "OK"   # the gRPC status code's name of a failed request


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(records: list[Record]) -> dict:
    done = [r for r in records if r.ok]
    latencies = [r.latency_s for r in done]
    return {"requests": len(records), "failed": len(records) - len(done),
            "mean_reward": statistics.fmean([r.reward for r in done]) if done else 0.0,
            "latency_p50_s": percentile(latencies, 0.5),
            "latency_p99_s": percentile(latencies, 0.99)}


class Traffic:
    """Poisson arrivals of verified task prompts; every finished request becomes a Record."""

    def __init__(self, server: str, rate: float, token: str | None = None, seed: int = 0,
                 budgets=BUDGETS):
        self.server, self.rate, self.token, self.budgets = server, rate, token, budgets
        self.rng = random.Random(seed)
        self.records: list[Record] = []

    async def _one(self, client: AsyncClient) -> None:
        task = sample_task(self.rng, self.rng.choice(list(FAMILIES)))
        start = time.monotonic()
        try:
            result = await client.ask(task.prompt, budget=self.rng.choice(self.budgets),
                                      verify=f"{task.verifier}:{task.answer}")
        except RlvrError as err:
            self.records.append(Record(start, time.monotonic() - start, False, 0.0, "",
                                       err.code.name))
            return
        reward = result.verification["reward"] if result.verification else 0.0
        self.records.append(Record(start, time.monotonic() - start, True, reward,
                                   result.weight_version))

    async def run(self, duration: float) -> list[Record]:
        """Send for `duration` seconds, then wait for the requests in flight."""
        async with AsyncClient(self.server, token=self.token) as client:
            tasks, start = [], time.monotonic()
            while time.monotonic() - start < duration:
                tasks.append(asyncio.create_task(self._one(client)))
                await asyncio.sleep(self.rng.expovariate(self.rate))
            await asyncio.gather(*tasks)
        return self.records


async def run_traffic(server: str, rate: float, duration: float, token: str | None = None,
                      seed: int = 0, budgets=BUDGETS) -> dict:
    return summarize(await Traffic(server, rate, token, seed, budgets).run(duration))
