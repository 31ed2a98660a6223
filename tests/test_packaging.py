"""Packaging facts: generated stubs match the .proto, Dockerfile, CI entry, config and CLI errors."""

from __future__ import annotations

import glob
import os
import dataclasses
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from runtime.config import ConfigError, ServerConfig, load_config

pytestmark = pytest.mark.heavy  # starts interpreters, builds venvs (`make test-fast` skips it)

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


def test_dockerfile_keeps_the_images_engine_and_installs_the_sandbox():
    text = (REPO / "Dockerfile").read_text()
    # the image's own vLLM and torch: this package without the cpu/gpu extra, image builds pinned
    install = re.search(r"pip install [^\n]*-e \.(\S*)", text)
    assert install and install.group(1) == "", "install the package without an engine extra"
    assert "-c /tmp/keep.txt" in text and "vllm|torch" in text
    # the code verifier's sandbox: bubblewrap, setpriv/unshare (util-linux) from apt
    assert re.search(r"apt-get install -y [^\n]*\bbubblewrap\b[^\n]*\butil-linux\b", text)
    assert "command -v bwrap" in text and "command -v setpriv" in text
    # serving your own model from a mounted folder is documented
    assert "docker run --gpus all" in text and "-v /path/to/model:/model" in text
    assert "-v rlvr-state:/state rlvr-runtime --model /model --train on" in text
    assert re.search(r"^VOLUME /state$", text, re.M) and '"--state-dir", "/state"' in text


def test_requires_python_admits_the_cuda_images_python_3_12():
    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    spec = SpecifierSet(project["requires-python"])
    # vllm/vllm-openai:v0.32.0 runs Python 3.12; make setup uses 3.11
    assert "3.11.9" in spec and "3.12.1" in spec and "3.12.11" in spec, spec
    assert "3.10.14" not in spec, spec
    assert {"Programming Language :: Python :: 3.11",
            "Programming Language :: Python :: 3.12"} <= set(project["classifiers"])


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in readme and ci.strip().endswith("make test")


def test_readme_layout_names_every_module_and_only_modules_that_exist():
    layout = readme_layout()
    for package in ("runtime", "rl_loop", "rl_loop/toy", "clients", "clients/cli", "rlvr",
                    "rlvr/store"):
        section = re.search(rf"^- `{package}/` — (.*?)(?=^- `)", layout, re.M | re.S).group(1)
        named = set(re.findall(r"`([a-z_0-9]+\.py)`", section))
        present = {p.name for p in (REPO / package).glob("*.py") if p.name != "__init__.py"}
        present -= {"__main__.py"} - named  # `python -m` entry points need no mention
        assert named == present, (package, "missing from the README:", present - named,
                                  "named but absent:", named - present)
        for folder in re.findall(r"`([a-z_0-9]+)/`", section):
            assert (REPO / package / folder / "__init__.py").is_file(), folder


def readme_layout() -> str:
    text = (REPO / "README.md").read_text()
    return text[text.index("\n## Layout\n"):]


def test_config_layers_and_errors(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('port = 6000\napi_tokens = ["a", "b"]\ndefault_budget = 32\n')
    config = load_config(path, {"port": 7000}, env={"RLVR_MAX_N": "4"})
    assert (config.port, config.api_tokens, config.default_budget, config.max_n) == (7000, ["a", "b"], 32, 4)
    for text, needle in [("bogus = 1\n", "unknown key 'bogus'"), ("port = 'x'\n", "port"),
                         ("port = 99999\n", "port"), ("default_budget = 9000\n", "default_budget"),
                         ("max_n = 1.5\n", "max_n"), ("port = \n", "config file"),
                         ("train = 'maybe'\n", "train must be one of auto, on, off"),
                         ("train_config = '/no/such.toml'\n", "train_config: no such file"),
                         ("trace_store = 'mysql://db'\n", "trace_store must be empty"),
                         ("checkpoint_store = 'gs://b'\n", "checkpoint_store must be empty"),
                         ("max_lora_rank = 4\n", "max_lora_rank must be one of 0, 1, 8, 16"),
                         ("log_level = 'LOUD'\n", "log_level must be one of DEBUG, INFO")]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(needle)):
            load_config(path, env={})
    with pytest.raises(ConfigError, match="RLVR_PORT"):
        load_config(None, env={"RLVR_PORT": "eighty"})
    assert load_config(None, env={"RLVR_LOG_LEVEL": "DEBUG"}).log_level == "DEBUG"  # read now


