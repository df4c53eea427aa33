"""S3 access for s3br: listing over key ranges, server-side copies, tags, buckets, manifests.

Transport policy, in one place:

* **One limit of requests in flight per hook** (``max_in_flight``, default 32). Every S3
  request the hook sends holds one of its ``RequestSlots`` while it runs, retries included:
  whole-object copies, listing pages, heads, tags, and each request of a multipart copy. A
  thread that waits for a multipart copy holds no slot while its parts run, so parts take the
  slots that are free (no nested per-object pool, no deadlock however many large objects meet).
  Operators run ``copy`` from ``bounded_map`` threads; the limit holds whatever the thread
  count.
* **Multipart copies are s3transfer's managed copy.** s3transfer 0.19 heads the source
  (``VersionId`` included), creates the upload with Content-Type, Content-Encoding,
  -Disposition, -Language, Cache-Control, Expires, user metadata and ``StorageClass``, copies
  the parts with ``CopySourceIfMatch`` on the source's ETag, completes, then sets the tags
  (the source's, read with its ``VersionId``, for ``TaggingDirective`` COPY; ours for REPLACE)
  with PutObjectTagging, and aborts the upload if anything fails. Its part size is ours
  (the threshold, 5 to 512 MiB, larger where 10,000 parts would not do); its request threads
  all go through the hook's slots. Measured against the hook's own multipart code it copies as
  fast for 13-23% more client CPU and one more request per object. The one thing it does differently
  from a CopyObject: tags arrive one request after the object, not with it (a copy that fails
  there is reported failed, but its object exists untagged).
* **The direct HTTP path** (``DirectS3``) sends only single-part CopyObject and
  ListObjectsV2, the two requests sent tens of thousands of times a run, where it costs half
  of boto3's CPU per copy and a fifth per listing page (bench/results/transport.md).
  ``core.buckets.direct_path_supported`` sends every other bucket (access point, Outposts
  and multi-region ARNs, directory buckets) to boto3, and the connection extra
  ``"s3br_fast_path": false`` (or ``fast_path=False``) turns it off. ``async_copies`` sends
  the single CopyObject that ``direct_copy`` states from one event loop instead of a thread
  each (``hooks/async_copies.py``: 30% less client CPU per copy, half on a busy machine); whatever is not
  answered 200 there is ``copy``'s to finish.
* **Retries are the connection's.** The connection's botocore config (``config_kwargs``
  in its extra) wins; s3br's defaults (standard mode, 10 retries, a pool of at least
  ``max_in_flight`` connections, timeouts) fill only what it leaves unset. The direct path
  retries with the mode and attempts of the resulting client config.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, TypeVar
from urllib.parse import urlencode

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.sdk.exceptions import AirflowFailException
from botocore.config import Config
from botocore.exceptions import ClientError

from s3br_provider.core.buckets import direct_path_supported
from s3br_provider.core.fingerprints import COPY_CHECKSUM, FALLBACK_COPY_CHECKSUM, source_checksum_to_keep
from s3br_provider.core.keys import RESERVED_PREFIX, is_reserved
from s3br_provider.core.manifest import split_s3_uri
from s3br_provider.core.objects import ObjectInfo, epoch_seconds, listed_checksum
from s3br_provider.core.partitions import KeyRange
from s3br_provider.core.pool import RequestSlots
from s3br_provider.core.restore_state import ARCHIVE_STATUS
from s3br_provider.core.retrieval import restore_request
from s3br_provider.core.s3_errors import (
    CUSTOMER_KEY_REASON,
    CUSTOMER_KEY_REQUIRED,
    needs_customer_key,
    refuses_checksum,
)
from s3br_provider.core.sizes import MiB
from s3br_provider.core.tags import from_tag_set, to_tag_set
from s3br_provider.core.versions import VersionEntry, version_as_of
from s3br_provider.hooks.async_copies import AsyncCopies, DirectCopy
from s3br_provider.hooks.direct_s3 import DirectS3, NotDirectError, copy_source_header
from s3br_provider.hooks.errors import error_code
from s3br_provider.hooks.sdk_cache import FastClientSetupMixin

MIN_PART = 5 * MiB
MAX_PART = 5 * 1024 * MiB
PREFERRED_MAX_PART = 512 * MiB
MAX_PARTS = 10_000
DEFAULT_MAX_IN_FLIGHT = 32
UPLOAD_PART = 8 * MiB  # manifests: s3transfer's default part size and threshold
DEFAULT_RETRIES: dict[str, Any] = {"mode": "standard", "max_attempts": 10}
FAST_PATH_EXTRA = "s3br_fast_path"
CONDITIONAL_WRITES_EXTRA = "s3br_conditional_writes"
KMS_KEY_EXTRA = "s3br_kms_key_id"
"""Connection extra: the SSE-KMS key of every object s3br writes through the connection (run
files, markers, the tag probe; copies that their run gives no key of their own), so a bucket
whose policy denies writes without ``x-amz-server-side-encryption`` takes them all."""
EXISTS_CODES = frozenset({"PreconditionFailed", "412"})
"""What a conditional write (``If-None-Match: *``) answers when the key exists."""
CONFLICT_RETRIES = 3
_AFTER_RESERVED = RESERVED_PREFIX + "\U0010ffff"
# CopyObject parameters as boto3 names them, and as HTTP headers for the direct path.
_COPY_HEADERS = {
    "MetadataDirective": "x-amz-metadata-directive",
    "TaggingDirective": "x-amz-tagging-directive",
    "Tagging": "x-amz-tagging",
    "StorageClass": "x-amz-storage-class",
    "ObjectLockMode": "x-amz-object-lock-mode",
    "ObjectLockRetainUntilDate": "x-amz-object-lock-retain-until-date",
    "ChecksumAlgorithm": "x-amz-checksum-algorithm",
    "ServerSideEncryption": "x-amz-server-side-encryption",
    "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id",
    "IfNoneMatch": "If-None-Match",
}
# What new copies ask S3 to checksum, from the first choice to none at all.
_COPY_CHECKSUMS: tuple[str | None, ...] = (COPY_CHECKSUM, FALLBACK_COPY_CHECKSUM, None)
E = TypeVar("E")


def client_config(connection: Config | None, max_pool_connections: int) -> Config:
    """The connection's botocore config, with s3br's defaults where it sets nothing.

    Defaults: standard retry mode (backoff on SlowDown, 5xx, timeouts) with 10 retries, a pool
    of ``max_pool_connections`` (at least the requests in flight, so none waits for a
    connection), 10 s to connect, 300 s to read. A connection's ``retries`` is completed key by
    key: ``{"max_attempts": 3}`` keeps our mode, ``{"mode": "legacy"}`` keeps legacy's count.
    """
    ours = Config(
        retries=dict(DEFAULT_RETRIES),
        max_pool_connections=max_pool_connections,
        connect_timeout=10,
        read_timeout=300,
    )
    if connection is None:
        return ours
    merged = ours.merge(connection)
    # Config has no public "was this option set" test; merge() itself reads this attribute.
    given = dict(getattr(connection, "_user_provided_options", {}))
    retries = dict(given.get("retries") or {})
    if "retries" in given:
        retries.setdefault("mode", DEFAULT_RETRIES["mode"])
        if (
            "max_attempts" not in retries
            and "total_max_attempts" not in retries
            and retries["mode"] == "standard"
        ):
            retries["max_attempts"] = DEFAULT_RETRIES["max_attempts"]
        merged = merged.merge(Config(retries=retries))
    return merged


def _lock_fields(retention: tuple[str, datetime] | None) -> dict[str, Any]:
    """CopyObject / CreateMultipartUpload parameters of an Object Lock retention."""
    if retention is None:
        return {}
    mode, until = retention
    return {"ObjectLockMode": mode, "ObjectLockRetainUntilDate": until}


WRITES_REFUSED_HINT = (
    "Grant s3:PutObject on the bucket's objects (the iam/ policies); if a bucket policy requires "
    f"SSE-KMS, set the connection extra {KMS_KEY_EXTRA} (see the README, Encryption)"
)
"""The two usual causes of an AccessDenied to s3br's writes, and what to do about each."""


