"""Versioned checkpoints on disk, the one place trainer and runtime exchange weights.

Layout under `STATE_DIR/checkpoints/`: one folder per version (a standard Hugging Face model
folder, possibly with sharded safetensors, plus `manifest.json`), and `promoted.json`, the history of promoted versions (its last
entry is what the runtime serves, also after a restart). A checkpoint is published atomically:
written to a temporary folder, fsynced, then renamed, so a half-written checkpoint never has a
version name. Its manifest carries the SHA-256 of every weights file, checked before every
load (callers on an event loop run `verified_path` in a thread: hashing 15 GB takes a while).

A version is either full weights (a model folder) or a LoRA adapter (peft's
`adapter_config.json` + `adapter_model.safetensors`); an adapter's manifest names the
version whose full weights it applies to (`adapter_base`, usually the base model "v0").
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

BASE_VERSION = "v0"
ADAPTER_WEIGHTS = "adapter_model.safetensors"  # a LoRA adapter version (peft's file names)
STAGED_DIR = "staged"  # the trainer's newest adapters, for shadow requests only (not versions)


class CheckpointError(Exception):
    """A checkpoint that must not be served (missing, corrupt, unknown version)."""


def _fsync_tree(path: Path) -> None:
    for file in path.rglob("*"):
        if file.is_file():
            with open(file, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class CheckpointStore:
    def __init__(self, state_dir: Path):
        self.root = Path(state_dir) / "checkpoints"
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise CheckpointError(f"invalid version name {version!r}")
        return self.root / version

    def publish(self, write_model, version: str, *, parent: str, step: int,
                trace_range: tuple[int, int] = (0, 0), metrics: dict | None = None,
                adapter_base: str = BASE_VERSION) -> Path:
        """Atomically publish a checkpoint: `write_model(folder)` writes the HF files (a model
        or a peft adapter; `adapter_base` is the version an adapter applies to)."""
        final = self.path(version)
        if final.exists():
            raise CheckpointError(f"version {version} already exists")
        tmp = self.root / f".tmp-{version}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            write_model(tmp)
            files = sorted(p.name for p in tmp.glob("*.safetensors"))
            if not files:
                raise CheckpointError(f"version {version}: the writer wrote no safetensors file")
            adapter = ADAPTER_WEIGHTS in files
            manifest = {"version": version, "parent": parent, "step": step,
                        "trace_range": list(trace_range), "metrics": metrics or {},
                        "weights": files, "checksums": {f: sha256(tmp / f) for f in files},
                        "created_at": time.time(), "status": "candidate", "reason": "",
                        **({"adapter_base": adapter_base} if adapter else {})}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
            _fsync_tree(tmp)
            os.rename(tmp, final)
            _fsync_tree(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def sweep(self) -> list[str]:
        """Remove temporary folders of publishes that never finished (the writer was killed).
        Call only from the single writer (the trainer), at its start."""
        leftovers = [p for p in self.root.glob(".tmp-*") if p.is_dir()]
        for folder in leftovers:
            shutil.rmtree(folder, ignore_errors=True)
        return [p.name for p in leftovers]

    def publish_folder(self, source: Path, version: str, **manifest) -> Path:
        """Publish a copy of an existing model folder (its weights and tokenizer)."""
        def copy(target: Path) -> None:
            for file in Path(source).iterdir():
                if file.is_file() and file.name not in ("manifest.json", "README.md"):
                    shutil.copy2(file, target / file.name)
        return self.publish(copy, version, **manifest)

    def manifest(self, version: str) -> dict:
        path = self.path(version) / "manifest.json"
        if not path.is_file():
            raise CheckpointError(f"unknown version {version!r}")
        return json.loads(path.read_text())

    def verified_path(self, version: str) -> Path:
        """The folder of a checkpoint whose weights match its manifest checksum."""
        manifest = self.manifest(version)
        if manifest.get("pruned"):
            raise CheckpointError(f"checkpoint {version}: its weights were deleted by the "
                                  "retention policy (only its manifest is kept)")
        folder = self.path(version)
        for name, digest in manifest["checksums"].items():
            if not (folder / name).is_file() or sha256(folder / name) != digest:
                raise CheckpointError(f"checkpoint {version}: {name} missing or checksum "
                                      "mismatch; refusing to load it")
        return folder

    def set_status(self, version: str, status: str, reason: str = "", **extra) -> None:
        manifest = self.manifest(version)
        manifest.update(status=status, reason=reason, **extra)
        _write_json_atomic(self.path(version) / "manifest.json", manifest)

    def versions(self) -> list[dict]:
        """Manifests of all published versions, oldest first (temporary folders excluded)."""
        manifests = []
        for folder in self.root.iterdir():
            if folder.is_dir() and not folder.name.startswith(".") and \
                    (folder / "manifest.json").is_file():
                manifests.append(json.loads((folder / "manifest.json").read_text()))
        return sorted(manifests, key=lambda m: m["created_at"])

    def prune(self, keep: int) -> list[str]:
        """Retention: delete the weights of every version that is neither among the `keep`
        newest nor among the last `keep` promoted (rollback targets). Manifests stay, marked
        `pruned`, so the history and its metrics remain. Only the trainer (the single writer)
        calls this. Returns the versions pruned."""
        manifests = self.versions()
        protected = set(self.history()[-keep:]) | {m["version"] for m in manifests[-keep:]}
        protected |= {m["adapter_base"] for m in manifests  # what kept adapters apply to
                      if m["version"] in protected and "adapter_base" in m}
        pruned = []
        for m in manifests:
            if m["version"] in protected or m.get("pruned"):
                continue
            for item in self.path(m["version"]).iterdir():
                if item.name != "manifest.json":
                    shutil.rmtree(item) if item.is_dir() else item.unlink()
            self.set_status(m["version"], m["status"], m["reason"], pruned=True)
            pruned.append(m["version"])
        return pruned

    def history(self) -> list[str]:
        """The promotion history; a damaged file is a CheckpointError saying how to recover
        (it is never rewritten by a guess: which versions were served is the operator's)."""
        path = self.root / "promoted.json"
        if not path.is_file():
            return []
        try:
            history = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            history, problem = None, str(err)
        else:
            problem = "not a list of version names"
        if not (isinstance(history, list) and all(isinstance(v, str) for v in history)):
            raise CheckpointError(
                f"{path}: damaged promotion history ({problem}); nothing was changed. Restore "
                "it (a JSON list of version names, oldest first; each promoted version's "
                "manifest.json has status 'promoted' and promoted_at), or move it aside to "
                "serve the base model; every checkpoint folder is kept")
        return history

    def current(self) -> str:
        """The version to serve: the last promoted one, or the base model."""
        history = self.history()
        return history[-1] if history else BASE_VERSION

    def promoted_newest_first(self) -> list[str]:
        """Distinct promoted versions, newest first, then the base model."""
        return list(dict.fromkeys(reversed(self.history()))) + [BASE_VERSION]

    def last_good(self) -> str:
        """The newest promoted version whose checkpoint verifies (what a server starting now
        serves; the base model when none does)."""
        for version in self.promoted_newest_first():
            if version == BASE_VERSION:
                return version
            try:
                self.verified_path(version)
                return version
            except CheckpointError:
                continue
        return BASE_VERSION

    def record_promotion(self, version: str) -> None:
        _write_json_atomic(self.root / "promoted.json", self.history() + [version])

    def rollback_target(self, served: str) -> str:
        """The newest promoted version before the trailing entries equal to `served`."""
        history = self.history()
        while history and history[-1] == served:
            history.pop()
        return history[-1] if history else BASE_VERSION

    def record_rollback(self, served: str) -> str:
        """Drop the trailing history entries of `served`; returns the version now current."""
        history = self.history()
        if not history:
            raise CheckpointError("nothing to roll back: the base model is being served")
        while history and history[-1] == served:
            history.pop()
        _write_json_atomic(self.root / "promoted.json", history)
        return history[-1] if history else BASE_VERSION
