"""The reduce step of a backup run: one report, statistics, metrics, an asset event."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from airflow.sdk import Asset, AssetAlias
from airflow.sdk.exceptions import AirflowException

from s3br_provider.core.backups_view import SUMMARY_XCOM_KEY, run_summary
from s3br_provider.core.chunks import join_chunks
from s3br_provider.core.deleted_index import build_index, index_key
from s3br_provider.core.idle import (
    ZERO_COPY,
    ZERO_TAG,
    backup_partition_idle,
    fill_skipped_steps,
    nothing_to_tag,
)
from s3br_provider.core.inventory import inventory_minute
from s3br_provider.core.partitions import SORTED_LOCALLY
from s3br_provider.core.progress import format_bytes
from s3br_provider.core.report import (
    as_list,
    chunk_results,
    join_partitions,
    missing_steps,
    partition_table,
    total,
)
from s3br_provider.core.settings import BACKUP_DEFAULTS
from s3br_provider.core.stats import encode_stats, measured_copy_fraction, merge_samples, stats_uri
from s3br_provider.operators.base import S3brBaseOperator

BACKUP_ASSET_ALIAS = "s3br-backup"
"""Asset alias under which each successful backup emits ``s3://<backup_bucket>``."""
TABLE = (
    ("source", (("diff", "source_objects"),)),
    ("new", (("diff", "new"),)),
    ("changed", (("diff", "changed"),)),
    ("unchanged", (("diff", "unchanged"),)),
    ("vanished", (("diff", "vanished"),)),
    ("chunks", (("chunked", "chunks"),)),
    ("copied", (("copy", "copied"), ("chunked", "copied"))),
    ("bytes", (("copy", "bytes"), ("chunked", "bytes"))),
    ("tagged", (("tag", "tagged"),)),
    ("archived", (("diff", "skipped_archived"),)),
    ("failed", (("copy", "failed"), ("chunked", "failed"), ("tag", "failed"))),
)
REPORT_TRIGGER_RULE = "all_done_setup_success"
"""Reports run after every partition outcome, but not when validate (the setup task) failed."""