class RunFileRefusedError(AirflowFailException):
    """The bucket refuses a run file (AccessDenied): no retry can write it, so the task fails
    at once, naming the object, the connection and the two usual causes."""

    def __init__(self, uri: str, aws_conn_id: str | None, cause: ClientError) -> None:
        super().__init__(
            f"{uri}: AccessDenied to {cause.operation_name} with connection {aws_conn_id!r}, so this "
            f"run cannot write its files under {RESERVED_PREFIX!r}. {WRITES_REFUSED_HINT}"
        )


class CustomerKeyRequiredError(ClientError):
    """A source object is encrypted with SSE-C: no copy can read it without the customer's key."""

    def __init__(self, bucket: str, key: str, cause: ClientError) -> None:
        message = f"s3://{bucket}/{key}: {CUSTOMER_KEY_REASON}"
        response = {
            "Error": {"Code": CUSTOMER_KEY_REQUIRED, "Message": message},
            "ResponseMetadata": cause.response.get("ResponseMetadata", {}),
        }
        super().__init__(response, cause.operation_name)  # type: ignore[arg-type]


def _copy_source(bucket: str, source: ObjectInfo) -> dict[str, str]:
    """CopyObject's ``CopySource``: the source's bucket, key and version, if listed with one."""
    copy_source = {"Bucket": bucket, "Key": source.key}
    if source.version_id:
        copy_source["VersionId"] = source.version_id
    return copy_source


