"""s3br's operators executed one by one, outside a DAG, with the arguments the factories give.

A "run" here is what the validate step returned (the checked options) plus the run id, so a
test can drive one backup or restore step by step and look at the buckets in between.
"""

from __future__ import annotations

from typing import Any

from s3br_provider.core.manifest import run_folder
from s3br_provider.operators.copy_batch import S3CopyBatchOperator
from s3br_provider.operators.diff import S3DiffPartitionOperator
from s3br_provider.operators.plan import S3PlanPartitionsOperator
from s3br_provider.operators.restore import (
    S3CreateTargetBucketOperator,
    S3RequestRestoreOperator,
    S3RestoreSelectOperator,
)
from s3br_provider.operators.tag_deleted import S3TagDeletedOperator
from s3br_provider.operators.validate import S3BackupValidateOperator, S3RestoreValidateOperator

WHOLE = {"index": 0, "start_after": None, "end": None}
ADHOC_DAG_ID = "adhoc_airflow"  # the dag_id of an operator that belongs to no DAG


class TaskInstance:
    """The two things the operators use of ``context["ti"]``: the try number and XCom pushes."""

    def __init__(self, try_number: int = 1) -> None:
        self.try_number = try_number
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def context(run_id: str = "manual__x", try_number: int = 1) -> dict[str, Any]:
    """What the operators read from an Airflow context."""
    return {"run_id": run_id, "ti": TaskInstance(try_number), "params": {}}


def run_uri(run: dict[str, Any]) -> str:
    """The run folder the operators write to (in the backup bucket)."""
    return run_folder(run["backup_bucket"], ADHOC_DAG_ID, run["run_id"])


# Backup ---------------------------------------------------------------------------------------


def validate(source: str, backup: str, *, run_id: str = "manual__x", **options: Any) -> dict[str, Any]:
    verify = options.pop("verify", False)
    op = S3BackupValidateOperator(
        task_id="validate", source_bucket=source, backup_bucket=backup, verify_copies=verify, **options
    )
    return {**op.execute(context(run_id)), "run_id": run_id}


def plan(run: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
    op = S3PlanPartitionsOperator(
        task_id="plan_partitions",
        bucket=run["source_bucket"],
        prefix=run["prefix"],
        max_partitions=run["max_partitions"],
        aws_conn_id=run["source_aws_conn_id"],
        stats_bucket=run["backup_bucket"],
        stats_aws_conn_id=run["backup_aws_conn_id"],
        **kwargs,
    )
    return op.execute(context(run["run_id"]))


def diff(
    run: dict[str, Any],
    partition: dict[str, Any] = WHOLE,
    *,
    task_context: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """diff over ``partition`` with the validated run's settings; ``options``: other arguments;
    ``task_context``: the context to execute in (to look at its XCom pushes)."""
    op = S3DiffPartitionOperator(
        task_id="diff",
        partition=partition,
        source_bucket=run["source_bucket"],
        backup_bucket=run["backup_bucket"],
        prefix=run["prefix"],
        compare=run["compare"],
        dry_run=run["dry_run"],
        source_aws_conn_id=run["source_aws_conn_id"],
        aws_conn_id=run["backup_aws_conn_id"],
        **options,
    )
    return op.execute(task_context or context(run["run_id"]))


def copy(
    run: dict[str, Any], work: dict[str, Any], *, try_number: int = 1, partition: dict[str, Any] = WHOLE
) -> dict[str, Any]:
    op = S3CopyBatchOperator(
        task_id="copy_batch",
        partition=partition,
        source_bucket=run["source_bucket"],
        target_bucket=run["backup_bucket"],
        manifest_uri=work["copy_manifest"],
        expected=work["to_copy"],
        prefix=run["prefix"],
        multipart_threshold_mb=run["multipart_threshold_mb"],
        verify_copies=run["verify"],
        kms_key_id=run.get("backup_kms_key_id", ""),
        dry_run=run["dry_run"],
        source_aws_conn_id=run["source_aws_conn_id"],
        aws_conn_id=run["backup_aws_conn_id"],
    )
    return op.execute(context(run["run_id"], try_number))


def tag(run: dict[str, Any], work: dict[str, Any], partition: dict[str, Any] = WHOLE) -> dict[str, Any]:
    op = S3TagDeletedOperator(
        task_id="tag_deleted",
        partition=partition,
        backup_bucket=run["backup_bucket"],
        manifest_uri=work["vanished_manifest"],
        expected=work["vanished"],
        tag_deleted=run["tag_deleted"],
        dry_run=run["dry_run"],
        aws_conn_id=run["backup_aws_conn_id"],
    )
    return op.execute(context(run["run_id"]))


# Restore --------------------------------------------------------------------------------------


def validate_restore(
    backup: str, target: str, *, run_id: str = "manual__r", **options: Any
) -> dict[str, Any]:
    op = S3RestoreValidateOperator(task_id="validate", backup_bucket=backup, target_bucket=target, **options)
    return {**op.execute(context(run_id)), "run_id": run_id}


def create_target(run: dict[str, Any]) -> dict[str, Any]:
    op = S3CreateTargetBucketOperator(
        task_id="create_target",
        target_bucket=run["target_bucket"],
        backup_bucket=run["backup_bucket"],
        copy_versioning=run["copy_versioning"],
        backup_aws_conn_id=run["backup_aws_conn_id"],
        dry_run=run["dry_run"],
        aws_conn_id=run["target_aws_conn_id"],
    )
    return op.execute(context(run["run_id"]))


def select(
    run: dict[str, Any],
    partition: dict[str, Any] = WHOLE,
    *,
    task_context: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    op = S3RestoreSelectOperator(
        task_id="select",
        partition=partition,
        backup_bucket=run["backup_bucket"],
        prefix=run["prefix"],
        include_deleted=run["include_deleted"],
        as_of=run["as_of"],
        dry_run=run["dry_run"],
        aws_conn_id=run["backup_aws_conn_id"],
        **options,
    )
    return op.execute(task_context or context(run["run_id"]))


def request_restore(run: dict[str, Any], work: dict[str, Any]) -> dict[str, Any]:
    op = S3RequestRestoreOperator(
        task_id="request_restore",
        backup_bucket=run["backup_bucket"],
        manifest_uri=work["archived_manifest"],
        restore_tier=run["restore_tier"],
        restore_days=run["restore_days"],
        dry_run=run["dry_run"],
        aws_conn_id=run["backup_aws_conn_id"],
    )
    return op.execute(context(run["run_id"]))


def restore_copy(run: dict[str, Any], work: dict[str, Any], *, try_number: int = 1) -> dict[str, Any]:
    op = S3CopyBatchOperator(
        task_id="copy_batch",
        source_bucket=run["backup_bucket"],
        target_bucket=run["target_bucket"],
        manifest_uri=work["copy_manifest"],
        expected=work["selected"],
        prefix=run["prefix"],
        multipart_threshold_mb=run["multipart_threshold_mb"],
        storage_class=run["storage_class"],
        dry_run=run["dry_run"],
        source_aws_conn_id=run["backup_aws_conn_id"],
        manifest_aws_conn_id=run["backup_aws_conn_id"],
        aws_conn_id=run["target_aws_conn_id"],
    )
    return op.execute(context(run["run_id"], try_number))
