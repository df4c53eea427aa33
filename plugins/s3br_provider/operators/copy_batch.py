"""copy_batch[p]: server-side copies of one partition's manifest, on a bounded thread pool."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException

from s3br_provider.core.diff import Action, Compare, is_multipart_etag, merge_listings
from s3br_provider.core.manifest import read_manifest
from s3br_provider.core.objects import ObjectInfo
from s3br_provider.core.pool import bounded_map, prefetch
from s3br_provider.core.progress import Progress, format_bytes
from s3br_provider.core.selection import is_selected
from s3br_provider.core.settings import parse_instant
from s3br_provider.core.sizes import MiB
from s3br_provider.core.tags import strip_marker
from s3br_provider.hooks.errors import error_code
from s3br_provider.operators.base import DEFAULT_COPY_THREADS, S3brPartitionOperator

if TYPE_CHECKING:  # boto3 loads only in tasks that call S3: a no-op task starts faster
    from s3br_provider.hooks.s3_bucket import S3BucketHook

MAX_REPORTED_FAILURES = 50
REPLACE_TAGS = "replace_tags"
"""Record flag set by diff on a changed object: its copy replaces the backup's tags with the
source's explicitly. (TaggingDirective=COPY should do that; some endpoints, moto among them,
merge the old tags in, which would leave a returning object marked deleted.)"""
TAGS_UNKNOWN = "tags_unknown"
"""Record flag set by select when an archived object's tags can only be read once restored."""


@dataclass(frozen=True, slots=True)
class CopyRoute:
    """Where a copy reads and writes, taken from the run's settings."""

    source_bucket: str
    source_conn: str
    target_bucket: str
    target_conn: str
    manifest_conn: str
    restore: bool

    @classmethod
    def from_settings(cls, settings: dict[str, Any], mode: str) -> CopyRoute:
        if mode == "backup":
            return cls(
                settings["source_bucket"],
                settings["source_aws_conn_id"],
                settings["backup_bucket"],
                settings["backup_aws_conn_id"],
                settings["backup_aws_conn_id"],
                restore=False,
            )
        if mode == "restore":
            return cls(
                settings["backup_bucket"],
                settings["backup_aws_conn_id"],
                settings["target_bucket"],
                settings["target_aws_conn_id"],
                settings["backup_aws_conn_id"],
                restore=True,
            )
        raise ValueError(f"mode must be 'backup' or 'restore', got {mode!r}")


class CopyMismatchError(Exception):
    """A copy does not match its source (size or content fingerprint)."""


def check_copy(target: S3BucketHook, bucket: str, source: ObjectInfo, *, multipart: bool) -> None:
    """Compare a fresh copy with its source: size always; the ETag (an MD5 of the content)
    when both are single-part, since a multipart ETag depends on the part sizes."""
    head = target.head(bucket, source.key)
    if head["ContentLength"] != source.size:
        raise CopyMismatchError(f"size {head['ContentLength']} != source size {source.size}")
    etag = head.get("ETag", "").strip('"')
    if not multipart and not is_multipart_etag(source.etag) and etag != source.etag:
        raise CopyMismatchError(f"ETag {etag} != source ETag {source.etag}")


