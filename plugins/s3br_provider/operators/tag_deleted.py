"""tag_deleted[p]: mark backup objects whose source is gone; never delete them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk.exceptions import AirflowException

from s3br_provider.core.manifest import read_manifest
from s3br_provider.core.objects import ObjectInfo
from s3br_provider.core.pool import bounded_map
from s3br_provider.core.progress import Progress
from s3br_provider.core.tags import mark_deleted
from s3br_provider.hooks.errors import error_code
from s3br_provider.operators.base import S3brPartitionOperator

MAX_REPORTED = 50


class S3TagDeletedOperator(S3brPartitionOperator):
    """Add ``Deleted=True`` and ``DeletedAt`` to backup objects whose source vanished.

    Existing tags are kept; an object already marked keeps its first ``DeletedAt``. When the
    10-tag limit leaves no room, user tags sorting last by key make room and are logged.

    :param work: this partition's diff result (with the ``vanished_manifest`` URI).
    :param threads: concurrent tag requests.
    """

    template_fields: tuple[str, ...] = ("settings", "partition", "work")

    def __init__(self, *, work: dict[str, Any] | Any, threads: int = 16, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.work = work
        self.threads = threads

    def execute(self, context: Any) -> dict[str, Any]:
        self.label_partition(context)
        s = self.settings
        result: dict[str, Any] = {"index": self.index, "tagged": 0, "already_tagged": 0, "failed": 0}
        result |= {"dropped_tags": [], "failures": []}
        manifest_uri = self.work.get("vanished_manifest")
        if s["dry_run"] or not s["tag_deleted"] or not manifest_uri:
            reason = (
                "dry run"
                if s["dry_run"]
                else "tag_deleted is off"
                if not s["tag_deleted"]
                else "none vanished"
            )
            self.log.info("p%d: nothing to tag (%s)", self.index, reason)
            return result
        backup = self.hook(s["backup_aws_conn_id"])
        bucket = s["backup_bucket"]
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

        progress = Progress(f"p{self.index} tag", self.log.info, total=self.work.get("vanished"))
        records = (ObjectInfo.from_record(r) for r in read_manifest(backup, manifest_uri))
        for obj, outcome, error in bounded_map(tag_one, records, workers=self.threads):
            progress.add(failed=error is not None)
            if error is not None:
                result["failed"] += 1
                self.log.warning("Tagging s3://%s/%s as deleted failed: %s", bucket, obj.key, error)
                if len(result["failures"]) < MAX_REPORTED:
                    result["failures"].append({"key": obj.key, "error": error_code(error)})
            else:
                result["tagged" if outcome == "tagged" else "already_tagged"] += 1
        self.log.info(
            "p%d %s: tagged %d vanished objects as deleted, %d already tagged, %d failed",
            self.index,
            self.key_range.label,
            result["tagged"],
            result["already_tagged"],
            result["failed"],
        )
        if result["failed"]:
            context["ti"].xcom_push(key="return_value", value=result)
            raise AirflowException(
                f"p{self.index}: {result['failed']} object(s) could not be tagged in s3://{bucket}"
            )
        return result