def _copy_object_fields(
    tags: dict[str, str] | None,
    storage_class: str | None,
    retention: tuple[str, datetime] | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """CopyObject's parameters (boto3 names) beside the source and target."""
    fields: dict[str, Any] = {
        "MetadataDirective": "COPY",
        "TaggingDirective": "COPY" if tags is None else "REPLACE",
        "Tagging": None if tags is None else urlencode(tags),
        "StorageClass": storage_class or None,
        **_lock_fields(retention),
        **extra,
    }
    return {name: value for name, value in fields.items() if value is not None}


def _direct_headers(
    fields: dict[str, Any], source_bucket: str, copy_source: dict[str, str]
) -> dict[str, str]:
    """The direct path's headers for CopyObject ``fields`` from ``copy_source``."""
    headers = {_COPY_HEADERS[name]: _header(value) for name, value in fields.items()}
    headers["x-amz-copy-source"] = copy_source_header(
        source_bucket, copy_source["Key"], copy_source.get("VersionId")
    )
    return headers


def _status(error: ClientError) -> int | None:
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _header(value: Any) -> str:
    """A CopyObject parameter as its HTTP header value (dates in ISO 8601, as S3 documents)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def part_size(threshold: int) -> int:
    """The part size of a multipart copy for a threshold: the threshold, within 5 to 512 MiB.

    s3transfer's ``ChunksizeAdjuster`` then doubles it while an object would need more than
    10,000 parts (and keeps it within 5 GiB).
    """
    return max(MIN_PART, min(threshold, PREFERRED_MAX_PART))


def flag(value: Any, default: bool) -> bool:
    """A boolean from a connection extra, which may hold ``false`` or ``"false"``."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off", "")
    return bool(value)


class SlottedClient:
    """A boto3 S3 client whose operations each hold one of ``slots`` while they run.

    s3transfer's threads call through this, so a multipart copy's requests count against the
    same limit as everything else the hook sends.
    """

    def __init__(
        self, client: Any, slots: RequestSlots, create_only: Callable[[str, str], bool] | None = None
    ) -> None:
        self._client = client
        self._slots = slots
        self._operations = frozenset(client.meta.method_to_api_mapping)
        self._create_only = create_only

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in self._operations:
            return attribute  # meta, exceptions, get_paginator ...
        slots = self._slots
        # s3transfer hands a multipart copy's ChecksumAlgorithm (S3's to compute over the copy)
        # on to the PutObjectTagging that tags it, whose body botocore checksums itself: for
        # CRC64NVME or CRC32C only with awscrt installed. The tags get botocore's default.
        dropped = "ChecksumAlgorithm" if name == "put_object_tagging" else None
        # s3transfer passes no If-None-Match to the CompleteMultipartUpload of a managed copy:
        # a create-only copy (``S3BucketHook.copy``) gets it here, so S3 refuses to complete
        # over an existing key (and s3transfer aborts the upload).
        completes = name == "complete_multipart_upload" and self._create_only is not None

        def call(*args: Any, **kwargs: Any) -> Any:
            kwargs.pop(dropped, None)
            if completes and self._create_only(kwargs.get("Bucket", ""), kwargs.get("Key", "")):  # type: ignore[misc]
                kwargs["IfNoneMatch"] = "*"
            with slots:
                return attribute(*args, **kwargs)

        self.__dict__[name] = call  # found without __getattr__ from now on
        return call