class S3CopyBatchOperator(S3brPartitionOperator):
    """Copy every object of a partition's manifest server-side, in parallel.

    CopyObject up to the multipart threshold, UploadPartCopy above it, carrying Content-Type,
    user metadata and tags. Throttling and transient errors are retried by botocore's standard
    retry mode. A retried task first lists the target range and skips what is already copied.
    Failures are collected; the task fails at the end naming them, so one bad object never
    stops the others.

    :param work: the diff (backup) or select (restore) result of this partition.
    :param mode: ``"backup"`` (tags copied as they are) or ``"restore"`` (tags from the
        manifest, without the deleted marker, and the ``storage_class`` setting).
    :param threads: concurrent copies.
    """

    template_fields: tuple[str, ...] = ("settings", "partition", "work")

    def __init__(
        self,
        *,
        work: dict[str, Any] | Any,
        mode: str = "backup",
        threads: int = DEFAULT_COPY_THREADS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.work = work
        self.mode = mode
        self.threads = threads

    def execute(self, context: Any) -> dict[str, Any]:
        self.label_partition(context)
        s = self.settings
        route = CopyRoute.from_settings(s, self.mode)
        result: dict[str, Any] = {"index": self.index, "copied": 0, "bytes": 0, "skipped_done": 0}
        result |= {"skipped_deleted": 0, "failed": 0, "failures": []}
        manifest_uri = self.work.get("copy_manifest")
        if s["dry_run"] or not manifest_uri:
            self.log.info("p%d: nothing to copy%s", self.index, " (dry run)" if s["dry_run"] else "")
            return result
        target = self.hook(route.target_conn)
        entries = (
            ObjectInfo.from_record(r) for r in read_manifest(self.hook(route.manifest_conn), manifest_uri)
        )
        if context["ti"].try_number > 1:
            self._abort_stale_uploads(target, route)
            entries = self._not_yet_copied(entries, target, route, result)
        progress = Progress(
            f"p{self.index} copy", self.log.info, total=self.work.get("new", 0) + self.work.get("changed", 0)
        )
        threshold = s["multipart_threshold_mb"] * MiB
        copy_one = self._copier(target, route, threshold, s.get("storage_class"))
        for obj, outcome, error in bounded_map(copy_one, entries, workers=self.threads):
            if error is not None:
                self._record_failure(result, route, obj, error)
                progress.add(failed=True)
            elif outcome == "skipped_deleted":
                result["skipped_deleted"] += 1
            else:
                result["copied"] += 1
                result["bytes"] += obj.size
                progress.add(obj.size)
        self.log.info(
            "p%d %s: copied %d objects (%s) into s3://%s, %d already done, %d skipped as deleted, %d failed",
            self.index,
            self.key_range.label,
            result["copied"],
            format_bytes(result["bytes"]),
            route.target_bucket,
            result["skipped_done"],
            result["skipped_deleted"],
            result["failed"],
        )
        if result["failed"]:
            # The report reads this partition's result even though the task fails.
            context["ti"].xcom_push(key="return_value", value=result)
            shown = ", ".join(f"{f['key']!r} ({f['error']})" for f in result["failures"][:5])
            raise AirflowException(
                f"p{self.index}: {result['failed']} object(s) could not be copied from "
                f"s3://{route.source_bucket} to s3://{route.target_bucket}: {shown}"
            )
        return result

    def _copier(self, target: S3BucketHook, route: CopyRoute, threshold: int, storage_class: str | None):
        include_deleted = self.settings.get("include_deleted", False)
        as_of = (
            parse_instant(self.settings["as_of"], "as_of").timestamp() if self.settings.get("as_of") else None
        )
        verify = self.settings.get("verify", False)

        def copy_one(obj: ObjectInfo) -> str:
            tags = None
            if obj.extra.get(REPLACE_TAGS):
                tags = target.get_tags(route.source_bucket, obj.key)
            if route.restore:
                tags = obj.tags
                if obj.extra.get(TAGS_UNKNOWN):
                    tags = target.get_tags(route.source_bucket, obj.key, obj.version_id)
                    if not is_selected(tags, include_deleted=include_deleted, as_of=as_of):
                        return "skipped_deleted"
                tags = strip_marker(tags or {})
            target.copy(
                obj,
                route.source_bucket,
                route.target_bucket,
                multipart_threshold=threshold,
                tags=tags,
                storage_class=storage_class if route.restore else None,
            )
            if verify:
                check_copy(target, route.target_bucket, obj, multipart=obj.size > threshold)
            return "copied"

        return copy_one

    def _abort_stale_uploads(self, target: S3BucketHook, route: CopyRoute) -> None:
        """Abort multipart uploads a killed earlier try left in this partition's key range.

        The target is s3br's own (a backup bucket, or a restore's new bucket), so an upload in
        progress there, in this range, on a retry of this task, can only be a leftover of ours.
        """
        aborted = 0
        for key, upload_id in target.list_uploads(route.target_bucket, self.settings["prefix"]):
            if self.key_range.contains(key):
                target.abort_upload(route.target_bucket, key, upload_id)
                aborted += 1
        if aborted:
            self.log.info("p%d: aborted %d multipart upload(s) left by an earlier try", self.index, aborted)

    def _not_yet_copied(
        self, entries: Iterator[ObjectInfo], target: S3BucketHook, route: CopyRoute, result: dict[str, Any]
    ) -> Iterator[ObjectInfo]:
        """On a retry, merge the manifest with the target's listing and drop finished copies."""
        self.log.info(
            "p%d: retry: listing s3://%s to skip what is already copied", self.index, route.target_bucket
        )
        listing = prefetch(target.iter_objects(route.target_bucket, self.settings["prefix"], self.key_range))
        for action, src, _ in merge_listings(entries, listing, Compare.SIZE_MTIME):
            if action is Action.NEW or action is Action.CHANGED:
                yield src
            elif action is Action.UNCHANGED:
                result["skipped_done"] += 1

    def _record_failure(
        self, result: dict[str, Any], route: CopyRoute, obj: ObjectInfo, error: BaseException
    ) -> None:
        result["failed"] += 1
        self.log.warning(
            "Copy of s3://%s/%s to s3://%s failed: %s: %s",
            route.source_bucket,
            obj.key,
            route.target_bucket,
            error_code(error),
            error,
        )
        if len(result["failures"]) < MAX_REPORTED_FAILURES:
            result["failures"].append({"key": obj.key, "error": error_code(error)})
