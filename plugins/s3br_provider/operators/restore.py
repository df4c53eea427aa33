"""Restore steps: create the target bucket, select objects, request archive restores."""

from __future__ import annotations

from collections import defaultdict
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException
from botocore.exceptions import ClientError

from s3br_provider.core.manifest import read_manifest, writing_manifest
from s3br_provider.core.objects import ObjectInfo
from s3br_provider.core.pool import bounded_map, bounded_map_ordered, prefetch
from s3br_provider.core.progress import format_bytes
from s3br_provider.core.restore_state import RestoreStatus, needs_restore, parse_restore_header
from s3br_provider.core.selection import is_selected
from s3br_provider.core.settings import RestoreSettings
from s3br_provider.core.tags import strip_marker
from s3br_provider.core.versions import objects_as_of
from s3br_provider.hooks.errors import error_code
from s3br_provider.operators.base import S3brBaseOperator, S3brPartitionOperator
from s3br_provider.operators.copy_batch import TAGS_UNKNOWN
from s3br_provider.operators.validate import InvalidRunError, publish_each

if TYPE_CHECKING:  # boto3 loads only in tasks that call S3: a no-op task starts faster
    from s3br_provider.hooks.s3_bucket import S3BucketHook


ARCHIVE_STATUS = "archive_status"
"""Record flag holding an Intelligent-Tiering object's ArchiveStatus."""


def restore_settings_of(settings: dict[str, Any]) -> RestoreSettings:
    return RestoreSettings(**{k: v for k, v in settings.items() if k in RestoreSettings.__dataclass_fields__})


class S3CreateTargetBucketOperator(S3brBaseOperator):
    """Create the restore's target bucket (or accept an existing empty one).

    Copies the backup bucket's versioning only when the ``copy_versioning`` setting asks.
    """

    ui_color = "#d4edda"

    def execute(self, context: Any) -> dict[str, Any]:
        s = self.settings
        target = self.hook(s["target_aws_conn_id"])
        bucket = s["target_bucket"]
        if s["dry_run"]:
            self.log.info("dry run: would create s3://%s", bucket)
            return {"created": False}
        status = target.bucket_status(bucket)
        if status == "ok":
            if target.has_objects(bucket):
                raise InvalidRunError(f"target_bucket {bucket!r} is no longer empty: nothing was restored")
            self.log.info("s3://%s exists and is empty: restoring into it", bucket)
        else:
            target.create_bucket(bucket)
            self.log.info("Created s3://%s", bucket)
        if s["copy_versioning"] and self.hook(s["backup_aws_conn_id"]).is_versioned(s["backup_bucket"]):
            target.enable_versioning(bucket)
            self.log.info("Enabled versioning on s3://%s like the backup bucket", bucket)
        return {"created": status != "ok"}


