"""``backup_group`` and ``restore_group``: the whole backup or restore flow inside any DAG.

Each builds a TaskGroup whose tasks keep the ids of the ready DAGs (``validate``,
``plan_partitions``, ``partition.diff``, ...) under ``group_id``. Every keyword is templated
(``"{{ params.source_bucket }}"`` works: rendered strings are converted when a task checks its
arguments), and defaults equal the DAG Params' (``core.settings``). ``validate`` is the group's
setup task: when it fails, nothing else runs and its message is the run's only error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from airflow.sdk import TaskGroup, task_group

from s3br_provider.core.settings import BACKUP_DEFAULTS as B
from s3br_provider.core.settings import RESTORE_DEFAULTS as R
from s3br_provider.operators.copy_batch import S3CopyBatchOperator
from s3br_provider.operators.diff import S3DiffPartitionOperator
from s3br_provider.operators.plan import S3PlanPartitionsOperator
from s3br_provider.operators.report import S3BackupReportOperator
from s3br_provider.operators.restore import (
    S3CreateTargetBucketOperator,
    S3RequestRestoreOperator,
    S3RestoreSelectOperator,
)
from s3br_provider.operators.restore_report import S3RestoreReportOperator
from s3br_provider.operators.tag_deleted import S3TagDeletedOperator
from s3br_provider.operators.validate import S3BackupValidateOperator, S3RestoreValidateOperator
from s3br_provider.sensors.glacier_restore import GlacierRestoreSensor

PARTITION_GROUP = "partition"
TAG_TRIGGER_RULE = "all_done_min_one_success"
"""tag_deleted's upstreams are diff and copy_batch: it runs when both are done and diff succeeded."""
_ONE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)


def _times_60(minutes: int | str) -> int | str:
    """Minutes as seconds, also for a template of one expression (``{{ params.x }}``)."""
    if isinstance(minutes, int):
        return minutes * 60
    match = _ONE_EXPRESSION.match(minutes)
    if match is None:
        return int(minutes) * 60
    return f"{{{{ (({match.group('expr')}) | int) * 60 }}}}"


def _group(group_id: str, prefix_group_id: bool, tooltip: str) -> TaskGroup:
    return TaskGroup(group_id=group_id, prefix_group_id=prefix_group_id, tooltip=tooltip)


