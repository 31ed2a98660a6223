"""Start servers as subprocesses for tests and benchmarks: `rlvr serve` (waiting until it is
ready), and a Postgres server in a temporary folder (`PostgresServer`: `initdb`, `pg_ctl`).

Postgres binaries come from PATH or Debian's /usr/lib/postgresql/<version>/bin (`make setup`
installs the `postgresql` package where they are missing). Postgres refuses to run as root,
so as root it runs as the `postgres` user, in a folder it owns; trust authentication on
127.0.0.1 only; `PostgresServer.database()` makes a fresh database.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
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


def postgres_binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise RuntimeError(f"{name} not found: install PostgreSQL (Debian: apt-get install "
                           "postgresql; `make setup` does it)")
    return found


class PostgresServer:
    """A throw-away Postgres server (fsync and synchronous commit on, as in production)."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="rlvr-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(postgres_binary("initdb"), "-D", str(self.data), "-U", "rlvr",
                  "--auth=trust", "-E", "UTF8", "--no-instructions")

    def _run(self, *args: str) -> None:
        out = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({out.returncode}): {out.stderr[-2000:]}")

    def start(self) -> "PostgresServer":
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c max_connections=200")
        self._run(postgres_binary("pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-o", options, "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run(postgres_binary("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://rlvr@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def remove(self) -> None:
        try:
            self.stop("immediate")
        except RuntimeError:
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)