class S3BucketHook(FastClientSetupMixin, AwsBaseHook):
    """S3 client wrapper with the few operations s3br needs, on an Airflow AWS connection.

    :param aws_conn_id: Airflow connection (``conn_type`` ``aws``).
    :param max_pool_connections: HTTP connections kept open, unless the connection's botocore
        config says otherwise; raised to ``max_in_flight`` if lower.
    :param fast_path: send single-part CopyObject and ListObjectsV2 requests through
        ``DirectS3`` (half of boto3's CPU per copy); False sends them through boto3 like
        every other request; None (default) follows the connection extra ``s3br_fast_path``
        (on unless it is false).
    :param max_in_flight: S3 requests this hook has in flight at most, large copies included.
    :param region_name: AWS region, overriding the connection's.
    :param verify: TLS certificate checks (False, or a CA bundle path), as ``AwsBaseHook``.
    :param config: a botocore config replacing the connection's ``config_kwargs``.
    """

    def __init__(
        self,
        aws_conn_id: str | None = "aws_default",
        max_pool_connections: int = 32,
        *,
        fast_path: bool | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        region_name: str | None = None,
        verify: bool | str | None = None,
        config: Config | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            aws_conn_id=aws_conn_id,
            client_type="s3",
            region_name=region_name,
            verify=verify,
            config=config,
        )
        self.max_in_flight = max_in_flight
        self.max_pool_connections = max(max_pool_connections, max_in_flight)
        self._fast_path = fast_path
        self.slots = RequestSlots(max_in_flight)
        self._managers: dict[int, Any] = {}
        self._managers_lock = threading.Lock()
        self._checksum_choice = 0  # index into _COPY_CHECKSUMS; moves on when refused
        self._create_only: set[tuple[str, str]] = set()  # multipart copies that must not overwrite

    @property
    def config(self) -> Config:
        """The botocore config of the hook's client: the connection's, then s3br's defaults."""
        return client_config(self.conn_config.botocore_config, self.max_pool_connections)

    @cached_property
    def connection_kms_key_id(self) -> str | None:
        """The connection extra ``s3br_kms_key_id`` (``KMS_KEY_EXTRA``), or None."""
        return self.conn_config.extra_config.get(KMS_KEY_EXTRA) or None

    def encryption(self, kms_key_id: str | None = None) -> dict[str, Any]:
        """PutObject / CreateMultipartUpload parameters encrypting a write under ``kms_key_id``,
        else the connection's key; none without either (the bucket's default encryption)."""
        return self._write_fields(None, kms_key_id)

    def _write_fields(self, checksum: str | None, kms_key_id: str | None) -> dict[str, Any]:
        """A write's checksum and encryption parameters: the one place where a run's own key
        gives way to the connection's (``s3br_kms_key_id``)."""
        fields: dict[str, Any] = {"ChecksumAlgorithm": checksum} if checksum else {}
        key = kms_key_id or self.connection_kms_key_id
        if key:
            fields |= {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key}
        return fields

    @property
    def fast_path(self) -> bool:
        """Whether the direct path may be used: the argument, else the connection extra."""
        if self._fast_path is not None:
            return self._fast_path
        return flag(self.conn_config.extra_config.get(FAST_PATH_EXTRA), True)

    @cached_property
    def client(self) -> Any:
        """One boto3 client per hook: clients are thread-safe and share the connection pool.

        Requests sent on it directly are not counted against ``max_in_flight``."""
        return self.get_conn()

    @cached_property
    def _s3(self) -> SlottedClient:
        return SlottedClient(self.client, self.slots, self._is_create_only)

    def _is_create_only(self, bucket: str, key: str) -> bool:
        with self._managers_lock:
            return (bucket, key) in self._create_only

    @property
    def conditional_writes(self) -> bool:
        """Whether the endpoint honours ``If-None-Match: *`` on CopyObject and
        CompleteMultipartUpload: the connection extra ``s3br_conditional_writes``, else true for
        AWS (no endpoint URL, or one of amazonaws.com), which documents it for both. An endpoint
        that ignored the header would overwrite, so others must say so in the extra."""
        return flag(self.conn_config.extra_config.get(CONDITIONAL_WRITES_EXTRA), self.is_aws)

    @property
    def is_aws(self) -> bool:
        """Whether the endpoint is AWS's: no endpoint URL, or one of amazonaws.com."""
        endpoint = self.endpoint_url
        return endpoint is None or ".amazonaws.com" in endpoint

    def exists(self, bucket: str, key: str) -> bool:
        """Whether ``key`` exists in ``bucket`` (HeadObject)."""
        try:
            self.head(bucket, key)
        except ClientError as error:
            if _status(error) == 404 or error_code(error) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

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

    def uses_direct_path(self, bucket: str) -> bool:
        """Whether copies into and listings of ``bucket`` go through the direct path (a copy
        also needs its source bucket to qualify)."""
        return direct_path_supported(bucket) and self.direct is not None

    @property
    def endpoint_url(self) -> str | None:
        return self.conn_config.endpoint_url

    def _pages(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """A boto3 paginator's pages, each request holding a slot (none between pages)."""
        pages = iter(self.client.get_paginator(operation).paginate(**kwargs))
        while True:
            with self.slots:
                page = next(pages, None)
            if page is None:
                return
            yield page

    def _transfers(self, part: int) -> Any:
        """The s3transfer TransferManager for one part size (a task normally uses one), built
        on the slotted client with as many threads as slots: the slots, not the threads, bound
        the requests."""
        with self._managers_lock:
            manager = self._managers.get(part)
            if manager is None:
                from s3transfer.manager import TransferConfig, TransferManager

                config = TransferConfig(
                    multipart_threshold=part,
                    multipart_chunksize=part,
                    max_request_concurrency=self.max_in_flight,
                )
                manager = self._managers[part] = TransferManager(self._s3, config)
        return manager

    # Buckets -------------------------------------------------------------------------------

    def bucket_status(self, bucket: str) -> str:
        """Return ``"ok"``, ``"missing"`` or ``"forbidden"`` for a bucket (HeadBucket)."""
        try:
            self._s3.head_bucket(Bucket=bucket)
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404 or error_code(error) in ("404", "NoSuchBucket"):
                return "missing"
            if status == 403 or error_code(error) in ("403", "AccessDenied"):
                return "forbidden"
            raise
        return "ok"

    def object_lock_enabled(self, bucket: str) -> bool:
        """Return whether S3 Object Lock is enabled on a bucket."""
        try:
            answer = self._s3.get_object_lock_configuration(Bucket=bucket)
        except ClientError as error:
            if error_code(error) == "ObjectLockConfigurationNotFoundError":
                return False
            raise
        return answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    def is_versioned(self, bucket: str) -> bool:
        """Return whether versioning is (or once was) enabled on a bucket."""
        status = self._s3.get_bucket_versioning(Bucket=bucket).get("Status")
        return status in ("Enabled", "Suspended")

    def first_keys(self, bucket: str, prefix: str, count: int, start_after: str | None = None) -> list[str]:
        """The first ``count`` keys under ``prefix`` (after ``start_after``); fewer only where
        the listing ends. The paginator reads on past truncated pages with fewer keys than
        asked (S3 may answer so, with none over many delete markers)."""
        kwargs: dict[str, Any] = {
            "Bucket": bucket,
            "Prefix": prefix,
            "PaginationConfig": {"MaxItems": count, "PageSize": count},
        }
        if start_after is not None:
            kwargs["StartAfter"] = start_after
        return [
            item["Key"]
            for page in self._pages("list_objects_v2", **kwargs)
            for item in page.get("Contents", [])
        ]

    def first_key(self, bucket: str, prefix: str, start_after: str | None = None) -> str | None:
        """The first key under ``prefix`` (after ``start_after``), or None."""
        keys = self.first_keys(bucket, prefix, 1, start_after)
        return keys[0] if keys else None

    def has_objects(self, bucket: str) -> bool:
        """Return whether a bucket holds any object or object version."""
        listing = self._s3.list_object_versions(Bucket=bucket, MaxKeys=1)
        return bool(listing.get("Versions") or listing.get("DeleteMarkers"))

    def create_bucket(self, bucket: str) -> None:
        """Create a bucket in the connection's region (LocationConstraint outside us-east-1)."""
        kwargs: dict[str, Any] = {"Bucket": bucket}
        region = self.client.meta.region_name
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self._s3.create_bucket(**kwargs)

    def enable_versioning(self, bucket: str) -> None:
        self._s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    # Listings ------------------------------------------------------------------------------

    def iter_objects(self, bucket: str, prefix: str, key_range: KeyRange) -> Iterator[ObjectInfo]:
        """Yield the objects of ``bucket`` under ``prefix`` within ``key_range``, in key order.

        Streams page by page (1,000 keys at a time), jumping over the reserved ``_s3br/``
        prefix instead of listing through the manifests.
        """

        def listing(start_after: str | None) -> Iterator[ObjectInfo]:
            begin = start_after if start_after is not None and start_after >= prefix else None
            for page in self._object_pages(bucket, prefix, begin):
                yield from page

        return outside_reserved(listing, key_range, lambda obj: obj.key)

    def iter_objects_any_order(self, bucket: str, prefix: str, key_range: KeyRange) -> Iterator[ObjectInfo]:
        """Yield the objects of ``bucket`` under ``prefix`` within ``key_range`` in the order the
        endpoint lists them, for endpoints that do not list in S3's byte order (``StartAfter`` and
        stopping past the range's end both assume it): the whole listing under the range's common
        prefix is read and filtered, reserved ``_s3br/`` keys left out."""
        narrowest = prefix
        if key_range.start_after is not None and key_range.end is not None:
            common = os.path.commonprefix([key_range.start_after, key_range.end])
            narrowest = common if common.startswith(prefix) else prefix
        for page in self._object_pages(bucket, narrowest, None):
            for obj in page:
                if key_range.contains(obj.key) and not is_reserved(obj.key):
                    yield obj

    def _object_pages(self, bucket: str, prefix: str, start_after: str | None) -> Iterator[list[ObjectInfo]]:
        """ListObjectsV2 page by page, through the fast path where it applies."""
        if self.uses_direct_path(bucket):
            direct = self.direct
            assert direct is not None
            token: str | None = None
            try:
                while True:
                    with self.slots:
                        page = direct.list_page(bucket, prefix, start_after, token)
                    yield page.objects
                    if page.next_token is None:
                        return
                    token = page.next_token
            except NotDirectError as error:
                if token is not None:
                    raise
                self.log.debug("%s; listing through boto3", error)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if start_after is not None:
            kwargs["StartAfter"] = start_after
        for page in self._pages("list_objects_v2", **kwargs):
            yield [ObjectInfo.from_listing(item) for item in page.get("Contents", [])]

    def iter_versions(self, bucket: str, prefix: str, key_range: KeyRange) -> Iterator[VersionEntry]:
        """Yield every version and delete marker within ``key_range``, grouped by key, newest
        first (on a tie of LastModified seconds, the one S3 marks IsLatest first); the reserved
        ``_s3br/`` prefix is jumped over as in ``iter_objects``."""

        def listing(start_after: str | None) -> Iterator[VersionEntry]:
            marker = start_after if start_after is not None and start_after >= prefix else None
            return self._versions_after(bucket, prefix, marker)

        return outside_reserved(listing, key_range, lambda entry: entry.key)

    def _versions_after(self, bucket: str, prefix: str, marker: str | None) -> Iterator[VersionEntry]:
        """ListObjectVersions under ``prefix`` for the keys after ``marker``."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if marker is None:
            for page in self._pages("list_object_versions", **kwargs):
                yield from self._page_versions(page)
            return
        reread: set[str] | None = None
        for page in self._pages("list_object_versions", KeyMarker=marker, **kwargs):
            for entry in self._page_versions(page):
                if entry.key <= marker:
                    continue  # some endpoints (moto) also return the KeyMarker key's versions
                if reread is None:
                    reread, entries = self._first_versions_after(bucket, prefix, marker, entry.key)
                    yield from entries
                if entry.key not in reread:
                    yield entry
        if reread is None:
            yield from self._first_versions_after(bucket, prefix, marker, None)[1]

    def _first_versions_after(
        self, bucket: str, prefix: str, marker: str, first_listed: str | None
    ) -> tuple[set[str], list[VersionEntry]]:
        """The versions of the first keys after ``marker``, read whole by their exact names.

        AWS lists the keys after a KeyMarker; moto drops the first version at or after it, so
        its listing starts one version late, and a key whose only version that was is not
        listed at all. Read again the first key listed and the first key ListObjectsV2 names
        after the marker (which moto lists correctly), if it sorts no later.
        """
        keys = {first_listed} if first_listed is not None else set()
        with self.slots:
            page = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix, StartAfter=marker, MaxKeys=1)
        contents = page.get("Contents", [])
        if contents and (first_listed is None or contents[0]["Key"] <= first_listed):
            keys.add(contents[0]["Key"])
        entries = [e for key in sorted(keys) for e in self._versions_of(bucket, key) if e.key == key]
        return keys, entries

    def _versions_of(self, bucket: str, key: str) -> Iterator[VersionEntry]:
        for page in self._pages("list_object_versions", Bucket=bucket, Prefix=key):
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

    def head(
        self, bucket: str, key: str, version_id: str | None = None, *, checksums: bool = False
    ) -> dict[str, Any]:
        """HeadObject; ``checksums`` also asks for the object's checksum (``ChecksumMode``)."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        if checksums:
            kwargs["ChecksumMode"] = "ENABLED"
        return self._s3.head_object(**kwargs)

    def object_info(self, bucket: str, key: str, as_of: float | None = None) -> ObjectInfo | None:
        """One key as a listing would show it (HeadObject with checksums), or None if absent;
        with ``as_of`` (seconds since the epoch) the version current then (ListObjectVersions
        of that key), None if there was none or a delete marker."""
        if as_of is not None:
            return version_as_of((e for e in self._versions_of(bucket, key) if e.key == key), as_of)
        try:
            head = self.head(bucket, key, checksums=True)
        except ClientError as error:
            if _status(error) == 404 or error_code(error) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        named = ("ChecksumMode", "ChecksumType")
        algorithms = [n.removeprefix("Checksum") for n in head if n.startswith("Checksum") and n not in named]
        obj = ObjectInfo(
            key=key,
            size=int(head.get("ContentLength", 0)),
            etag=head.get("ETag", "").strip('"'),
            last_modified=epoch_seconds(head["LastModified"]),
            storage_class=head.get("StorageClass") or "STANDARD",
            checksum=listed_checksum(algorithms, head.get("ChecksumType")),
        )
        if head.get("ArchiveStatus"):
            obj.extra[ARCHIVE_STATUS] = head["ArchiveStatus"]
        return obj

    def kms_key_problem(self, key_id: str) -> str | None:
        """Why copies cannot be encrypted under a KMS key, or None if they can (or if the
        connection may not ask: then the first copy tells). One GenerateDataKey, the very
        permission an SSE-KMS copy needs (kms:GenerateDataKey), so no other is asked for."""
        kms = AwsBaseHook(
            aws_conn_id=self.aws_conn_id,
            client_type="kms",
            region_name=self.region_name,
            verify=self.verify,
            config=self.config,
        ).get_conn()
        try:
            kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
        except ClientError as error:
            code = error_code(error)
            if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException"):
                self.log.info("May not check KMS key %s (%s): the first copy will", key_id, code)
                return None
            return f"{code}: {error.response.get('Error', {}).get('Message', '')}".rstrip(": ")
        return None

    @property
    def copy_checksum(self) -> str | None:
        """The checksum algorithm new copies ask for: CRC64NVME, else CRC32C where the
        endpoint refused it, else none; found out once per hook, by the first refusal."""
        return _COPY_CHECKSUMS[self._checksum_choice]

    def _checksum_refused(self, error: ClientError, asked: str | None, kept: str | None = None) -> bool:
        """Whether ``error`` refused the checksum asked for. The hook's own choice ``asked``
        then moves on to the next algorithm (once per hook); a source's ``kept`` does not."""
        message = str(error.response.get("Error", {}).get("Message", ""))
        if (asked or kept) is None or not refuses_checksum(_status(error), error_code(error), message):
            return False
        if kept is not None:
            return True
        with self._managers_lock:
            if self.copy_checksum == asked:
                self._checksum_choice += 1
                self.log.warning(
                    "The endpoint refused copies with checksum %s (%s); asking for %s from now on",
                    asked,
                    message,
                    self.copy_checksum or "none",
                )
        return True

    def get_tags(self, bucket: str, key: str, version_id: str | None = None) -> dict[str, str]:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        return from_tag_set(self._s3.get_object_tagging(**kwargs).get("TagSet", []))

    def put_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        self._s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": to_tag_set(tags)})

    def put_empty(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str | None,
        metadata: dict[str, str],
        tags: dict[str, str],
        storage_class: str | None = None,
        retention: tuple[str, datetime] | None = None,
        kms_key_id: str | None = None,
        create_only: bool = False,
    ) -> bool:
        """Write an empty object (PutObject) with this Content-Type, user metadata and tags: a
        directory marker that the endpoint lists but will not copy. ``create_only`` as in
        ``copy``; return False when the key existed (nothing written)."""
        if create_only and not self.conditional_writes and self.exists(bucket, key):
            return False
        fields: dict[str, Any] = {
            "ContentType": content_type,
            "Tagging": urlencode(tags) if tags else None,
            "StorageClass": storage_class or None,
            "IfNoneMatch": "*" if create_only and self.conditional_writes else None,
            **_lock_fields(retention),
            **self.encryption(kms_key_id),
        }
        fields = {name: value for name, value in fields.items() if value is not None}
        try:
            self._s3.put_object(Bucket=bucket, Key=key, Body=b"", Metadata=metadata, **fields)
        except ClientError as error:
            if create_only and error_code(error) in EXISTS_CODES:
                return False
            raise
        return True

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
            self._s3.restore_object(**kwargs)
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
        retention: tuple[str, datetime] | None = None,
        kms_key_id: str | None = None,
        create_only: bool = False,
        target_key: str | None = None,
        answered: ClientError | None = None,
    ) -> bool:
        """Copy one object server-side with its Content-Type, user metadata and tags.

        ``tags`` None copies the source's tags as they are; a dict replaces them.
        ``retention`` ``(mode, retain_until)`` writes the copy under S3 Object Lock.
        ``kms_key_id`` encrypts the copy with SSE-KMS under that key; None uses the connection's
        ``s3br_kms_key_id``, else leaves it to the target bucket's default encryption. Every copy
        asks for a full-object checksum: the source's own algorithm where its listing named one (so
        both carry the same, and later compares compare checksums), else ``copy_checksum``. Objects
        larger than ``multipart_threshold`` bytes are copied in parts. Thread-safe: call it from
        many threads; the hook's ``max_in_flight`` bounds the requests. A source object under SSE-C
        raises ``CustomerKeyRequiredError`` at once.

        ``create_only`` never overwrites: where the endpoint has ``conditional_writes`` the write
        itself is conditional (``If-None-Match: *`` on the CopyObject, or on the
        CompleteMultipartUpload of a copy in parts), else a HeadObject just before the copy decides
        (a key written by someone else between the two is overwritten: that race is what conditional
        writes close). Return False when the key existed (nothing written), True when the copy was
        written. ``target_key``: the copy's key; default the source's. ``answered``: the error that
        the CopyObject of ``direct_copy`` (same arguments) already got, handled here as the first
        attempt's answer instead of sending it again.
        """
        key = target_key or source.key
        if create_only and not self.conditional_writes and self.exists(target_bucket, key):
            return False
        conditional = create_only and self.conditional_writes
        conflicts = 0
        copy_source = _copy_source(source_bucket, source)
        multipart = source.size > multipart_threshold
        kept = source_checksum_to_keep(source.checksum, multipart=multipart)
        while True:
            asked = kept or self.copy_checksum
            extra = self._write_fields(asked, kms_key_id)
            try:
                if answered is not None:
                    first, answered = answered, None
                    raise first  # the first attempt's answer, handled as if just received
                if multipart:
                    with self._conditional_completion(target_bucket, key, conditional):
                        self._copy_multipart(
                            copy_source,
                            target_bucket,
                            multipart_threshold,
                            tags,
                            storage_class,
                            retention,
                            extra,
                            key=key,
                        )
                else:
                    extra |= {"IfNoneMatch": "*"} if conditional else {}
                    self._copy_object(
                        source_bucket,
                        target_bucket,
                        copy_source,
                        tags,
                        storage_class,
                        retention,
                        extra,
                        key=key,
                    )
                return True
            except ClientError as error:
                if conditional and error_code(error) in EXISTS_CODES:
                    return False
                if conditional and error_code(error) == "ConditionalRequestConflict":
                    conflicts += 1  # a concurrent write of the key: S3 asks to try again
                    if conflicts <= CONFLICT_RETRIES:
                        continue
                if kept and self._checksum_refused(error, None, kept):
                    kept = None  # then the hook's choice
                    continue
                if self._checksum_refused(error, asked):
                    continue
                message = str(error.response.get("Error", {}).get("Message", ""))
                if needs_customer_key(_status(error), error_code(error), message, error.operation_name):
                    raise CustomerKeyRequiredError(source_bucket, source.key, error) from error
                raise

    @contextmanager
    def _conditional_completion(self, bucket: str, key: str, conditional: bool) -> Iterator[None]:
        """While a copy in parts runs, its CompleteMultipartUpload carries ``If-None-Match: *``
        (``SlottedClient``), if ``conditional``."""
        if not conditional:
            yield
            return
        with self._managers_lock:
            self._create_only.add((bucket, key))
        try:
            yield
        finally:
            with self._managers_lock:
                self._create_only.discard((bucket, key))

    def _copy_object(
        self,
        source_bucket: str,
        target_bucket: str,
        copy_source: dict[str, str],
        tags: dict[str, str] | None,
        storage_class: str | None,
        retention: tuple[str, datetime] | None,
        extra: dict[str, Any],
        key: str | None = None,
    ) -> None:
        """One CopyObject (into ``key``, default the source's), through the direct path where it applies."""
        fields = _copy_object_fields(tags, storage_class, retention, extra)
        with self.slots:
            if self.uses_direct_path(target_bucket) and direct_path_supported(source_bucket):
                headers = _direct_headers(fields, source_bucket, copy_source)
                try:
                    self.direct.copy(target_bucket, key or copy_source["Key"], headers)  # type: ignore[union-attr]
                    return
                except NotDirectError as error:
                    self.log.debug("%s; copying through boto3", error)
            self.client.copy_object(
                Bucket=target_bucket, Key=key or copy_source["Key"], CopySource=copy_source, **fields
            )

    def direct_copy(
        self,
        source: ObjectInfo,
        source_bucket: str,
        target_bucket: str,
        *,
        multipart_threshold: int,
        tags: dict[str, str] | None = None,
        storage_class: str | None = None,
        retention: tuple[str, datetime] | None = None,
        kms_key_id: str | None = None,
        create_only: bool = False,
    ) -> DirectCopy | None:
        """The one CopyObject that ``copy`` with these arguments would send first, for
        ``async_copies``; None where ``copy`` has more to do (a copy in parts, a HeadObject
        before a create-only copy, a bucket boto3 has to address). Sent and answered 200, it
        has done what ``copy`` does; any other answer leaves the object to ``copy``."""
        if source.size > multipart_threshold or (create_only and not self.conditional_writes):
            return None
        if not (self.uses_direct_path(target_bucket) and direct_path_supported(source_bucket)):
            return None
        asked = source_checksum_to_keep(source.checksum, multipart=False) or self.copy_checksum
        extra = self._write_fields(asked, kms_key_id)
        extra |= {"IfNoneMatch": "*"} if create_only else {}
        fields = _copy_object_fields(tags, storage_class, retention, extra)
        copy_source = _copy_source(source_bucket, source)
        return DirectCopy(target_bucket, source.key, _direct_headers(fields, source_bucket, copy_source))

    def async_copies(self) -> AsyncCopies | None:
        """A sender of ``direct_copy`` requests on one event loop, or None without a direct path."""
        direct = self.direct
        return None if direct is None else AsyncCopies(direct, self.slots)

    def _copy_multipart(
        self,
        copy_source: dict[str, str],
        target_bucket: str,
        threshold: int,
        tags: dict[str, str] | None,
        storage_class: str | None,
        retention: tuple[str, datetime] | None = None,
        fields: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> None:
        """s3transfer's managed copy; this thread waits holding no slot while the parts run."""
        extra: dict[str, Any] = {
            "TaggingDirective": "COPY" if tags is None else "REPLACE",
            **_lock_fields(retention),
            **(fields or {}),
        }
        if tags:
            extra["Tagging"] = urlencode(tags)
        if storage_class:
            extra["StorageClass"] = storage_class
        future = self._transfers(part_size(threshold)).copy(
            copy_source, target_bucket, key or copy_source["Key"], extra_args=extra
        )
        future.result()

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """Abort a multipart upload of ours, logging (not raising) if that fails too."""
        try:
            self._s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception:
            self.log.warning("Could not abort multipart upload of s3://%s/%s", bucket, key, exc_info=True)

    # Manifests (ManifestStore) -------------------------------------------------------------

    def upload(self, local_path: str, uri: str) -> None:
        bucket, key = split_s3_uri(uri)
        extra = {"ContentType": "application/gzip", **self.encryption()}
        with self._run_file(uri):
            self._transfers(UPLOAD_PART).upload(local_path, bucket, key, extra_args=extra).result()

    def download(self, uri: str, local_path: str) -> None:
        bucket, key = split_s3_uri(uri)
        self._transfers(UPLOAD_PART).download(bucket, key, local_path).result()

    def put_json(self, uri: str, body: bytes) -> None:
        bucket, key = split_s3_uri(uri)
        with self._run_file(uri):
            self._s3.put_object(
                Bucket=bucket, Key=key, Body=body, ContentType="application/json", **self.encryption()
            )

    @contextmanager
    def _run_file(self, uri: str) -> Iterator[None]:
        """A write of a run file: AccessDenied becomes ``RunFileRefusedError`` (no retries)."""
        try:
            yield
        except ClientError as error:
            if error_code(error) == "AccessDenied":
                raise RunFileRefusedError(uri, self.aws_conn_id, error) from error
            raise

    def get_json_bytes(self, uri: str) -> bytes | None:
        bucket, key = split_s3_uri(uri)
        try:
            return self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error_code(error) in ("NoSuchKey", "404"):
                return None
            raise

    # Planning ------------------------------------------------------------------------------

    def list_uploads(self, bucket: str, prefix: str) -> Iterator[tuple[str, str]]:
        """Yield ``(key, upload_id)`` of the multipart uploads in progress under ``prefix``."""
        for page in self._pages("list_multipart_uploads", Bucket=bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                yield upload["Key"], upload["UploadId"]


def outside_reserved(
    listing: Callable[[str | None], Iterator[E]], key_range: KeyRange, key_of: Callable[[E], str]
) -> Iterator[E]:
    """The entries of a sorted listing within ``key_range``, minus the reserved ``_s3br/`` keys.

    ``listing(start_after)`` lists the keys after ``start_after``. At the first reserved key
    the listing starts again after the reserved prefix, so a backup bucket's manifests are
    jumped over, not paged through; a reserved key sorting after the jump point is skipped.
    """
    start_after = key_range.start_after
    while True:
        jumped = False
        for entry in listing(start_after):
            key = key_of(entry)
            if key_range.is_past(key):
                return
            if is_reserved(key):
                if start_after is not None and start_after >= _AFTER_RESERVED:
                    continue  # past the jump point: jumping again would loop forever
                start_after, jumped = _AFTER_RESERVED, True
                break
            yield entry
        if not jumped:
            return