def test_trainer_settings_layer_like_the_servers(tmp_path):
    """defaults < TOML file < RLVR_TRAINER_* < flags, the GRPO objective's keys included; a
    bad value names its key, variable or flag."""
    import argparse

    from rl_loop import trainer_config
    from rlvr.settings import SettingsError

    parser = argparse.ArgumentParser()
    trainer_config.add_arguments(parser)
    path = tmp_path / "trainer.toml"
    path.write_text("lr = 2e-5\ngroup_size = 4\nepochs = 2\npipeline = true\n")
    env = {"RLVR_TRAINER_GROUP_SIZE": "6", "RLVR_TRAINER_KL_COEF": "0.1", "RLVR_PORT": "1"}
    cfg = trainer_config.from_args(parser.parse_args(["--config", str(path), "--epochs", "3"]),
                                   env)
    assert (cfg.lr, cfg.group_size, cfg.pipeline, cfg.prompts_per_step) == (2e-5, 6, True, 8)
    assert (cfg.objective.epochs, cfg.objective.kl_coef) == (3, 0.1)
    assert trainer_config.read_file(path) == {"lr": 2e-5, "group_size": 4, "epochs": 2,
                                              "pipeline": True}
    for text, env, needle in [("group_size = 1\n", {}, "group_size must be >= 2"),
                              ("bogus = 1\n", {}, "unknown key 'bogus'"),
                              ("lr = 'fast'\n", {}, "lr: 'fast' is not a valid float"),
                              ("", {"RLVR_TRAINER_EPOCHS": "0"}, "RLVR_TRAINER_EPOCHS must be >= 1"),
                              ("", {"RLVR_TRAINER_PIPELINE": "maybe"}, "RLVR_TRAINER_PIPELINE")]:
        path.write_text(text)
        with pytest.raises(SettingsError, match=re.escape(needle)):
            trainer_config.from_args(parser.parse_args(["--config", str(path)]), env)


def test_rlvr_serve_has_a_flag_per_server_setting():
    from clients.cli import build_parser
    from runtime.entrypoint import config_from_args

    args = build_parser().parse_args(["--log-level", "DEBUG", "serve", "--max-n", "4",
                                      "--api-tokens", "a,b", "--no-trust-local-anonymous",
                                      "--no-train"])
    config = config_from_args(args)
    assert (config.max_n, config.api_tokens, config.trust_local_anonymous) == (4, ["a", "b"], False)
    assert (config.log_level, config.train) == ("DEBUG", "off")
    flags = {a.dest for a in build_parser()._subparsers._group_actions[0].choices["serve"]._actions}
    assert {f.name for f in dataclasses.fields(ServerConfig)} - flags == {"log_level"}  # rlvr's


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
    (["train", "--server", "127.0.0.1:1"], "--base-model not given"),  # cannot ask the server
    (["train", "--base-model", "/nonexistent"], "--base-model"),
    (["serve", "--train", "sometimes"], "--train"),
    (["demo", "--rate", "0"], "--rate"),
    (["demo", "--paused", "-1"], "--paused"),
    (["demo", "--duration", "inf"], "--duration"),
    (["cluster", "--trace-store", "sqlite.db", "--checkpoint-store", "x"], "--trace-store"),
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



