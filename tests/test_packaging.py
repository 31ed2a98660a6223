"""Packaging facts: generated stubs match the .proto, Dockerfile, CI entry, config and CLI errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.config import ConfigError, ServerConfig, load_config

REPO = Path(__file__).resolve().parent.parent


def test_generated_stubs_match_the_proto(tmp_path):
    sys.path.insert(0, str(REPO / "proto"))
    try:
        from generate import generate
    finally:
        sys.path.pop(0)
    for path in generate(tmp_path):
        committed = REPO / "rlvr" / "v1" / path.name
        assert committed.read_bytes() == path.read_bytes(), f"{committed} is stale: run python proto/generate.py"


def test_dockerfile_runs_the_real_entry_point_on_the_real_ports():
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM vllm/vllm-openai:v0\.32\.0", text, re.M)
    config = ServerConfig()
    assert f"EXPOSE {config.port} {config.metrics_port}" in text
    assert '"rlvr", "serve"' in text and f'"--port", "{config.port}"' in text
    assert f'"--metrics-port", "{config.metrics_port}"' in text
    scripts = (REPO / "pyproject.toml").read_text()
    assert 'rlvr = "clients.cli:main"' in scripts


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in readme and ci.strip().endswith("make test")


def test_config_layers_and_errors(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('port = 6000\napi_tokens = ["a", "b"]\ndefault_budget = 32\n')
    config = load_config(path, {"port": 7000}, env={"RLVR_MAX_N": "4"})
    assert (config.port, config.api_tokens, config.default_budget, config.max_n) == (7000, ["a", "b"], 32, 4)
    for text, needle in [("bogus = 1\n", "unknown key 'bogus'"), ("port = 'x'\n", "port"),
                         ("port = 99999\n", "port"), ("default_budget = 9000\n", "default_budget"),
                         ("max_n = 1.5\n", "max_n"), ("port = \n", "config file"),
                         ("train = 'maybe'\n", "train must be auto, on or off"),
                         ("train_args = '--lr \"1e-4'\n", "train_args"),
                         ("max_lora_rank = 4\n", "max_lora_rank must be one of 0, 1, 8, 16")]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(needle)):
            load_config(path, env={})
    with pytest.raises(ConfigError, match="RLVR_PORT"):
        load_config(None, env={"RLVR_PORT": "eighty"})


@pytest.mark.parametrize("args,needle", [
    (["ask", "hi", "--budget", "1.5"], "--budget"),
    (["ask", "hi", "--budget", "-2"], "--budget"),
    (["ask", "hi", "--effort", "extreme"], "--effort"),
    (["serve", "--model", "/nonexistent"], "not a model folder"),
    (["eval", "--budget", "abc"], "--budget"),
    (["serve", "--config", "/nonexistent.toml"], "config file"),
    (["traffic", "--rate", "0"], "--rate"),
    (["train", "--lr", "-1"], "--lr"),
    (["train", "--group-size", "0"], "--group-size"),
    (["train", "--device", "tpu"], "--device"),
    (["train", "--tls-ca", "/nonexistent.pem"], "--tls-ca"),
    (["serve", "--train", "sometimes"], "--train"),
    (["demo", "--rate", "0"], "--rate"),
    (["demo", "--paused", "-1"], "--paused"),
    (["demo", "--duration", "inf"], "--duration"),
])
def test_cli_rejects_bad_flags_with_a_message(args, needle):
    out = subprocess.run([sys.executable, "-m", "clients.cli", *args], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out
    assert needle in out.stderr and "Traceback" not in out.stderr


def test_cli_ask_reports_an_unreachable_server():
    out = subprocess.run([sys.executable, "-m", "clients.cli", "ask", "hi", "--server",
                          "127.0.0.1:1", "--timeout", "5"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and "UNAVAILABLE" in out.stderr and "Traceback" not in out.stderr
