"""``backup_from_operators``: one backup built from the bare operators, without ``backup_group``."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task_group

from s3br_provider.operators.copy_batch import S3CopyBatchOperator
from s3br_provider.operators.diff import S3DiffPartitionOperator
from s3br_provider.operators.plan import S3PlanPartitionsOperator
from s3br_provider.operators.tag_deleted import S3TagDeletedOperator

SOURCE, BACKUP = "{{ params.source }}", "{{ params.backup }}"

with DAG(
    "backup_from_operators",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"source": Param("", type="string"), "backup": Param("", type="string")},
):
    plan = S3PlanPartitionsOperator(task_id="plan", bucket=SOURCE, stats_bucket=BACKUP, max_partitions=4)

    @task_group
    def one_range(partition: dict) -> None:
        diff = S3DiffPartitionOperator(
            task_id="diff", partition=partition, source_bucket=SOURCE, backup_bucket=BACKUP
        )
        copy = S3CopyBatchOperator(
            task_id="copy",
            partition=partition,
            source_bucket=SOURCE,
            target_bucket=BACKUP,
            manifest_uri=diff.output["copy_manifest"],
        )
        tag = S3TagDeletedOperator(
            task_id="tag",
            partition=partition,
            backup_bucket=BACKUP,
            manifest_uri=diff.output["vanished_manifest"],
        )
        diff >> copy >> tag

    one_range.expand(partition=plan.output)
