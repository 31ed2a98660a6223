"""The online GRPO trainer: a separate process that learns from the runtime's verified traffic.

It talks to the runtime only through (a) the trace log (new trainable traces, by cursor),
(b) the checkpoint folder, and (c) the runtime's gRPC API: shadow `Generate` calls (n = group
size, low priority, verified by the runtime's own verifiers) and `Admin.Promote`.

One step: draw up to `prompts_per_step` recent trainable prompts, weighted toward those whose
groups carry signal (`prompt_pool.py`), sample a group for each with
the thinking budget and the whole verification spec the user sent, train on the exact token
ids the server reports (never re-tokenised text), drop groups whose rewards are all equal, and
take one GRPO step on the rest (micro-batches, chunked log-probs). Every `publish_every` steps:
publish a checkpoint, gate it against the served version on validation items (a hash slice of
the traffic plus the model's built-in ones; `gate.py`), and promote it (hot-swap) or mark it
rejected. Whatever an admin promotes or rolls back is followed: training continues from it.

With LoRA adapters that the server serves (`--lora-rank` <= its `max_lora_rank`), the newest
adapter is staged in the engine every `stage_every` steps (`Admin.StageAdapter`, a few
milliseconds, no reload) and shadow groups sample from it, so training stays on-policy
between promotions while users stay on the gated version (`staging.py`); an adapter candidate
is gated through the engine the same way (`gate.score_in_engine`).

With `--pipeline` (off by default, by measurement on 2 shared CPU cores), while a step
trains (in a worker thread) the server already samples the next batch, and a candidate is
gated and written from a frozen snapshot while later steps train; one batch and one gate are
in flight at most, and promotions, rejections and admin follows are applied between steps.
A batch that spans a promotion trains with importance weights from the version that really
sampled each row (`Policy.behaviours`); how far behind rows are is reported as
`lag_versions` (promotions) and `lag_steps` (optimizer steps between the sampling weights
and the trained policy). Without it: sample, train, gate, one after another. The order of
these pieces is `loop.py`'s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import shutil
import time
from collections import Counter, OrderedDict, deque
from dataclasses import asdict, dataclass

import grpc
import torch

from clients.client import AsyncClient, RlvrError
from rl_loop import gate
from rl_loop.grpo import group_advantages
from rl_loop.loop import Loop
from rl_loop.phases import PhaseClock
from rl_loop.policy import Candidate, Policy
from rl_loop.prompt_pool import PromptPool
from rl_loop.samples import Sample, samples_from_events
from rl_loop.staging import Stager
from rl_loop.trainer_config import TrainerConfig
from rl_loop.update import GRPOUpdate
from rlvr import plugins
from rlvr.store.checkpoints import BASE_VERSION, CheckpointStore
from rlvr.store.layout import StateDir
from rlvr.store.traces import TraceReader
from rlvr.store.training import TrainerState, TrainerStatus, TrainingControl
from runtime.chat_format import ChatFormat

__all__ = ["Sample", "Trainer", "TrainerConfig", "samples_from_events"]

log = logging.getLogger(__name__)


def pick_device(name: str) -> torch.device:
    """auto: with two GPUs the engine keeps cuda:0 and the trainer takes cuda:1; with one they
    share it (the server then gives vLLM 45% of it); else the CPU."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda:1" if torch.cuda.device_count() > 1 else "cuda:0")
    return torch.device(name)