def backup_group(
    *,
    group_id: str,
    source_bucket: str,
    backup_bucket: str,
    prefix: str = B.prefix,
    compare: str = B.compare,
    tag_deleted: bool | str = B.tag_deleted,
    dry_run: bool | str = B.dry_run,
    multipart_threshold_mb: int | str = B.multipart_threshold_mb,
    max_partitions: int | str = B.max_partitions,
    cloudwatch_namespace: str = B.cloudwatch_namespace,
    source_aws_conn_id: str = B.source_aws_conn_id,
    backup_aws_conn_id: str = B.backup_aws_conn_id,
    verify: bool | str = B.verify,
    backup_storage_class: str = B.backup_storage_class,
    archived_source: str = B.archived_source,
    retention_mode: str = B.retention_mode,
    retention_days: int | str = B.retention_days,
    source_bucket_variable: str | None = None,
    backup_bucket_variable: str | None = None,
    prefix_group_id: bool = True,
    region_name: str | None = None,
    botocore_config: dict[str, Any] | None = None,
    known_params: Sequence[str] | None = None,
) -> TaskGroup:
    """Back up ``source_bucket`` into ``backup_bucket``: ``validate -> plan_partitions ->
    partition[p](diff -> copy_batch -> tag_deleted) -> report``, inside the current DAG.

    The keywords are ``s3_backup``'s Params (see the README), plus:

    :param group_id: the TaskGroup's id; also the sub-folder of the run's files, so several
        groups in one DAG keep apart.
    :param source_bucket_variable: the Airflow Variable a template of ``source_bucket`` falls
        back on, named in the error when both are empty.
    :param backup_bucket_variable: the same for ``backup_bucket``.
    :param prefix_group_id: False keeps the task ids without the ``group_id.`` prefix (the
        ``s3_backup`` DAG does this; the run's files then stay in the run folder itself).
    :param region_name: AWS region of both connections; default: each connection's.
    :param botocore_config: botocore ``Config`` keyword arguments for every S3 client.
    :param known_params: the DAG's Param names: validate fails a run whose conf names another.
    :return: the TaskGroup, to set dependencies on (``start >> backup_group(...)``).
    """
    aws = {"region_name": region_name, "botocore_config": botocore_config}
    aws["run_scope"] = group_id if prefix_group_id else None
    with _group(
        group_id, prefix_group_id, f"s3br backup {group_id}: validate, plan, partitions, report"
    ) as group:
        validate = S3BackupValidateOperator(
            task_id="validate",
            source_bucket=source_bucket,
            backup_bucket=backup_bucket,
            prefix=prefix,
            compare=compare,
            tag_deleted=tag_deleted,
            dry_run=dry_run,
            multipart_threshold_mb=multipart_threshold_mb,
            max_partitions=max_partitions,
            cloudwatch_namespace=cloudwatch_namespace,
            source_aws_conn_id=source_aws_conn_id,
            backup_aws_conn_id=backup_aws_conn_id,
            verify_copies=verify,
            backup_storage_class=backup_storage_class,
            archived_source=archived_source,
            retention_mode=retention_mode,
            retention_days=retention_days,
            source_bucket_variable=source_bucket_variable,
            backup_bucket_variable=backup_bucket_variable,
            known_params=known_params,
            **aws,
        ).as_setup()
        plan = S3PlanPartitionsOperator(
            task_id="plan_partitions",
            bucket=source_bucket,
            prefix=prefix,
            max_partitions=max_partitions,
            aws_conn_id=source_aws_conn_id,
            stats_bucket=backup_bucket,
            stats_aws_conn_id=backup_aws_conn_id,
            size_by_change_rate=True,
            **aws,
        )
        steps: dict[str, Any] = {}

        @task_group(group_id=PARTITION_GROUP)
        def backup_partition(partition: dict[str, Any]) -> None:
            """One key partition: diff, then copy, then tag what vanished."""
            diff = S3DiffPartitionOperator(
                task_id="diff",
                partition=partition,
                source_bucket=source_bucket,
                backup_bucket=backup_bucket,
                prefix=prefix,
                compare=compare,
                dry_run=dry_run,
                archived_source=archived_source,
                source_aws_conn_id=source_aws_conn_id,
                aws_conn_id=backup_aws_conn_id,
                **aws,
            )
            copy = S3CopyBatchOperator(
                task_id="copy_batch",
                partition=partition,
                source_bucket=source_bucket,
                target_bucket=backup_bucket,
                manifest_uri=diff.output["copy_manifest"],
                expected=diff.output["to_copy"],
                prefix=prefix,
                multipart_threshold_mb=multipart_threshold_mb,
                storage_class=backup_storage_class,
                retention_mode=retention_mode,
                retention_days=retention_days,
                verify_copies=verify,
                dry_run=dry_run,
                source_aws_conn_id=source_aws_conn_id,
                aws_conn_id=backup_aws_conn_id,
                **aws,
            )
            tag = S3TagDeletedOperator(
                task_id="tag_deleted",
                partition=partition,
                backup_bucket=backup_bucket,
                manifest_uri=diff.output["vanished_manifest"],
                expected=diff.output["vanished"],
                tag_deleted=tag_deleted,
                dry_run=dry_run,
                aws_conn_id=backup_aws_conn_id,
                # After the copy step whatever its failures (one bad object must not leave the
                # partition's vanished objects untagged), but never after a failed diff.
                trigger_rule=TAG_TRIGGER_RULE,
                **aws,
            )
            diff >> copy >> tag
            steps.update(diff=diff, copy=copy, tag=tag)

        partitions = backup_partition.expand(partition=plan.output)
        report = S3BackupReportOperator(
            task_id="report",
            source_bucket=source_bucket,
            backup_bucket=backup_bucket,
            prefix=prefix,
            partitions=plan.output,
            diff_results=steps["diff"].output,
            copy_results=steps["copy"].output,
            tag_results=steps["tag"].output,
            dry_run=dry_run,
            cloudwatch_namespace=cloudwatch_namespace,
            source_aws_conn_id=source_aws_conn_id,
            aws_conn_id=backup_aws_conn_id,
            **aws,
        )
        validate >> plan
        partitions >> report
    return group


