"""S3 access for s3br: listing over key ranges, server-side copies, tags, buckets, manifests."""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.config import Config
from botocore.exceptions import ClientError

from s3br_provider.core.keys import RESERVED_PREFIX, is_reserved
from s3br_provider.core.manifest import split_s3_uri
from s3br_provider.core.objects import ObjectInfo
from s3br_provider.core.partitions import KeyRange
from s3br_provider.core.retrieval import restore_request
from s3br_provider.core.sizes import MiB
from s3br_provider.core.tags import from_tag_set, to_tag_set
from s3br_provider.core.versions import VersionEntry
from s3br_provider.hooks.direct_s3 import DirectS3, WrongRegionError, copy_source_header
from s3br_provider.hooks.errors import error_code
from s3br_provider.hooks.sdk_cache import FastClientSetupMixin

MIN_PART = 5 * MiB
MAX_PART = 5 * 1024 * MiB
PREFERRED_MAX_PART = 512 * MiB
MAX_PARTS = 10_000
PART_WORKERS = 4
_AFTER_RESERVED = RESERVED_PREFIX + "\U0010ffff"
# CopyObject parameters as boto3 names them, and as HTTP headers for the direct path.
_COPY_HEADERS = {
    "MetadataDirective": "x-amz-metadata-directive",
    "TaggingDirective": "x-amz-tagging-directive",
    "Tagging": "x-amz-tagging",
    "StorageClass": "x-amz-storage-class",
}
# Headers that make up an object's identity beyond its bytes; carried over on multipart copies.
_OBJECT_HEADERS = (
    "ContentType",
    "ContentEncoding",
    "ContentDisposition",
    "ContentLanguage",
    "CacheControl",
    "Expires",
    "Metadata",
)


def client_config(max_pool_connections: int) -> Config:
    """Botocore config: standard retry mode (backoff on SlowDown, 5xx, timeouts) and a pool
    at least as large as the thread count, so threads never wait for a connection."""
    return Config(
        retries={"mode": "standard", "max_attempts": 10},
        max_pool_connections=max_pool_connections,
        connect_timeout=10,
        read_timeout=300,
    )


def part_ranges(size: int, threshold: int) -> list[tuple[int, int]]:
    """Inclusive byte ranges for UploadPartCopy: parts of the threshold size (5 MiB to 512 MiB),
    larger when needed to stay within S3's 10,000 parts."""
    part = max(MIN_PART, min(threshold, PREFERRED_MAX_PART), math.ceil(size / MAX_PARTS))
    part = min(part, MAX_PART)
    return [(start, min(start + part, size) - 1) for start in range(0, size, part)]


