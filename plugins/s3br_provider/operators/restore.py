"""Restore steps: create the target bucket, select objects, request archive restores."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException

from s3br_provider.core.chunks import ALL_KEYS, chunk_outputs, chunk_uri, writing_chunks
from s3br_provider.core.idle import restore_partition_idle
from s3br_provider.core.manifest import read_manifest, writing_manifest
from s3br_provider.core.objects import ObjectInfo
from s3br_provider.core.pool import bounded_map_ordered, prefetch
from s3br_provider.core.progress import format_bytes
from s3br_provider.core.restore_state import ARCHIVE_STATUS, needs_restore
from s3br_provider.core.selection import is_selected
from s3br_provider.core.settings import RESTORE_DEFAULTS as R
from s3br_provider.core.settings import as_of_epoch
from s3br_provider.core.tags import DELETED_TAG, strip_marker
from s3br_provider.core.versions import objects_as_of
from s3br_provider.hooks.deleted_index import DeletedKeys, read_deleted_keys
from s3br_provider.hooks.errors import error_code
from s3br_provider.operators.base import (
    MAX_REPORTED_FAILURES,
    WHOLE_KEY_SPACE,
    InvalidArgumentsError,
    KeyedResultMixin,
    S3brBaseOperator,
    S3brPartitionOperator,
)
from s3br_provider.operators.chunks import copy_chunk_keys
from s3br_provider.operators.idle import skip_idle_steps, steps_to_skip
from s3br_provider.operators.plan import S3PlanPartitionsOperator

if TYPE_CHECKING:  # boto3 loads only in tasks that call S3: a no-op task starts faster
    from s3br_provider.hooks.glacier_restore import GlacierRestoreHook
    from s3br_provider.hooks.s3_bucket import S3BucketHook


class S3CreateTargetBucketOperator(S3brBaseOperator):
    """Create a restore's target bucket (or accept an existing empty one).

    :param target_bucket: the bucket to create (``aws_conn_id``'s).
    :param backup_bucket: the backup, whose versioning ``copy_versioning`` copies.
    :param copy_versioning: enable versioning on the target if the backup bucket is versioned.
    :param backup_aws_conn_id: connection of ``backup_bucket``; default: ``aws_conn_id``.
    :param target_mode: ``new_bucket``; or ``missing_only``: the bucket must exist and may hold
        objects; nothing is created or changed.
    :param dry_run: create nothing.
    """

    ui_color = "#d4edda"
    template_fields: Sequence[str] = (
        *S3brBaseOperator.template_fields,
        "target_bucket",
        "backup_bucket",
        "copy_versioning",
        "backup_aws_conn_id",
        "target_mode",
        "dry_run",
    )

    def __init__(
        self,
        *,
        target_bucket: str,
        backup_bucket: str | None = None,
        copy_versioning: bool | str = R.copy_versioning,
        backup_aws_conn_id: str | None = None,
        target_mode: str = R.target_mode,
        dry_run: bool | str = R.dry_run,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.target_bucket = target_bucket
        self.backup_bucket = backup_bucket
        self.copy_versioning = copy_versioning
        self.backup_aws_conn_id = backup_aws_conn_id
        self.target_mode = target_mode
        self.dry_run = dry_run

    def execute(self, context: Any) -> dict[str, Any]:
        self.check_arguments()
        target, bucket = self.hook, self.target_bucket
        if self.target_mode == "missing_only":
            if target.bucket_status(bucket) != "ok":
                raise InvalidArgumentsError(f"target_bucket {bucket!r} is gone: nothing was restored")
            self.log.info("s3://%s exists: restoring only the keys it lacks (missing_only)", bucket)
            return {"created": False}
        if self.dry_run:
            self.log.info("dry run: would create s3://%s", bucket)
            return {"created": False}
        status = target.bucket_status(bucket)
        if status == "ok":
            if target.has_objects(bucket):
                raise InvalidArgumentsError(
                    f"target_bucket {bucket!r} is no longer empty: nothing was restored"
                )
            self.log.info("s3://%s exists and is empty: restoring into it", bucket)
        else:
            target.create_bucket(bucket)
            self.log.info("Created s3://%s", bucket)
        source = self.backup_bucket
        if (
            self.copy_versioning
            and source
            and self.hook_for(self.backup_aws_conn_id or self.aws_conn_id).is_versioned(source)
        ):
            target.enable_versioning(bucket)
            self.log.info("Enabled versioning on s3://%s like s3://%s", bucket, source)
        return {"created": status != "ok"}


class S3RestorePlanOperator(S3PlanPartitionsOperator):
    """plan_partitions of a restore: ``S3PlanPartitionsOperator``, or, for a restore of named
    keys (at most 1,000), one partition planned without listing anything.

    :param keys: the named keys; empty: plan the backup's key space.
    """

    template_fields: Sequence[str] = (*S3PlanPartitionsOperator.template_fields, "keys")

    def __init__(self, *, keys: list[str] | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keys = keys

    def execute(self, context: Any) -> list[dict[str, Any]]:
        self.check_arguments()
        if not self.keys:
            return super().execute(context)
        self.log.info("Planned 1 partition for %d named key(s)", len(self.keys))
        return [dict(WHOLE_KEY_SPACE)]


class S3RestoreSelectOperator(KeyedResultMixin, S3brPartitionOperator):
    """select[p]: the backup objects of a partition that a restore brings back.

    Lists the partition (with ``as_of``: the version current at that instant, from
    ListObjectVersions), reads each object's tags, leaves out objects marked deleted unless
    ``include_deleted``, and writes two manifests: every selected object (with its tags, minus
    the deleted marker, which the copy writes) and the archived ones that need a RestoreObject
    first. Returns counts and both URIs, each also its own XCom (``""`` when there is none).

    :param backup_bucket: where the backup lives (``aws_conn_id``'s); the manifests go there too.
    :param prefix: only keys under this prefix.
    :param include_deleted: also select objects tagged ``Deleted=True``.
    :param as_of: ISO-8601 instant: select the backup as it stood then (versioned bucket).
    :param keys: select only these keys (those within the partition), each read by its name
        (HeadObject, or its versions with ``as_of``) instead of listing the partition; a key the
        backup lacks is counted in ``missing`` and named in ``missing_keys``, one left out as
        deleted in ``deleted_keys`` (up to 50 of each).
    :param chunk_copies: write the selected objects' manifest in chunks of ``copy_chunk_keys``
        (``restore_group`` sets it), as ``S3DiffPartitionOperator`` does: ``copy_manifest`` the
        first (``copy_manifest_objects`` records, over ``copy_partition``), ``copy_chunks`` the
        others, for ``gather_chunks``; without it ``copy_manifest`` holds every selected object.
    :param copy_chunk_keys: most records per chunk; default ``[s3br] copy_chunk_keys``.
    :param skip_when_idle: tasks downstream of this one in its mapped task group, by their ids
        within the group (``restore_group``: ``request_restore``, ``wait_for_restore``), marked
        skipped for this map index when the partition has no archived object, so they never
        start (``operators.idle``). Default: none.
    :param output_keys: the keys of the result also pushed as XComs of their own (any of
        ``OUTPUT_KEYS``); default None: every key. ``restore_group`` names the five it wires.
    """

    OUTPUT_KEYS = frozenset(
        {
            *("index", "label", "partition_name", "selected", "skipped_deleted", "archived"),
            *("bytes", "classes", "copy_manifest", "archived_manifest", "copy_manifest_objects"),
            *("copy_partition", "copy_chunks"),
        }
    )
    default_threads = 32  # tag reads are small: more in flight
    template_fields: Sequence[str] = (
        *S3brPartitionOperator.template_fields,
        "backup_bucket",
        "prefix",
        "include_deleted",
        "as_of",
        "keys",
    )

    def __init__(
        self,
        *,
        backup_bucket: str,
        prefix: str = R.prefix,
        include_deleted: bool | str = R.include_deleted,
        as_of: str | None = R.as_of,
        keys: list[str] | str | None = None,
        chunk_copies: bool = False,
        copy_chunk_keys: int | None = None,
        skip_when_idle: Sequence[str] = (),
        output_keys: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        output_keys, kwargs = self.keyed_result(output_keys, kwargs)
        super().__init__(**kwargs)
        self.output_keys = output_keys
        self.skip_when_idle = skip_when_idle
        self.backup_bucket = backup_bucket
        self.prefix = prefix
        self.include_deleted = include_deleted
        self.as_of = as_of
        self.keys = keys
        self.chunk_copies = chunk_copies
        self.copy_chunk_keys = copy_chunk_keys

    def execute(self, context: Any) -> dict[str, Any]:
        self.check_arguments()
        self.label_partition(context)
        idle_steps = steps_to_skip(self, self.skip_when_idle)
        backup, bucket = self.hook, self.backup_bucket
        as_of = as_of_epoch(self.as_of)
        named = [key for key in self.keys or () if self.key_range.contains(key)]
        if self.keys:
            listing = iter([ObjectInfo(key, 0, "", 0.0, extra={NAMED: True}) for key in named])
        elif as_of is None:
            listing = self.list_in_key_order(backup, bucket, self.prefix)
        else:
            versions = backup.iter_versions(bucket, self.prefix, self.key_range)
            listing = prefetch(objects_as_of(versions, as_of))
        run_uri = self.run_uri(context, bucket, self.run_folder_uri)
        restore_uri, archived_uri = (
            self.manifest_uri(run_uri, "restore"),
            self.manifest_uri(run_uri, "archived"),
        )
        classes: dict[str, dict[str, int]] = defaultdict(lambda: {"objects": 0, "bytes": 0})
        counts = {"selected": 0, "skipped_deleted": 0, "archived": 0, "bytes": 0}
        named_keys: dict[str, list[str]] = {"missing_keys": [], "deleted_keys": []}
        if self.keys:
            counts["missing"] = 0

        index = None if self.keys or as_of is not None else self._deleted_index(backup, bucket)

        def inspect(obj: ObjectInfo) -> ObjectInfo | None:
            # Written before the index (LastModified has whole seconds: strictly before).
            if index is not None and obj.last_modified < index.written_at and obj.storage_class != TIERING:
                if obj.key not in index.keys:
                    return obj  # live by the index: no tag read; the copy copies its tags
                if not self.include_deleted:
                    obj.tags = {DELETED_TAG: "True"}  # left out without reading them
                    return obj
            if obj.extra.pop(NAMED, False):
                found = backup.object_info(bucket, obj.key, as_of)
                if found is None:
                    return None
                obj = found
            return _inspect(backup, bucket, obj)

        with ExitStack() as stack:
            writers = None
            if not self.dry_run:
                # Named keys come in the caller's order (at most 1,000): one chunk.
                chunked = self.chunk_copies and not self.keys
                chunk_keys = int(self.copy_chunk_keys or copy_chunk_keys()) if chunked else ALL_KEYS
                writers = (
                    stack.enter_context(
                        writing_chunks(
                            backup,
                            lambda n: chunk_uri(restore_uri, n),
                            chunk_keys,
                            self.key_range.start_after,
                            self.key_range.end,
                        )
                    ),
                    stack.enter_context(writing_manifest(backup, archived_uri)),
                )
            for obj, found, error in bounded_map_ordered(inspect, listing, workers=self.threads):
                if error is not None:
                    raise AirflowException(
                        f"could not read s3://{bucket}/{obj.key}: {error_code(error)}: {error}"
                    ) from error
                if found is None:
                    counts["missing"] += 1
                    _name(named_keys["missing_keys"], obj.key)
                    continue
                obj = found
                if not is_selected(obj.tags or {}, include_deleted=self.include_deleted, as_of=as_of):
                    counts["skipped_deleted"] += 1
                    if self.keys:
                        _name(named_keys["deleted_keys"], obj.key)
                    continue
                if obj.tags is not None:
                    obj.tags = strip_marker(obj.tags)
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
        written = not self.dry_run
        self.log.info(
            "%s: %d objects selected (%s), %d archived, %d left out as deleted; by class: %s",
            self.label,
            counts["selected"],
            format_bytes(counts["bytes"]),
            counts["archived"],
            counts["skipped_deleted"],
            ", ".join(f"{c} {v['objects']} ({format_bytes(v['bytes'])})" for c, v in sorted(classes.items())),
        )
        self._log_named(named_keys)
        result = {
            "index": self.index,
            "label": self.key_range.label,
            "partition_name": self.label,
            **counts,
            "classes": dict(classes),
            **(named_keys if self.keys else {}),
            # "" not None: Airflow reads a stored None XCom as missing, failing a template.
            "copy_manifest": restore_uri if written and counts["selected"] else "",
            "archived_manifest": archived_uri if written and counts["archived"] else "",
            **chunk_outputs(self.partition, writers[0].chunks if writers else []),
        }
        if idle_steps and restore_partition_idle(result):
            skip_idle_steps(self, context, result, idle_steps, f"{self.label}: no archived object")
        self.push_output_keys(context["ti"], result)
        return result

    def _deleted_index(self, backup: S3BucketHook, bucket: str) -> DeletedKeys | None:
        """This partition's deleted keys by the backup's deleted-key index, and when the index was
        written; None where no index can be trusted (``hooks.deleted_index``): then every
        object's tags are read."""
        found = read_deleted_keys(backup, bucket, self.prefix, self.key_range)
        if found is None:
            self.log.info("%s: no usable deleted-key index: reading every object's tags", self.label)
            return None
        self.log.info(
            "%s: deleted-key index %s: %d deleted key(s) in range; tags read only for objects "
            "written after it",
            self.label,
            found.index_key,
            len(found.keys),
        )
        return found

    def _log_named(self, named_keys: dict[str, list[str]]) -> None:
        if named_keys["missing_keys"]:
            self.log.warning("%s: keys not in the backup: %s", self.label, named_keys["missing_keys"])
        if named_keys["deleted_keys"]:
            self.log.warning(
                "%s: keys left out, tagged Deleted=True (include_deleted restores them): %s",
                self.label,
                named_keys["deleted_keys"],
            )


TIERING = "INTELLIGENT_TIERING"  # its archive status needs a HeadObject, so it is always inspected
NAMED = "named"
"""Record flag of a key named in ``keys``: select reads it by name (it is not listed)."""


def _name(names: list[str], key: str) -> None:
    if len(names) < MAX_REPORTED_FAILURES:
        names.append(key)


def _inspect(backup: S3BucketHook, bucket: str, obj: ObjectInfo) -> ObjectInfo:
    """Read what a listing lacks: tags, and an Intelligent-Tiering object's archive status."""
    if obj.storage_class == TIERING:
        status = backup.head(bucket, obj.key, obj.version_id).get("ArchiveStatus")
        if status:
            obj.extra[ARCHIVE_STATUS] = status
    obj.tags = backup.get_tags(bucket, obj.key, obj.version_id)
    return obj


class S3RequestRestoreOperator(S3brPartitionOperator):
    """request_restore[p]: RestoreObject for every object of an archived-objects manifest.

    A restore already in progress or done is not an error; an expired one is asked again
    (``core.restore_state.next_action``).

    :param backup_bucket: bucket holding the archived objects (``aws_conn_id``'s).
    :param manifest_uri: the manifest (``select``'s ``archived_manifest``); ``""``: nothing to do.
    :param restore_tier: ``Expedited``, ``Standard`` or ``Bulk``.
    :param restore_days: days a restored copy stays readable.
    """

    template_fields: Sequence[str] = (
        *S3brPartitionOperator.template_fields,
        "backup_bucket",
        "manifest_uri",
        "restore_tier",
        "restore_days",
    )

    def __init__(
        self,
        *,
        backup_bucket: str,
        manifest_uri: str | None,
        restore_tier: str = R.restore_tier,
        restore_days: int | str = R.restore_days,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.backup_bucket = backup_bucket
        self.manifest_uri = manifest_uri
        self.restore_tier = restore_tier
        self.restore_days = restore_days

    @property
    def restore_hook(self) -> GlacierRestoreHook:
        from s3br_provider.hooks.glacier_restore import GlacierRestoreHook

        return self.hook_for(self.aws_conn_id, GlacierRestoreHook)

    def execute(self, context: Any) -> dict[str, Any]:
        self.check_arguments()
        self.label_partition(context)
        result = {"index": self.index, "requested": 0, "in_progress": 0, "ready": 0, "failed": 0}
        result["failures"] = []
        if self.dry_run or not self.manifest_uri:
            self.log.info("%s: no restore requests%s", self.label, " (dry run)" if self.dry_run else "")
            return result
        hook, bucket = self.restore_hook, self.backup_bucket
        records = (ObjectInfo.from_record(r) for r in read_manifest(hook, self.manifest_uri))

        def request(obj: ObjectInfo) -> str:
            return hook.ensure_restore(bucket, obj, self.restore_tier, self.restore_days)

        for _, outcome in self.run_each(request, records, result, "RestoreObject", bucket):
            result[outcome] += 1
        self.log.info(
            "%s: %d restores requested (tier %s, %d days), %d in progress, %d already readable",
            self.label,
            result["requested"],
            self.restore_tier,
            self.restore_days,
            result["in_progress"],
            result["ready"],
        )
        self.fail_on_failures(context, result, f"could not be restored (RestoreObject) in s3://{bucket}")
        return result