class S3BackupReportOperator(S3brBaseOperator):
    """Summarise a backup run per partition, keep statistics, publish metrics.

    Runs even when partitions failed (``trigger_rule="all_done_setup_success"``: after any
    partition outcome, but not after a failed validate, whose message then stays the run's only
    error), writes ``report.json``, then fails if any partition did not finish. A successful
    backup emits the asset ``s3://<backup_bucket>`` through the alias ``s3br-backup``.

    :param source_bucket: the backed-up bucket.
    :param backup_bucket: the backup bucket (``aws_conn_id``'s), which keeps report and statistics.
    :param prefix: the prefix the run backed up.
    :param partitions: the plan.
    :param diff_results: results of the mapped diff tasks.
    :param copy_results: results of the mapped copy tasks.
    :param tag_results: results of the mapped tag tasks.
    :param chunks: ``gather_chunks``' output: the chunk copies planned (partitions' chunks after
        their first); default: none.
    :param chunk_results: results of the mapped ``copy_chunk`` tasks; counted with their
        partitions' copies (a failed or missing chunk fails the run as a partition's copy does).
    :param dry_run: report only; write no report file or statistics.
    :param cloudwatch_namespace: namespace for metrics; ``""`` turns them off.
    :param source_aws_conn_id: recorded in the report.
    :param tag_deleted: the backup's option: with it on, a run in which every vanished object was
        tagged writes the deleted-key index restores read (``core.deleted_index``).
    """

    template_fields: Sequence[str] = (
        *S3brBaseOperator.template_fields,
        "source_bucket",
        "backup_bucket",
        "prefix",
        "partitions",
        "diff_results",
        "copy_results",
        "tag_results",
        "chunks",
        "chunk_results",
        "dry_run",
        "cloudwatch_namespace",
        "source_aws_conn_id",
        "tag_deleted",
    )

    def __init__(
        self,
        *,
        source_bucket: str,
        backup_bucket: str,
        partitions: Any,
        diff_results: Any,
        copy_results: Any,
        tag_results: Any,
        chunks: Any = None,
        chunk_results: Any = None,
        prefix: str = BACKUP_DEFAULTS.prefix,
        dry_run: bool | str = BACKUP_DEFAULTS.dry_run,
        cloudwatch_namespace: str = BACKUP_DEFAULTS.cloudwatch_namespace,
        source_aws_conn_id: str | None = None,
        tag_deleted: bool | str = BACKUP_DEFAULTS.tag_deleted,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", REPORT_TRIGGER_RULE)
        kwargs.setdefault("retries", 0)
        kwargs.setdefault("outlets", [AssetAlias(BACKUP_ASSET_ALIAS)])
        super().__init__(**kwargs)
        self.source_bucket = source_bucket
        self.backup_bucket = backup_bucket
        self.prefix = prefix
        self.partitions = partitions
        self.diff_results = diff_results
        self.copy_results = copy_results
        self.tag_results = tag_results
        self.chunks = chunks
        self.chunk_results = chunk_results
        self.dry_run = dry_run
        self.cloudwatch_namespace = cloudwatch_namespace
        self.source_aws_conn_id = source_aws_conn_id
        self.tag_deleted = tag_deleted

    def execute(self, context: Any) -> dict[str, Any]:
        self.check_arguments()
        rows = join_partitions(
            as_list(self.partitions), diff=self.diff_results, copy=self.copy_results, tag=self.tag_results
        )
        self._count_skipped_steps(rows)
        if not rows:
            # A plan has at least one partition: none means plan_partitions failed (this step
            # runs after any outcome), and a run that planned nothing must not succeed.
            raise AirflowException("backup incomplete: plan_partitions made no plan (see its log)")
        missing_chunks = join_chunks(rows, as_list(self.chunks), self._chunk_results())
        totals = {
            "partitions": len(rows),
            "copy_chunks": total(rows, "chunked", "chunks"),
            "chunk_copy_tasks": len(as_list(self.chunks)),
            "source_objects": total(rows, "diff", "source_objects"),
            "unchanged": total(rows, "diff", "unchanged"),
            "to_copy": total(rows, "diff", "to_copy"),
            "skipped_archived": total(rows, "diff", "skipped_archived"),
            "archive_restores_requested": total(rows, "diff", "archive_restores_requested"),
            "bytes_to_copy": total(rows, "diff", "bytes_to_copy"),
            "source_bytes": total(rows, "diff", "source_bytes"),
            "copied": total(rows, "copy", "copied") + total(rows, "chunked", "copied"),
            "bytes_copied": total(rows, "copy", "bytes") + total(rows, "chunked", "bytes"),
            "vanished": total(rows, "diff", "vanished"),
            "marked_deleted": total(rows, "diff", "marked_deleted"),
            "tagged_deleted": total(rows, "tag", "tagged"),
            "failed": sum(total(rows, step, "failed") for step in ("copy", "chunked", "tag")),
        }
        missing = missing_steps(rows, ("diff", "copy", "tag")) + missing_chunks
        settings = {
            "source_bucket": self.source_bucket,
            "backup_bucket": self.backup_bucket,
            "prefix": self.prefix,
            "dry_run": self.dry_run,
            "cloudwatch_namespace": self.cloudwatch_namespace,
            "source_aws_conn_id": self.source_aws_conn_id or self.aws_conn_id,
            "backup_aws_conn_id": self.aws_conn_id,
        }
        archived = [key for row in rows for key in (row["diff"] or {}).get("archived_keys", [])]
        report = {
            "settings": settings,
            "totals": totals,
            "incomplete": missing,
            "archived_not_copied": archived,
            "partitions": rows,
        }
        self._note_listing_source(rows, settings, totals, report)
        self.log.info(
            "Backup of s3://%s into s3://%s\n%s",
            self.source_bucket,
            self.backup_bucket,
            partition_table(rows, "diff", TABLE),
        )
        self.log.info(
            "Totals: %(source_objects)d source objects, %(to_copy)d to copy, %(copied)d copied, "
            "%(unchanged)d unchanged, %(vanished)d vanished (%(marked_deleted)d marked deleted "
            "before), %(tagged_deleted)d newly tagged deleted, "
            "%(failed)d failed; %(partitions)d partition(s), %(copy_chunks)d copy chunk(s) "
            "(%(chunk_copy_tasks)d copy_chunk task(s))",
            totals,
        )
        self.log.info("Bytes copied: %s", format_bytes(totals["bytes_copied"]))
        if totals["skipped_archived"]:
            self.log.warning(
                "%d archived source object(s) not copied (%d restore(s) requested in the source; "
                "see archived_source), e.g. %s",
                totals["skipped_archived"],
                totals["archive_restores_requested"],
                archived[:10],
            )
        failures = [
            f
            for row in rows
            for result in (row["copy"], *row["chunk_copies"], row["tag"])
            for f in (result or {}).get("failures", [])
        ]
        # Read by the Backups view (s3br_provider.ui), also when this run then fails.
        context["ti"].xcom_push(key=SUMMARY_XCOM_KEY, value=run_summary(settings, totals, missing, failures))
        self._publish(totals)
        if not self.dry_run:
            report_uri = f"{self.run_uri(context, self.backup_bucket)}/report.json"
            self.hook.put_json(
                report_uri, json.dumps(report, ensure_ascii=False, indent=1, default=str).encode()
            )
            self.log.info("Report written to %s", report_uri)
            self._keep_statistics(self.hook, rows)
            self._keep_deleted_index(context, rows, missing)
        if missing:
            raise AirflowException(f"backup incomplete: no result from {', '.join(missing)}")
        if totals["failed"]:
            shown = ", ".join(f"{f['key']!r} ({f['error']})" for f in failures[:5])
            raise AirflowException(f"backup finished with {totals['failed']} failed object(s): {shown}")
        if not self.dry_run:
            context["outlet_events"][AssetAlias(BACKUP_ASSET_ALIAS)].add(Asset(f"s3://{self.backup_bucket}"))
        return totals

    def _note_listing_source(
        self, rows: list[dict[str, Any]], settings: dict[str, Any], totals: dict[str, Any], report: dict
    ) -> None:
        """Name the listing source in the report; an inventory's snapshot bounds what the run saw."""
        snapshots = {p.get("inventory_snapshot") for p in as_list(self.partitions)} - {None, ""}
        settings["listing_source"] = "inventory" if snapshots else "list"
        if not snapshots:
            return
        snapshot = inventory_minute(min(snapshots))
        settings["inventory_snapshot"] = min(snapshots)
        totals["newer_than_inventory"] = total(rows, "diff", "newer_than_inventory")
        totals["gone_since_inventory"] = total(rows, "copy", "gone_since_inventory") + total(
            rows, "chunked", "gone_since_inventory"
        )
        report["listing"] = (
            f"source listed by its S3 Inventory report of {snapshot}: objects written after "
            f"{snapshot} are caught by the next run or the continuous backup"
        )
        self.log.info(
            "%s; %d backup object(s) written after the snapshot left untagged, %d listed object(s) "
            "deleted since",
            report["listing"],
            totals["newer_than_inventory"],
            totals["gone_since_inventory"],
        )

    def _count_skipped_steps(self, rows: list[dict[str, Any]]) -> None:
        """A copy_batch and tag_deleted that their diff skipped count as zero work, but only
        where the diff's numbers say there was nothing to copy or tag (else they stay missing):
        a skipped copy_batch where the partition was idle, a skipped tag_deleted where nothing
        was left to tag."""
        tagging = bool(self.tag_deleted)

        def idle(diff: dict[str, Any], step: str) -> bool:
            if step == "tag":
                return nothing_to_tag(diff, tag_deleted=tagging)
            return backup_partition_idle(diff, tag_deleted=tagging)

        skipped = fill_skipped_steps(rows, "diff", {"copy": ZERO_COPY, "tag": ZERO_TAG}, idle)
        if skipped:
            self.log.info(
                "%d partition(s) had nothing to tag (tag_deleted skipped; where also nothing to "
                "copy, copy_batch too): %s",
                len(skipped),
                ", ".join(f"p{i}" for i in skipped[:20]),
            )

    def _chunk_results(self) -> list[Any]:
        return chunk_results(self.chunks, self.chunk_results)

    def _publish(self, totals: dict[str, int]) -> None:
        metrics = self.metrics_hook(self.cloudwatch_namespace)
        metrics.publish(
            {
                "ObjectsToBackup": totals["to_copy"],
                "BytesToBackup": totals["bytes_to_copy"],
                "ObjectsBackedUp": totals["copied"],
                "BytesBackedUp": totals["bytes_copied"],
                "ObjectsRemaining": max(0, totals["to_copy"] - totals["copied"]),
                "ObjectsTaggedDeleted": totals["tagged_deleted"],
                "ObjectsFailed": totals["failed"],
                "ObjectsSkippedArchived": totals["skipped_archived"],
            },
            {"SourceBucket": self.source_bucket, "BackupBucket": self.backup_bucket},
        )

    def _keep_deleted_index(self, context: Any, rows: list[dict[str, Any]], missing: list[str]) -> None:
        """After a run in which every vanished object is tagged, the index of the deleted keys
        (its vanished manifests by key range) that restores read instead of every object's tags."""
        if not self.tag_deleted or missing or total(rows, "tag", "failed"):
            self.log.info("No deleted-key index from this run (tagging off, incomplete or failed)")
            return
        ranges = {int(p["index"]): p for p in as_list(self.partitions)}
        index = build_index(
            prefix=self.prefix,
            source_bucket=self.source_bucket,
            dag_id=self.dag_id,
            run_id=context["run_id"],
            partitions=[{**ranges[row["index"]], **(row["diff"] or {})} for row in rows],
        )
        uri = f"s3://{self.backup_bucket}/{index_key(self.prefix)}"
        self.hook.put_json(uri, json.dumps(index, ensure_ascii=False).encode())
        self.log.info("Deleted-key index written to %s", uri)

    def _keep_statistics(self, backup: Any, rows: list[dict[str, Any]]) -> None:
        sample_sets = []
        for row in rows:
            uri = (row["diff"] or {}).get("samples_uri")
            body = backup.get_json_bytes(uri) if uri else None
            if body is None:
                return  # a partial picture would size the next run's partitions wrongly
            sample_sets.append([tuple(pair) for pair in json.loads(body)])
        unordered = [row["index"] for row in rows if (row["diff"] or {}).get(SORTED_LOCALLY)]
        if unordered and len(rows) > 1:
            self.log.warning(
                "Partition(s) %s found the endpoint listing out of S3's byte order: between "
                "partitions such an endpoint can hide keys from every listing, and this run may "
                "have missed some; the next runs plan one partition, listed whole and sorted",
                ", ".join(f"p{i}" for i in unordered),
            )
        backup.put_json(
            stats_uri(self.backup_bucket, self.prefix),
            encode_stats(
                self.prefix,
                merge_samples(sample_sets),
                measured_copy_fraction(rows),
                unordered_listing=bool(unordered),
            ),
        )