def restore_group(
    *,
    group_id: str,
    backup_bucket: str,
    target_bucket: str,
    prefix: str = R.prefix,
    include_deleted: bool | str = R.include_deleted,
    restore_tier: str = R.restore_tier,
    restore_days: int | str = R.restore_days,
    as_of: str | None = R.as_of,
    dry_run: bool | str = R.dry_run,
    storage_class: str = R.storage_class,
    copy_versioning: bool | str = R.copy_versioning,
    poll_interval_seconds: int | str = R.poll_interval_seconds,
    restore_timeout_minutes: int | str = R.restore_timeout_minutes,
    max_partitions: int | str = R.max_partitions,
    multipart_threshold_mb: int | str = R.multipart_threshold_mb,
    cloudwatch_namespace: str = R.cloudwatch_namespace,
    backup_aws_conn_id: str = R.backup_aws_conn_id,
    target_aws_conn_id: str = R.target_aws_conn_id,
    prefix_group_id: bool = True,
    region_name: str | None = None,
    botocore_config: dict[str, Any] | None = None,
    known_params: Sequence[str] | None = None,
) -> TaskGroup:
    """Restore ``backup_bucket`` into ``target_bucket``: ``validate -> create_target ->
    plan_partitions -> partition[p](select -> request_restore -> wait_for_restore ->
    copy_batch) -> verify_and_report``, inside the current DAG.

    The keywords are ``s3_restore``'s Params (see the README), plus ``group_id``,
    ``prefix_group_id``, ``region_name``, ``botocore_config`` and ``known_params`` as for
    :func:`backup_group`.
    :return: the TaskGroup.
    """
    aws = {"region_name": region_name, "botocore_config": botocore_config}
    aws["run_scope"] = group_id if prefix_group_id else None
    with _group(
        group_id, prefix_group_id, f"s3br restore {group_id}: validate, create, plan, partitions, report"
    ) as group:
        validate = S3RestoreValidateOperator(
            task_id="validate",
            backup_bucket=backup_bucket,
            target_bucket=target_bucket,
            prefix=prefix,
            include_deleted=include_deleted,
            restore_tier=restore_tier,
            restore_days=restore_days,
            as_of=as_of,
            dry_run=dry_run,
            storage_class=storage_class,
            copy_versioning=copy_versioning,
            poll_interval_seconds=poll_interval_seconds,
            restore_timeout_minutes=restore_timeout_minutes,
            max_partitions=max_partitions,
            multipart_threshold_mb=multipart_threshold_mb,
            cloudwatch_namespace=cloudwatch_namespace,
            backup_aws_conn_id=backup_aws_conn_id,
            target_aws_conn_id=target_aws_conn_id,
            known_params=known_params,
            **aws,
        ).as_setup()
        create_target = S3CreateTargetBucketOperator(
            task_id="create_target",
            target_bucket=target_bucket,
            backup_bucket=backup_bucket,
            copy_versioning=copy_versioning,
            backup_aws_conn_id=backup_aws_conn_id,
            dry_run=dry_run,
            aws_conn_id=target_aws_conn_id,
            **aws,
        )
        plan = S3PlanPartitionsOperator(
            task_id="plan_partitions",
            bucket=backup_bucket,
            prefix=prefix,
            max_partitions=max_partitions,
            aws_conn_id=backup_aws_conn_id,
            **aws,
        )
        steps: dict[str, Any] = {}

        @task_group(group_id=PARTITION_GROUP)
        def restore_partition(partition: dict[str, Any]) -> None:
            """One key partition: select, restore archived objects, wait, copy."""
            select = S3RestoreSelectOperator(
                task_id="select",
                partition=partition,
                backup_bucket=backup_bucket,
                prefix=prefix,
                include_deleted=include_deleted,
                as_of=as_of,
                dry_run=dry_run,
                aws_conn_id=backup_aws_conn_id,
                **aws,
            )
            request = S3RequestRestoreOperator(
                task_id="request_restore",
                partition=partition,
                backup_bucket=backup_bucket,
                manifest_uri=select.output["archived_manifest"],
                restore_tier=restore_tier,
                restore_days=restore_days,
                dry_run=dry_run,
                aws_conn_id=backup_aws_conn_id,
                **aws,
            )
            wait = GlacierRestoreSensor(
                task_id="wait_for_restore",
                bucket=backup_bucket,
                manifest_uri=select.output["archived_manifest"],
                aws_conn_id=backup_aws_conn_id,
                region_name=region_name,
                botocore_config=botocore_config,
                restore_tier=restore_tier,
                restore_days=restore_days,
                poll_interval=poll_interval_seconds,
                restore_timeout=_times_60(restore_timeout_minutes),
                partition_name=select.output["partition_name"],
            )
            copy = S3CopyBatchOperator(
                task_id="copy_batch",
                partition=partition,
                source_bucket=backup_bucket,
                target_bucket=target_bucket,
                manifest_uri=select.output["copy_manifest"],
                expected=select.output["selected"],
                prefix=prefix,
                multipart_threshold_mb=multipart_threshold_mb,
                storage_class=storage_class,
                dry_run=dry_run,
                source_aws_conn_id=backup_aws_conn_id,
                manifest_aws_conn_id=backup_aws_conn_id,
                aws_conn_id=target_aws_conn_id,
                **aws,
            )
            select >> request >> wait >> copy
            steps.update(select=select, copy=copy)

        partitions = restore_partition.expand(partition=plan.output)
        report = S3RestoreReportOperator(
            task_id="verify_and_report",
            backup_bucket=backup_bucket,
            target_bucket=target_bucket,
            partitions=plan.output,
            select_results=steps["select"].output,
            copy_results=steps["copy"].output,
            prefix=prefix,
            include_deleted=include_deleted,
            as_of=as_of,
            restore_tier=restore_tier,
            restore_days=restore_days,
            dry_run=dry_run,
            cloudwatch_namespace=cloudwatch_namespace,
            backup_aws_conn_id=backup_aws_conn_id,
            aws_conn_id=target_aws_conn_id,
            **aws,
        )
        validate >> create_target >> plan
        partitions >> report
    return group
