"""Start-up and shutdown of a real server: NOT_SERVING/UNAVAILABLE while warming up, SIGTERM drain."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from clients.client import Client, RlvrError
from rlvr.store.checkpoints import CheckpointStore
from rl_loop.toy.tiny_model import MODEL_DIR
from tests.conftest import ServerProcess, metric_value

pytestmark = pytest.mark.engine


def wait_until(predicate, timeout: float) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def self_signed_cert(tmp_path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_tls_warm_up_then_sigterm_drains_in_flight_stream(tmp_path):
    """One server with TLS on: warm-up states, a TLS client, then SIGTERM drain."""
    cert, key = self_signed_cert(tmp_path)
    # a previously promoted version: a (re)started server must come back serving it
    store = CheckpointStore(tmp_path / "state")
    store.publish_folder(MODEL_DIR, "v7", parent="v0", step=70)
    store.record_promotion("v7")
    server = ServerProcess(tmp_path, root_cert=cert.read_bytes(), drain_grace_s=60.0,
                           tls_cert=str(cert), tls_key=str(key))
    connect = dict(tls=True, root_cert=cert.read_bytes())
    try:
        # Listening before the engine is ready: liveness SERVING, readiness NOT_SERVING,
        # Generate UNAVAILABLE.
        deadline, seen_warming = time.monotonic() + 120, False
        while time.monotonic() < deadline:
            try:
                status = server.health("rlvr.v1.Reasoning")
            except grpc.RpcError:
                time.sleep(0.1)
                continue
            if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                seen_warming = True
                assert server.health("") == health_pb2.HealthCheckResponse.SERVING
                with Client(server.target, **connect) as client, pytest.raises(RlvrError) as err:
                    client.ask("What is 1+2?")
                assert err.value.code == grpc.StatusCode.UNAVAILABLE
            break
        assert seen_warming, "server never reported NOT_SERVING while warming up"
        server.wait_ready()

        results = []
        with Client(server.target) as plain, pytest.raises(RlvrError):
            plain.ask("What is 1+2?", timeout=5)  # a plaintext client cannot talk to TLS
        with Client(server.target, **connect) as client:
            assert client.model_info().weight_version == "v7"
            first = client.ask("What is 12+34?", budget=8)
            assert first.usage.thinking_tokens <= 8 and first.weight_version == "v7"
            thread = threading.Thread(target=lambda: results.append(
                client.ask("What is 4821+377?", budget=450, min_thinking=440, n=16,
                           temperature=1.0)))
            thread.start()
            time.sleep(0.5)
            assert wait_until(lambda: metric_value(server.metrics(), "rlvr_running_requests")
                              >= 1, 120), "the long stream never started producing tokens"
            server.proc.terminate()  # SIGTERM while the stream is in flight
            wait_until(lambda: server.health("rlvr.v1.Reasoning")
                       == health_pb2.HealthCheckResponse.NOT_SERVING, 30)
            assert server.health("rlvr.v1.Reasoning") == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(RlvrError) as err:
                client.ask("What is 1+2?")
            assert err.value.code == grpc.StatusCode.UNAVAILABLE
            thread.join(60)
        assert results and results[0].finish_reason in ("stop", "length")
        assert results[0].usage.thinking_tokens >= 440
        assert server.proc.wait(60) == 0, server.log()
    finally:
        server.stop()
