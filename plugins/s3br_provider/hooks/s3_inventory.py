"""Read a source's S3 Inventory reports through an ``S3BucketHook`` (the source's connection).

Requests go to the inventory's destination bucket only (one delimited listing of the report
folders, GetObject of a manifest and its data files): never to the source bucket.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from s3br_provider.core.inventory import (
    InventoryError,
    InventoryManifest,
    ReadCounts,
    check_md5,
    data_file_objects,
    parse_manifest,
    report_folders,
    split_inventory_uri,
)
from s3br_provider.core.objects import ObjectInfo
from s3br_provider.hooks.errors import error_code

if TYPE_CHECKING:
    from s3br_provider.hooks.s3_bucket import S3BucketHook


@dataclass(frozen=True, slots=True)
class InventoryReport:
    """The latest report under an inventory URI: its folder's URI and its manifest."""

    uri: str
    manifest: InventoryManifest


class S3InventoryReader:
    """Finds the latest report under ``inventory_uri`` and streams its objects."""

    def __init__(self, hook: S3BucketHook, inventory_uri: str) -> None:
        self.hook = hook
        self.inventory_uri = inventory_uri
        self.bucket, self.folder = split_inventory_uri(inventory_uri)

    def _get(self, key: str) -> bytes | None:
        try:
            return self.hook.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error_code(error) in ("NoSuchKey", "404"):
                return None
            if error_code(error) in ("AccessDenied", "403"):
                raise InventoryError(
                    f"access denied to s3://{self.bucket}/{key} for connection {self.hook.aws_conn_id!r}: "
                    "it needs s3:GetObject and s3:ListBucket on the inventory destination"
                ) from None
            raise

    def folders(self) -> list[str]:
        """The report folders under the URI, latest first (one delimited listing per 1,000)."""
        names = []
        try:
            pages = self.hook.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.folder, Delimiter="/"
            )
            for page in pages:
                names += [p["Prefix"][len(self.folder) :] for p in page.get("CommonPrefixes", [])]
        except ClientError as error:
            if error_code(error) == "NoSuchBucket":
                raise InventoryError(
                    f"inventory_uri {self.inventory_uri!r}: bucket {self.bucket!r} does not exist"
                ) from None
            if error_code(error) in ("AccessDenied", "403"):
                raise InventoryError(
                    f"inventory_uri {self.inventory_uri!r}: access denied to connection "
                    f"{self.hook.aws_conn_id!r} (it needs s3:ListBucket and s3:GetObject there)"
                ) from None
            raise
        return report_folders(names)

    def latest(self) -> InventoryReport:
        """The latest report folder that holds a manifest.json (a delivery in progress has none yet)."""
        for name in self.folders():
            body = self._get(f"{self.folder}{name}/manifest.json")
            if body is None:
                continue
            checksum = self._get(f"{self.folder}{name}/manifest.checksum")
            manifest = parse_manifest(body, name, checksum)
            return InventoryReport(f"s3://{self.bucket}/{self.folder}{name}/", manifest)
        raise InventoryError(
            f"no inventory report under {self.inventory_uri} (no YYYY-MM-DDTHH-MMZ/manifest.json): "
            "is the inventory configured, and has its first report been delivered (within 48 hours)?"
        )

    def objects(self, manifest: InventoryManifest, prefix: str, counts: ReadCounts) -> Iterator[ObjectInfo]:
        """The objects of every data file, file by file, each checked against its MD5 first."""
        with tempfile.TemporaryDirectory(prefix="s3br-inventory-") as folder:
            path = os.path.join(folder, "data")
            for data_file in manifest.files:
                self.hook.download(f"s3://{self.bucket}/{data_file.key}", path)
                check_md5(path, data_file)
                with open(path, "rb") as stream:
                    yield from data_file_objects(manifest, stream, counts, prefix)
                os.remove(path)
