"""Shared fixtures: the real server (real vLLM engine on the embedded model) started once."""

from __future__ import annotations

import pytest

from clients.launch import REPO, ServerProcess  # noqa: F401 (used by tests)

API_TOKEN, ADMIN_TOKEN, TRAIN_TOKEN = "test-token", "admin-token", "train-token"


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
                         admin_tokens=[ADMIN_TOKEN], train_tokens=[TRAIN_TOKEN], max_pending=96)
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


@pytest.fixture(scope="session")
def smollm2():
    """(plain, thinking) SmolLM2-135M folders, built on first use (tests/real_model.py)."""
    from tests.real_model import smollm2_dirs

    return smollm2_dirs()


@pytest.fixture(scope="session")
def postgres():
    """A Postgres server for the session (`clients.launch.PostgresServer`)."""
    from clients.launch import PostgresServer

    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.remove()
