"""copy_batch[p]: server-side copies of one partition's manifest, on a bounded thread pool."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from botocore.exceptions import ClientError

from s3br_provider.core.buckets import direct_path_supported
from s3br_provider.core.diff import Action, Compare, merge_listings
from s3br_provider.core.fingerprints import content_differs
from s3br_provider.core.manifest import read_manifest
from s3br_provider.core.objects import ObjectInfo
from s3br_provider.core.pool import prefetch
from s3br_provider.core.progress import Progress, format_bytes
from s3br_provider.core.s3_errors import lasting_failure_reason
from s3br_provider.core.settings import MAX_COPY_OBJECT_MB, TARGET_MODES, SettingsError, check_retention
from s3br_provider.core.sizes import MiB
from s3br_provider.hooks.errors import error_code
from s3br_provider.operators.base import DEFAULT_COPY_THREADS, InvalidArgumentsError, S3brPartitionOperator

LOOP_COPIES_IN_FLIGHT = 64
"""CopyObject requests a copy task keeps in flight on its event loop: with 30 ms round trips 32
of them kept a 10,000-object backup's two copy tasks waiting on the network, not the CPU."""

if TYPE_CHECKING:  # boto3 loads only in tasks that call S3: a no-op task starts faster
    from s3br_provider.hooks.async_copies import AsyncCopies, DirectCopy
    from s3br_provider.hooks.s3_bucket import S3BucketHook

REPLACE_TAGS = "replace_tags"
"""Record flag set by diff on a changed object: its copy replaces the backup's tags with the
source's explicitly. (TaggingDirective=COPY should do that; some endpoints, moto among them,
merge the old tags in, which would leave a returning object marked deleted.)"""
FROM_INVENTORY = "inventory"
"""Record flag: the source object was listed by an inventory report, so it may be gone since."""


class CopyMismatchError(Exception):
    """A copy does not match its source (size or content fingerprint)."""


def check_copy(
    target: S3BucketHook, bucket: str, source_hook: S3BucketHook, source_bucket: str, source: ObjectInfo
) -> None:
    """Compare a fresh copy with its source: size always; then the copy's ETag with the
    listed one (equal: the same bytes); else the full-object checksums both carry, or ETags
    that are both MD5s (``core.fingerprints``), read from a head of the source too. Where
    neither can tell (no shared checksum, multipart or KMS ETags), the size decides."""
    ours = target.head(bucket, source.key, checksums=True)
    if ours["ContentLength"] != source.size:
        raise CopyMismatchError(f"size {ours['ContentLength']} != source size {source.size}")
    if ours.get("ETag", "").strip('"') == source.etag:
        return
    theirs = source_hook.head(source_bucket, source.key, source.version_id, checksums=True)
    if content_differs(theirs, ours):
        raise CopyMismatchError(f"content differs from the source's (checksum or ETag of {ours!r:.300})")


