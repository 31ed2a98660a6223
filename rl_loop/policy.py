"""The weights the trainer holds: the served (behaviour) policy and the policy it trains.

- `served`: the weights users are served, as a plain model (an adapter version is merged).
  They generated the samples, so they are the behaviour policy of the importance weights,
  the gate's baseline and the point training restarts from after a rejection.
- `model`: the policy being trained, with its own optimizer and lr warm-up: a copy of the
  served weights (full fine-tuning), or LoRA adapters (peft) on top of `base`.
- `behaviours`: the served weights of the last few served versions, by version. Sampling runs
  while the trainer trains, so a batch can span a promotion: its older samples get their
  importance weights from the weights that really sampled them (one model copy per version
  kept: `keep` of them).
- `snapshot()`: a frozen `Candidate` (the trained weights at one step), which the gate scores
  and the publisher writes while training goes on.
- `stage(name)`: the adapter as trained now (adapters mode), which the trainer stages in the
  engine so that shadow groups sample from its newest weights between promotions; the last
  few are kept by name, and `sampler(name)` lends the policy with those weights loaded to
  compute their rows' behaviour log-probs.

LoRA versions reach the server one of two ways. *Merged* (the server cannot serve adapters):
the adapters are merged into full weights, and fresh adapters start on top of each promoted
version. *Adapters* (the server runs with `max_lora_rank` >= the rank): only the adapter is
published, always relative to the same full weights `base` (version `base_version`), and
training goes on from the served adapter; the server switches adapters with no pause.

Precision: the trainer holds float32 master weights whatever the served dtype (so small
updates are not lost to bf16 rounding; on CUDA the forward runs under bf16 autocast), and
writes checkpoints in the served model's own dtype, sharded like any HF folder.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from rlvr.store.checkpoints import BASE_VERSION, CheckpointStore

SHARD_SIZE = "2GB"

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class Candidate:
    """The trained weights frozen at one optimizer step: `merged` as a plain model (gate,
    served copy once promoted) and, when adapters are published, the adapter's tensors."""

    merged: torch.nn.Module
    step: int
    adapter: dict | None = None


