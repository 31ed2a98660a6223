"""rlvr.v1.Admin: weight versions (list, promote = hot-swap, rollback) and training control.

Training control is a record in the state directory (`TrainingControl`, written here) that
the trainer polls, and the trainer reports itself in its own (`TrainerStatus`): the runtime
and the trainer share only the state directory's records (`rlvr/store/`) and the gRPC API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from pathlib import Path

import grpc

from rlvr.store.checkpoints import BASE_VERSION, CheckpointError, Checkpoints
from rlvr.store.layout import StateDir
from rlvr.store.training import TrainerStatus, TrainingControl
from rlvr.v1 import admin_pb2 as apb
from rlvr.v1 import admin_pb2_grpc as apb_grpc
from runtime.cluster import ClusterAgent, PromotionFailed
from runtime.engine import Engine
from runtime.metrics import Metrics

log = logging.getLogger(__name__)

STAGED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
STATUS_FRESH_S = 120.0  # an older trainer status means no trainer is reporting ("absent")


class WeightManager:
    """Which version the engine serves, and swapping it safely."""

    def __init__(self, engine: Engine, checkpoints: Checkpoints, metrics: Metrics):
        self.engine, self.checkpoints, self.metrics = engine, checkpoints, metrics
        self.serving_note = ""  # why the last promoted version is not served, if it is not

    def _path(self, version: str) -> Path:
        return self.engine.model_dir if version == BASE_VERSION else \
            self.checkpoints.verified_path(version)

    async def restore(self) -> None:
        """At start: serve the newest promoted version whose checkpoint verifies (the trainer
        starts from the same one: `CheckpointStore.last_good`), saying what was skipped."""
        skipped = []
        for version in self.checkpoints.promoted_newest_first():
            if version == BASE_VERSION:
                break
            try:
                await self.swap(version)
                break
            except CheckpointError as err:
                skipped.append(f"{version} ({err})")
        if skipped:
            self.serving_note = (f"serving {self.engine.weight_version}, the newest intact "
                                 f"promoted version; skipped {'; '.join(skipped)}")
            log.error("%s", self.serving_note)
        self.metrics.set_skipped_versions(len(skipped))

    async def swap(self, version: str) -> float:
        """Hot-swap `version` into the live engine (full weights: pause, reload, resume; a LoRA
        adapter: load it and switch); returns the swap time in seconds."""
        # hashing a large checkpoint takes seconds: off the event loop (streams, health)
        path = await asyncio.to_thread(self._path, version)
        base = self.checkpoints.manifest(version).adapter_base \
            if version != BASE_VERSION else None
        if base:
            rank = json.loads((path / "adapter_config.json").read_text()).get("r", 0)
            if rank > self.engine.max_lora_rank:
                raise CheckpointError(f"{version} is a rank-{rank} LoRA adapter; this server "
                                      f"serves adapters up to rank {self.engine.max_lora_rank} "
                                      "(config max_lora_rank)")
            base_path = await asyncio.to_thread(self._path, base)
            seconds = await self.engine.swap_adapter(path, version, base_path, base)
        else:
            seconds = await self.engine.swap_weights(path, version)
        self.metrics.set_weight_version(version)
        self.metrics.swap_seconds.observe(seconds)
        log.info("now serving weight version %s (swap %.1f ms)", version, 1000 * seconds)
        return seconds

    async def promote(self, version: str) -> tuple[str, float]:
        """Serve `version` and record it; promoting the version already served is a no-op."""
        previous = self.engine.weight_version
        if version == previous:
            return previous, 0.0
        seconds = await self.swap(version)
        self.checkpoints.record_promotion(version)
        self.metrics.promotions.inc()
        return previous, seconds

    @property
    def serving(self) -> str:
        return self.engine.weight_version

    def stage(self, version: str) -> None:
        """Make `version` loadable here: its files (and an adapter's base) fetched and their
        checksums checked; raises CheckpointError saying why not (a cluster's prepare)."""
        self._path(version)
        base = self.checkpoints.manifest(version).adapter_base
        if base and base != BASE_VERSION:
            self._path(base)

    async def roll_back_to(self, target: str) -> tuple[str, float]:
        """A cluster's rollback: serve `target`, the served version recorded as rolled back."""
        previous = self.engine.weight_version
        if previous == target:
            return previous, 0.0
        seconds = await self.swap(target)
        if self.checkpoints.history():
            self.checkpoints.record_rollback(previous)
        if self.checkpoints.current() != target:  # a replica that joined with another history
            self.checkpoints.record_promotion(target)
        return previous, seconds

    async def rollback(self) -> tuple[str, str, float]:
        """Back to the last promoted version before the served one that is a different version
        (or the base model); the served version is marked rolled back."""
        previous = self.engine.weight_version
        target = self.checkpoints.rollback_target(previous)
        seconds = await self.swap(target)  # swap first: the history changes only on success
        self.checkpoints.record_rollback(previous)
        return previous, target, seconds


class AdminService(apb_grpc.AdminServicer):
    def __init__(self, weights: WeightManager, state_dir: Path, ready,
                 trainer_failure=lambda: "", cluster: ClusterAgent | None = None):
        self.weights, self.state_dir, self.ready = weights, Path(state_dir), ready
        self.trainer_failure = trainer_failure  # the supervisor's verdict once it gave up
        self.cluster = cluster  # set: promotions and rollbacks are the cluster's

    async def _check_ready(self, context) -> None:
        if not self.ready():
            await context.abort(grpc.StatusCode.UNAVAILABLE, "engine is starting or draining")

    async def ListVersions(self, request, context):
        store = self.weights.checkpoints
        versions = [apb.VersionInfo(version=m.version, parent=m.parent, step=m.step,
                                    status=m.status, reason=m.reason,
                                    metrics_json=json.dumps(m.metrics),
                                    created_at=m.created_at) for m in store.versions()]
        return apb.ListVersionsResponse(current=self.weights.engine.weight_version,
                                        versions=versions, history=store.history(),
                                        serving_note=self.weights.serving_note)

    async def Promote(self, request, context):
        await self._check_ready(context)
        if self.cluster is not None:
            return await self._cluster_swap(request.version, "promote", context)
        try:
            previous, seconds = await self.weights.promote(request.version)
        except CheckpointError as err:
            code = grpc.StatusCode.NOT_FOUND if "unknown version" in str(err) \
                else grpc.StatusCode.FAILED_PRECONDITION
            await context.abort(code, f"version: {err}")
        return apb.SwapResponse(previous=previous, current=request.version, swap_seconds=seconds)

    async def Rollback(self, request, context):
        await self._check_ready(context)
        if not self.weights.checkpoints.history():
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                "nothing to roll back: the base model is being served")
        if self.cluster is not None:
            target = self.weights.checkpoints.rollback_target(self.weights.serving)
            return await self._cluster_swap(target, "rollback", context)
        try:
            previous, current, seconds = await self.weights.rollback()
        except CheckpointError as err:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(err))
        return apb.SwapResponse(previous=previous, current=current, swap_seconds=seconds)

    async def _cluster_swap(self, version: str, action: str, context) -> apb.SwapResponse:
        """Two phases across every live replica (`runtime/cluster.py`)."""
        previous, start = self.weights.serving, time.monotonic()
        try:
            if version != BASE_VERSION:
                self.weights.checkpoints.manifest(version)  # unknown: NOT_FOUND, as alone
            await self.cluster.coordinate(version, action)
        except CheckpointError as err:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"version: {err}")
        except PromotionFailed as err:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"cluster: {err}")
        return apb.SwapResponse(previous=previous, current=self.weights.serving,
                                swap_seconds=time.monotonic() - start)

    async def StageAdapter(self, request, context):
        """Retire what the trainer no longer needs, then load `staged/<name>` for shadow
        requests only (its newest adapter, or a candidate to gate)."""
        await self._check_ready(context)
        engine = self.weights.engine
        engine.retire_adapters(request.retire)
        seconds = await self._stage(request.name, request.base_version, context) \
            if request.name else 0.0
        return apb.StageAdapterResponse(load_seconds=seconds, staged=list(engine.staged))

    async def _stage(self, name: str, base_version: str, context) -> float:
        engine = self.weights.engine
        if not STAGED_NAME.fullmatch(name):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "name: a letter or digit, then letters, digits, '.', '_' or '-' "
                                f"(a folder under staged/), got {name!r}")
        folder = StateDir(self.state_dir).staged / name
        config = folder / "adapter_config.json"
        if not config.is_file():
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"name: no adapter at {folder} (adapter_config.json)")
        rank = json.loads(config.read_text()).get("r", 0)
        if not 0 < rank <= engine.max_lora_rank:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"name: a rank-{rank} adapter; this server serves adapters up "
                                f"to rank {engine.max_lora_rank} (config max_lora_rank)")
        try:
            return await engine.stage_adapter(folder, name, base_version)
        except ValueError as err:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(err))
        except OverflowError as err:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(err))

    def _status(self) -> apb.TrainingStatus:
        state_dir = StateDir(self.state_dir)
        paused = TrainingControl.read(state_dir).paused
        if failure := self.trainer_failure():
            return apb.TrainingStatus(state=failure, paused=paused, status_json="{}")
        if status := TrainerStatus.read(state_dir, max_age_s=STATUS_FRESH_S):
            state = "paused" if paused else status.state
            return apb.TrainingStatus(state=state, paused=paused,
                                      status_json=json.dumps(status.to_json()))
        return apb.TrainingStatus(state="absent", paused=paused, status_json="{}")

    def _set_paused(self, paused: bool) -> None:
        TrainingControl(paused, time.time()).write(StateDir(self.state_dir))

    async def PauseTraining(self, request, context):
        self._set_paused(True)
        return self._status()

    async def ResumeTraining(self, request, context):
        self._set_paused(False)
        return self._status()

    async def GetTrainingStatus(self, request, context):
        return self._status()
