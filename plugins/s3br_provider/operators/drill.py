"""Restore drills: validate, sample a backup at random, restore the sample, check every object.

``validate -> plan_partitions -> partition[p](sample) -> choose -> request_restore ->
wait_for_restore -> restore_and_verify``: each partition keeps the bottom-k of its live
objects by a priority seeded by the run id (``core.drill``), ``choose`` merges them into the
run's sample, and ``restore_and_verify`` copies it under ``s3br-drill/<run_id>/`` in the
drill bucket, times the copies and checks each against the backup and, where unchanged since
its backup, the source. Nothing here deletes anything.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException

from s3br_provider.core.drill import (
    DRILL_PREFIX,
    BottomK,
    differences,
    drill_key,
    expiration_covers,
    expiration_rule,
    full_restore_estimate,
    priority,
    smallest,
    unchanged_since_backup,
)
from s3br_provider.core.manifest import read_manifest, writing_manifest
from s3br_provider.core.objects import ObjectInfo
from s3br_provider.core.pool import bounded_map, bounded_map_ordered
from s3br_provider.core.progress import format_bytes
from s3br_provider.core.report import as_list
from s3br_provider.core.settings import DRILL_DEFAULTS as D
from s3br_provider.core.settings import DrillSettings, drill_settings
from s3br_provider.core.tags import is_marked_deleted, strip_marker
from s3br_provider.hooks.errors import error_code
from s3br_provider.operators.base import (
    DEFAULT_COPY_THREADS,
    MAX_REPORTED_FAILURES,
    S3brBaseOperator,
    S3brPartitionOperator,
)
from s3br_provider.operators.validate import InvalidRunError, _check_bucket, _same_endpoint, _ValidateOperator

if TYPE_CHECKING:  # boto3 loads only in tasks that call S3: a no-op task starts faster
    from s3br_provider.hooks.s3_bucket import S3BucketHook

CANDIDATES_PER_SAMPLE = 2
"""Each partition keeps this many times ``sample_size`` candidates, so the deleted-tagged ones
(told apart by their tags, read for candidates only) can be dropped and enough remain."""
SAMPLE_NAME = "drill sample"
MULTIPART_THRESHOLD = 5 * 1024 * 1024 * 1024


class S3DrillValidateOperator(_ValidateOperator):
    """Check a drill's arguments and buckets, and that what it writes expires: an enabled
    lifecycle rule of the drill bucket expires every object under ``s3br-drill/`` (with
    ``drill_expiration_days`` N, one is added if there is none: objects expire after N days).

    :param backup_bucket: where the backup lives.
    :param drill_bucket: the scratch bucket the drill restores into.
    :param backup_bucket_variable: the Airflow Variable a template of ``backup_bucket`` falls
        back on, named in the error when both are empty.
    :param drill_bucket_variable: the same for ``drill_bucket``.
    :param known_params: the DAG's Params: a run conf naming another one fails.
    :param kwargs: the drill's options (``core.settings.DrillArguments``), and BaseOperator's.
    """

    options_class = DrillSettings
    defaults = D
    declared = ("backup_bucket", "drill_bucket")
    connection_params = ("backup_aws_conn_id", "source_aws_conn_id", "drill_aws_conn_id")
    check_options = staticmethod(drill_settings)
    template_fields: Sequence[str] = (*S3brBaseOperator.template_fields, *DrillSettings.__dataclass_fields__)

    def __init__(
        self,
        *,
        backup_bucket: str,
        drill_bucket: str,
        backup_bucket_variable: str | None = None,
        drill_bucket_variable: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("aws_conn_id", kwargs.get("drill_aws_conn_id", D.drill_aws_conn_id))
        super().__init__(**kwargs)
        self.backup_bucket = backup_bucket
        self.drill_bucket = drill_bucket
        self.backup_bucket_variable = backup_bucket_variable
        self.drill_bucket_variable = drill_bucket_variable

    def execute(self, context: Any) -> dict[str, Any]:
        variables = {"backup_bucket": self.backup_bucket_variable, "drill_bucket": self.drill_bucket_variable}
        settings: DrillSettings = self.options(context, variables)
        backup = self.hook_for(settings.backup_aws_conn_id)
        drill = self.hook_for(settings.drill_aws_conn_id)
        _check_bucket(backup, settings.backup_bucket, "backup_bucket")
        _check_bucket(drill, settings.drill_bucket, "drill_bucket")
        _same_endpoint(backup, drill, "backup_aws_conn_id and drill_aws_conn_id")
        if settings.source_bucket:
            _check_bucket(self.hook_for(settings.source_aws_conn_id), settings.source_bucket, "source_bucket")
        self._ensure_expiration(drill, settings)
        self.log.info(
            "Drill: %d objects of s3://%s restored into s3://%s/%s<run_id>/, checked against %s",
            settings.sample_size,
            settings.backup_bucket,
            settings.drill_bucket,
            DRILL_PREFIX,
            f"the backup and s3://{settings.source_bucket}" if settings.source_bucket else "the backup",
        )
        return settings.to_dict()

    def _ensure_expiration(self, drill: S3BucketHook, settings: DrillSettings) -> None:
        from botocore.exceptions import ClientError

        bucket = settings.drill_bucket
        try:
            rules = drill.conn.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
        except ClientError as error:
            if error_code(error) != "NoSuchLifecycleConfiguration":
                raise
            rules = []
        if expiration_covers(rules):
            return
        if not settings.drill_expiration_days:
            raise InvalidRunError(
                f"drill_bucket {bucket!r} has no enabled lifecycle rule expiring {DRILL_PREFIX!r}: a drill "
                "never deletes, so its copies must expire. Add one (see the README: Restore drills), or "
                "set drill_expiration_days to have validate add it"
            )
        rule = expiration_rule(settings.drill_expiration_days)
        drill.conn.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": [*rules, rule]}
        )
        self.log.info("Added lifecycle rule %s to s3://%s: %s", rule["ID"], bucket, rule)


class S3DrillSampleOperator(S3brPartitionOperator):
    """sample[p]: the candidates of one partition for the drill's random sample.

    Lists the partition, counts objects and bytes per storage class (deleted-tagged ones
    included), keeps the ``2 x sample_size`` objects of smallest priority (seeded by the run
    id), reads their tags, drops the deleted-tagged ones and writes the rest, at most
    ``sample_size``, to a candidates manifest. GLACIER and DEEP_ARCHIVE objects are skipped
    (counted) unless ``include_archived``.

    :param backup_bucket: where the backup lives (``aws_conn_id``'s); the manifest goes there.
    :param sample_size: objects the drill restores in all.
    :param include_archived: also sample archived objects.
    """

    template_fields: Sequence[str] = (
        *S3brPartitionOperator.template_fields,
        "backup_bucket",
        "sample_size",
        "include_archived",
    )

    def __init__(
        self,
        *,
        backup_bucket: str,
        sample_size: int | str = D.sample_size,
        include_archived: bool | str = D.include_archived,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.backup_bucket = backup_bucket
        self.sample_size = sample_size
        self.include_archived = include_archived

    def execute(self, context: Any) -> dict[str, Any]:
        self.check_arguments()
        self.label_partition(context)
        backup, bucket, seed = self.hook, self.backup_bucket, context["run_id"]
        classes: dict[str, dict[str, int]] = defaultdict(lambda: {"objects": 0, "bytes": 0})
        result: dict[str, Any] = {
            "index": self.index,
            "listed": 0,
            "skipped_archived": 0,
            "skipped_deleted": 0,
        }
        keep = BottomK(CANDIDATES_PER_SAMPLE * self.sample_size)
        for obj in backup.iter_objects(bucket, "", self.key_range):
            result["listed"] += 1
            classes[obj.storage_class]["objects"] += 1
            classes[obj.storage_class]["bytes"] += obj.size
            if obj.is_archived and not self.include_archived:
                result["skipped_archived"] += 1
                continue
            keep.add(priority(seed, obj.key), obj.key, obj)
        ranked = keep.items()

        def tagged(pair: tuple[float, ObjectInfo]) -> ObjectInfo:
            pair[1].tags = backup.get_tags(bucket, pair[1].key)
            return pair[1]

        candidates = []
        for (rank, listed), obj, error in bounded_map_ordered(tagged, ranked, workers=self.threads):
            if error is not None:
                raise AirflowException(
                    f"could not read the tags of s3://{bucket}/{listed.key}: {error}"
                ) from error
            if is_marked_deleted(obj.tags or {}):
                result["skipped_deleted"] += 1
            elif len(candidates) < self.sample_size:
                obj.extra["p"] = rank
                candidates.append(obj)
        uri = self.manifest_uri(self.run_uri(context, bucket), "drill-candidates")
        with writing_manifest(backup, uri) as writer:
            for obj in candidates:
                writer.write(obj.to_record())
        self.log.info(
            "%s: %d objects listed (%s), %d candidates, %d archived skipped; by class: %s",
            self.label,
            result["listed"],
            format_bytes(sum(c["bytes"] for c in classes.values())),
            len(candidates),
            result["skipped_archived"],
            dict(classes),
        )
        return {**result, "classes": dict(classes), "candidates": len(candidates), "candidates_manifest": uri}


class S3DrillChooseOperator(S3brBaseOperator):
    """choose: the drill's sample, the ``sample_size`` candidates of smallest priority over all
    partitions (a uniform random sample of the backup's live objects, the same for a run id).

    Writes the ``sample`` manifest and the ``archived`` one (objects that need a RestoreObject
    first) into the run folder; returns counts, both URIs (each also its own XCom, ``""``
    when empty), the backup's objects and bytes per storage class, and ``partition_name``.

    :param backup_bucket: where the backup lives (``aws_conn_id``'s).
    :param sample_results: the results of the mapped sample tasks.
    :param sample_size: objects in the sample at most.
    """

    template_fields: Sequence[str] = (
        *S3brBaseOperator.template_fields,
        "backup_bucket",
        "sample_results",
        "sample_size",
    )

    def __init__(
        self,
        *,
        backup_bucket: str,
        sample_results: Any,
        sample_size: int | str = D.sample_size,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.backup_bucket = backup_bucket
        self.sample_results = sample_results
        self.sample_size = sample_size

    def execute(self, context: Any) -> dict[str, Any]:
        self.check_arguments()
        backup, bucket = self.hook, self.backup_bucket
        results = [r for r in as_list(self.sample_results) if r]
        classes: dict[str, dict[str, int]] = defaultdict(lambda: {"objects": 0, "bytes": 0})
        for result in results:
            for name, held in result["classes"].items():
                classes[name]["objects"] += held["objects"]
                classes[name]["bytes"] += held["bytes"]
        candidates = (
            (record["x"]["p"], record)
            for result in results
            for record in read_manifest(backup, result["candidates_manifest"])
        )
        chosen = sorted(smallest(candidates, self.sample_size), key=lambda record: record["k"])
        run_uri = self.run_uri(context, bucket)
        sample_uri, archived_uri = f"{run_uri}/drill-sample.jsonl.gz", f"{run_uri}/drill-archived.jsonl.gz"
        archived = 0
        with ExitStack() as stack:
            writers = [
                stack.enter_context(writing_manifest(backup, uri)) for uri in (sample_uri, archived_uri)
            ]
            for record in chosen:
                writers[0].write(record)
                if ObjectInfo.from_record(record).is_archived:
                    writers[1].write(record)
                    archived += 1
        self.log.info("Sample: %d objects of s3://%s (%d archived)", len(chosen), bucket, archived)
        return {
            "sampled": len(chosen),
            "archived": archived,
            "listed": sum(r["listed"] for r in results),
            "skipped_archived": sum(r["skipped_archived"] for r in results),
            "classes": dict(classes),
            "sample_manifest": sample_uri if chosen else "",
            "archived_manifest": archived_uri if archived else "",
            "partition_name": SAMPLE_NAME,
        }


class S3DrillVerifyOperator(S3brBaseOperator):
    """restore_and_verify: restore the sample into the drill bucket, check it, report.

    Copies each sampled object (server-side, with its tags minus the deleted marker) to
    ``s3br-drill/<run_id>/<key>`` in ``drill_bucket`` and times the copies; then compares each
    copy with the backup object (bytes by full-object checksum or MD5 ETag, else by reading
    both, Content-Type, user metadata, tags), and with the source object where it is unchanged
    since its backup. Writes ``report.json`` (sampled, verified, mismatched, seconds, bytes per
    second, the estimated time of a full restore) into the backup's run folder, then fails
    naming the objects that differ. Deletes nothing.

    :param backup_bucket: where the backup lives.
    :param drill_bucket: the scratch bucket (``aws_conn_id``'s).
    :param chosen: ``choose``'s result.
    :param source_bucket: the backed-up bucket; ``""``: compare with the backup only.
    :param backup_aws_conn_id: connection of the backup bucket; default ``aws_conn_id``.
    :param source_aws_conn_id: connection of the source bucket; default ``aws_conn_id``.
    """

    template_fields: Sequence[str] = (
        *S3brBaseOperator.template_fields,
        "backup_bucket",
        "drill_bucket",
        "chosen",
        "source_bucket",
        "backup_aws_conn_id",
        "source_aws_conn_id",
    )

    def __init__(
        self,
        *,
        backup_bucket: str,
        drill_bucket: str,
        chosen: Any,
        source_bucket: str = D.source_bucket,
        backup_aws_conn_id: str | None = None,
        source_aws_conn_id: str | None = None,
        threads: int = DEFAULT_COPY_THREADS,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retries", 0)  # a mismatch does not mend by trying again
        super().__init__(**kwargs)
        self.backup_bucket = backup_bucket
        self.drill_bucket = drill_bucket
        self.chosen = chosen
        self.source_bucket = source_bucket
        self.backup_aws_conn_id = backup_aws_conn_id
        self.source_aws_conn_id = source_aws_conn_id
        self.threads = threads

    def execute(self, context: Any) -> dict[str, Any]:
        if self.source_bucket in ("", None):
            self.source_bucket = ""
        self.check_arguments()
        run_id, chosen = context["run_id"], self.chosen
        backup = self.hook_for(self.backup_aws_conn_id or self.aws_conn_id)
        uri = chosen["sample_manifest"]
        sample = [ObjectInfo.from_record(r) for r in read_manifest(backup, uri)] if uri else []
        problems: dict[str, list[str]] = {}
        started = time.monotonic()
        copied = self._restore(sample, run_id, problems)
        seconds = max(time.monotonic() - started, 1e-6)
        size = sum(obj.size for obj in copied)
        counts = {"source_compared": 0, "source_changed": 0}
        for obj, found, error in bounded_map(
            lambda o: self._check(o, run_id), copied, workers=min(self.threads, 16)
        ):
            if error is not None:
                found = ([f"check failed: {error_code(error)}"], False)
            if found[0]:
                problems[obj.key] = found[0]
            counts["source_compared" if found[1] else "source_changed"] += bool(self.source_bucket)
        report = self._report(chosen, sample, problems, counts, seconds, size)
        uri = f"{self.run_uri(context, self.backup_bucket)}/report.json"
        backup.put_json(uri, json.dumps(report, ensure_ascii=False, indent=1, default=str).encode())
        self.log.info(
            "Drill: %d sampled, %d verified, %d mismatched; %s in %.1f s (%s/s); full restore about %.0f s. "
            "Report: %s",
            report["sampled"],
            report["verified"],
            report["mismatched"],
            format_bytes(size),
            seconds,
            format_bytes(int(report["bytes_per_second"])),
            report["estimate"]["full_restore_seconds"],
            uri,
        )
        if problems:
            shown = "; ".join(f"{key!r}: {', '.join(found)}" for key, found in sorted(problems.items())[:10])
            raise AirflowException(
                f"drill: {len(problems)} of {len(sample)} restored objects differ: {shown}"
            )
        return {
            name: report[name]
            for name in ("sampled", "verified", "mismatched", "seconds", "bytes_per_second")
        }

    def _restore(
        self, sample: list[ObjectInfo], run_id: str, problems: dict[str, list[str]]
    ) -> list[ObjectInfo]:
        drill = self.hook

        def copy(obj: ObjectInfo) -> None:
            drill.copy(
                obj,
                self.backup_bucket,
                self.drill_bucket,
                multipart_threshold=MULTIPART_THRESHOLD,
                tags=strip_marker(obj.tags or {}),
                target_key=drill_key(run_id, obj.key),
            )

        copied = []
        for obj, _, error in bounded_map(copy, sample, workers=self.threads):
            if error is None:
                copied.append(obj)
            else:
                self.log.warning("Copy of s3://%s/%s failed: %s", self.backup_bucket, obj.key, error)
                problems[obj.key] = [f"restore failed: {error_code(error)}"]
        return copied

    def _check(self, obj: ObjectInfo, run_id: str) -> tuple[list[str], bool]:
        """What the restored copy of ``obj`` does not share with the backup object, and (where
        the source object is unchanged since its backup) with the source; and whether the
        source was compared."""
        backup = self.hook_for(self.backup_aws_conn_id or self.aws_conn_id)
        ours = _Read.of(self.hook, self.drill_bucket, drill_key(run_id, obj.key))
        theirs = _Read.of(backup, self.backup_bucket, obj.key)
        found = _compared(theirs, ours)
        if not self.source_bucket:
            return found, False
        source = self.hook_for(self.source_aws_conn_id or self.aws_conn_id)
        source_head = _head_or_none(source, self.source_bucket, obj.key)
        if source_head is None or not unchanged_since_backup(source_head, theirs.head):
            return found, False
        against = _compared(_Read.of(source, self.source_bucket, obj.key, source_head), ours)
        return found + [f"source: {problem}" for problem in against], True

    def _report(
        self,
        chosen: dict[str, Any],
        sample: list[ObjectInfo],
        problems: dict[str, list[str]],
        counts: dict[str, int],
        seconds: float,
        size: int,
    ) -> dict[str, Any]:
        copied = len(sample) - sum(1 for found in problems.values() if found[0].startswith("restore failed"))
        estimate = full_restore_estimate(chosen["classes"], seconds=seconds, objects=copied, size=size)
        return {
            "settings": {
                "backup_bucket": self.backup_bucket,
                "source_bucket": self.source_bucket,
                "drill_bucket": self.drill_bucket,
            },
            "sampled": len(sample),
            "verified": len(sample) - len(problems),
            "mismatched": len(problems),
            "mismatches": [
                {"key": key, "problems": found}
                for key, found in sorted(problems.items())[:MAX_REPORTED_FAILURES]
            ],
            "listed": chosen["listed"],
            "skipped_archived": chosen["skipped_archived"],
            "archived_restored": chosen["archived"],
            **counts,
            "seconds": round(seconds, 3),
            "bytes": size,
            "bytes_per_second": estimate["bytes_per_second"],
            "classes": chosen["classes"],
            "estimate": estimate,
        }


@dataclass(frozen=True)
class _Read:
    """One object as the drill's check reads it: where it is, its head (with checksums), its tags."""

    hook: S3BucketHook
    bucket: str
    key: str
    head: dict[str, Any]
    tags: dict[str, str]

    @classmethod
    def of(cls, hook: S3BucketHook, bucket: str, key: str, head: dict[str, Any] | None = None) -> _Read:
        head = head if head is not None else hook.head(bucket, key, checksums=True)
        return cls(hook, bucket, key, head, hook.get_tags(bucket, key))


def _compared(expected: _Read, restored: _Read) -> list[str]:
    """What ``restored`` does not share with ``expected``; bytes read and hashed on both sides
    only where no checksum or MD5 is carried by both."""
    found = differences(expected.head, restored.head, expected.tags, restored.tags)
    if "bytes unknown" in found:
        found.remove("bytes unknown")
        if _digest(expected.hook, expected.bucket, expected.key) != _digest(
            restored.hook, restored.bucket, restored.key
        ):
            found.append("bytes differ")
    return found


def _head_or_none(hook: S3BucketHook, bucket: str, key: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return hook.head(bucket, key, checksums=True)
    except ClientError as error:
        if error_code(error) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _digest(hook: S3BucketHook, bucket: str, key: str) -> str:
    body = hook.conn.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    for chunk in iter(lambda: body.read(1024 * 1024), b""):
        digest.update(chunk)
    return digest.hexdigest()


__all__ = [
    "S3DrillChooseOperator",
    "S3DrillSampleOperator",
    "S3DrillValidateOperator",
    "S3DrillVerifyOperator",
]
