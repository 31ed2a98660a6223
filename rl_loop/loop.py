"""The trainer's loop: its steps pipelined or one after another (`TrainerConfig.pipeline`).

Each step: read new traces, follow admin actions, sample groups (or take the batch sampled
while the previous step trained), train, stage the newest adapter, and start a gate when one
is due. With the pipeline, the next batch is sampled and a candidate is gated while a step
trains; at most one of each is in flight, and their results are applied between steps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from clients.client import AsyncClient, RlvrError
from rl_loop.gate import GateJob

if TYPE_CHECKING:
    from rl_loop.trainer import Trainer

log = logging.getLogger(__name__)


class Loop:
    """The trainer's steps, pipelined or one after another (`TrainerConfig.pipeline`): the
    sampling of the next batch and the gating of a candidate run while a step trains; at most
    one of each is in flight, and their results are applied between steps."""

    def __init__(self, trainer: Trainer, client: AsyncClient):
        self.t, self.client = trainer, client
        self.sampler: asyncio.Task | None = None   # the next batch
        self.gating: tuple[GateJob, asyncio.Task] | None = None
        self.report: dict = {}  # the last step's

    async def step(self) -> None:
        t = self.t
        t.read_traces()
        if (state := t.state()) != "running":
            t.save_state({"state": state})
            with t.clock.time("waiting"):
                await asyncio.sleep(t.cfg.poll_s)
            return
        if self.gating is not None and self.gating[1].done():
            await self.finish_gate()
        start = time.monotonic()
        try:
            with t.clock.time("sampling"):
                await t.follow_server(self.client)
                sampler, self.sampler = self.sampler, None
                groups = await (sampler or t.sample(self.client))
        except RlvrError as err:  # e.g. the server is draining or full: try again
            log.warning("sampling failed (%s); retrying in %.0fs", err, t.cfg.poll_s)
            with t.clock.time("waiting"):
                await asyncio.sleep(t.cfg.poll_s)
            return
        if t.cfg.pipeline:
            self.sampler = asyncio.create_task(t.sample(self.client))
        with t.clock.time("training"):
            report = (await asyncio.to_thread(t.train_step, groups) if t.cfg.pipeline
                      else t.train_step(groups))
        if t.stage_due(report):
            with t.clock.time("publish"):
                await t.stage(self.client)
        report["step_seconds"] = time.monotonic() - start
        report["samples_per_s"] = report["samples"] / report["step_seconds"]
        log.info("step %d: %s", t.step, {k: round(v, 4) if isinstance(v, float) else v
                                          for k, v in report.items()})
        if t.publish_due(report):
            await self.gate()
        self.report = report
        t.save_state(report)

    async def gate(self) -> None:
        """Start gating the policy as it is now (after the gate in flight, if any)."""
        t = self.t
        if self.gating is not None:
            await self.finish_gate()
        try:
            job = t.start_gate()
            if job is None:
                log.info("%s", t.stats["gate"])
                return
            work = (t.gate_in_engine(self.client, job) if t.policy.publish_adapters
                    else asyncio.to_thread(t.run_gate, job))
            self.gating = (job, asyncio.create_task(work))
            if not t.cfg.pipeline:
                await self.finish_gate()
        except OSError as err:
            self.publish_failed(err)

    async def finish_gate(self) -> None:
        job, task = self.gating
        self.gating = None
        try:
            with self.t.clock.time("gate"):
                await task
            self.t.log_gate(await self.t.finish_gate(self.client, job))
        except OSError as err:
            self.publish_failed(err)

    def publish_failed(self, err: OSError) -> None:
        """E.g. the disk filled up mid-publish: nothing is published; training goes on."""
        log.error("publish failed (%s); training goes on", err)
        self.t.stats["publish_failures"] = self.t.stats.get("publish_failures", 0) + 1

    async def finish(self) -> None:
        """At the last step: the gate in flight is finished (and its outcome applied)."""
        if self.gating is not None:
            await self.finish_gate()
            self.t.save_state(self.report)

    async def cancel(self) -> None:
        """On the way out: the batch in flight is dropped, so is an unfinished gate (its
        checkpoint, if written, stays a candidate that is never promoted)."""
        tasks = [task for task in (self.sampler, self.gating and self.gating[1]) if task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