class Policy:
    def __init__(self, checkpoints: CheckpointStore, base_model: Path, version: str,
                 device: torch.device, lr: float, warmup_steps: int, lora_rank: int = 0,
                 gradient_checkpointing: bool = False, keep: int = 2,
                 behaviours: "OrderedDict[str, torch.nn.Module] | None" = None):
        from transformers import AutoConfig, AutoModelForCausalLM

        self.lr, self.warmup_steps, self.lora_rank = lr, warmup_steps, lora_rank
        self.keep = keep
        self.gradient_checkpointing = gradient_checkpointing
        config = AutoConfig.from_pretrained(base_model)
        self.save_dtype = getattr(config, "dtype", None) or torch.float32
        if isinstance(self.save_dtype, str):
            self.save_dtype = getattr(torch, self.save_dtype)

        def load(v: str):
            folder = base_model if v == BASE_VERSION else checkpoints.verified_path(v)
            return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(
                device).eval()
        adapter_base = checkpoints.manifest(version).adapter_base \
            if version != BASE_VERSION else None
        self.served_version = version
        self.base_version = adapter_base or version
        self.base = load(self.base_version)
        self.adapter: dict | None = None  # the served adapter's weights (adapters mode)
        self.publish_adapters = adapter_base is not None
        if self.publish_adapters:
            from peft import PeftModel, get_peft_model_state_dict

            adapted = PeftModel.from_pretrained(copy.deepcopy(self.base),
                                                checkpoints.verified_path(version))
            self.adapter = copy.deepcopy(get_peft_model_state_dict(adapted))
            self.served = adapted.merge_and_unload().eval()
        else:
            self.served = self.base
        self.behaviours: OrderedDict[str, torch.nn.Module] = OrderedDict(behaviours or {})
        self._remember(version, self.served)
        self.staged: OrderedDict[str, dict] = OrderedDict()  # staged adapter name -> weights
        self.fresh()

    def _remember(self, version: str, model: torch.nn.Module) -> None:
        self.behaviours.pop(version, None)
        self.behaviours[version] = model
        while len(self.behaviours) > self.keep:
            self.behaviours.popitem(last=False)

    def behaviour(self, version: str) -> torch.nn.Module | None:
        """The weights that served `version` (None: not kept any more)."""
        return self.behaviours.get(version)

    def knows(self, version: str) -> bool:
        """Whether the weights that sampled `version`'s rows (served or staged) are kept."""
        return version in self.behaviours or version in self.staged

    def _adapter_state(self) -> dict:
        from peft import get_peft_model_state_dict

        return {k: v.detach().clone() for k, v in get_peft_model_state_dict(self.model).items()}

    def stage(self, name: str) -> dict:
        """The adapter's weights as trained now, kept under `name` (the last `keep` + 1)."""
        self.staged[name] = self._adapter_state()
        while len(self.staged) > self.keep + 1:
            self.staged.popitem(last=False)
        return self.staged[name]

    @contextmanager
    def sampler(self, version: str):
        """The weights that sampled `version`'s rows: a served version's copy, or the policy
        with a staged adapter's weights loaded for the duration (its own put back after)."""
        if version not in self.staged:
            yield self.behaviours[version]
            return
        from peft import set_peft_model_state_dict

        own = self._adapter_state()
        set_peft_model_state_dict(self.model, self.staged[version])
        try:
            yield self.model
        finally:
            set_peft_model_state_dict(self.model, own)

    def serve_adapters(self, server_max_rank: int) -> bool:
        """Publish adapters (not merged weights) when the server can serve this rank."""
        wanted = 0 < self.lora_rank <= server_max_rank
        if wanted != self.publish_adapters:
            self.publish_adapters = wanted
            if wanted:  # adapters apply to the full weights served now
                self.base, self.base_version, self.adapter = \
                    self.served, self.served_version, None
            self.fresh()
        return wanted

    def fresh(self) -> None:
        """A new trainable policy from the served weights, and a new optimizer."""
        if not self.lora_rank:  # (a promoted candidate's copy is frozen: train all of it)
            self.model = copy.deepcopy(self.served).train().requires_grad_(True)
        else:
            from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

            on = self.base if self.publish_adapters else self.served
            self.model = get_peft_model(copy.deepcopy(on).train(), LoraConfig(
                r=self.lora_rank, lora_alpha=2 * self.lora_rank, lora_dropout=0.0,
                target_modules=TARGET_MODULES))
            if self.publish_adapters and self.adapter is not None:
                set_peft_model_state_dict(self.model, self.adapter)
        if self.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False})
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=0.0)
        warmup = max(1, self.warmup_steps)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda k: min(1.0, (k + 1) / warmup))

    def merged(self):
        """The policy as a plain model (LoRA adapters merged into a copy of the weights)."""
        return copy.deepcopy(self.model).merge_and_unload() if self.lora_rank else self.model

    def snapshot(self, step: int) -> Candidate:
        """The trained weights as they are now, in copies that further training leaves alone."""
        adapter = None
        if self.publish_adapters:
            from peft import get_peft_model_state_dict

            adapter = {k: v.detach().clone() for k, v in
                       get_peft_model_state_dict(self.model).items()}
        merged = self.merged() if self.lora_rank else copy.deepcopy(self.model)
        for param in merged.parameters():  # a frozen copy: no gradients, none kept
            param.grad = None
            param.requires_grad_(False)
        return Candidate(merged.eval(), step, adapter)

    def write_adapter(self, folder: Path, adapter: dict) -> None:
        """An adapter's files in peft's layout (what vLLM loads)."""
        from safetensors.torch import save_file

        config = copy.deepcopy(self.model.peft_config["default"])
        config.inference_mode = True
        config.save_pretrained(folder)
        save_file({k: v.contiguous() for k, v in adapter.items()},
                  folder / "adapter_model.safetensors", metadata={"format": "pt"})

    def write(self, folder: Path, tokenizer, candidate: Candidate) -> None:
        """The candidate's files: the adapter alone (peft's layout), or a full model folder."""
        if self.publish_adapters:
            self.write_adapter(folder, candidate.adapter)
        else:
            model = candidate.merged
            state = {k: v.detach().to(self.save_dtype) for k, v in model.state_dict().items()}
            saved_dtype, model.config.dtype = model.config.dtype, self.save_dtype
            try:
                model.save_pretrained(folder, state_dict=state, safe_serialization=True,
                                      max_shard_size=SHARD_SIZE)
            finally:
                model.config.dtype = saved_dtype
        tokenizer.save_pretrained(folder)

    def accept(self, candidate: Candidate, version: str) -> None:
        """The candidate was promoted: users are served it now. Full fine-tuning and adapters
        go on from where training is; merged LoRA starts new adapters on the promoted weights."""
        self.served = candidate.merged
        self.served_version = version
        self._remember(version, self.served)
        if self.publish_adapters:
            self.adapter = candidate.adapter
        elif self.lora_rank:
            self.fresh()
