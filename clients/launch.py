"""Start `rlvr serve` as a subprocess and wait until it is ready (used by tests and benchmarks)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rlvr.settings import toml_text
from runtime.orphans import die_with_parent

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_status(port: int, service: str, timeout: float = 2.0,
                  root_cert: bytes | None = None):
    """The grpc.health.v1 status of `service` ("" = the whole server)."""
    target = f"localhost:{port}"
    channel = (grpc.secure_channel(target, grpc.ssl_channel_credentials(root_cert))
               if root_cert else grpc.insecure_channel(target))
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout).status


class ServerProcess:
    """`rlvr serve` in a subprocess with free ports, its own log file and TOML config;
    `trainer` (settings of `rlvr train`) becomes the trainer child's config file."""

    def __init__(self, workdir: Path, model: Path | None = None,
                 root_cert: bytes | None = None, state_dir: Path | None = None,
                 trainer: dict[str, Any] | None = None, **config):
        workdir.mkdir(parents=True, exist_ok=True)
        config.setdefault("train", "off")  # tests and benchmarks start trainers themselves
        self.root_cert = root_cert  # set when the server uses TLS (config tls_cert/tls_key)
        self.port, self.metrics_port = free_port(), free_port()
        self.state_dir = state_dir or workdir / "state"
        self.log_path = workdir / "server.log"
        if trainer is not None:
            config["train_config"] = workdir / "trainer.toml"
            config["train_config"].write_text(toml_text(trainer))
        config_path = workdir / "server.toml"
        config_path.write_text(toml_text(config))
        args = [sys.executable, "-m", "clients.cli", "serve", "--host", "127.0.0.1",
                "--port", str(self.port), "--metrics-port", str(self.metrics_port),
                "--state-dir", str(self.state_dir), "--config", str(config_path)]
        if model is not None:
            args += ["--model", str(model)]
        self.proc = subprocess.Popen(args, cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                                     stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT,
                                     preexec_fn=die_with_parent)
        self.target = f"localhost:{self.port}"

    def wait_ready(self, timeout: float = 240.0) -> "ServerProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log()}")
            try:
                if self.health("rlvr.v1.Reasoning") == health_pb2.HealthCheckResponse.SERVING:
                    return self
            except grpc.RpcError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.log()}")

    def health(self, service: str = ""):
        return health_status(self.port, service, root_cert=self.root_cert)

    def log(self) -> str:
        return self.log_path.read_text()[-5000:]

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as r:
            return r.read().decode()

    def stop(self) -> int:
        """SIGTERM (graceful drain), then SIGKILL if it does not exit within a minute."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()
