"""Versioned checkpoints on disk, the one place trainer and runtime exchange weights.

Layout: one folder per version (a standard Hugging Face model folder, possibly with sharded
safetensors, plus `manifest.json`) under the checkpoint store, and `promoted.json`, the
server's promotion history (its last served entry is what the runtime serves, also after a
restart), always in its own `STATE_DIR/checkpoints/`. The checkpoint store (`checkpoint_store`
in the server's and the trainer's settings) is that same folder by default; a folder every
replica mounts (shared storage); or `s3://bucket/prefix`, an S3-compatible object store
(`rlvr/store/object_store.py`), whose versions each server downloads into its own
`STATE_DIR/checkpoints/` before loading them.
A checkpoint is published atomically: written to a temporary folder, fsynced, then renamed,
so a half-written checkpoint never has a version name. Its manifest carries the SHA-256 of
every weights file, checked before every load (callers on an event loop run `verified_path`
in a thread: hashing 15 GB takes a while).

One writer per record: the trainer writes the manifests (publish, its gate verdict,
retention), the server writes the promotion history (promote, rollback). A version's status
as read (`Manifest.status`: candidate, rejected, promoted, rolled_back) joins the two.

A version is either full weights (a model folder) or a LoRA adapter (peft's
`adapter_config.json` + `adapter_model.safetensors`); an adapter's manifest names the
version whose full weights it applies to (`adapter_base`, usually the base model "v0").

`Checkpoints` is the interface the server and the trainer use; `CheckpointStore` implements it
on a folder, mirrored to an object store when one is configured.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from rlvr.store.layout import StateDir, write_json_atomic
from rlvr.store.object_store import S3Bucket

BASE_VERSION = "v0"
ADAPTER_WEIGHTS = "adapter_model.safetensors"  # a LoRA adapter version (peft's file names)
MANIFEST = "manifest.json"
HISTORY = "promoted.json"
VERDICTS = ("candidate", "rejected")  # what the trainer writes; promotions are the server's


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


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Manifest:
    """A version's record. The trainer writes every field but the last two, which are read
    from the promotion history."""

    version: str
    parent: str
    step: int
    weights: list[str]
    checksums: dict[str, str]
    created_at: float
    trace_range: list[int] = field(default_factory=lambda: [0, 0])
    metrics: dict = field(default_factory=dict)
    verdict: str = "candidate"  # the trainer's: candidate (not gated, or gated) or rejected
    reason: str = ""            # why it was rejected
    gate: str = ""              # the gate's decision, promoted or not
    adapter_base: str | None = None  # an adapter: the version whose weights it applies to
    pruned: bool = False        # retention deleted the weights; the record stays
    status: str = "candidate"   # as read: the verdict, or promoted / rolled_back (history)
    promoted_at: float | None = None

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("verdict", "status", "promoted_at")}
        data["status"] = self.verdict
        if self.adapter_base is None:
            del data["adapter_base"]
        return data

    @classmethod
    def from_json(cls, data: dict, history: "PromotionHistory") -> "Manifest":
        names = {f.name for f in dataclasses.fields(cls)} - {"verdict", "status", "promoted_at"}
        verdict = data.get("status") if data.get("status") in VERDICTS else "candidate"
        manifest = cls(**{k: v for k, v in data.items() if k in names}, verdict=verdict)
        manifest.status = history.status(manifest.version) or verdict
        manifest.promoted_at = history.promoted_at(manifest.version) or data.get("promoted_at")
        return manifest


@dataclass
class PromotionHistory:
    """The server's record: the promotions whose versions are served now or can be rolled
    back to (`served`, oldest first: the last is served) and the versions rolled back."""

    served: list[dict] = field(default_factory=list)       # {"version", "at"}
    rolled_back: list[dict] = field(default_factory=list)  # {"version", "at", "rolled_back_at"}

    def names(self) -> list[str]:
        return [entry["version"] for entry in self.served]

    def status(self, version: str) -> str | None:
        if version in self.names():
            return "promoted"
        return "rolled_back" if any(e["version"] == version for e in self.rolled_back) else None

    def promoted_at(self, version: str) -> float | None:
        """When it was last promoted (None: never, or in a history without times)."""
        entries = [*reversed(self.served), *reversed(self.rolled_back)]  # served first
        return next((e["at"] for e in entries if e["version"] == version), None)

    @classmethod
    def parse(cls, data) -> "PromotionHistory | None":
        """From the file's JSON (a list of names is the older format); None if damaged."""
        if isinstance(data, list) and all(isinstance(v, str) for v in data):
            return cls([{"version": v, "at": None} for v in data])
        if not isinstance(data, dict):
            return None
        history = cls(data.get("served"), data.get("rolled_back", []))
        entries = history.served + history.rolled_back if isinstance(history.served, list) \
            and isinstance(history.rolled_back, list) else None
        if entries is None or not all(isinstance(e, dict) and isinstance(e.get("version"), str)
                                      for e in entries):
            return None
        return history


