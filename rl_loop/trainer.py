"""The online GRPO trainer: a separate process that learns from the runtime's verified traffic.

It talks to the runtime only through (a) the trace log (new trainable traces, by cursor),
(b) the checkpoint folder, and (c) the runtime's gRPC API: shadow `Generate` calls (n = group
size, low priority, verified by the runtime's own verifiers) and `Admin.Promote`.

One step: take up to `prompts_per_step` recent trainable prompts, sample a group for each with
the thinking budget the user asked for, drop groups whose rewards are all equal, and take one
GRPO step on the rest. Every `publish_every` steps: publish a checkpoint, gate it on a validation
sample against the served version, and promote it (hot-swap) or mark it rejected.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import shutil
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from clients.client import AsyncClient, RlvrError
from rl_loop.checkpoints import CheckpointStore
from rl_loop import gate
from rl_loop.evaluate import budget_label
from rl_loop.grpo import GRPOConfig, group_advantages, grpo_loss, is_fresh
from rl_loop.policy import Policy
from rl_loop.tiny_model import MODEL_DIR, chat_prompt_ids
from rlvr.v1 import reasoning_pb2 as pb
from runtime.traces import TraceReader

log = logging.getLogger(__name__)


@dataclass
class TrainerConfig:
    server: str = "localhost:50051"
    state_dir: Path = Path("state")
    token: str | None = None          # needs train and admin scope (shadow samples, Promote)
    base_model: Path = MODEL_DIR
    root_cert: Path | None = None     # the server's TLS certificate (self-signed set-ups)
    group_size: int = 8
    prompts_per_step: int = 8
    lr: float = 1e-4
    temperature: float = 0.8
    publish_every: int = 10           # steps between candidates (each costs a gate run)
    gate_tasks: int = 100             # validation tasks the promotion gate scores
    gate_tolerance: float = 0.02
    max_steps: int = 0                # 0 = run until stopped
    poll_s: float = 1.0
    seed: int = 0
    device: str = "auto"              # auto = cuda when available, else cpu
    threads: int = 0                  # torch CPU threads (0 = torch's default)
    pool_size: int = 512              # recent trainable prompts to sample groups from
    max_sampling_rounds: int = 2      # dynamic sampling: rounds of groups per step at most
                                      # (4 rounds: 2x the samples per step for ~1.3x signal;
                                      # on 2 shared cores more, cheaper steps learn faster)
    lora_rank: int = 0                # > 0: train LoRA adapters (peft) instead of all weights
    min_free_mb: int = 256            # pause while the state directory has less free space
    warmup_steps: int = 10            # linear lr warm-up of every new optimizer (Adam's first
                                      # steps move every weight by ~lr, whatever its gradient)
    keep_versions: int = 8            # weights kept: the newest N versions and last N promoted


@dataclass
class Sample:
    prompt_ids: list[int]
    completion_ids: list[int]
    sampled_mask: list[int]  # 1 where the policy sampled the token, 0 where the runtime injected
    reward: float
    version: str


def version_number(version: str) -> int:
    """"v12" -> 12 (also for "v3->v4" reports: the older one)."""
    head = version.split("->")[0]
    return int(head[1:]) if head[1:].isdigit() else 0


def sequences_from_events(events: list[pb.GenerateEvent], tokenizer, prompt_ids: list[int],
                          think_end_id: int, eos_id: int) -> list[Sample]:
    """Rebuild each choice's token ids from its stream (one token per character for the
    embedded byte-level model), marking the runtime-injected spans as not sampled."""
    choices: dict[int, dict] = {}
    for event in events:
        kind = event.WhichOneof("event")
        if kind == "summary":
            continue
        c = choices.setdefault(getattr(event, kind).index, {"ids": [], "mask": []})
        if kind == "delta":
            ids = tokenizer(event.delta.text, add_special_tokens=False)["input_ids"]
            c["ids"] += ids
            c["mask"] += [0 if event.delta.forced else 1] * len(ids)
        elif kind == "thinking_ended":
            forced = event.thinking_ended.reason != pb.THINKING_END_NATURAL
            c["ids"].append(think_end_id)
            c["mask"].append(0 if forced else 1)
        else:
            f = event.finished
            if f.finish_reason == pb.FINISH_REASON_STOP:
                c["ids"].append(eos_id)
                c["mask"].append(1)
            c["reward"] = f.verification.reward if f.HasField("verification") else 0.0
            c["version"] = f.weight_version
    return [Sample(prompt_ids, c["ids"], c["mask"], c["reward"], c["version"])
            for c in choices.values() if "reward" in c]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Trainer:
    def __init__(self, cfg: TrainerConfig):
        from transformers import AutoTokenizer

        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = pick_device(cfg.device)
        self.rng = random.Random(cfg.seed)
        self.checkpoints = CheckpointStore(cfg.state_dir)
        for name in self.checkpoints.sweep():
            log.warning("removed %s: a publish that was interrupted", name)
        self.version = self.checkpoints.current()
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.base_model)
        self.policy = Policy(self.checkpoints, cfg.base_model, self.version, self.device,
                             cfg.lr, cfg.warmup_steps, cfg.lora_rank)
        self.grpo = GRPOConfig()
        self.think_end_id = self.tokenizer.convert_tokens_to_ids("</think>")
        self.eos_id = self.tokenizer.eos_token_id
        self.state_path = cfg.state_dir / "trainer_state.json"
        state = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        self.cursor, self.step = state.get("cursor", 0), state.get("step", 0)
        self.pool: deque = deque(maxlen=cfg.pool_size)  # (prompt, spec, budget)
        self.refill_pool()
        self.gate_tasks = gate.gate_sample(cfg.gate_tasks)
        self.accuracy: dict[str, dict[str, float]] = {}  # version -> budget label -> accuracy
        self.stats: dict = {"dropped_groups": 0, "groups": 0, "promoted": 0, "rejected": 0,
                            "stale_samples_dropped": 0, "device": str(self.device)}
        log.info("trainer on %s at step %d, cursor %d, serving %s, %d prompts in the pool",
                 self.device, self.step, self.cursor, self.version, len(self.pool))

    def paused(self) -> bool:
        control = self.cfg.state_dir / "training_control.json"
        return control.is_file() and json.loads(control.read_text()).get("paused", False)

    def _add(self, trace) -> None:
        if trace.spec and trace.prompt_text:
            self.pool.append((trace.prompt_text, trace.spec, trace.thinking_options.get("budget")))

    def refill_pool(self) -> None:
        """After a restart: the prompts read before the cursor, so none is skipped."""
        if self.cursor and (self.cfg.state_dir / "traces.sqlite").is_file():
            reader = TraceReader(self.cfg.state_dir / "traces.sqlite")
            try:
                for trace in reader.read_recent(self.cursor, self.cfg.pool_size):
                    self._add(trace)
            finally:
                reader.close()

    def read_traces(self) -> None:
        reader = TraceReader(self.cfg.state_dir / "traces.sqlite")
        try:
            for trace in reader.read(self.cursor, limit=1000):
                self.cursor = trace.id
                self._add(trace)
        finally:
            reader.close()

    async def sample_groups(self, client: AsyncClient, items) -> list[list[Sample]]:
        async def group(prompt: str, spec: dict, budget: int | None) -> list[Sample]:
            prompt_ids = chat_prompt_ids(self.tokenizer, [{"role": "user", "content": prompt}])
            events = [e async for e in client.stream(
                prompt, n=self.cfg.group_size, temperature=self.cfg.temperature, budget=budget,
                verify=f"{spec['kind']}:{spec['reference']}", shadow=True,
                seed=self.rng.randrange(1 << 30))]
            return sequences_from_events(events, self.tokenizer, prompt_ids, self.think_end_id,
                                         self.eos_id)
        return await asyncio.gather(*(group(*item) for item in items))

    async def collect_groups(self, client: AsyncClient) -> list[list[Sample]]:
        """Dynamic sampling (DAPO): rounds of `prompts_per_step` groups until that many carry
        signal (rewards not all equal) or `max_sampling_rounds` rounds are spent."""
        groups: list[list[Sample]] = []
        for _ in range(self.cfg.max_sampling_rounds):
            items = self.rng.sample(list(self.pool), min(self.cfg.prompts_per_step,
                                                         len(self.pool)))
            groups += await self.sample_groups(client, items)
            if sum(len({s.reward for s in g}) > 1 for g in groups) >= self.cfg.prompts_per_step:
                break
        return groups

    def _logprobs(self, model, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """Log-probs of each next token at the sampling temperature: [B, T-1]."""
        logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
        return torch.log_softmax(logits / self.cfg.temperature, dim=-1).gather(
            -1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)

    def _batch(self, rows: list[Sample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded ids, attention mask, and the mask of sampled completion tokens."""
        width = max(len(s.prompt_ids) + len(s.completion_ids) for s in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width))
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, s in enumerate(rows):
            seq = s.prompt_ids + s.completion_ids
            ids[i, : len(seq)] = torch.tensor(seq)
            attention[i, : len(seq)] = 1
            mask[i, len(s.prompt_ids): len(seq)] = torch.tensor(s.sampled_mask, dtype=torch.float)
        return ids.to(self.device), attention.to(self.device), mask.to(self.device)

    def train_step(self, groups: list[list[Sample]]) -> dict:
        """One GRPO step over the groups that carry signal."""
        rows, advantages, lags = [], [], []
        current = version_number(self.version)
        for samples in groups:
            fresh = [s for s in samples if is_fresh(version_number(s.version), current,
                                                    self.grpo.max_staleness)]
            self.stats["stale_samples_dropped"] += len(samples) - len(fresh)
            adv = group_advantages(torch.tensor([s.reward for s in fresh]),
                                   self.grpo.scale_rewards) if len(fresh) > 1 else None
            self.stats["groups"] += 1
            if adv is None:
                self.stats["dropped_groups"] += 1
                continue
            rows += fresh
            advantages += adv.tolist()
            lags += [current - version_number(s.version) for s in fresh]
        rewards = [s.reward for g in groups for s in g]
        report = {"mean_reward": sum(rewards) / max(1, len(rewards)), "samples": len(rewards),
                  "staleness": sum(lags) / max(1, len(lags))}
        if not rows:
            return report | {"loss": None}
        ids, attention, mask = self._batch(rows)
        logprobs = self._logprobs(self.policy.model, ids, attention)
        with torch.no_grad():
            behaviour = self._logprobs(self.policy.served, ids, attention)
        loss, stats = grpo_loss(logprobs, logprobs.detach(),
                                torch.tensor(advantages, device=self.device), mask[:, 1:],
                                self.grpo, behavior_logprobs=behaviour)
        self.policy.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.model.parameters(), 1.0)
        self.policy.opt.step()
        self.policy.schedule.step()
        self.step += 1
        return report | stats | {"loss": loss.item()}

    def served_accuracy(self) -> dict[str, float]:
        if self.version not in self.accuracy:
            self.accuracy[self.version] = gate.accuracy_by_budget(self.policy.served, self.tokenizer,
                                                                  self.gate_tasks)
        return self.accuracy[self.version]

    async def publish_and_gate(self, client: AsyncClient) -> str:
        """Publish the current policy; promote it if it passes the gate. Returns the outcome."""
        baseline = self.served_accuracy()
        policy = self.policy.merged()
        candidate = gate.accuracy_by_budget(policy, self.tokenizer, self.gate_tasks)
        decisive = budget_label(gate.REPORT_BUDGETS[0])
        # the bar: the served version, or the best version promoted so far if that is higher
        # (otherwise many small within-tolerance losses could add up to a large one)
        bar = max(a[decisive] for a in self.accuracy.values())
        numbers = [version_number(m["version"]) for m in self.checkpoints.versions()]
        version = f"v{max(numbers + [version_number(self.version)]) + 1}"
        metrics = {"gate_accuracy": candidate[decisive], "gate_baseline": baseline[decisive],
                   "gate_bar": bar,
                   "accuracy_by_budget": candidate, "gate_tasks": len(self.gate_tasks),
                   "step": self.step}
        self.checkpoints.publish(lambda folder: self.policy.write(folder, self.tokenizer), version,
                                 parent=self.version, step=self.step,
                                 trace_range=(0, self.cursor), metrics=metrics,
                                 adapter_base=self.policy.base_version)
        if candidate[decisive] + 1e-9 < bar - self.cfg.gate_tolerance:
            reason = (f"gate: validation accuracy {candidate[decisive]:.3f} < {bar:.3f} - "
                      f"{self.cfg.gate_tolerance} (served {self.version}: "
                      f"{baseline[decisive]:.3f}, best promoted: {bar:.3f})")
            self.checkpoints.set_status(version, "rejected", reason)
            self.stats["rejected"] += 1
            self.policy.fresh()  # drop the rejected drift: continue from the served weights
            return f"{version} rejected ({reason}); continuing from {self.version}"
        swap = await client.promote(version)
        self.policy.accept(policy, version)
        self.version = version
        self.accuracy[version] = candidate
        self.stats["promoted"] += 1
        self.stats["swap_ms"] = round(1000 * swap.swap_seconds, 2)
        return f"{version} promoted (validation {candidate} vs {baseline})"

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
        status = {"state": "running", "pid": os.getpid(), "step": self.step, "version": self.version,
                  "cursor": self.cursor, "accuracy": self.accuracy, **self.stats, **report,
                  "config": {k: str(v) for k, v in asdict(self.cfg).items() if k != "token"}}
        tmp = self.cfg.state_dir / "trainer_status.json.tmp"
        try:
            self.state_path.write_text(json.dumps({"cursor": self.cursor, "step": self.step}))
            tmp.write_text(json.dumps(status))
            tmp.replace(self.cfg.state_dir / "trainer_status.json")
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
            while not self.cfg.max_steps or self.step < self.cfg.max_steps:
                self.read_traces()
                if (state := self.state()) != "running":
                    self.save_state({"state": state})
                    await asyncio.sleep(self.cfg.poll_s)
                    continue
                start = time.monotonic()
                try:
                    groups = await self.collect_groups(client)
                except RlvrError as err:  # e.g. the server is draining or full: try again
                    log.warning("sampling failed (%s); retrying in %.0fs", err, self.cfg.poll_s)
                    await asyncio.sleep(self.cfg.poll_s)
                    continue
                report = self.train_step(groups)
                report["step_seconds"] = time.monotonic() - start
                report["samples_per_s"] = report["samples"] / report["step_seconds"]
                log.info("step %d: %s", self.step, {k: round(v, 4) if isinstance(v, float)
                                                     else v for k, v in report.items()})
                if report.get("loss") is not None and self.step % self.cfg.publish_every == 0:
                    try:
                        log.info("%s", await self.publish_and_gate(client))
                        if pruned := self.checkpoints.prune(self.cfg.keep_versions):
                            log.info("retention: deleted the weights of %s", ", ".join(pruned))
                    except OSError as err:  # e.g. the disk filled up mid-publish: nothing is
                        log.error("publish failed (%s); training goes on", err)  # published
                        self.stats["publish_failures"] = self.stats.get("publish_failures", 0) + 1
                self.save_state(report)
