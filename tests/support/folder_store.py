"""A ``ManifestStore`` over a local folder, for the pure manifest and chunk tests (no S3)."""

from __future__ import annotations

import shutil
from pathlib import Path

from s3br_provider.core.manifest import split_s3_uri


class FolderStore:
    """A ManifestStore over a local folder: ``s3://bucket/key`` is ``<root>/bucket/key``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uploads: list[str] = []

    def path(self, uri: str) -> Path:
        bucket, key = split_s3_uri(uri)
        return self.root / bucket / key

    def upload(self, local_path: str, uri: str) -> None:
        target = self.path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local_path, target)
        self.uploads.append(uri)

    def download(self, uri: str, local_path: str) -> None:
        shutil.copyfile(self.path(uri), local_path)