class S3BucketHook(FastClientSetupMixin, AwsBaseHook):
    """S3 client wrapper with the few operations s3br needs, on an Airflow AWS connection.

    :param aws_conn_id: Airflow connection (``conn_type`` ``aws``).
    :param max_pool_connections: HTTP connections kept open; at least the copy thread count.
    :param fast_path: send single-part CopyObject and ListObjectsV2 requests through
        ``DirectS3`` (a third of boto3's CPU per copy); False sends them through boto3 like
        every other request.
    """

    def __init__(
        self,
        aws_conn_id: str | None = "aws_default",
        max_pool_connections: int = 32,
        *,
        fast_path: bool = True,
    ) -> None:
        super().__init__(
            aws_conn_id=aws_conn_id, client_type="s3", config=client_config(max_pool_connections)
        )
        self.max_pool_connections = max_pool_connections
        self.fast_path = fast_path

    @cached_property
    def client(self) -> Any:
        """One boto3 client per hook: clients are thread-safe and share the connection pool."""
        return self.get_conn()

    @cached_property
    def direct(self) -> DirectS3 | None:
        """The fast path for copies and listings, or None where boto3 must send them itself."""
        if not self.fast_path:
            return None
        client = self.client  # builds the client, and with it client_session
        return DirectS3.for_client(
            client,
            self.client_session,
            pool_size=self.max_pool_connections,
            verify=self.verify,
        )

    @property
    def endpoint_url(self) -> str | None:
        return self.conn_config.endpoint_url

    # Buckets -------------------------------------------------------------------------------

    def bucket_status(self, bucket: str) -> str:
        """Return ``"ok"``, ``"missing"`` or ``"forbidden"`` for a bucket (HeadBucket)."""
        try:
            self.client.head_bucket(Bucket=bucket)
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404 or error_code(error) in ("404", "NoSuchBucket"):
                return "missing"
            if status == 403 or error_code(error) in ("403", "AccessDenied"):
                return "forbidden"
            raise
        return "ok"

    def is_versioned(self, bucket: str) -> bool:
        """Return whether versioning is (or once was) enabled on a bucket."""
        status = self.client.get_bucket_versioning(Bucket=bucket).get("Status")
        return status in ("Enabled", "Suspended")

    def has_objects(self, bucket: str) -> bool:
        """Return whether a bucket holds any object or object version."""
        listing = self.client.list_object_versions(Bucket=bucket, MaxKeys=1)
        return bool(listing.get("Versions") or listing.get("DeleteMarkers"))

    def create_bucket(self, bucket: str) -> None:
        """Create a bucket in the connection's region (LocationConstraint outside us-east-1)."""
        kwargs: dict[str, Any] = {"Bucket": bucket}
        region = self.client.meta.region_name
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self.client.create_bucket(**kwargs)

    def enable_versioning(self, bucket: str) -> None:
        self.client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    def list_common_prefixes(self, bucket: str, prefix: str, limit: int) -> list[str]:
        """Return up to ``limit`` common prefixes one level under ``prefix`` (delimiter ``/``)."""
        found: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            for item in page.get("CommonPrefixes", []):
                if not is_reserved(item["Prefix"]):
                    found.append(item["Prefix"])
                if len(found) >= limit:
                    return found
        return found

    # Listings ------------------------------------------------------------------------------

    def iter_objects(self, bucket: str, prefix: str, key_range: KeyRange) -> Iterator[ObjectInfo]:
        """Yield the objects of ``bucket`` under ``prefix`` within ``key_range``, in key order.

        Streams page by page (1,000 keys at a time) and skips the reserved ``_s3br/`` prefix
        with a fresh StartAfter instead of listing through the manifests.
        """
        start_after = key_range.start_after
        while True:
            begin = start_after if start_after is not None and start_after >= prefix else None
            jumped = False
            for page in self._object_pages(bucket, prefix, begin):
                for obj in page:
                    if key_range.is_past(obj.key):
                        return
                    if is_reserved(obj.key):
                        if start_after is not None and start_after >= _AFTER_RESERVED:
                            continue  # a key past the jump point: jumping again would loop forever
                        start_after, jumped = _AFTER_RESERVED, True
                        break
                    yield obj
                if jumped:
                    break
            if not jumped:
                return

    def _object_pages(self, bucket: str, prefix: str, start_after: str | None) -> Iterator[list[ObjectInfo]]:
        """ListObjectsV2 page by page, through the fast path where it applies."""
        direct = self.direct
        if direct is not None:
            token: str | None = None
            try:
                while True:
                    page = direct.list_page(bucket, prefix, start_after, token)
                    yield page.objects
                    if page.next_token is None:
                        return
                    token = page.next_token
            except WrongRegionError as error:
                if token is not None:
                    raise
                self.log.debug("%s; listing through boto3", error)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if start_after is not None:
            kwargs["StartAfter"] = start_after
        for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
            yield [ObjectInfo.from_listing(item) for item in page.get("Contents", [])]

    def iter_versions(self, bucket: str, prefix: str, key_range: KeyRange) -> Iterator[VersionEntry]:
        """Yield every version and delete marker within ``key_range``, grouped by key, newest
        first (on a tie of LastModified seconds, the one S3 marks IsLatest first)."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if key_range.start_after is not None and key_range.start_after >= prefix:
            kwargs["KeyMarker"] = key_range.start_after
        first_key: str | None = None
        for page in self.client.get_paginator("list_object_versions").paginate(**kwargs):
            for entry in self._page_versions(page):
                if key_range.is_past(entry.key):
                    return
                # contains(): some endpoints (moto) also return versions of the KeyMarker key.
                if is_reserved(entry.key) or not key_range.contains(entry.key):
                    continue
                if first_key is None and "KeyMarker" in kwargs:
                    # Some endpoints (moto) drop the first entry after a KeyMarker: read the
                    # first key's versions again, whole, by its exact name.
                    first_key = entry.key
                    yield from (e for e in self._versions_of(bucket, first_key) if e.key == first_key)
                if entry.key != first_key:
                    yield entry

    def _versions_of(self, bucket: str, key: str) -> Iterator[VersionEntry]:
        for page in self.client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
            yield from self._page_versions(page)

    @staticmethod
    def _page_versions(page: dict[str, Any]) -> list[VersionEntry]:
        ranked: list[tuple[tuple[str, float, bool], VersionEntry]] = []
        for item in page.get("Versions", []):
            obj = ObjectInfo.from_listing(item)
            ranked.append(
                (
                    (obj.key, -obj.last_modified, not item.get("IsLatest")),
                    VersionEntry(obj.key, obj.last_modified, obj),
                )
            )
        for item in page.get("DeleteMarkers", []):
            when = ObjectInfo.from_listing({**item, "Size": 0}).last_modified
            ranked.append(
                ((item["Key"], -when, not item.get("IsLatest")), VersionEntry(item["Key"], when, None))
            )
        ranked.sort(key=lambda pair: pair[0])
        return [entry for _, entry in ranked]

    # Objects -------------------------------------------------------------------------------

    def head(self, bucket: str, key: str, version_id: str | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        return self.client.head_object(**kwargs)

    def get_tags(self, bucket: str, key: str, version_id: str | None = None) -> dict[str, str]:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        return from_tag_set(self.client.get_object_tagging(**kwargs).get("TagSet", []))

    def put_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        self.client.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": to_tag_set(tags)})

    def request_restore(self, bucket: str, obj: ObjectInfo, *, tier: str, days: int) -> str:
        """Ask S3 to restore an archived object; return ``"requested"`` or ``"in_progress"``."""
        kwargs: dict[str, Any] = {
            "Bucket": bucket,
            "Key": obj.key,
            "RestoreRequest": restore_request(obj.storage_class, tier, days),
        }
        if obj.version_id:
            kwargs["VersionId"] = obj.version_id
        try:
            self.client.restore_object(**kwargs)
        except ClientError as error:
            if error_code(error) == "RestoreAlreadyInProgress":
                return "in_progress"
            raise
        return "requested"

    def copy(
        self,
        source: ObjectInfo,
        source_bucket: str,
        target_bucket: str,
        *,
        multipart_threshold: int,
        tags: dict[str, str] | None = None,
        storage_class: str | None = None,
    ) -> None:
        """Copy one object server-side with its Content-Type, user metadata and tags.

        ``tags`` None copies the source's tags as they are; a dict replaces them.
        Objects larger than ``multipart_threshold`` bytes are copied in parts.
        """
        copy_source: dict[str, str] = {"Bucket": source_bucket, "Key": source.key}
        if source.version_id:
            copy_source["VersionId"] = source.version_id
        if source.size > multipart_threshold:
            self._copy_multipart(source, copy_source, target_bucket, multipart_threshold, tags, storage_class)
            return
        fields = {
            "MetadataDirective": "COPY",
            "TaggingDirective": "COPY" if tags is None else "REPLACE",
            "Tagging": None if tags is None else urlencode(tags),
            "StorageClass": storage_class or None,
        }
        fields = {name: value for name, value in fields.items() if value is not None}
        sender = self.direct
        if sender is not None:
            headers = {_COPY_HEADERS[name]: value for name, value in fields.items()}
            headers["x-amz-copy-source"] = copy_source_header(source_bucket, source.key, source.version_id)
            try:
                sender.copy(target_bucket, source.key, headers)
                return
            except WrongRegionError as error:
                self.log.debug("%s; copying through boto3", error)
        self.client.copy_object(Bucket=target_bucket, Key=source.key, CopySource=copy_source, **fields)

    def _copy_multipart(
        self,
        source: ObjectInfo,
        copy_source: dict[str, str],
        target_bucket: str,
        threshold: int,
        tags: dict[str, str] | None,
        storage_class: str | None,
    ) -> None:
        # A multipart copy carries neither metadata nor tags over: read and set them ourselves.
        head = self.head(copy_source["Bucket"], source.key, source.version_id)
        if tags is None:
            tags = self.get_tags(copy_source["Bucket"], source.key, source.version_id)
        create: dict[str, Any] = {"Bucket": target_bucket, "Key": source.key}
        create.update({name: head[name] for name in _OBJECT_HEADERS if head.get(name) is not None})
        if tags:
            create["Tagging"] = urlencode(tags)
        if storage_class:
            create["StorageClass"] = storage_class
        upload_id = self.client.create_multipart_upload(**create)["UploadId"]
        try:
            parts = self._copy_parts(copy_source, target_bucket, source, upload_id, threshold)
            self.client.complete_multipart_upload(
                Bucket=target_bucket,
                Key=source.key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            self.abort_upload(target_bucket, source.key, upload_id)
            raise

    def _copy_parts(
        self, copy_source: dict[str, str], bucket: str, source: ObjectInfo, upload_id: str, threshold: int
    ) -> list[dict[str, Any]]:
        def copy_part(numbered: tuple[int, tuple[int, int]]) -> dict[str, Any]:
            number, (first, last) = numbered
            answer = self.client.upload_part_copy(
                Bucket=bucket,
                Key=source.key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource=copy_source,
                CopySourceRange=f"bytes={first}-{last}",
            )
            return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

        ranges = list(enumerate(part_ranges(source.size, threshold), start=1))
        with ThreadPoolExecutor(max_workers=PART_WORKERS, thread_name_prefix="s3br-part") as pool:
            return list(pool.map(copy_part, ranges))

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """Abort a multipart upload of ours, logging (not raising) if that fails too."""
        try:
            self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception:
            self.log.warning("Could not abort multipart upload of s3://%s/%s", bucket, key, exc_info=True)

    # Manifests (ManifestStore) -------------------------------------------------------------

    def upload(self, local_path: str, uri: str) -> None:
        bucket, key = split_s3_uri(uri)
        self.client.upload_file(local_path, bucket, key, ExtraArgs={"ContentType": "application/gzip"})

    def download(self, uri: str, local_path: str) -> None:
        bucket, key = split_s3_uri(uri)
        self.client.download_file(bucket, key, local_path)

    def put_json(self, uri: str, body: bytes) -> None:
        bucket, key = split_s3_uri(uri)
        self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")

    def get_json_bytes(self, uri: str) -> bytes | None:
        bucket, key = split_s3_uri(uri)
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error_code(error) in ("NoSuchKey", "404"):
                return None
            raise

    # Planning ------------------------------------------------------------------------------

    def count_keys(self, bucket: str, prefix: str, limit: int = 1000) -> tuple[int, bool]:
        """Count the keys under ``prefix``, reading pages until ``limit`` are seen.

        Return the count and whether there may be more (True once ``limit`` is reached).
        """
        count = 0
        for page in self._object_pages(bucket, prefix, None):
            count += len(page)
            if count >= limit:
                return count, True
        return count, False

    def list_uploads(self, bucket: str, prefix: str) -> Iterator[tuple[str, str]]:
        """Yield ``(key, upload_id)`` of the multipart uploads in progress under ``prefix``."""
        for page in self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            for upload in page.get("Uploads", []):
                yield upload["Key"], upload["UploadId"]
