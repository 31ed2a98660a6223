"""`rlvr cluster`: N serving replicas and one trainer placed by Ray, one consistent promotion.

Each replica is `python -m runtime` (the server's own entry point) started by a Ray actor on
the node Ray placed it on, with `cluster = true` and the shared stores (`trace_store`, a
Postgres URL; `checkpoint_store`, a shared folder or `s3://`), so promotions reach every
replica or none (`runtime/cluster.py`). A placement group holds one bundle per replica
(`cpus_per_replica`, `gpus_per_replica`; strategy SPREAD: replicas on different nodes where
there are several); the trainer (`python -m rl_loop`) runs in the first replica's bundle, on
its node, sharing its state directory (training control, its status, the promotion history
its retention keeps), and promotes through that replica with a token minted here (the
replicas' `internal_tokens`: train and admin scope, without switching auth on).
Clients get one address: `ipv4:host1:port1,host2:port2`, which the `rlvr` client (and any
gRPC client with the `round_robin` policy) spreads requests over.

`ray start --head` on this machine is the tested case (`address="auto"`), or a local Ray
started here (`address=""`); a multi-node cluster is the same code with `ray start
--address` on each node (state directories are then per node, and the checkpoint store must
be one every node reaches).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from clients.launch import REPO, health_status
from runtime.orphans import die_with_parent

READY = 1  # grpc.health.v1 SERVING


@dataclass
class ClusterPlan:
    replicas: int
    trace_store: str                  # postgresql://... (the promotion record lives there)
    checkpoint_store: str             # a folder every node reaches, or s3://bucket/prefix
    state_root: Path                  # replica i keeps its state in state_root/replica-i
    base_port: int = 50051            # replica i listens on base_port + i
    metrics_base_port: int = 9090     # and serves /metrics on metrics_base_port + i
    config: Path | None = None        # the replicas' TOML (ServerConfig fields)
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    train: bool = True                # one trainer, in the first replica's bundle
    trainer_cpus: float = 0.0
    trainer_gpus: float = 0.0
    trainer_config: Path | None = None
    env: dict[str, str] = field(default_factory=dict)  # extra variables for every process


@ray.remote(num_cpus=0)
class ProcessActor:
    """A server or trainer process on the node this actor was placed on."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: str):
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(args, cwd=REPO, env={**os.environ, **env},
                                     stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
                                     preexec_fn=die_with_parent)  # ends with its actor

    def node_ip(self) -> str:
        return ray.util.get_node_ip_address()

    def wait_ready(self, port: int, timeout: float) -> str:
        """'' once the server is SERVING, else why not (it exited, or the time ran out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"exited with status {self.proc.returncode}"
            try:
                if health_status(port, "rlvr.v1.Reasoning") == READY:
                    return ""
            except Exception:  # not listening yet
                pass
            time.sleep(0.5)
        return f"not ready after {timeout:.0f} s"

    def returncode(self) -> int | None:
        return self.proc.poll()

    def stop(self, grace_s: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


class RayCluster:
    """Place and start the plan's processes; `address` is what clients connect to."""

    def __init__(self, plan: ClusterPlan):
        self.plan = plan
        self.trainer_token = secrets.token_urlsafe(24)
        self.replicas: list[ProcessActor] = []
        self.trainer: ProcessActor | None = None
        self.addresses: list[str] = []
        self.group = None

    @property
    def address(self) -> str:
        return "ipv4:" + ",".join(self.addresses)

    def start(self, timeout: float = 300.0) -> "RayCluster":
        plan = self.plan
        bundles = [{"CPU": plan.cpus_per_replica, "GPU": plan.gpus_per_replica}
                   for _ in range(plan.replicas)]
        bundles[0] = {"CPU": plan.cpus_per_replica + plan.trainer_cpus,
                      "GPU": plan.gpus_per_replica + plan.trainer_gpus}
        bundles = [{k: v for k, v in b.items() if v} for b in bundles]
        self.group = placement_group(bundles, strategy="SPREAD")
        ray.get(self.group.ready(), timeout=timeout)
        env = {**plan.env, "RLVR_TRACE_STORE": plan.trace_store,
               "RLVR_CHECKPOINT_STORE": plan.checkpoint_store, "RLVR_CLUSTER": "true",
               "RLVR_TRAIN": "off", "RLVR_INTERNAL_TOKENS": self.trainer_token}
        for i in range(plan.replicas):
            state = plan.state_root / f"replica-{i}"
            args = [sys.executable, "-m", "runtime", "--port", str(plan.base_port + i),
                    "--metrics-port", str(plan.metrics_base_port + i),
                    "--state-dir", str(state), "--replica-name", f"replica-{i}",
                    *(["--config", str(plan.config)] if plan.config else [])]
            self.replicas.append(self._actor(i, plan.gpus_per_replica, args, env,
                                             state / "server.log"))
        for i, actor in enumerate(self.replicas):
            problem = ray.get(actor.wait_ready.remote(plan.base_port + i, timeout))
            if problem:
                self.stop()
                raise RuntimeError(f"replica-{i} did not start: {problem} (log: "
                                   f"{plan.state_root / f'replica-{i}' / 'server.log'})")
            self.addresses.append(f"{ray.get(actor.node_ip.remote())}:{plan.base_port + i}")
        if plan.train:
            self._start_trainer(env)
        return self

    def _actor(self, bundle: int, gpus: float, args: list[str], env: dict, log: Path):
        strategy = PlacementGroupSchedulingStrategy(self.group, bundle)
        return ProcessActor.options(scheduling_strategy=strategy, num_gpus=gpus).remote(
            args, env, str(log))

    def _start_trainer(self, env: dict) -> None:
        plan, state = self.plan, self.plan.state_root / "replica-0"
        args = [sys.executable, "-m", "rl_loop", "--server", f"localhost:{plan.base_port}",
                "--state-dir", str(state),
                *(["--config", str(plan.trainer_config)] if plan.trainer_config else [])]
        trainer_env = {**env, "RLVR_TRAINER_TOKEN": self.trainer_token,
                       "RLVR_TRAINER_TRACE_STORE": plan.trace_store,
                       "RLVR_TRAINER_CHECKPOINT_STORE": plan.checkpoint_store}
        self.trainer = self._actor(0, plan.trainer_gpus, args, trainer_env,
                                   state / "trainer.log")

    def stop(self) -> dict[str, int]:
        """SIGTERM every process (the trainer first), then release the placement group."""
        codes = {}
        if self.trainer is not None:
            codes["trainer"] = ray.get(self.trainer.stop.remote())
        for i, actor in enumerate(self.replicas):
            codes[f"replica-{i}"] = ray.get(actor.stop.remote())
        if self.group is not None:
            remove_placement_group(self.group)
        return codes
