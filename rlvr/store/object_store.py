"""Checkpoints in an S3-compatible object store (`checkpoint_store = "s3://bucket/prefix"`).

The bucket is the versions' shared home: the trainer uploads each version it publishes
(weights first, its manifest last, so a version is listed only once it is whole) and its
manifest again with every verdict and retention; every server lists the manifests there and
downloads a version's files into its own cache (its state directory's `checkpoints/`)
before loading it, the checksums checked as for a local folder. The endpoint and the
credentials are boto3's own settings (`AWS_ENDPOINT_URL` for a non-AWS server such as MinIO,
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`).
"""

from __future__ import annotations

import json
import urllib.parse
from contextlib import contextmanager
from pathlib import Path

MANIFEST = "manifest.json"


class S3Bucket:
    """The versions under `s3://bucket/prefix/<version>/`; a failing call raises `error`
    (the checkpoint store's own exception) with what failed and why."""

    def __init__(self, url: str, error: type[Exception]):
        import boto3

        parts = urllib.parse.urlsplit(url)
        self.url, self.error = url, error
        if parts.scheme != "s3" or not parts.netloc:
            raise error(f"checkpoint_store: expected s3://bucket[/prefix], got {url!r}")
        self.bucket, self.prefix = parts.netloc, parts.path.strip("/")
        from botocore.config import Config

        self.client = boto3.client("s3", config=Config(
            connect_timeout=10, read_timeout=120, retries={"mode": "standard", "max_attempts": 3}))

    @contextmanager
    def _calling(self, what: str):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (BotoCoreError, ClientError, OSError) as err:
            raise self.error(f"checkpoint store {self.url}: {what} failed ({err})") from None

    def _key(self, version: str, name: str = "") -> str:
        return "/".join(p for p in (self.prefix, version, name) if p)

    def manifests(self) -> dict[str, dict]:
        """Every version's manifest, by version name."""
        found = {}
        with self._calling("listing versions"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key("") + "/" if self.prefix else "")
            keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        for key in keys:
            if key.endswith("/" + MANIFEST):
                version = key.split("/")[-2]
                found[version] = self.manifest(version)
        return found

    def manifest(self, version: str) -> dict | None:
        with self._calling(f"reading {version}'s manifest"):
            try:
                body = self.client.get_object(Bucket=self.bucket,
                                              Key=self._key(version, MANIFEST))
            except self.client.exceptions.NoSuchKey:
                return None
            return json.loads(body["Body"].read())

    def put_manifest(self, version: str, manifest: dict) -> None:
        with self._calling(f"writing {version}'s manifest"):
            self.client.put_object(Bucket=self.bucket, Key=self._key(version, MANIFEST),
                                   Body=json.dumps(manifest, indent=2).encode())

    def upload(self, folder: Path, version: str) -> None:
        """Every file of a published version, its manifest last."""
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST)
        with self._calling(f"uploading {version}"):
            for path in files + [folder / MANIFEST]:
                self.client.upload_file(str(path), self.bucket, self._key(version, path.name))

    def download(self, version: str, names: list[str], folder: Path) -> None:
        with self._calling(f"downloading {version}"):
            for name in names:
                self.client.download_file(self.bucket, self._key(version, name),
                                          str(folder / name))

    def files(self, version: str) -> list[str]:
        with self._calling(f"listing {version}"):
            listing = self.client.list_objects_v2(Bucket=self.bucket,
                                                  Prefix=self._key(version) + "/")
        return [item["Key"].rsplit("/", 1)[-1] for item in listing.get("Contents", [])]

    def delete_weights(self, version: str) -> None:
        """Retention: everything of `version` but its manifest."""
        for name in self.files(version):
            if name != MANIFEST:
                with self._calling(f"deleting {version}/{name}"):
                    self.client.delete_object(Bucket=self.bucket, Key=self._key(version, name))
