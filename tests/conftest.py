"""Shared fixtures: the real server (real vLLM engine on the embedded model) started once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
API_TOKEN, ADMIN_TOKEN = "test-token", "admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_status(port: int, service: str, timeout: float = 2.0):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout).status


class ServerProcess:
    """`rlvr serve` in a subprocess, with its ports, log file and config."""

    def __init__(self, tmp: Path, **config):
        self.port, self.metrics_port = free_port(), free_port()
        self.state_dir = tmp / "state"
        self.log_path = tmp / "server.log"
        config_path = tmp / "server.toml"
        lines = [f"{k} = {v!r}" if not isinstance(v, list) else f"{k} = {v!r}".replace("'", '"')
                 for k, v in config.items()]
        config_path.write_text("\n".join(lines) + "\n")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clients.cli", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--metrics-port", str(self.metrics_port),
             "--state-dir", str(self.state_dir), "--config", str(config_path)],
            cwd=REPO, env=env, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)
        self.target = f"127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log()}")
            try:
                if health_status(self.port, "rlvr.v1.Reasoning") == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text()[-5000:]

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as r:
            return r.read().decode()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


def metric_value(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The main server: embedded model, auth on, small admission queue."""
    proc = ServerProcess(tmp_path_factory.mktemp("server"), api_tokens=[API_TOKEN],
                         admin_tokens=[ADMIN_TOKEN], max_pending=96)
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest.fixture()
def client(server):
    from clients.client import Client

    with Client(server.target, token=API_TOKEN) as c:
        yield c