@pytest.mark.parametrize("module,args,needle", [
    ("runtime", ["--config", "missing.toml"], "rlvr serve: error: config file missing.toml"),
    ("rl_loop", ["--device", "tpu"], "rlvr train: error: --device must be auto, cpu or cuda"),
    ("rl_loop", ["--config", "missing.toml"], "rlvr train: error: config file missing.toml"),
    ("runtime", ["--max-n", "0"], "rlvr serve: error: max_n must be positive"),
    ("runtime", ["--port", "x"], "argument --port: 'x' is not a valid int"),
])
def test_server_and_trainer_entry_points_report_bad_settings_in_one_line(module, args, needle):
    """`python -m runtime` and `python -m rl_loop` (what `rlvr serve` starts its trainer as)."""
    out = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and needle in out.stderr and "Traceback" not in out.stderr


# --- Python 3.12 (the CUDA image's interpreter): a real install in a fresh venv -------------

def python312() -> str | None:
    """A Python 3.12 interpreter: $RLVR_PYTHON312, python3.12 on PATH, or a pyenv build."""
    candidates = [os.environ.get("RLVR_PYTHON312"), shutil.which("python3.12"),
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))]
    for candidate in filter(None, candidates):
        try:  # a pyenv shim may be on PATH without 3.12 being selected: run it to be sure
            out = subprocess.run([candidate, "-c", "import sys, venv; print(sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == "(3, 12)":
            return candidate
    return None


# imports that need nothing but the standard library (no torch, vLLM, gRPC or tokenizers)
PURE_MODULES = ["runtime.budget", "runtime.verifiers.base", "runtime.verifiers.numeric",
                "runtime.verifiers.text", "runtime.verifiers.code", "rlvr.store.traces",
                "rl_loop.toy.tasks", "rlvr.store.checkpoints", "rlvr.store.training"]
SMOKE = """
import sys
assert sys.version_info[:2] == (3, 12), sys.version
import importlib, importlib.metadata
for name in sys.argv[1:]:
    module = importlib.import_module(name)
    assert "site-packages" in module.__file__, (name, module.__file__)  # the installed copy
from runtime.verifiers.base import VerificationSpec
from runtime.verifiers.numeric import verify
assert verify("5198", VerificationSpec("numeric", "5198")).reward == 1.0
assert verify("3 or 4", VerificationSpec("numeric", "3")).reward == 0.0
from runtime.budget import resolve_budget

print("ok", importlib.metadata.version("rlvr-runtime"))
"""


def run(cmd: list, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                         timeout=timeout, env={**os.environ, "PYTHONNOUSERSITE": "1",
                                               "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert out.returncode == 0, f"{cmd}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def venv312(tmp_path_factory):
    """A fresh Python 3.12 venv with this package installed (no dependencies), built from a
    copy of the sources so that the checkout gets no build/ or egg-info from it."""
    interpreter = python312()
    if interpreter is None:
        pytest.skip("no Python 3.12 interpreter (python3.12 on PATH, ~/.pyenv/versions/3.12*, "
                    "or RLVR_PYTHON312)")
    root = tmp_path_factory.mktemp("py312")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for package in ("runtime", "rl_loop", "clients", "rlvr"):
        shutil.copytree(REPO / package, src / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    run([interpreter, "-m", "venv", root / "venv"], root)
    python = root / "venv" / "bin" / "python"
    run([python, "-m", "pip", "install", "--quiet", "--no-deps", src], root)
    return python, root


def test_package_installs_and_imports_on_python_3_12(venv312):
    """requires-python admits 3.12, so pip installs the package there, and its pure-Python
    parts import and work from the installed copy."""
    python, root = venv312
    out = run([python, "-c", SMOKE, *PURE_MODULES], root, timeout=120)
    assert out.stdout.strip() == "ok 0.1.0", out.stdout
    assert (python.parent / "rlvr").exists()  # the console script


def test_pinned_dependencies_have_python_3_12_builds(venv312):
    """Every pin of `project.dependencies` has a wheel pip accepts on cp312 (no source
    builds), and the light ones (gRPC, protobuf, psutil) install there so the generated stubs
    and the client import. Skipped when no package index can be reached."""
    python, root = venv312
    pins = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (root / "pins.txt").write_text("\n".join(pins) + "\n")
    start = time.monotonic()
    out = subprocess.run([python, "-m", "pip", "install", "--dry-run", "--no-deps",
                          "--ignore-installed", "--only-binary=:all:", "-r", root / "pins.txt"],
                         cwd=root, capture_output=True, text=True, timeout=600)
    offline = ("NewConnectionError", "Temporary failure in name resolution",
               "Network is unreachable", "Could not fetch URL", "ConnectTimeoutError")
    if out.returncode != 0 and any(s in out.stdout + out.stderr for s in offline):
        pytest.skip(f"no package index reachable: {out.stderr.strip()[-300:]}")
    assert out.returncode == 0, f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    would = out.stdout.split("Would install", 1)[-1].split()
    names = {re.match(r"(.+?)-\d", w).group(1).lower().replace("_", "-") for w in would}
    assert names == {re.split(r"[=<>!~ ;\[]", p)[0].lower() for p in pins}, (names, pins)
    light = [p for p in pins if p.split("==")[0] in ("grpcio", "protobuf", "psutil")]
    assert len(light) == 3, pins
    run([python, "-m", "pip", "install", "--quiet", *light], root, timeout=600)
    run([python, "-c", "import rlvr.v1.reasoning_pb2_grpc, rlvr.v1.admin_pb2_grpc, "
                       "runtime.auth, runtime.orphans, clients.client"], root, timeout=120)
    print(f"cp312 resolution and light install: {time.monotonic() - start:.0f} s")


def test_every_import_of_our_modules_resolves():
    """`from runtime import x` names a module or a top-level name that exists (a moved module
    fails here in seconds, not when a server starts)."""
    import ast

    def defined(path: Path) -> set[str]:
        tree = ast.parse(path.read_text())
        names = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        return names

    missing = []
    for package in ("runtime", "rl_loop", "clients", "rlvr", "tests"):
        for module, names in imports_of(package).items():
            for name in names:
                parts = name.split(".")
                if parts[0] not in ("runtime", "rl_loop", "clients", "rlvr"):
                    continue
                base = REPO.joinpath(*parts)
                if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
                    continue
                parent = REPO.joinpath(*parts[:-1])
                source = parent.with_suffix(".py") if parent.with_suffix(".py").is_file() \
                    else parent / "__init__.py"
                if not source.is_file() or parts[-1] not in defined(source):
                    missing.append(f"{module}: {name}")
    assert missing == []


def imports_of(package: str) -> dict[str, set[str]]:
    """Every module of `package` (a folder of the repository) -> the modules it imports."""
    import ast

    graph = {}
    for path in sorted((REPO / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        graph[str(path.relative_to(REPO))] = names
    return graph


def test_dependencies_point_one_way():
    """clients -> runtime and rl_loop -> the shared store and proto code (rlvr/). The runtime
    never imports the trainer or the toy world; the trainer reaches the runtime through the
    client library and the store only; the store imports neither."""
    def offenders(package: str, allowed) -> dict[str, list[str]]:
        found = {module: sorted(n for n in names if not allowed(n))
                 for module, names in imports_of(package).items()}
        return {module: names for module, names in found.items() if names}

    ours = ("runtime", "rl_loop", "clients", "rlvr")
    mine = lambda name: name.split(".")[0] in ours  # noqa: E731
    assert offenders("runtime", lambda n: not mine(n) or n.startswith(("runtime", "rlvr"))) == {}
    assert offenders("rlvr", lambda n: not mine(n) or n.startswith("rlvr")) == {}
    assert offenders("rl_loop", lambda n: not mine(n) or not n.startswith("clients")
                     or n.startswith("clients.client")) == {}
    trainer = {m: names for m, names in imports_of("rl_loop").items() if "toy" not in m}
    assert {m: [n for n in names if n.startswith("rl_loop.toy")] for m, names in trainer.items()
            if any(n.startswith("rl_loop.toy") for n in names)} == {}  # the toy plugs in
