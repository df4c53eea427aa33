"""tag_deleted[p]: mark backup objects whose source is gone; never delete them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from s3br_provider.core.manifest import read_manifest
from s3br_provider.core.objects import ObjectInfo
from s3br_provider.core.progress import Progress
from s3br_provider.core.settings import BACKUP_DEFAULTS
from s3br_provider.core.tags import mark_deleted
from s3br_provider.operators.base import S3brPartitionOperator

MAX_REPORTED = 50
MARKED_DELETED = "marked_deleted"
"""Record flag set by ``diff``: the backup's deleted-key index says this object carries the
marker already (``hooks.deleted_index``), so it is counted as already tagged without a request."""


class S3TagDeletedOperator(S3brPartitionOperator):
    """Add ``Deleted=True`` and ``DeletedAt`` to backup objects whose source vanished.

    Existing tags are kept; an object already marked keeps its first ``DeletedAt``. When the
    10-tag limit leaves no room, user tags sorting last by key make room and are logged.
    Nothing is ever deleted.

    :param backup_bucket: the bucket whose objects are tagged (``aws_conn_id``'s).
    :param manifest_uri: gzip JSON Lines manifest of the vanished objects (``diff``'s
        ``vanished_manifest``); ``""`` or None: nothing to tag.
    :param expected: number of objects in the manifest, for progress lines.
    :param tag_deleted: False: tag nothing (the option of ``s3_backup``).
    """

    template_fields: Sequence[str] = (
        *S3brPartitionOperator.template_fields,
        "backup_bucket",
        "manifest_uri",
        "expected",
        "tag_deleted",
    )

    def __init__(
        self,
        *,
        backup_bucket: str,
        manifest_uri: str | None,
        expected: int | str | None = None,
        tag_deleted: bool | str = BACKUP_DEFAULTS.tag_deleted,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.backup_bucket = backup_bucket
        self.manifest_uri = manifest_uri
        self.expected = expected
        self.tag_deleted = tag_deleted

    def execute(self, context: Any) -> dict[str, Any]:
        self.check_arguments()
        self.label_partition(context)
        result: dict[str, Any] = {"index": self.index, "tagged": 0, "already_tagged": 0, "failed": 0}
        result |= {"marked_by_index": 0, "dropped_tags": [], "failures": []}
        reason = "dry run" if self.dry_run else "tag_deleted is off" if not self.tag_deleted else ""
        if reason or not self.manifest_uri:
            self.log.info("%s: nothing to tag (%s)", self.label, reason or "none vanished")
            return result
        backup, bucket = self.hook, self.backup_bucket
        now = datetime.now(UTC)

        def tag_one(obj: ObjectInfo) -> str:
            existing = backup.get_tags(bucket, obj.key)
            merge = mark_deleted(existing, now)
            if merge.tags == existing:
                return "already"
            backup.put_tags(bucket, obj.key, merge.tags)
            if merge.dropped:
                self.log.warning(
                    "s3://%s/%s had %d tags: dropped %s to make room for the Deleted marker",
                    bucket,
                    obj.key,
                    len(existing),
                    sorted(merge.dropped),
                )
                if len(result["dropped_tags"]) < MAX_REPORTED:
                    result["dropped_tags"].append({"key": obj.key, "tags": merge.dropped})
            return "tagged"

        progress = Progress(f"{self.label} tag", self.log.info, total=self.expected)
        records = (ObjectInfo.from_record(r) for r in read_manifest(backup, self.manifest_uri))

        def unmarked() -> Iterator[ObjectInfo]:
            """The records to look at; those the index marked are counted here, not sent to
            the threads (a partition can hold millions of them)."""
            for obj in records:
                if obj.extra.get(MARKED_DELETED):
                    progress.add()
                    result["already_tagged"] += 1
                    result["marked_by_index"] += 1
                else:
                    yield obj

        for _, outcome in self.run_each(tag_one, unmarked(), result, "Tagging as deleted", bucket, progress):
            progress.add()
            result["tagged" if outcome == "tagged" else "already_tagged"] += 1
        self.log.info(
            "%s: tagged %d vanished objects as deleted, %d already tagged (%d of them by the "
            "deleted-key index, unread), %d failed",
            self.label,
            result["tagged"],
            result["already_tagged"],
            result["marked_by_index"],
            result["failed"],
        )
        self.fail_on_failures(context, result, f"could not be tagged in s3://{bucket}")
        return result
