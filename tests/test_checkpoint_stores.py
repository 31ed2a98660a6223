"""Checkpoints every replica can reach: a shared folder, and an S3-compatible object store
(a local S3 server, moto's server mode, started here). Checksums are checked on every load."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

from clients.client import Client
from clients.launch import ServerProcess, free_port
from rlvr.store.checkpoints import CheckpointError, CheckpointStore
from runtime.config import MODEL_DIR

pytestmark = pytest.mark.heavy
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on a free port; boto3 (here and in servers started here) points at it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    saved = {k: os.environ.get(k) for k in [*S3_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(S3_ENV, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


@pytest.fixture()
def bucket(s3_server, request):
    name = "rlvr-" + request.node.name.replace("_", "-")[:40].lower()
    boto3.client("s3").create_bucket(Bucket=name)
    return f"s3://{name}/checkpoints"


def test_versions_in_an_object_store_reach_every_server(bucket, tmp_path):
    trainer = CheckpointStore(tmp_path / "trainer", bucket)
    trainer.publish_folder(MODEL_DIR, "v1", parent="v0", step=1)
    trainer.record_verdict("v1", "candidate", gate="+0.1")
    server = CheckpointStore(tmp_path / "server", bucket)  # another machine: its own cache
    assert [(m.version, m.status, m.gate) for m in server.versions()] == [("v1", "candidate", "+0.1")]
    folder = server.verified_path("v1")
    assert folder == tmp_path / "server" / "checkpoints" / "v1"
    assert (folder / "model.safetensors").read_bytes() == \
        (MODEL_DIR / "model.safetensors").read_bytes()
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    server.record_promotion("v1")  # the server's own record, in its own state directory
    assert server.manifest("v1").status == "promoted" and server.current() == "v1"
    assert trainer.manifest("v1").status == "candidate" and trainer.history() == []
    assert not any(k.endswith("promoted.json") for k in _keys(bucket))


def test_a_corrupt_object_is_refused_and_retention_reaches_the_bucket(bucket, tmp_path):
    trainer = CheckpointStore(tmp_path / "trainer", bucket)
    for i, version in enumerate(("v1", "v2", "v3")):
        trainer.publish_folder(MODEL_DIR, version, parent="v0", step=i)
    cached = CheckpointStore(tmp_path / "cached", bucket)
    cached.verified_path("v3")
    name, key = bucket[5:].split("/", 1)
    boto3.client("s3").put_object(Bucket=name, Key=f"{key}/v3/model.safetensors", Body=b"bad")
    with pytest.raises(CheckpointError, match="v3: model.safetensors missing or checksum"):
        CheckpointStore(tmp_path / "fresh", bucket).verified_path("v3")
    assert cached.verified_path("v3")  # a cache that verifies is used as it is
    (tmp_path / "cached" / "checkpoints" / "v3" / "model.safetensors").write_bytes(b"rotten")
    with pytest.raises(CheckpointError, match="checksum"):
        cached.verified_path("v3")  # the cache is checked on every load, too
    assert trainer.prune(keep=1) == ["v1", "v2"]
    assert [m.pruned for m in cached.versions()] == [True, True, False]
    assert sorted(k.rsplit("/", 1)[-1] for k in _keys(bucket) if "/v1/" in k) == ["manifest.json"]
    with pytest.raises(CheckpointError, match="retention"):
        CheckpointStore(tmp_path / "late", bucket).verified_path("v1")


def test_an_unreachable_object_store_is_a_checkpoint_error(tmp_path, monkeypatch, s3_server):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(CheckpointError, match="listing versions failed"):
        CheckpointStore(tmp_path, "s3://nowhere/x").versions()


def test_a_shared_folder_holds_the_versions_and_each_server_its_own_history(tmp_path):
    shared = tmp_path / "shared"
    trainer = CheckpointStore(tmp_path / "trainer", shared)
    trainer.publish_folder(MODEL_DIR, "v1", parent="v0", step=1)
    a, b = CheckpointStore(tmp_path / "a", shared), CheckpointStore(tmp_path / "b", shared)
    assert a.verified_path("v1") == b.verified_path("v1") == shared / "v1"
    a.record_promotion("v1")
    assert (a.current(), b.current()) == ("v1", "v0")
    assert not (shared / "promoted.json").exists()


@pytest.mark.engine
def test_a_server_promotes_a_version_from_the_object_store(bucket, tmp_path):
    trainer = CheckpointStore(tmp_path / "trainer", bucket)
    trainer.publish_folder(MODEL_DIR, "v1", parent="v0", step=1)
    server = ServerProcess(tmp_path / "server", checkpoint_store=bucket, admin_tokens=["adm"])
    try:
        server.wait_ready()
        with Client(server.target, token="adm") as admin:
            assert "v1" in [v.version for v in admin.list_versions().versions]
            admin.promote("v1")
            assert admin.ask("What is 2+2?", budget=8).weight_version == "v1"
    finally:
        assert server.stop() == 0
    assert (server.state_dir / "checkpoints" / "v1" / "model.safetensors").is_file()


def _keys(bucket: str) -> list[str]:
    name, prefix = bucket[5:].split("/", 1)
    listing = boto3.client("s3").list_objects_v2(Bucket=name, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]