class S3RestoreSelectOperator(S3brPartitionOperator):
    """select[p]: the backup objects of a partition that the restore brings back.

    Lists the partition (with ``as_of``: the version current at that instant, from
    ListObjectVersions), reads each object's tags, leaves out objects marked deleted unless
    ``include_deleted``, and writes two manifests: every selected object (with its tags, minus
    the deleted marker) and the archived ones that need a RestoreObject first.

    :param threads: concurrent tag reads.
    """

    def __init__(self, *, threads: int = 32, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threads = threads

    def execute(self, context: Any) -> dict[str, Any]:
        self.label_partition(context)
        s = self.settings
        settings = restore_settings_of(s)
        backup = self.hook(s["backup_aws_conn_id"])
        as_of = settings.as_of_epoch
        if as_of is None:
            listing = backup.iter_objects(s["backup_bucket"], s["prefix"], self.key_range)
        else:
            versions = backup.iter_versions(s["backup_bucket"], s["prefix"], self.key_range)
            listing = objects_as_of(versions, as_of)
        restore_uri = f"{s['run_uri']}/restore/p{self.index:05d}.jsonl.gz"
        archived_uri = f"{s['run_uri']}/archived/p{self.index:05d}.jsonl.gz"
        classes: dict[str, dict[str, int]] = defaultdict(lambda: {"objects": 0, "bytes": 0})
        counts = {"selected": 0, "skipped_deleted": 0, "archived": 0, "bytes": 0}

        def inspect(obj: ObjectInfo) -> ObjectInfo:
            return self._inspect(backup, s["backup_bucket"], obj)

        with ExitStack() as stack:
            writers = None
            if not s["dry_run"]:
                writers = (
                    stack.enter_context(writing_manifest(backup, restore_uri)),
                    stack.enter_context(writing_manifest(backup, archived_uri)),
                )
            for obj, _, error in bounded_map_ordered(inspect, prefetch(listing), workers=self.threads):
                if error is not None:
                    raise AirflowException(
                        f"could not read s3://{s['backup_bucket']}/{obj.key}: {error_code(error)}: {error}"
                    ) from error
                if obj.tags is not None and not is_selected(
                    obj.tags, include_deleted=settings.include_deleted, as_of=as_of
                ):
                    counts["skipped_deleted"] += 1
                    continue
                obj.tags = None if obj.tags is None else strip_marker(obj.tags)
                archived = needs_restore(obj.storage_class, obj.extra.get(ARCHIVE_STATUS))
                counts["selected"] += 1
                counts["archived"] += archived
                counts["bytes"] += obj.size
                classes[obj.storage_class]["objects"] += 1
                classes[obj.storage_class]["bytes"] += obj.size
                if writers:
                    writers[0].write(obj.to_record())
                    if archived:
                        writers[1].write(obj.to_record())
        written = not s["dry_run"]
        self.log.info(
            "p%d %s: %d objects selected (%s), %d archived, %d left out as deleted; by class: %s",
            self.index,
            self.key_range.label,
            counts["selected"],
            format_bytes(counts["bytes"]),
            counts["archived"],
            counts["skipped_deleted"],
            ", ".join(f"{c} {v['objects']} ({format_bytes(v['bytes'])})" for c, v in sorted(classes.items())),
        )
        archived_manifest = archived_uri if written and counts["archived"] else None
        publish_each(
            context,
            # "" not None: Airflow reads a stored None XCom as missing, failing the sensor's template.
            {"archived_manifest": archived_manifest or "", "label": f"p{self.index} {self.key_range.label}"},
        )
        return {
            "index": self.index,
            "label": self.key_range.label,
            **counts,
            "classes": dict(classes),
            "copy_manifest": restore_uri if written and counts["selected"] else None,
            "archived_manifest": archived_manifest,
            "new": counts["selected"],
        }

    @staticmethod
    def _inspect(backup: S3BucketHook, bucket: str, obj: ObjectInfo) -> ObjectInfo:
        if obj.storage_class == "INTELLIGENT_TIERING":
            status = backup.head(bucket, obj.key, obj.version_id).get("ArchiveStatus")
            if status:
                obj.extra[ARCHIVE_STATUS] = status
        try:
            obj.tags = backup.get_tags(bucket, obj.key, obj.version_id)
        except ClientError as error:
            # Some endpoints (moto) refuse GetObjectTagging on an archived object until it is
            # restored; AWS allows it. The copy step reads the tags once the object is readable.
            if error_code(error) != "InvalidObjectState":
                raise
            obj.extra[TAGS_UNKNOWN] = True
        return obj


class S3RequestRestoreOperator(S3brPartitionOperator):
    """request_restore[p]: RestoreObject for every archived object of the partition.

    A restore already in progress or done is not an error; an expired one is asked again.

    :param work: this partition's select result (with ``archived_manifest``).
    """

    template_fields: tuple[str, ...] = ("settings", "partition", "work")

    def __init__(self, *, work: dict[str, Any] | Any, threads: int = 16, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.work = work
        self.threads = threads

    def execute(self, context: Any) -> dict[str, Any]:
        self.label_partition(context)
        s = self.settings
        result = {"index": self.index, "requested": 0, "in_progress": 0, "ready": 0}
        manifest = self.work.get("archived_manifest")
        if s["dry_run"] or not manifest:
            self.log.info("p%d: no restore requests%s", self.index, " (dry run)" if s["dry_run"] else "")
            return result
        backup = self.hook(s["backup_aws_conn_id"])
        records = (ObjectInfo.from_record(r) for r in read_manifest(backup, manifest))

        def request(obj: ObjectInfo) -> str:
            return ensure_restore(backup, s["backup_bucket"], obj, s["restore_tier"], s["restore_days"])

        failures = []
        for obj, outcome, error in bounded_map(request, records, workers=self.threads):
            if error is not None:
                self.log.warning(
                    "RestoreObject for s3://%s/%s failed: %s", s["backup_bucket"], obj.key, error
                )
                failures.append(obj.key)
            else:
                result[outcome] += 1
        self.log.info(
            "p%d %s: %d restores requested (tier %s, %d days), %d in progress, %d already readable",
            self.index,
            self.key_range.label,
            result["requested"],
            s["restore_tier"],
            s["restore_days"],
            result["in_progress"],
            result["ready"],
        )
        if failures:
            raise AirflowException(
                f"p{self.index}: RestoreObject failed for {len(failures)} object(s): {failures[:5]}"
            )
        return result


def ensure_restore(backup: S3BucketHook, bucket: str, obj: ObjectInfo, tier: str, days: int) -> str:
    """Request a restore unless one is in progress or done; return ``requested``,
    ``in_progress`` or ``ready``."""
    head = backup.head(bucket, obj.key, obj.version_id)
    state = parse_restore_header(
        head.get("Restore"),
        head.get("StorageClass") or obj.storage_class,
        datetime.now(UTC),
        head.get("ArchiveStatus") or obj.extra.get(ARCHIVE_STATUS),
    )
    if state.readable:
        return "ready"
    if state.status is RestoreStatus.IN_PROGRESS:
        return "in_progress"
    return backup.request_restore(bucket, obj, tier=tier, days=days)
