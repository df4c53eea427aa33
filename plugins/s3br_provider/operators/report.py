"""The reduce step of a backup run: one report, statistics, metrics, an asset event."""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import Asset, AssetAlias
from airflow.sdk.exceptions import AirflowException

from s3br_provider.core.progress import format_bytes
from s3br_provider.core.report import as_list, format_table, join_partitions, missing_steps, total
from s3br_provider.core.stats import encode_stats, measured_copy_fraction, merge_samples, stats_uri
from s3br_provider.operators.base import S3brBaseOperator
from s3br_provider.operators.validate import InvalidRunError

BACKUP_ASSET_ALIAS = "s3br-backup"
"""Asset alias under which each successful backup emits ``s3://<backup_bucket>``."""


class S3BackupReportOperator(S3brBaseOperator):
    """Summarise a backup run per partition, keep statistics, publish metrics.

    Runs even when partitions failed (``trigger_rule="all_done"``) so the report shows what
    was done, then fails if any partition did not finish.

    :param partitions: the plan.
    :param diff_results: results of the mapped diff tasks.
    :param copy_results: results of the mapped copy tasks.
    :param tag_results: results of the mapped tag tasks.
    """

    template_fields: tuple[str, ...] = (
        "settings",
        "partitions",
        "diff_results",
        "copy_results",
        "tag_results",
    )

    def __init__(
        self, *, partitions: Any, diff_results: Any, copy_results: Any, tag_results: Any, **kwargs: Any
    ) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        kwargs.setdefault("retries", 0)
        kwargs.setdefault("outlets", [AssetAlias(BACKUP_ASSET_ALIAS)])
        super().__init__(**kwargs)
        self.partitions = partitions
        self.diff_results = diff_results
        self.copy_results = copy_results
        self.tag_results = tag_results

    def execute(self, context: Any) -> dict[str, Any]:
        s = self.settings
        if not s:
            # Fail (not skip): a skipped last task would mark the whole run successful.
            raise InvalidRunError("validate did not pass (see its log): nothing was written")
        rows = join_partitions(
            as_list(self.partitions), diff=self.diff_results, copy=self.copy_results, tag=self.tag_results
        )
        totals = {
            "partitions": len(rows),
            "source_objects": total(rows, "diff", "source_objects"),
            "unchanged": total(rows, "diff", "unchanged"),
            "to_copy": total(rows, "diff", "new") + total(rows, "diff", "changed"),
            "bytes_to_copy": total(rows, "diff", "bytes_to_copy"),
            "copied": total(rows, "copy", "copied"),
            "bytes_copied": total(rows, "copy", "bytes"),
            "vanished": total(rows, "diff", "vanished"),
            "tagged_deleted": total(rows, "tag", "tagged"),
            "failed": total(rows, "copy", "failed") + total(rows, "tag", "failed"),
        }
        missing = missing_steps(rows, ("diff", "copy", "tag"))
        report = {"settings": s, "totals": totals, "incomplete": missing, "partitions": rows}
        self.log.info(
            "Backup of s3://%s into s3://%s\n%s", s["source_bucket"], s["backup_bucket"], self._table(rows)
        )
        self.log.info(
            "Totals: %(source_objects)d source objects, %(to_copy)d to copy, %(copied)d copied, "
            "%(unchanged)d unchanged, %(vanished)d vanished, %(tagged_deleted)d newly tagged deleted, "
            "%(failed)d failed",
            totals,
        )
        self.log.info("Bytes copied: %s", format_bytes(totals["bytes_copied"]))
        self._publish(s, totals)
        if not s["dry_run"]:
            backup = self.hook(s["backup_aws_conn_id"])
            report_uri = f"{s['run_uri']}/report.json"
            backup.put_json(
                report_uri, json.dumps(report, ensure_ascii=False, indent=1, default=str).encode()
            )
            self.log.info("Report written to %s", report_uri)
            self._keep_statistics(backup, rows)
        if missing:
            raise AirflowException(f"backup incomplete: no result from {', '.join(missing)}")
        if not s["dry_run"]:
            context["outlet_events"][AssetAlias(BACKUP_ASSET_ALIAS)].add(Asset(f"s3://{s['backup_bucket']}"))
        return totals

    def _table(self, rows: list[dict[str, Any]]) -> str:
        header = (
            "part",
            "range",
            "source",
            "new",
            "changed",
            "unchanged",
            "vanished",
            "copied",
            "bytes",
            "tagged",
            "failed",
        )
        lines = []
        for row in rows:
            diff, copy, tag = row["diff"] or {}, row["copy"] or {}, row["tag"] or {}
            lines.append(
                (
                    f"p{row['index']}",
                    diff.get("label", "?"),
                    diff.get("source_objects", 0),
                    diff.get("new", 0),
                    diff.get("changed", 0),
                    diff.get("unchanged", 0),
                    diff.get("vanished", 0),
                    copy.get("copied", 0),
                    copy.get("bytes", 0),
                    tag.get("tagged", 0),
                    copy.get("failed", 0) + tag.get("failed", 0),
                )
            )
        return format_table(header, lines)

    def _publish(self, s: dict[str, Any], totals: dict[str, int]) -> None:
        from s3br_provider.hooks.metrics import BackupMetricsHook

        metrics = BackupMetricsHook(aws_conn_id=s["backup_aws_conn_id"], namespace=s["cloudwatch_namespace"])
        metrics.publish(
            {
                "ObjectsToBackup": totals["to_copy"],
                "BytesToBackup": totals["bytes_to_copy"],
                "ObjectsBackedUp": totals["copied"],
                "BytesBackedUp": totals["bytes_copied"],
                "ObjectsRemaining": max(0, totals["to_copy"] - totals["copied"]),
                "ObjectsTaggedDeleted": totals["tagged_deleted"],
                "ObjectsFailed": totals["failed"],
            },
            {"SourceBucket": s["source_bucket"], "BackupBucket": s["backup_bucket"]},
        )

    def _keep_statistics(self, backup: Any, rows: list[dict[str, Any]]) -> None:
        sample_sets = []
        for row in rows:
            uri = (row["diff"] or {}).get("samples_uri")
            body = backup.get_json_bytes(uri) if uri else None
            if body is None:
                return  # a partial picture would size the next run's partitions wrongly
            sample_sets.append([tuple(pair) for pair in json.loads(body)])
        s = self.settings
        backup.put_json(
            stats_uri(s["backup_bucket"], s["prefix"]),
            encode_stats(s["prefix"], merge_samples(sample_sets), measured_copy_fraction(rows)),
        )
