"""The online GRPO trainer: a separate process that learns from the runtime's verified traffic.

It talks to the runtime only through (a) the trace log (new trainable traces, by cursor),
(b) the checkpoint folder, and (c) the runtime's gRPC API: shadow `Generate` calls (n = group
size, low priority, verified by the runtime's own verifiers) and `Admin.Promote`.

One step: take up to `prompts_per_step` recent trainable prompts, sample a group for each with
the thinking budget the user asked for, drop groups whose rewards are all equal, and take one
GRPO step on the rest. Every `publish_every` steps: publish a checkpoint, gate it on a held-out
sample against the served version, and promote it (hot-swap) or mark it rejected.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from clients.client import AsyncClient
from rl_loop.checkpoints import BASE_VERSION, CheckpointStore
from rl_loop.grpo import GRPOConfig, group_advantages, grpo_loss, is_fresh
from rl_loop.tasks import Task, load_heldout
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
    group_size: int = 8
    prompts_per_step: int = 8
    lr: float = 5e-5
    temperature: float = 0.8
    publish_every: int = 5
    gate_tasks: int = 60              # held-out sample size for the promotion gate
    gate_tolerance: float = 0.02
    max_steps: int = 0                # 0 = run until stopped
    poll_s: float = 1.0
    seed: int = 0


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


class Trainer:
    def __init__(self, cfg: TrainerConfig):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.rng = random.Random(cfg.seed)
        self.checkpoints = CheckpointStore(cfg.state_dir)
        self.version = self.checkpoints.current()
        start = cfg.base_model if self.version == BASE_VERSION else \
            self.checkpoints.verified_path(self.version)
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.base_model)
        self.model = AutoModelForCausalLM.from_pretrained(start)
        self.model.train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=0.0)
        self.grpo = GRPOConfig()
        self.think_end_id = self.tokenizer.convert_tokens_to_ids("</think>")
        self.eos_id = self.tokenizer.eos_token_id
        self.state_path = cfg.state_dir / "trainer_state.json"
        state = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        self.cursor, self.step = state.get("cursor", 0), state.get("step", 0)
        self.pool: deque = deque(maxlen=512)  # recent trainable prompts (prompt, spec, budget)
        self.gate_tasks = self._gate_sample()
        self.accuracy: dict[str, float] = {}
        self.stats: dict = {"dropped_groups": 0, "groups": 0, "promoted": 0, "rejected": 0}

    def _gate_sample(self) -> list[Task]:
        tasks = load_heldout()
        per_family: dict[str, list[Task]] = {}
        for task in tasks:
            per_family.setdefault(task.family, []).append(task)
        k = max(1, self.cfg.gate_tasks // len(per_family))
        return [t for family in per_family.values() for t in family[:k]]

    def paused(self) -> bool:
        control = self.cfg.state_dir / "training_control.json"
        return control.is_file() and json.loads(control.read_text()).get("paused", False)

    def read_traces(self) -> None:
        reader = TraceReader(self.cfg.state_dir / "traces.sqlite")
        try:
            for trace in reader.read(self.cursor, limit=1000):
                self.cursor = trace.id
                if trace.spec and trace.prompt_text:
                    self.pool.append((trace.prompt_text, trace.spec,
                                      trace.thinking_options.get("budget")))
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

    def train_step(self, groups: list[list[Sample]]) -> dict:
        """One GRPO step over the groups that carry signal."""
        rows, advantages = [], []
        current = version_number(self.version)
        for samples in groups:
            samples = [s for s in samples if is_fresh(version_number(s.version), current,
                                                      self.grpo.max_staleness)]
            adv = group_advantages(torch.tensor([s.reward for s in samples])) if len(samples) > 1 else None
            self.stats["groups"] += 1
            if adv is None:
                self.stats["dropped_groups"] += 1
                continue
            rows += samples
            advantages += adv.tolist()
        rewards = [s.reward for g in groups for s in g]
        report = {"mean_reward": sum(rewards) / max(1, len(rewards)), "samples": len(rewards)}
        if not rows:
            return report | {"loss": None}
        width = max(len(s.prompt_ids) + len(s.completion_ids) for s in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width))
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, s in enumerate(rows):
            seq = s.prompt_ids + s.completion_ids
            ids[i, : len(seq)] = torch.tensor(seq)
            attention[i, : len(seq)] = 1
            mask[i, len(s.prompt_ids): len(seq)] = torch.tensor(s.sampled_mask, dtype=torch.float)
        logits = self.model(input_ids=ids, attention_mask=attention).logits[:, :-1]
        logprobs = torch.log_softmax(logits.float(), dim=-1).gather(
            -1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        loss, stats = grpo_loss(logprobs, logprobs.detach(), torch.tensor(advantages),
                                mask[:, 1:], self.grpo)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.step += 1
        return report | stats | {"loss": loss.item()}

    @torch.no_grad()
    def held_out_accuracy(self, model) -> float:
        """Greedy accuracy on the gate sample (HF generate, unlimited thinking)."""
        from runtime.verifiers.numeric import numeric_equal

        model.eval()
        self.tokenizer.padding_side = "left"
        prompts = [self.tokenizer.apply_chat_template([{"role": "user", "content": t.prompt}],
                                                      add_generation_prompt=True, tokenize=False)
                   for t in self.gate_tasks]
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        out = model.generate(**batch, max_new_tokens=320, do_sample=False,
                             pad_token_id=self.tokenizer.pad_token_id)
        correct = 0
        for task, row in zip(self.gate_tasks, out[:, batch["input_ids"].shape[1]:].tolist()):
            answer = row[row.index(self.think_end_id) + 1:] if self.think_end_id in row else []
            text = self.tokenizer.decode(answer, skip_special_tokens=True)
            correct += numeric_equal(text, task.answer)
        model.train()
        return correct / len(self.gate_tasks)

    def _reset_to_served(self) -> None:
        """After a rejection, continue from the served weights, not from the rejected drift."""
        from transformers import AutoModelForCausalLM

        path = self.cfg.base_model if self.version == BASE_VERSION else \
            self.checkpoints.verified_path(self.version)
        self.model = AutoModelForCausalLM.from_pretrained(path)
        self.model.train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, weight_decay=0.0)

    def served_accuracy(self) -> float:
        if self.version not in self.accuracy:
            from transformers import AutoModelForCausalLM

            path = self.cfg.base_model if self.version == BASE_VERSION else \
                self.checkpoints.verified_path(self.version)
            self.accuracy[self.version] = self.held_out_accuracy(
                AutoModelForCausalLM.from_pretrained(path))
        return self.accuracy[self.version]

    async def publish_and_gate(self, client: AsyncClient) -> str:
        """Publish the current policy; promote it if it passes the gate. Returns the outcome."""
        baseline = self.served_accuracy()
        candidate_acc = self.held_out_accuracy(self.model)
        numbers = [version_number(m["version"]) for m in self.checkpoints.versions()]
        version = f"v{max(numbers + [version_number(self.version)]) + 1}"

        def write(folder: Path) -> None:
            self.model.save_pretrained(folder, safe_serialization=True)
            self.tokenizer.save_pretrained(folder)
        metrics = {"gate_accuracy": candidate_acc, "gate_baseline": baseline,
                   "gate_tasks": len(self.gate_tasks), "step": self.step}
        self.checkpoints.publish(write, version, parent=self.version, step=self.step,
                                 trace_range=(0, self.cursor), metrics=metrics)
        if candidate_acc + 1e-9 < baseline - self.cfg.gate_tolerance:
            reason = (f"gate: held-out accuracy {candidate_acc:.3f} < {baseline:.3f} - "
                      f"{self.cfg.gate_tolerance}")
            self.checkpoints.set_status(version, "rejected", reason)
            self.stats["rejected"] += 1
            self._reset_to_served()
            return f"{version} rejected ({reason}); continuing from {self.version}"
        await client.promote(version)
        self.version = version
        self.accuracy[version] = candidate_acc
        self.stats["promoted"] += 1
        return f"{version} promoted (held-out {candidate_acc:.3f} vs {baseline:.3f})"

    def save_state(self, report: dict) -> None:
        self.state_path.write_text(json.dumps({"cursor": self.cursor, "step": self.step}))
        status = {"state": "running", "step": self.step, "version": self.version,
                  "cursor": self.cursor, "accuracy": self.accuracy, **self.stats, **report,
                  "config": {k: str(v) for k, v in asdict(self.cfg).items() if k != "token"}}
        tmp = self.cfg.state_dir / "trainer_status.json.tmp"
        tmp.write_text(json.dumps(status))
        tmp.replace(self.cfg.state_dir / "trainer_status.json")

    async def run(self) -> None:
        async with AsyncClient(self.cfg.server, token=self.cfg.token) as client:
            while not self.cfg.max_steps or self.step < self.cfg.max_steps:
                self.read_traces()
                if self.paused() or not self.pool:
                    self.save_state({"state": "paused" if self.paused() else "waiting"})
                    await asyncio.sleep(self.cfg.poll_s)
                    continue
                items = self.rng.sample(list(self.pool), min(self.cfg.prompts_per_step,
                                                             len(self.pool)))
                start = time.monotonic()
                report = self.train_step(await self.sample_groups(client, items))
                report["step_seconds"] = time.monotonic() - start
                log.info("step %d: %s", self.step, {k: round(v, 4) if isinstance(v, float)
                                                     else v for k, v in report.items()})
                if report.get("loss") is not None and self.step % self.cfg.publish_every == 0:
                    log.info("%s", await self.publish_and_gate(client))
                self.save_state(report)