class Checkpoints(Protocol):
    """The checkpoint store as the server and the trainer use it."""

    def publish(self, write_model: Callable[[Path], None], version: str, *, parent: str,
                step: int, trace_range: tuple[int, int] = (0, 0), metrics: dict | None = None,
                adapter_base: str = BASE_VERSION) -> Path: ...
    def manifest(self, version: str) -> Manifest: ...
    def versions(self) -> list[Manifest]: ...
    def verified_path(self, version: str) -> Path: ...
    def record_verdict(self, version: str, verdict: str, reason: str = "",
                       gate: str = "") -> None: ...
    def prune(self, keep: int) -> list[str]: ...
    def sweep(self) -> list[str]: ...
    def history(self) -> list[str]: ...
    def current(self) -> str: ...
    def last_good(self) -> str: ...
    def promoted_newest_first(self) -> list[str]: ...
    def record_promotion(self, version: str, at: float | None = None) -> None: ...
    def rollback_target(self, served: str) -> str: ...
    def record_rollback(self, served: str) -> str: ...


class CheckpointStore:
    """One folder per version: under `STATE_DIR/checkpoints/` (`location` empty), a shared
    folder (`location` a path), or that local folder as the cache of an object store
    (`location` an `s3://` URL). The promotion history is always the state directory's."""

    def __init__(self, state_dir: Path, location: Path | str = ""):
        own = StateDir(Path(state_dir)).checkpoints
        self.remote = S3Bucket(str(location), CheckpointError) \
            if str(location).startswith("s3://") else None
        self.root = Path(location) if location and self.remote is None else own
        self.history_path = own / HISTORY
        for folder in (own, self.root):
            folder.mkdir(parents=True, exist_ok=True)

    def path(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise CheckpointError(f"invalid version name {version!r}")
        return self.root / version

    # ------------------------------------------------------------- the trainer's records
    def publish(self, write_model: Callable[[Path], None], version: str, *, parent: str,
                step: int, trace_range: tuple[int, int] = (0, 0), metrics: dict | None = None,
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
            manifest = Manifest(version, parent, step, files,
                                {f: sha256(tmp / f) for f in files}, time.time(),
                                list(trace_range), metrics or {},
                                adapter_base=adapter_base if ADAPTER_WEIGHTS in files else None)
            (tmp / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=2))
            _fsync_tree(tmp)
            os.rename(tmp, final)
            _fsync_tree(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if self.remote is not None:
            self.remote.upload(final, version)  # the weights, then the manifest
        return final

    def sweep(self) -> list[str]:
        """Remove temporary folders of publishes that never finished (the writer was killed).
        Call only from the trainer, at its start."""
        leftovers = [p for p in self.root.glob(".tmp-*") if p.is_dir()]
        for folder in leftovers:
            shutil.rmtree(folder, ignore_errors=True)
        return [p.name for p in leftovers]

    def publish_folder(self, source: Path, version: str, **manifest) -> Path:
        """Publish a copy of an existing model folder (its weights and tokenizer)."""
        def copy(target: Path) -> None:
            for file in Path(source).iterdir():
                if file.is_file() and file.name not in (MANIFEST, "README.md"):
                    shutil.copy2(file, target / file.name)
        return self.publish(copy, version, **manifest)

    def record_verdict(self, version: str, verdict: str, reason: str = "",
                       gate: str = "") -> None:
        """The trainer's gate verdict on a candidate: "candidate" (with the gate's decision
        text) or "rejected" (with the reason)."""
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
        manifest = self.manifest(version)
        manifest.verdict, manifest.reason = verdict, reason
        manifest.gate = gate or manifest.gate
        self._write(manifest)

    def prune(self, keep: int) -> list[str]:
        """Retention: delete the weights of every version that is neither among the `keep`
        newest nor among the last `keep` promoted (rollback targets). Manifests stay, marked
        `pruned`, so the history and its metrics remain. Only the trainer calls this.
        Returns the versions pruned."""
        manifests = self.versions()
        protected = set(self.history()[-keep:]) | {m.version for m in manifests[-keep:]}
        protected |= {m.adapter_base for m in manifests  # what kept adapters apply to
                      if m.version in protected and m.adapter_base}
        pruned = []
        for m in manifests:
            if m.version in protected or m.pruned:
                continue
            folder = self.path(m.version)
            for item in folder.iterdir() if folder.is_dir() else []:
                if item.name != MANIFEST:
                    shutil.rmtree(item) if item.is_dir() else item.unlink()
            if self.remote is not None:
                self.remote.delete_weights(m.version)
            m.pruned = True
            self._write(m)
            pruned.append(m.version)
        return pruned

    def _write(self, manifest: Manifest) -> None:
        folder = self.path(manifest.version)
        folder.mkdir(exist_ok=True)
        write_json_atomic(folder / MANIFEST, manifest.to_json(), fsync=True)
        if self.remote is not None:
            self.remote.put_manifest(manifest.version, manifest.to_json())

    # ------------------------------------------------------------- reading
    def _manifest_data(self, version: str) -> dict | None:
        path = self.path(version) / MANIFEST
        if self.remote is not None:
            return self.remote.manifest(version)
        return json.loads(path.read_text()) if path.is_file() else None

    def manifest(self, version: str) -> Manifest:
        data = self._manifest_data(version)
        if data is None:
            raise CheckpointError(f"unknown version {version!r}")
        return Manifest.from_json(data, self._history())

    def versions(self) -> list[Manifest]:
        """Manifests of all published versions, oldest first (temporary folders excluded)."""
        history = self._history()
        if self.remote is not None:
            found = list(self.remote.manifests().values())
        else:
            found = [json.loads((folder / MANIFEST).read_text())
                     for folder in self.root.iterdir()
                     if folder.is_dir() and not folder.name.startswith(".")
                     and (folder / MANIFEST).is_file()]
        return sorted((Manifest.from_json(data, history) for data in found),
                      key=lambda m: m.created_at)

    def verified_path(self, version: str) -> Path:
        """The folder of a checkpoint whose weights match its manifest checksum (from the
        object store into the local cache first, when there is one and the cache lacks it)."""
        manifest = self.manifest(version)
        if manifest.pruned:
            raise CheckpointError(f"checkpoint {version}: its weights were deleted by the "
                                  "retention policy (only its manifest is kept)")
        folder = self.path(version)
        if self.remote is not None and self._mismatch(folder, manifest):
            self._download(version, folder)
        if bad := self._mismatch(folder, manifest):
            raise CheckpointError(f"checkpoint {version}: {bad} missing or checksum mismatch; "
                                  "refusing to load it")
        return folder

    @staticmethod
    def _mismatch(folder: Path, manifest: Manifest) -> str | None:
        """The first weights file that is missing or does not match its checksum."""
        return next((name for name, digest in manifest.checksums.items()
                     if not (folder / name).is_file() or sha256(folder / name) != digest), None)

    def _download(self, version: str, folder: Path) -> None:
        """The version's files from the object store, replacing the cached folder at once."""
        tmp = self.root / f".tmp-{version}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            self.remote.download(version, self.remote.files(version), tmp)
            shutil.rmtree(folder, ignore_errors=True)
            os.rename(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    # ------------------------------------------------------------- the server's record
    def _history(self) -> PromotionHistory:
        """The promotion history; a damaged file is a CheckpointError saying how to recover
        (it is never rewritten by a guess: which versions were served is the operator's)."""
        path = self.history_path
        if not path.is_file():
            return PromotionHistory()
        try:
            history, problem = PromotionHistory.parse(json.loads(path.read_text())), \
                "not a promotion history"
        except (OSError, ValueError) as err:
            history, problem = None, str(err)
        if history is None:
            raise CheckpointError(
                f"{path}: damaged promotion history ({problem}); nothing was changed. Restore "
                "it (a JSON list of the promoted version names, oldest first, is enough), or "
                "move it aside to serve the base model; every checkpoint folder is kept")
        return history

    def history(self) -> list[str]:
        """The promoted versions that are served or can be rolled back to, oldest first."""
        return self._history().names()

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

    def record_promotion(self, version: str, at: float | None = None) -> None:
        """`version` is served from now (or from `at`, seconds since the epoch)."""
        history = self._history()
        history.served.append({"version": version, "at": time.time() if at is None else at})
        write_json_atomic(self.history_path, dataclasses.asdict(history), fsync=True)

    def rollback_target(self, served: str) -> str:
        """The newest promoted version before the trailing entries equal to `served`."""
        history = self.history()
        while history and history[-1] == served:
            history.pop()
        return history[-1] if history else BASE_VERSION

    def record_rollback(self, served: str) -> str:
        """Drop the trailing history entries of `served` (recorded as rolled back); returns
        the version now current."""
        history = self._history()
        if not history.served:
            raise CheckpointError("nothing to roll back: the base model is being served")
        now = time.time()
        while history.served and history.served[-1]["version"] == served:
            history.rolled_back.append(history.served.pop() | {"rolled_back_at": now})
        write_json_atomic(self.history_path, dataclasses.asdict(history), fsync=True)
        return history.served[-1]["version"] if history.served else BASE_VERSION
