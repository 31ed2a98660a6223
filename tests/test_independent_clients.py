"""An independent gRPC client (grpcurl, via reflection) and the `rlvr ask` CLI against the server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import API_TOKEN, REPO

pytestmark = pytest.mark.engine

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")


def grpcurl(server, *args: str) -> str:
    out = subprocess.run([GRPCURL, "-plaintext", "-H", f"authorization: Bearer {API_TOKEN}",
                          *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def json_stream(text: str) -> list[dict]:
    decoder, items, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        item, i = decoder.raw_decode(text, i)
        items.append(item)
    return items


def test_grpcurl_lists_and_calls_every_method(server):
    services = grpcurl(server, server.target, "list").split()
    assert {"rlvr.v1.Reasoning", "grpc.health.v1.Health"} <= set(services)
    methods = grpcurl(server, server.target, "list", "rlvr.v1.Reasoning").split()
    assert set(methods) == {"rlvr.v1.Reasoning.Generate", "rlvr.v1.Reasoning.Abort",
                            "rlvr.v1.Reasoning.GetModelInfo", "rlvr.v1.Reasoning.SubmitFeedback"}
    health = json.loads(grpcurl(server, "-d", '{"service": "rlvr.v1.Reasoning"}', server.target,
                                "grpc.health.v1.Health/Check"))
    assert health == {"status": "SERVING"}
    info = json.loads(grpcurl(server, server.target, "rlvr.v1.Reasoning/GetModelInfo"))
    assert info["model_name"] == "tiny-reasoner" and info["think_end"] == "</think>"
    events = json_stream(grpcurl(server, "-d", json.dumps(
        {"prompt": "What is 12+34?", "thinking": {"budget": 10}}), server.target,
        "rlvr.v1.Reasoning/Generate"))
    finished = events[-1]["finished"]
    assert finished["thinking_end"] == "THINKING_END_FORCED"
    assert finished["usage"]["thinking_tokens"] == 10
    aborted = json.loads(grpcurl(server, "-d", '{"request_ids": ["nothing"]}', server.target,
                                 "rlvr.v1.Reasoning/Abort"))
    assert aborted == {}


def test_cli_ask_json(server):
    out = subprocess.run([sys.executable, "-m", "clients.cli", "ask", "--server", server.target,
                          "--token", API_TOKEN, "--budget", "16", "--json", "What is 123+456?"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) >= {"request_id", "thinking", "answer", "usage", "thinking_end",
                           "forced_continuations", "weight_version", "finish_reason"}
    assert result["usage"]["thinking_tokens"] <= 16
    assert set(result["usage"]) == {"prompt_tokens", "thinking_tokens", "answer_tokens"}
    assert result["thinking_end"] == "forced" and result["weight_version"] == "v0"
