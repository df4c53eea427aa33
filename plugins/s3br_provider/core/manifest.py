"""Manifests: per-partition work lists as gzip-compressed JSON Lines.

Manifests keep per-key work out of XCom and out of memory: a diff task streams records into
one, uploads it to object storage, and only its URI and counts travel through XCom.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Protocol

RUNS_PREFIX = "_s3br/runs/"


class ManifestStore(Protocol):
    """Where manifests live: implemented over S3 by the hook, and by a folder in tests."""

    def upload(self, local_path: str, uri: str) -> None: ...

    def download(self, uri: str, local_path: str) -> None: ...


class ManifestWriter:
    """Write records one at a time to a gzip JSON Lines file, counting them.

    Lines are handed to gzip ``BATCH_LINES`` at a time: one ``GzipFile.write`` per line cost a
    diff task about a quarter of its CPU on a first run (docs/scale.md), one per batch a tenth
    of that. One encoder serves every record (``json.dumps`` builds one per call with these
    options)."""

    BATCH_LINES = 512
    _encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def __init__(self, stream: IO[bytes]) -> None:
        self._gzip = gzip.GzipFile(fileobj=stream, mode="wb", compresslevel=5)
        self._lines: list[str] = []
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        self._lines.append(self._encode(record))
        self.count += 1
        if len(self._lines) >= self.BATCH_LINES:
            self._flush()

    def _flush(self) -> None:
        if self._lines:
            self._lines.append("")
            self._gzip.write("\n".join(self._lines).encode("utf-8"))
            self._lines.clear()

    def close(self) -> None:
        self._flush()
        self._gzip.close()


def iter_records(stream: IO[bytes]) -> Iterator[dict[str, Any]]:
    """Yield the records of a gzip JSON Lines stream, one at a time."""
    with gzip.GzipFile(fileobj=stream, mode="rb") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


@contextmanager
def writing_manifest(store: ManifestStore, uri: str) -> Iterator[ManifestWriter]:
    """Stream records into a temporary file and upload it to ``uri`` on success; a manifest
    with no record is not uploaded (its producer hands on ``""``: one request less per empty
    manifest, two per partition of a run with nothing to do)."""
    with tempfile.TemporaryDirectory(prefix="s3br-") as folder:
        path = os.path.join(folder, "manifest.jsonl.gz")
        with open(path, "wb") as stream:
            writer = ManifestWriter(stream)
            try:
                yield writer
            finally:
                writer.close()
        if writer.count:
            store.upload(path, uri)


def read_manifest(store: ManifestStore, uri: str) -> Iterator[dict[str, Any]]:
    """Download the manifest at ``uri`` to a temporary file and stream its records."""
    with tempfile.TemporaryDirectory(prefix="s3br-") as folder:
        path = os.path.join(folder, "manifest.jsonl.gz")
        store.download(uri, path)
        with open(path, "rb") as stream:
            yield from iter_records(stream)


def run_folder(bucket: str, dag_id: str, run_id: str) -> str:
    """Return the S3 URI of a run's folder under the reserved prefix."""
    safe_run = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return f"s3://{bucket}/{RUNS_PREFIX}{dag_id}/{safe_run}"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key:
        raise ValueError(f"S3 URI needs a bucket and a key: {uri!r}")
    return bucket, key
