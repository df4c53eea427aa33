"""verify_and_report: the reduce step of a restore run."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowException

from s3br_provider.core.chunks import join_chunks
from s3br_provider.core.partitions import KeyRange
from s3br_provider.core.progress import format_bytes
from s3br_provider.core.report import (
    as_list,
    chunk_results,
    join_partitions,
    missing_steps,
    partition_table,
    total,
)
from s3br_provider.core.retrieval import TIERS, describe
from s3br_provider.core.settings import RESTORE_DEFAULTS as R
from s3br_provider.operators.base import S3brBaseOperator
from s3br_provider.operators.report import REPORT_TRIGGER_RULE

TABLE = (
    ("selected", (("select", "selected"),)),
    ("archived", (("select", "archived"),)),
    ("deleted", (("select", "skipped_deleted"),)),
    ("chunks", (("chunked", "chunks"),)),
    ("restored", (("copy", "copied"), ("chunked", "copied"))),
    ("bytes", (("copy", "bytes"), ("chunked", "bytes"))),
    ("failed", (("copy", "failed"), ("chunked", "failed"))),
)


class S3RestoreReportOperator(S3brBaseOperator):
    """Check the target against what was selected and report counts, bytes and failures.

    The target bucket is listed once (streaming) and its object count and bytes must equal
    what the copy steps restored. In a dry run, reports the plan: objects and bytes per
    storage class, restore requests that would be made, and expected retrieval times. Runs
    after every partition outcome, but not after a failed validate (see the backup report).

    :param backup_bucket: where the backup lives; the report goes there.
    :param target_bucket: the restored bucket (``aws_conn_id``'s).
    :param partitions: the plan.
    :param select_results: results of the mapped select tasks.
    :param copy_results: results of the mapped copy tasks.
    :param chunks: ``gather_chunks``' output (the chunk copies planned); default: none.
    :param chunk_results: results of the mapped ``copy_chunk`` tasks, counted with their
        partitions' copies; a select chunk no copy covers leaves the restore incomplete.
    :param prefix, include_deleted, as_of, restore_tier, restore_days, keys: recorded in the report.
    :param target_mode: ``new_bucket``: the target must hold exactly what was restored;
        ``missing_only``: it holds other objects too, and the keys it already held are counted
        (``skipped_existing``), not checked.
    :param dry_run: report the plan; list and write nothing.
    :param cloudwatch_namespace: namespace for metrics; ``""`` turns them off.
    :param backup_aws_conn_id: connection of the backup bucket; default: ``aws_conn_id``.
    """

    template_fields: Sequence[str] = (
        *S3brBaseOperator.template_fields,
        "backup_bucket",
        "target_bucket",
        "partitions",
        "select_results",
        "copy_results",
        "chunks",
        "chunk_results",
        "prefix",
        "include_deleted",
        "as_of",
        "restore_tier",
        "restore_days",
        "keys",
        "target_mode",
        "dry_run",
        "cloudwatch_namespace",
        "backup_aws_conn_id",
    )

    def __init__(
        self,
        *,
        backup_bucket: str,
        target_bucket: str,
        partitions: Any,
        select_results: Any,
        copy_results: Any,
        chunks: Any = None,
        chunk_results: Any = None,
        prefix: str = R.prefix,
        include_deleted: bool | str = R.include_deleted,
        as_of: str | None = R.as_of,
        restore_tier: str = R.restore_tier,
        restore_days: int | str = R.restore_days,
        keys: list[str] | str | None = None,
        target_mode: str = R.target_mode,
        dry_run: bool | str = R.dry_run,
        cloudwatch_namespace: str = R.cloudwatch_namespace,
        backup_aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", REPORT_TRIGGER_RULE)
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.backup_bucket = backup_bucket
        self.target_bucket = target_bucket
        self.partitions = partitions
        self.select_results = select_results
        self.copy_results = copy_results
        self.chunks = chunks
        self.chunk_results = chunk_results
        self.prefix = prefix
        self.include_deleted = include_deleted
        self.as_of = as_of
        self.restore_tier = restore_tier
        self.restore_days = restore_days
        self.keys = keys
        self.target_mode = target_mode
        self.dry_run = dry_run
        self.cloudwatch_namespace = cloudwatch_namespace
        self.backup_aws_conn_id = backup_aws_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        self.check_arguments()
        rows = join_partitions(as_list(self.partitions), select=self.select_results, copy=self.copy_results)
        if not rows:
            # A plan has at least one partition: none means create_target or plan_partitions
            # failed (this step runs after any outcome), and a restore that planned nothing
            # must not succeed.
            raise AirflowException(
                "restore incomplete: no partitions were planned (create_target or plan_partitions "
                "failed: see their logs)"
            )
        missing_chunks = join_chunks(
            rows, as_list(self.chunks), chunk_results(self.chunks, self.chunk_results), "select"
        )
        classes: dict[str, dict[str, int]] = defaultdict(lambda: {"objects": 0, "bytes": 0})
        for row in rows:
            for name, value in ((row["select"] or {}).get("classes") or {}).items():
                classes[name]["objects"] += value["objects"]
                classes[name]["bytes"] += value["bytes"]
        totals = {
            "selected": total(rows, "select", "selected"),
            "bytes_selected": total(rows, "select", "bytes"),
            "archived": total(rows, "select", "archived"),
            "left_out_deleted": total(rows, "select", "skipped_deleted"),
            "restored": total(rows, "copy", "copied") + total(rows, "chunked", "copied"),
            "bytes_restored": total(rows, "copy", "bytes") + total(rows, "chunked", "bytes"),
            "failed": total(rows, "copy", "failed") + total(rows, "chunked", "failed"),
            "partitions": len(rows),
            "copy_chunks": total(rows, "chunked", "chunks"),
            "chunk_copy_tasks": len(as_list(self.chunks)),
        }
        if self.target_mode == "missing_only":
            totals["skipped_existing"] = total(rows, "copy", "skipped_existing") + total(
                rows, "chunked", "skipped_existing"
            )
        if self.keys:
            totals["missing"] = total(rows, "select", "missing")
        failures = [
            f
            for row in rows
            for r in (row["copy"], *row["chunk_copies"])
            for f in (r or {}).get("failures", [])
        ]
        for name in ("missing_keys", "deleted_keys"):
            named = [key for row in rows for key in (row["select"] or {}).get(name, [])]
            if named:
                totals[name] = named
        self.log.info(
            "Restore of s3://%s into s3://%s\n%s",
            self.backup_bucket,
            self.target_bucket,
            partition_table(rows, "select", TABLE),
        )
        self.log.info("By storage class: %s", _classes_text(classes))
        if self.dry_run:
            self._log_plan(classes, totals)
        elif self.target_mode == "missing_only":
            self.log.info(
                "missing_only: %d restored, %d the target already held (left as they were)",
                totals["restored"],
                totals["skipped_existing"],
            )
        else:
            totals |= self._verify(totals)
        self.log.info(
            "Totals: %(selected)d selected, %(restored)d restored, %(left_out_deleted)d left out as "
            "deleted, %(archived)d from archive tiers, %(failed)d failed",
            totals,
        )
        self._publish(totals)
        settings = {
            "backup_bucket": self.backup_bucket,
            "target_bucket": self.target_bucket,
            "prefix": self.prefix,
            "include_deleted": self.include_deleted,
            "as_of": self.as_of,
            "restore_tier": self.restore_tier,
            "restore_days": self.restore_days,
            "keys": self.keys or [],
            "target_mode": self.target_mode,
            "dry_run": self.dry_run,
            "cloudwatch_namespace": self.cloudwatch_namespace,
            "backup_aws_conn_id": self.backup_aws_conn_id or self.aws_conn_id,
            "target_aws_conn_id": self.aws_conn_id,
        }
        report = {
            "settings": settings,
            "totals": totals,
            "classes": classes,
            "failures": failures,
            "partitions": rows,
        }
        if not self.dry_run:
            uri = f"{self.run_uri(context, self.backup_bucket)}/report.json"
            self.hook_for(self.backup_aws_conn_id or self.aws_conn_id).put_json(
                uri, json.dumps(report, ensure_ascii=False, indent=1, default=str).encode()
            )
            self.log.info("Report written to %s", uri)
        missing = missing_steps(rows, ("select", "copy")) + missing_chunks
        if missing:
            raise AirflowException(f"restore incomplete: no result from {', '.join(missing)}")
        if totals.get("missing"):
            raise AirflowException(
                f"restore incomplete: {totals['missing']} named key(s) not in the backup: "
                f"{totals.get('missing_keys', [])[:20]}"
            )
        if failures or totals.get("mismatch"):
            raise AirflowException(
                f"restore finished with problems: {totals.get('mismatch') or failures[:5]}"
            )
        return totals

    def _verify(self, totals: dict[str, int]) -> dict[str, Any]:
        count = size = 0
        for obj in self.hook.iter_objects(self.target_bucket, "", KeyRange()):
            count += 1
            size += obj.size
        self.log.info("Target s3://%s holds %d objects (%s)", self.target_bucket, count, format_bytes(size))
        result: dict[str, Any] = {"target_objects": count, "target_bytes": size}
        if count != totals["restored"] or size != totals["bytes_restored"]:
            result["mismatch"] = (
                f"target holds {count} objects ({size} bytes) but {totals['restored']} objects "
                f"({totals['bytes_restored']} bytes) were restored"
            )
        return result

    def _log_plan(self, classes: dict[str, dict[str, int]], totals: dict[str, int]) -> None:
        self.log.info(
            "dry run: would restore %d objects (%s) into s3://%s; "
            "%d RestoreObject request(s), tier %s, %d day(s)",
            totals["selected"],
            format_bytes(totals["bytes_selected"]),
            self.target_bucket,
            totals["archived"],
            self.restore_tier,
            self.restore_days,
        )
        for name in sorted(classes):
            times = ", ".join(f"{tier}: {describe(name, tier)}" for tier in TIERS)
            if name in ("GLACIER", "DEEP_ARCHIVE", "INTELLIGENT_TIERING"):
                self.log.info("dry run: %s retrieval time: %s", name, times)

    def _publish(self, totals: dict[str, int]) -> None:
        self.metrics_hook(self.cloudwatch_namespace).publish(
            {
                "ObjectsToRestore": totals["selected"],
                "BytesToRestore": totals["bytes_selected"],
                "ObjectsRestored": totals["restored"],
                "BytesRestored": totals["bytes_restored"],
                "ObjectsFailed": totals["failed"],
            },
            {"BackupBucket": self.backup_bucket, "TargetBucket": self.target_bucket},
        )


def _classes_text(classes: dict[str, dict[str, int]]) -> str:
    if not classes:
        return "none"
    return ", ".join(
        f"{n}: {v['objects']} objects ({format_bytes(v['bytes'])})" for n, v in sorted(classes.items())
    )
