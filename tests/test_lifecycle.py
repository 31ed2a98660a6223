"""Start-up and shutdown of a real server: NOT_SERVING/UNAVAILABLE while warming up, SIGTERM drain."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2

from clients.client import Client, RlvrError
from tests.conftest import ServerProcess, health_status

pytestmark = pytest.mark.engine


def test_warm_up_then_sigterm_drains_in_flight_stream(tmp_path):
    server = ServerProcess(tmp_path, drain_grace_s=60.0)
    try:
        # Listening before the engine is ready: liveness SERVING, readiness NOT_SERVING,
        # Generate UNAVAILABLE.
        deadline, seen_warming = time.monotonic() + 120, False
        while time.monotonic() < deadline:
            try:
                status = health_status(server.port, "rlvr.v1.Reasoning")
            except grpc.RpcError:
                time.sleep(0.1)
                continue
            if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                seen_warming = True
                assert health_status(server.port, "") == health_pb2.HealthCheckResponse.SERVING
                with Client(server.target) as client, pytest.raises(RlvrError) as err:
                    client.ask("What is 1+2?")
                assert err.value.code == grpc.StatusCode.UNAVAILABLE
            break
        assert seen_warming, "server never reported NOT_SERVING while warming up"
        server.wait_ready()

        results = []
        with Client(server.target) as client:
            thread = threading.Thread(target=lambda: results.append(
                client.ask("What is 4821+377?", budget=500, min_thinking=450)))
            thread.start()
            time.sleep(0.5)
            server.proc.terminate()  # SIGTERM while the stream is in flight
            time.sleep(0.3)
            assert health_status(server.port, "rlvr.v1.Reasoning") == \
                health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(RlvrError) as err:
                client.ask("What is 1+2?")
            assert err.value.code == grpc.StatusCode.UNAVAILABLE
            thread.join(60)
        assert results and results[0].finish_reason in ("stop", "length")
        assert results[0].usage.thinking_tokens >= 450
        assert server.proc.wait(60) == 0, server.log()
    finally:
        server.stop()
