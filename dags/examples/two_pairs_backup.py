"""``two_pairs_backup``: two ``backup_group``s in one DAG, bucket names from Params (DESIGN.md's example)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from s3br_provider.task_groups import backup_group

with DAG(
    "two_pairs_backup",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={name: Param("", type="string") for name in ("orders", "orders_backup", "logs", "logs_backup")},
):
    backup_group(
        group_id="orders",
        source_bucket="{{ params.orders }}",
        backup_bucket="{{ params.orders_backup }}",
        prefix="",
        compare="size_mtime",
        tag_deleted=True,
        dry_run=False,
        multipart_threshold_mb=5120,
        max_partitions=64,
        cloudwatch_namespace="BackupRecovery",
        source_aws_conn_id="aws_default",
        backup_aws_conn_id="aws_default",
        verify=False,
    )
    backup_group(
        group_id="logs",
        source_bucket="{{ params.logs }}",
        backup_bucket="{{ params.logs_backup }}",
        compare="checksum",
        verify=True,
    )
