"""``s3_backup``: keep a backup bucket in step with a source bucket, server-side, in parallel."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task_group

from s3br_provider.core.diff import Compare
from s3br_provider.operators.copy_batch import S3CopyBatchOperator
from s3br_provider.operators.diff import S3DiffPartitionOperator
from s3br_provider.operators.plan import S3PlanPartitionsOperator
from s3br_provider.operators.report import S3BackupReportOperator
from s3br_provider.operators.tag_deleted import S3TagDeletedOperator
from s3br_provider.operators.validate import S3BackupValidateOperator

DOC = """
### S3 backup

Copies new and changed objects of `source_bucket` into `backup_bucket` server-side, one mapped
task per key partition. Objects that vanished from the source are **never deleted** from the
backup: they are tagged `Deleted=True` and `DeletedAt=YYYY-MM-DDTHH:MM` (UTC).

`validate -> plan_partitions -> partition[p](diff -> copy_batch -> tag_deleted) -> report`

Mapped tasks are named by their key range `(start_after, end]`. Manifests and the run report
(`report.json`) live in the backup bucket under `_s3br/runs/s3_backup/<run_id>/`.
"""

PARAMS = {
    "source_bucket": Param(
        "",
        type="string",
        title="Source bucket",
        description="Bucket to back up. Empty: the Airflow Variable s3br_source_bucket.",
    ),
    "backup_bucket": Param(
        "",
        type="string",
        title="Backup bucket",
        description="Bucket that receives the copies. Empty: the Airflow Variable s3br_backup_bucket.",
    ),
    "prefix": Param("", type="string", description="Only back up keys under this prefix."),
    "compare": Param(
        "size_mtime",
        type="string",
        enum=[rule.value for rule in Compare],
        description=(
            "size_mtime: copy when missing, size differs, or the source is newer than the copy. "
            "checksum: also when ETags differ (single-part objects)."
        ),
    ),
    "tag_deleted": Param(True, type="boolean", description="Tag backup objects whose source vanished."),
    "dry_run": Param(False, type="boolean", description="Plan and report only; write nothing."),
    "multipart_threshold_mb": Param(
        5120,
        type="integer",
        minimum=5,
        maximum=5120,
        description="Objects larger than this (MiB) are copied in parts (UploadPartCopy).",
    ),
    "max_partitions": Param(
        64, type="integer", minimum=1, description="Upper bound on the mapped key partitions."
    ),
    "cloudwatch_namespace": Param(
        "BackupRecovery", type="string", description="CloudWatch namespace for metrics; empty turns them off."
    ),
    "source_aws_conn_id": Param("aws_default", type="string", description="AWS connection for the source."),
    "backup_aws_conn_id": Param("aws_default", type="string", description="AWS connection for the backup."),
    "verify": Param(
        False, type="boolean", description="After copying, compare size and fingerprint of each copy."
    ),
}


@dag(
    dag_id="s3_backup",
    description="Back up an S3 bucket into a backup bucket; vanished objects are tagged, never deleted.",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params=PARAMS,
    doc_md=DOC,
    tags=["s3br", "backup"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True},
)
def s3_backup() -> None:
    validate = S3BackupValidateOperator(task_id="validate", retries=0)
    settings = validate.output
    plan = S3PlanPartitionsOperator(
        task_id="plan_partitions",
        settings=settings,
        bucket_setting="source_bucket",
        conn_setting="source_aws_conn_id",
        size_by_change_rate=True,
    )

    steps = {}

    @task_group(group_id="partition")
    def backup_partition(partition: dict) -> None:
        """One key partition: diff, then copy, then tag what vanished."""
        diff = S3DiffPartitionOperator(task_id="diff", settings=settings, partition=partition)
        copy = S3CopyBatchOperator(
            task_id="copy_batch", settings=settings, partition=partition, work=diff.output, mode="backup"
        )
        tag = S3TagDeletedOperator(
            task_id="tag_deleted", settings=settings, partition=partition, work=diff.output
        )
        diff >> copy >> tag
        steps.update(diff=diff, copy=copy, tag=tag)

    partitions = backup_partition.expand(partition=plan.output)
    report = S3BackupReportOperator(
        task_id="report",
        settings=settings,
        partitions=plan.output,
        diff_results=steps["diff"].output,
        copy_results=steps["copy"].output,
        tag_results=steps["tag"].output,
    )
    partitions >> report


s3_backup()