class S3CopyBatchOperator(S3brPartitionOperator):
    """Copy every object of a copy manifest server-side, in parallel.

    CopyObject up to the multipart threshold, UploadPartCopy above it, carrying Content-Type,
    user metadata and tags: the source's as they are, or, for a record that carries tags (a
    restore's select writes them, without the deleted marker), those. Throttling and transient
    errors are retried by botocore's retry mode. A retried task first lists the target range
    and skips what is already copied. Failures are collected; the task fails at the end naming
    them, so one bad object never stops the others. Writes nothing but the copies.

    :param source_bucket: bucket the objects are copied from.
    :param target_bucket: bucket they are copied into (``aws_conn_id``'s).
    :param manifest_uri: gzip JSON Lines manifest of the objects (``diff``'s ``copy_manifest``,
        ``select``'s), or a list of them copied in turn (``gather_chunks``' merged chunks, each
        sorted, in key order); ``""``, None or ``[]``: nothing to copy.
    :param prefix: the prefix the manifest was listed under (a retry lists the target there).
    :param expected: number of objects in the manifest, for progress lines.
    :param multipart_threshold_mb: objects larger than this are copied in parts.
    :param storage_class: storage class of the copies; default: the source's class is not kept,
        S3 writes STANDARD.
    :param verify_copies: after each copy, compare its size and (single-part) ETag with the source.
    :param retention_mode: ``GOVERNANCE`` or ``COMPLIANCE``: each copy is written under S3 Object
        Lock, retained until its copy time plus ``retention_days``; ``""``: no retention.
    :param retention_days: days each copy is retained (at least 1 with a mode).
    :param kms_key_id: encrypt each copy with SSE-KMS under this key (ID, ARN or alias of the
        target's account); ``""``: the target bucket's default encryption.
    :param target_mode: ``new_bucket`` (the target is s3br's own: a retry skips finished copies
        and aborts its leftover uploads) or ``missing_only`` (the target is someone's bucket:
        a key it holds is never overwritten, counted in ``skipped_existing``; see
        ``S3BucketHook.copy``'s ``create_only``; no upload there is ever aborted).
    :param manifest_aws_conn_id: connection that reads the manifest; default: ``aws_conn_id``.
    :param source_aws_conn_id: connection of the source bucket; default: ``aws_conn_id``.
    :param threads: threads for the copies that need one (default 32): copies in parts, a
        copy after a tag read, retries; every copy when the direct path is off.
    :param copies_in_flight: S3 requests the task has in flight at once (default 64), from
        the event loop and the threads together: on the direct path a CopyObject is sent from
        one event loop and costs no thread.
    """

    default_threads = DEFAULT_COPY_THREADS
    template_fields: Sequence[str] = (
        *S3brPartitionOperator.template_fields,
        "source_bucket",
        "target_bucket",
        "manifest_uri",
        "prefix",
        "expected",
        "multipart_threshold_mb",
        "storage_class",
        "verify_copies",
        "retention_mode",
        "retention_days",
        "kms_key_id",
        "target_mode",
        "manifest_aws_conn_id",
        "source_aws_conn_id",
    )

    def __init__(
        self,
        *,
        source_bucket: str,
        target_bucket: str,
        manifest_uri: str | Sequence[str] | None,
        prefix: str = "",
        expected: int | str | None = None,
        multipart_threshold_mb: int | str = MAX_COPY_OBJECT_MB,
        storage_class: str | None = None,
        verify_copies: bool | str = False,
        retention_mode: str = "",
        retention_days: int | str = 0,
        kms_key_id: str = "",
        target_mode: str = TARGET_MODES[0],
        manifest_aws_conn_id: str | None = None,
        source_aws_conn_id: str | None = None,
        copies_in_flight: int = LOOP_COPIES_IN_FLIGHT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.copies_in_flight = copies_in_flight
        self.source_bucket = source_bucket
        self.target_bucket = target_bucket
        self.manifest_uri = manifest_uri
        self.prefix = prefix
        self.expected = expected
        self.multipart_threshold_mb = multipart_threshold_mb
        self.storage_class = storage_class
        self.verify_copies = verify_copies
        self.retention_mode = retention_mode
        self.retention_days = retention_days
        self.kms_key_id = kms_key_id
        self.target_mode = target_mode
        self.manifest_aws_conn_id = manifest_aws_conn_id
        self.source_aws_conn_id = source_aws_conn_id

    @property
    def requests_in_flight(self) -> int:
        return self.copies_in_flight

    def execute(self, context: Any) -> dict[str, Any]:
        self.check_arguments()
        if self.copies_in_flight < 1:
            raise InvalidArgumentsError(f"copies_in_flight must be at least 1, got {self.copies_in_flight}")
        try:
            check_retention(self.retention_mode, self.retention_days)
        except SettingsError as error:
            raise InvalidArgumentsError(str(error)) from None
        self.label_partition(context)
        result: dict[str, Any] = {"index": self.index, "copied": 0, "bytes": 0, "skipped_done": 0}
        result |= {"failed": 0, "failures": [], "gone_since_inventory": 0}
        if (self.partition or {}).get("chunk") is not None:
            result["chunk"] = self.partition["chunk"]
        create_only = self.target_mode == "missing_only"
        if create_only:
            result["skipped_existing"] = 0
        manifests = (
            [self.manifest_uri] if isinstance(self.manifest_uri, str) else list(self.manifest_uri or ())
        )
        manifests = [uri for uri in manifests if uri]
        if self.dry_run or not manifests:
            self.log.info("%s: nothing to copy%s", self.label, " (dry run)" if self.dry_run else "")
            return result
        target = self.hook
        manifest_hook = self.hook_for(self.manifest_aws_conn_id or self.aws_conn_id)
        entries = (ObjectInfo.from_record(r) for uri in manifests for r in read_manifest(manifest_hook, uri))
        if context["ti"].try_number > 1 and not create_only:
            self._abort_stale_uploads(target)
            entries = self._not_yet_copied(entries, target, result)
        progress = Progress(f"{self.label} copy", self.log.info, total=self.expected)
        self._markers: list[str] = []  # directory markers written by _write_marker
        copy_one = self._copier(target, self.hook_for(self.source_aws_conn_id or self.aws_conn_id))
        copies = self.run_each(
            copy_one, entries, result, "Copy", self.source_bucket, progress, direct=self._direct(target)
        )
        for obj, written in copies:
            if written is None:  # listed by an inventory report, deleted since
                result["gone_since_inventory"] += 1
                progress.add()
                continue
            if written is False:
                result["skipped_existing"] += 1
                progress.add()
                continue
            result["copied"] += 1
            result["bytes"] += obj.size
            progress.add(obj.size)
        self.log.info(
            "%s: copied %d objects (%s) into s3://%s, %d already done, %d failed",
            self.label,
            result["copied"],
            format_bytes(result["bytes"]),
            self.target_bucket,
            result["skipped_done"],
            result["failed"],
        )
        if self._markers:
            self.log.info(
                "%s: %d zero-byte directory marker(s) the endpoint would not copy (CopyObject: "
                "NoSuchKey) written as empty objects with the same Content-Type, metadata and tags, e.g. %s",
                self.label,
                len(self._markers),
                self._markers[:5],
            )
        if result["gone_since_inventory"]:
            self.log.info(
                "%s: %d object(s) the inventory report listed were deleted from s3://%s since its "
                "snapshot: nothing to copy (the next run tags their backups, if any, deleted)",
                self.label,
                result["gone_since_inventory"],
                self.source_bucket,
            )
        if create_only:
            self.log.info(
                "%s: %d key(s) the target already held, left as they are",
                self.label,
                result["skipped_existing"],
            )
        self._fail_on_failures(context, result)
        return result

    def _fail_on_failures(self, context: Any, result: dict[str, Any]) -> None:
        """Fail naming the failed objects, with the reason of each that no retry mends (an
        SSE-C source, a KMS key S3 cannot use); without retries when every failure is such."""
        reasons = []
        for failure in result["failures"]:
            reason = lasting_failure_reason(failure["error"])
            if reason is not None:
                failure["reason"] = reason
                reasons.append(reason)
        what = f"could not be copied from s3://{self.source_bucket} to s3://{self.target_bucket}"
        try:
            self.fail_on_failures(context, result, what)
        except AirflowException as error:
            if reasons and len(reasons) == result["failed"]:
                raise AirflowFailException(f"{error}: {reasons[0]}") from None
            raise

    def _direct(
        self, target: S3BucketHook
    ) -> tuple[AsyncCopies, Callable[[ObjectInfo], DirectCopy | None]] | None:
        """The event loop's share of the copies: each object whose copy is one CopyObject
        (``S3BucketHook.direct_copy``) and needs no tag read before it or check after it."""
        sender = target.async_copies()
        if sender is None or self.verify_copies:
            return None
        if not (target.uses_direct_path(self.target_bucket) and direct_path_supported(self.source_bucket)):
            return None  # boto3 addresses one of the buckets: every copy is the threads' anyway
        threshold = self.multipart_threshold_mb * MiB
        create_only = self.target_mode == "missing_only"

        def request(obj: ObjectInfo) -> DirectCopy | None:
            if obj.extra.get(REPLACE_TAGS):
                return None
            options = self._write_options(create_only)  # a retention date counts from each copy
            return target.direct_copy(
                obj,
                self.source_bucket,
                self.target_bucket,
                multipart_threshold=threshold,
                tags=obj.tags,
                **options,
            )

        return sender, request

    def _copier(
        self, target: S3BucketHook, source: S3BucketHook
    ) -> Callable[[ObjectInfo, ClientError | None], bool | None]:
        threshold = self.multipart_threshold_mb * MiB
        create_only = self.target_mode == "missing_only"

        def copy_one(obj: ObjectInfo, answered: ClientError | None = None) -> bool:
            tags = obj.tags
            if obj.extra.get(REPLACE_TAGS):
                tags = source.get_tags(self.source_bucket, obj.key)
            try:
                written = target.copy(
                    obj,
                    self.source_bucket,
                    self.target_bucket,
                    multipart_threshold=threshold,
                    tags=tags,
                    answered=answered,
                    **self._write_options(create_only),
                )
            except ClientError as error:
                if not _is_directory_marker(obj) or error_code(error) != "NoSuchKey":
                    raise
                written = self._write_marker(target, source, obj, tags, create_only)
                self._markers.append(obj.key)
            if written and self.verify_copies:
                check_copy(target, self.target_bucket, source, self.source_bucket, obj)
            return written

        def copy_unless_gone(obj: ObjectInfo, answered: ClientError | None = None) -> bool | None:
            """None: an object an inventory report listed that is no longer in the source."""
            try:
                return copy_one(obj, answered)
            except ClientError as error:
                if obj.extra.get(FROM_INVENTORY) and error_code(error) in ("NoSuchKey", "404", "NotFound"):
                    return None
                raise

        return copy_unless_gone

    def _write_marker(
        self,
        target: S3BucketHook,
        source: S3BucketHook,
        obj: ObjectInfo,
        tags: dict[str, str] | None,
        create_only: bool,
    ) -> bool:
        """A zero-byte key ending in "/" that the endpoint listed but answers CopyObject with
        NoSuchKey (SeaweedFS's directory markers) is written as an empty object instead, with
        the source's Content-Type, user metadata and tags (from HeadObject and GetObjectTagging
        where they answer, else the record's tags)."""
        content_type, metadata = None, {}
        try:
            head = source.head(self.source_bucket, obj.key, obj.version_id)
            content_type, metadata = head.get("ContentType"), head.get("Metadata", {})
        except ClientError as error:
            self.log.debug(
                "Head of marker s3://%s/%s failed: %s", self.source_bucket, obj.key, error_code(error)
            )
        if tags is None:
            try:
                tags = source.get_tags(self.source_bucket, obj.key, obj.version_id)
            except ClientError as error:
                self.log.debug(
                    "Tags of marker s3://%s/%s unread: %s", self.source_bucket, obj.key, error_code(error)
                )
                tags = {}
        return target.put_empty(
            self.target_bucket,
            obj.key,
            content_type=content_type,
            metadata=metadata,
            tags=tags,
            **self._write_options(create_only),
        )

    def _write_options(self, create_only: bool) -> dict[str, Any]:
        """The hook's write arguments every object of this task shares (copies and markers)."""
        return {
            "storage_class": self.storage_class or None,
            "retention": self._retention(),
            "kms_key_id": self.kms_key_id or None,
            "create_only": create_only,
        }

    def _retention(self) -> tuple[str, datetime] | None:
        """Object Lock mode and retain-until date of a copy made now, or None."""
        if not self.retention_mode:
            return None
        return self.retention_mode, datetime.now(UTC) + timedelta(days=self.retention_days)

    def _abort_stale_uploads(self, target: S3BucketHook) -> None:
        """Abort multipart uploads a killed earlier try left in this partition's key range.

        The target is s3br's own (a backup bucket, or a restore's new bucket), so an upload in
        progress there, in this range, on a retry of this task, can only be a leftover of ours.
        """
        aborted = 0
        for key, upload_id in target.list_uploads(self.target_bucket, self.prefix):
            if self.key_range.contains(key):
                target.abort_upload(self.target_bucket, key, upload_id)
                aborted += 1
        if aborted:
            self.log.info("%s: aborted %d multipart upload(s) left by an earlier try", self.label, aborted)

    def _not_yet_copied(
        self, entries: Iterator[ObjectInfo], target: S3BucketHook, result: dict[str, Any]
    ) -> Iterator[ObjectInfo]:
        """On a retry, merge the manifest with the target's listing and drop finished copies."""
        self.log.info(
            "%s: retry: listing s3://%s to skip what is already copied", self.label, self.target_bucket
        )
        listing = prefetch(target.iter_objects(self.target_bucket, self.prefix, self.key_range))
        for action, src, _ in merge_listings(entries, listing, Compare.SIZE_MTIME):
            if action is Action.NEW or action is Action.CHANGED:
                yield src
            elif action is Action.UNCHANGED:
                result["skipped_done"] += 1


def _is_directory_marker(obj: ObjectInfo) -> bool:
    return obj.size == 0 and obj.key.endswith("/")
