"""``s3_restore``: copy a backup bucket (as it is, or as it was) into a new bucket."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task_group

from s3br_provider.core.retrieval import TIERS
from s3br_provider.core.settings import STORAGE_CLASSES
from s3br_provider.operators.copy_batch import S3CopyBatchOperator
from s3br_provider.operators.plan import S3PlanPartitionsOperator
from s3br_provider.operators.restore import (
    S3CreateTargetBucketOperator,
    S3RequestRestoreOperator,
    S3RestoreSelectOperator,
)
from s3br_provider.operators.restore_report import S3RestoreReportOperator
from s3br_provider.operators.validate import S3RestoreValidateOperator
from s3br_provider.sensors.glacier_restore import GlacierRestoreSensor

DOC = """
### S3 restore

Copies every object of `backup_bucket` that is not tagged `Deleted=True` into `target_bucket`,
a bucket the run creates (an existing bucket must be empty: a restore never overwrites).
Objects in GLACIER or DEEP_ARCHIVE are restored first (`restore_tier`, `restore_days`) and a
deferrable `GlacierRestoreSensor` waits for them in the triggerer. With `as_of`, the backup is
restored as it stood at that instant (the backup bucket must be versioned).

`validate -> create_target -> plan_partitions -> partition[p](select -> request_restore ->
wait_for_restore -> copy_batch) -> verify_and_report`

Use `dry_run` first: it reports objects and bytes per storage class, the restore requests that
would be made and the expected retrieval time, and writes nothing.
"""

PARAMS = {
    "backup_bucket": Param(
        type="string", minLength=3, title="Backup bucket", description="Where the backup lives."
    ),
    "target_bucket": Param(
        type="string",
        minLength=3,
        title="Target bucket",
        description="New bucket to restore into; created by the run. An existing bucket must be empty.",
    ),
    "prefix": Param("", type="string", description="Only restore keys under this prefix."),
    "include_deleted": Param(
        False,
        type="boolean",
        description="Also restore objects tagged Deleted=True (their source was deleted).",
    ),
    "restore_tier": Param(
        "Standard",
        type="string",
        enum=list(TIERS),
        description=(
            "Glacier retrieval tier. GLACIER: Expedited 1-5 min, Standard 3-5 h, Bulk 5-12 h. "
            "DEEP_ARCHIVE: Standard within 12 h, Bulk within 48 h (Expedited falls back to Standard)."
        ),
    ),
    "restore_days": Param(
        1,
        type="integer",
        minimum=1,
        description="Days a restored archive copy stays readable in the backup bucket.",
    ),
    "as_of": Param(
        None,
        type=["null", "string"],
        description="ISO-8601 instant (e.g. 2026-01-31T12:00:00Z): restore the backup as it stood then. "
        "Needs a versioned backup bucket. Empty: the latest state.",
    ),
    "dry_run": Param(
        False, type="boolean", description="Plan and report only (counts, bytes, retrieval times)."
    ),
    "storage_class": Param(
        "STANDARD",
        type="string",
        enum=list(STORAGE_CLASSES),
        description="Storage class of the restored objects.",
    ),
    "copy_versioning": Param(
        False,
        type="boolean",
        description="Enable versioning on the target when the backup bucket is versioned.",
    ),
    "poll_interval_seconds": Param(
        300, type="integer", minimum=1, description="How often the sensor checks archive restores."
    ),
    "restore_timeout_minutes": Param(
        2880,
        type="integer",
        minimum=1,
        description="Fail if archive restores take longer than this (minutes).",
    ),
    "max_partitions": Param(
        64, type="integer", minimum=1, description="Upper bound on mapped key partitions."
    ),
    "multipart_threshold_mb": Param(
        5120,
        type="integer",
        minimum=5,
        maximum=5120,
        description="Objects larger than this (MiB) are copied in parts (UploadPartCopy).",
    ),
    "cloudwatch_namespace": Param(
        "BackupRecovery", type="string", description="CloudWatch namespace for metrics; empty turns them off."
    ),
    "backup_aws_conn_id": Param(
        "aws_default", type="string", description="AWS connection for the backup bucket."
    ),
    "target_aws_conn_id": Param(
        "aws_default", type="string", description="AWS connection for the target bucket."
    ),
}


@dag(
    dag_id="s3_restore",
    description="Restore a backup bucket (optionally as of an instant) into a new bucket.",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params=PARAMS,
    doc_md=DOC,
    tags=["s3br", "restore"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True},
)
def s3_restore() -> None:
    validate = S3RestoreValidateOperator(task_id="validate", retries=0)
    settings = validate.output
    create_target = S3CreateTargetBucketOperator(task_id="create_target", settings=settings, retries=0)
    plan = S3PlanPartitionsOperator(
        task_id="plan_partitions",
        settings=settings,
        bucket_setting="backup_bucket",
        conn_setting="backup_aws_conn_id",
    )
    steps = {}

    @task_group(group_id="partition")
    def restore_partition(partition: dict) -> None:
        """One key partition: select, restore archived objects, wait, copy."""
        select = S3RestoreSelectOperator(task_id="select", settings=settings, partition=partition)
        request = S3RequestRestoreOperator(
            task_id="request_restore", settings=settings, partition=partition, work=select.output
        )
        wait = GlacierRestoreSensor(
            task_id="wait_for_restore",
            bucket=settings["backup_bucket"],
            manifest_uri=select.output["archived_manifest"],
            aws_conn_id=settings["backup_aws_conn_id"],
            restore_tier=settings["restore_tier"],
            restore_days=settings["restore_days"],
            poll_interval=settings["poll_interval_seconds"],
            restore_timeout=settings["restore_timeout_seconds"],
            partition_name=select.output["label"],
        )
        copy = S3CopyBatchOperator(
            task_id="copy_batch", settings=settings, partition=partition, work=select.output, mode="restore"
        )
        select >> request >> wait >> copy
        steps.update(select=select, copy=copy)

    partitions = restore_partition.expand(partition=plan.output)
    report = S3RestoreReportOperator(
        task_id="verify_and_report",
        settings=settings,
        partitions=plan.output,
        select_results=steps["select"].output,
        copy_results=steps["copy"].output,
    )
    create_target >> plan
    partitions >> report


s3_restore()