class Trainer:
    def __init__(self, cfg: TrainerConfig):
        from transformers import AutoTokenizer

        if cfg.base_model is None:
            raise ValueError("base_model: the served model's folder is required (rlvr train "
                             "asks the server for it)")
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = pick_device(cfg.device)
        self.rng = random.Random(cfg.seed)
        self.checkpoints = CheckpointStore(cfg.state_dir, cfg.checkpoint_store)
        for name in self.checkpoints.sweep():
            log.warning("removed %s: a publish that was interrupted", name)
        self.version = self.checkpoints.last_good()  # the version a (re)started server serves
        # versions in the order they were served: a sample's lag is its distance in this list
        self.lineage = [BASE_VERSION, *self.checkpoints.history(), self.version]
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.base_model)
        self.format = ChatFormat.load(cfg.base_model, self.tokenizer)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None \
            else min(self.format.eos_ids)
        self.policy = self._load_policy()
        self.grpo = cfg.objective
        self.update = GRPOUpdate(cfg.objective, self.device, pad_id, cfg.temperature,
                                 cfg.micro_batch, cfg.logit_chunk, self.rng)
        self.clock = PhaseClock()  # the loop's critical path: what each step waited for
        self.busy = PhaseClock()   # how long sampling, gate and publish took, wherever they ran
        self.files = StateDir(cfg.state_dir)
        self.traces = cfg.trace_store or self.files.traces  # Postgres URL, else SQLite file
        resume = TrainerState.read(self.files)
        self.cursor, self.step = resume.cursor, resume.step
        self.fork_step = {self.version: self.step}  # version -> step the policy equalled it
        self.lags = {"lag_versions": Counter(), "lag_steps": Counter()}
        self.stager = Stager(cfg.state_dir)  # adapters staged for shadow requests
        self.replay: deque[Sample] = deque(maxlen=cfg.replay_buffer)  # verified-correct rows
        self.pool = PromptPool(cfg.pool_size, weighted=cfg.signal_sampling)
        self.validation: OrderedDict[str, gate.ValidationItem] = OrderedDict()
        builtin = plugins.load(cfg.base_model, "validation_items")
        self.builtin = [gate.ValidationItem.make(**item) for item in
                        (builtin(cfg.gate_tasks) if builtin and cfg.gate_tasks else [])]
        # what `accuracy` reports per version: the built-in items when there are, else traffic
        self.accuracy_source = self.builtin[0].source if self.builtin else "traffic"
        self.refill_pool()
        self.scores: dict[str, dict[str, float]] = {}      # version -> item key -> reward
        self.accuracy: dict[str, dict[str, float]] = {}    # version -> budget label -> accuracy
        self.stats: dict = {"dropped_groups": 0, "groups": 0, "failed_groups": 0,
                            "promoted": 0, "rejected": 0, "stale_samples_dropped": 0,
                            "followed_admin": 0, "followed_to": "", "device": str(self.device)}
        log.info("trainer on %s for %s at step %d, cursor %d, serving %s, %d prompts in the "
                 "pool, %d validation items", self.device, cfg.base_model, self.step,
                 self.cursor, self.version, len(self.pool), len(self.gate_items()))

    def _load_policy(self, behaviours=None) -> Policy:
        return Policy(self.checkpoints, self.cfg.base_model, self.version, self.device,
                      self.cfg.lr * (self.cfg.lora_lr_scale if self.cfg.lora_rank else 1.0),
                      self.cfg.warmup_steps, self.cfg.lora_rank,
                      self.cfg.gradient_checkpointing, keep=self.cfg.objective.max_staleness + 1,
                      behaviours=behaviours)

    def paused(self) -> bool:
        return TrainingControl.read(self.files).paused

    # ---------------------------------------------------------------- traces: pool & validation
    def _add(self, trace) -> None:
        if not (trace.spec and trace.prompt_text):
            return
        if gate.is_validation(trace.prompt_text, self.cfg.validation_share):
            options = trace.thinking_options
            item = gate.ValidationItem.make(
                trace.prompt_text, trace.spec, options.budget,
                options.max_answer_tokens or self.cfg.gate_answer_tokens)
            self.validation.pop(item.key, None)
            self.validation[item.key] = item
            while len(self.validation) > self.cfg.max_validation:
                self.validation.popitem(last=False)
            return
        self.pool.add((trace.prompt_text, trace.spec, trace.thinking_options), trace.reward)

    def gate_items(self) -> list[gate.ValidationItem]:
        return self.builtin + list(self.validation.values())

    def refill_pool(self) -> None:
        """After a restart: the prompts read before the cursor, so none is skipped."""
        if self.cursor and (self.cfg.trace_store or self.files.traces.is_file()):
            reader = TraceReader(self.traces)
            try:
                for trace in reader.read_recent(self.cursor, self.cfg.pool_size):
                    self._add(trace)
            finally:
                reader.close()

    def read_traces(self) -> None:
        reader = TraceReader(self.traces)
        try:
            for trace in reader.read(self.cursor, limit=1000):
                self.cursor = trace.id
                self._add(trace)
        finally:
            reader.close()

    # ---------------------------------------------------------------- generate: shadow groups
    async def sample_groups(self, client: AsyncClient, items) -> list[list[Sample]]:
        """A group per (prompt, spec, thinking options), with the whole verification spec
        (tests, tolerance) and the user's budget; a group that errors is counted and skipped."""
        async def group(prompt: str, spec: dict, options: dict) -> list[Sample]:
            events = [e async for e in client.stream(
                prompt, n=self.cfg.group_size, temperature=self.cfg.temperature,
                budget=options.budget, max_answer_tokens=options.max_answer_tokens,
                spec=spec, shadow=True, return_tokens=True, seed=self.rng.randrange(1 << 30),
                adapter=self.stager.current)]
            return samples_from_events(events)
        results = await asyncio.gather(*(group(*item) for item in items), return_exceptions=True)
        groups = []
        for item, result in zip(items, results):
            if isinstance(result, BaseException):
                if not isinstance(result, RlvrError):
                    raise result
                self.stats["failed_groups"] += 1
                log.warning("group for %r failed (%s); skipped", item[0][:60], result)
                if result.code.name in ("UNAVAILABLE", "RESOURCE_EXHAUSTED"):
                    raise result  # the server is draining or full: retry the round later
                continue
            self.pool.record(item, [s.reward for s in result])
            groups.append(result)
        return groups

    async def collect_groups(self, client: AsyncClient) -> list[list[Sample]]:
        """Dynamic sampling (DAPO): rounds of `prompts_per_step` groups until that many carry
        signal (rewards not all equal) or `max_sampling_rounds` rounds are spent."""
        groups: list[list[Sample]] = []
        for _ in range(self.cfg.max_sampling_rounds):
            items = self.pool.sample(self.cfg.prompts_per_step, self.rng)
            groups += await self.sample_groups(client, items)
            if sum(len({s.reward for s in g}) > 1 for g in groups) >= self.cfg.prompts_per_step:
                break
        return groups

    # ---------------------------------------------------------------- train: one GRPO step
    def lag(self, version: str) -> int | None:
        """Promotions between the version that sampled and the served one (None: unknown,
        e.g. a version rolled back before this trainer saw it)."""
        head = version.split("->")[0]  # a request that spanned a swap started on the old one
        head = self.stager.served_with.get(head, head)  # staged: the version served with it
        if head not in self.lineage:
            return None
        return len(self.lineage) - 1 - max(i for i, v in enumerate(self.lineage) if v == head)

    def _rows(self, groups: list[list[Sample]]) -> tuple[list[Sample], list[float], list[int]]:
        """Fresh samples of the groups with signal, their advantages and lags (a row is fresh
        when its version is at most `max_staleness` promotions back and its weights are kept)."""
        rows, advantages, lags = [], [], []
        for samples in groups:
            fresh = [(s, lag) for s in samples if (lag := self.lag(s.version)) is not None
                     and lag <= self.grpo.max_staleness
                     and self.policy.knows(s.version.split("->")[0])]
            self.stats["stale_samples_dropped"] += len(samples) - len(fresh)
            self.replay.extend(s for s, _ in fresh if s.reward >= 1.0)
            adv = group_advantages(torch.tensor([s.reward for s, _ in fresh]),
                                   self.grpo.scale_rewards) if len(fresh) > 1 else None
            self.stats["groups"] += 1
            if adv is None:
                self.stats["dropped_groups"] += 1
                continue
            rows += [s for s, _ in fresh]
            advantages += adv.tolist()
            lags += [lag for _, lag in fresh]
        for s, lag in zip(rows, lags):
            self.lags["lag_versions"][lag] += 1
            fork = self.fork_step.get(s.version.split("->")[0])
            if fork is not None:
                self.lags["lag_steps"][self.step - fork] += 1
        return rows, advantages, lags

    def train_step(self, groups: list[list[Sample]]) -> dict:
        """One GRPO step over the groups that carry signal (`update.py`)."""
        rows, advantages, lags = self._rows(groups)
        rewards = [s.reward for g in groups for s in g]
        report = {"mean_reward": sum(rewards) / max(1, len(rewards)), "samples": len(rewards),
                  "staleness": sum(lags) / max(1, len(lags))}
        if not rows:
            return report | {"loss": None}
        report |= self.update.run(self.policy, rows, advantages, list(self.replay))
        self.step += 1
        return report

    def stage_due(self, report: dict) -> bool:
        return (report.get("loss") is not None and self.policy.publish_adapters
                and self.cfg.stage_every > 0 and self.step % self.cfg.stage_every == 0)

    async def stage(self, client: AsyncClient) -> None:
        """Stage the policy's adapter in the engine: the next shadow groups sample from the
        newest weights. A failure only costs that: they sample from the served version."""
        name = f"step-{self.step}"
        with self.busy.time("publish"):
            staged = await self.stager.stage(client, self.policy, name, self.policy.stage(name))
        if not staged:
            self.stats["stage_failures"] = self.stats.get("stage_failures", 0) + 1
            self.stager.current = ""
            return
        self.stager.current, self.stager.served_with[name] = name, self.version
        self.fork_step[name] = self.step
        self.stats["staged"] = self.stats.get("staged", 0) + 1

    # ---------------------------------------------------------------- evaluate: gate & publish
    def _scores(self, version: str, model, items: list[gate.ValidationItem]) -> dict[str, float]:
        """Rewards of a version on the items, scoring only items not scored for it before."""
        known = self.scores.setdefault(version, {})
        missing = [i for i in items if i.key not in known]
        if missing:
            known |= gate.score(model, self.format, missing, self.cfg.gate_max_budget)
        return known

    async def follow_server(self, client: AsyncClient) -> None:
        """After an admin Promote or Rollback: continue from what is served now (behaviour
        policy, gate baseline and lineage), dropping the trainer's own drift."""
        info = await client.model_info()
        served = info.weight_version
        if served == self.version or "->" in served:
            return
        log.warning("the server now serves %s (was %s): an admin action; training continues "
                    "from it", served, self.version)
        self.version = served
        self.lineage.append(served)
        self.policy = self._load_policy(self.policy.behaviours)
        self.stager.current = ""
        self.fork_step[served] = self.step
        self.stats["followed_admin"] += 1
        self.stats["followed_to"] = served
        if self.cfg.lora_rank:
            self.policy.serve_adapters(info.max_lora_rank)
        self.save_state({})  # report the follow now, not after this step's own publish

    def start_gate(self) -> "gate.GateJob | None":
        """Freeze the policy as a candidate to gate (None, with the reason in the status,
        while there are too few validation items)."""
        items = self.gate_items()
        decisive = sum(i.decisive for i in items)
        if decisive < self.cfg.min_validation:
            self.stats["gate"] = (f"no promotion: too few validation items ({decisive} < "
                                  f"{self.cfg.min_validation}); waiting for more traffic")
            return None
        numbers = [int(m.version[1:]) for m in self.checkpoints.versions()
                   if m.version[1:].isdigit()]
        return gate.GateJob(f"v{max(numbers + [0]) + 1}", self.version, self.policy.served,
                       self.policy.snapshot(self.step), items)

    def run_gate(self, job: gate.GateJob) -> None:
        """Score served and candidate weights on the items, decide, and write the candidate's
        checkpoint (runs in a worker thread: it reads only the job's frozen weights)."""
        with self.busy.time("gate"):
            served = self._scores(job.parent, job.served, job.items)
            job.scores = gate.score(job.candidate.merged, self.format, job.items,
                                    self.cfg.gate_max_budget)
        self.conclude_gate(job, served)

    async def gate_in_engine(self, client: AsyncClient, job: gate.GateJob) -> None:
        """An adapter candidate's gate through the engine, as users get answers: the candidate
        staged beside the served version, both asked as greedy shadow requests below users'
        priority (`gate.score_in_engine`), while training goes on; then decided and written
        as `run_gate` does. If the engine cannot take it, the gate runs in transformers."""
        name = f"candidate-{job.version}"
        self.stager.gating = name
        try:
            with self.busy.time("gate"):
                if not await self.stager.stage(client, self.policy, name, job.candidate.adapter):
                    raise RlvrError(grpc.StatusCode.UNAVAILABLE, f"{name} could not be staged")
                served = self.scores.setdefault(f"{job.parent}@engine", {})
                missing = [i for i in job.items if i.key not in served]
                served |= await gate.score_in_engine(client, missing)
                job.scores = await gate.score_in_engine(client, job.items, adapter=name)
        except RlvrError as err:
            log.warning("gating %s through the engine failed (%s); gating in transformers",
                        job.version, err)
            await asyncio.to_thread(self.run_gate, job)
            return
        finally:
            self.stager.gating = ""  # retired with the next stage
        job.gate_path = "engine"
        await asyncio.to_thread(self.conclude_gate, job, served)

    def conclude_gate(self, job: gate.GateJob, served: dict[str, float]) -> None:
        """Decide on both sides' scores and write the candidate's checkpoint with them."""
        job.decision = gate.decide(job.items, job.scores, served, self.cfg.gate_z,
                                   self.cfg.min_validation)
        self.accuracy[job.parent] = gate.accuracy_by_budget(job.items, served,
                                                            self.accuracy_source)
        job.by_budget = gate.accuracy_by_budget(job.items, job.scores, self.accuracy_source)
        metrics = {"gate_accuracy": job.decision.candidate, "gate_baseline": job.decision.served,
                   "gate_stderr": job.decision.stderr, "accuracy_by_budget": job.by_budget,
                   "traffic_accuracy_by_budget": gate.accuracy_by_budget(job.items, job.scores,
                                                                         "traffic"),
                   "gate_items": job.decision.items, "gate_rule": f"paired, z={self.cfg.gate_z}",
                   "gate_path": job.gate_path, "step": job.candidate.step}
        with self.busy.time("publish"):
            self.checkpoints.publish(
                lambda folder: self.policy.write(folder, self.tokenizer, job.candidate),
                job.version, parent=job.parent, step=job.candidate.step,
                trace_range=(0, self.cursor), metrics=metrics,
                adapter_base=self.policy.base_version)

    async def finish_gate(self, client: AsyncClient, job: gate.GateJob) -> str:
        """Promote the gated candidate (hot-swap) or mark it rejected; between steps, since it
        changes the policy. Returns the outcome."""
        decision = job.decision
        if decision.promote and (await client.model_info()).weight_version != job.parent:
            decision.promote, decision.reason = False, "the served version changed meanwhile"
        self.checkpoints.record_verdict(job.version, "candidate", gate=decision.reason)
        self.stats["gate"] = decision.reason
        if not decision.promote:
            reason = f"gate: {decision.reason}"
            self.checkpoints.record_verdict(job.version, "rejected", reason)
            self.stats["rejected"] += 1
            if self.version == job.parent:  # drop the rejected drift: back to the served weights
                self.policy.fresh()
                self.stager.current = ""
                self.fork_step[self.version] = self.step
            return f"{job.version} rejected ({reason}); continuing from {self.version}"
        with self.clock.time("publish"):
            swap = await client.promote(job.version)
        self.policy.accept(job.candidate, job.version)
        self.version = job.version
        self.lineage.append(job.version)
        self.fork_step[job.version] = job.candidate.step
        self.scores[job.version] = job.scores
        self.accuracy[job.version] = job.by_budget
        self.stats["promoted"] += 1
        self.stats["swap_ms"] = round(1000 * swap.swap_seconds, 2)
        return f"{job.version} promoted ({decision.reason})"

    async def publish_and_gate(self, client: AsyncClient) -> str:
        """Gate the policy as it is now and act on the outcome, start to finish."""
        job = self.start_gate()
        if job is None:
            return self.stats["gate"]
        with self.clock.time("gate"):
            await asyncio.to_thread(self.run_gate, job)
        return await self.finish_gate(client, job)

    # ---------------------------------------------------------------- the loop
    def disk_full(self) -> bool:
        return shutil.disk_usage(self.cfg.state_dir).free < self.cfg.min_free_mb * 2**20

    def state(self) -> str:
        if self.paused():
            return "paused"
        if self.disk_full():
            return "paused: disk full"
        return "running" if self.pool else "waiting"

    def save_state(self, report: dict) -> None:
        """Cursor, step and a status report; a full disk only costs the report (the cursor
        then stays behind, so a restart re-reads traces rather than skip any)."""
        lags = {name: {str(k): n for k, n in sorted(c.items())} for name, c in self.lags.items()}
        counters = {**self.stats, **report}
        status = TrainerStatus(
            state=counters.pop("state", "running"), pid=os.getpid(), step=self.step, version=self.version, cursor=self.cursor,
            accuracy=self.accuracy, validation_items=len(self.gate_items()),
            **self.clock.report(), busy_seconds=self.busy.report()["phase_seconds"], **lags,
            config={k: v if isinstance(v, dict) else str(v)
                    for k, v in asdict(self.cfg).items() if k != "token"},
            counters=counters)
        try:
            TrainerState(self.cursor, self.step).write(self.files)
            status.write(self.files)
        except OSError as err:
            log.error("cannot write the trainer's state (%s)", err)

    async def run(self) -> None:
        root_cert = self.cfg.root_cert.read_bytes() if self.cfg.root_cert else None
        async with AsyncClient(self.cfg.server, token=self.cfg.token, tls=bool(root_cert),
                               root_cert=root_cert) as client:
            if self.cfg.lora_rank:
                info = await client.model_info()
                adapters = self.policy.serve_adapters(info.max_lora_rank)
                log.info("LoRA rank %d: publishing %s", self.cfg.lora_rank,
                         "adapters (the server switches them)" if adapters else
                         f"merged weights (the server serves adapters up to rank "
                         f"{info.max_lora_rank})")
            loop = Loop(self, client)
            try:
                while not self.cfg.max_steps or self.step < self.cfg.max_steps:
                    await loop.step()
                await loop.finish()
            finally:
                await loop.cancel()

    async def sample(self, client: AsyncClient) -> list[list[Sample]]:
        with self.busy.time("sampling"):
            return await self.collect_groups(client)

    def publish_due(self, report: dict) -> bool:
        return report.get("loss") is not None and self.step % self.cfg.publish_every == 0

    def log_gate(self, outcome: str) -> None:
        log.info("%s", outcome)
        if pruned := self.checkpoints.prune(self.cfg.keep_versions):
            log.info("retention: deleted the weights of %s", ", ".join(pruned))
