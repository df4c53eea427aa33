"""``backup_group`` and ``restore_group``: the whole backup or restore flow inside any DAG.

Each builds a TaskGroup whose tasks keep the ids of the ready DAGs (``validate``,
``plan_partitions``, ``partition.diff``, ...) under ``group_id``. Every keyword is templated
(``"{{ params.source_bucket }}"`` works: rendered strings are converted when a task checks its
arguments), and defaults equal the DAG Params' (``core.settings``). ``validate`` is the group's
setup task: when it fails, nothing else runs and its message is the run's only error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Unpack

from airflow.sdk import TaskGroup, task_group

from s3br_provider.core.settings import BACKUP_DEFAULTS as B
from s3br_provider.core.settings import DRILL_DEFAULTS as D
from s3br_provider.core.settings import RESTORE_DEFAULTS as R
from s3br_provider.core.settings import BackupArguments, DrillArguments, RestoreArguments
from s3br_provider.operators.copy_batch import S3CopyBatchOperator
from s3br_provider.operators.diff import S3DiffPartitionOperator
from s3br_provider.operators.drill import (
    S3DrillChooseOperator,
    S3DrillSampleOperator,
    S3DrillValidateOperator,
    S3DrillVerifyOperator,
)
from s3br_provider.operators.plan import S3PlanPartitionsOperator
from s3br_provider.operators.report import S3BackupReportOperator
from s3br_provider.operators.restore import (
    S3CreateTargetBucketOperator,
    S3RequestRestoreOperator,
    S3RestorePlanOperator,
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


def _check_keywords(factory: str, options: dict[str, Any], allowed: type) -> None:
    unknown = sorted(set(options) - set(allowed.__annotations__))
    if unknown:
        raise TypeError(f"{factory}() got unexpected keyword argument(s): {', '.join(unknown)}")


def _group(group_id: str, prefix_group_id: bool, tooltip: str, shared: dict[str, Any]) -> TaskGroup:
    """The group whose ``default_args`` are its keywords: Airflow gives each task the ones its
    operator's signature names (as a DAG's ``default_args``), so a keyword is passed once here
    and reaches every operator that takes it. Names that mean something else to an operator
    (``aws_conn_id``, the base's TLS ``verify``) are passed to each task explicitly instead."""
    aws = {"run_scope": group_id if prefix_group_id else None}
    return TaskGroup(
        group_id=group_id, prefix_group_id=prefix_group_id, tooltip=tooltip, default_args=shared | aws
    )


def _over_partitions(steps: Callable[[Any], dict[str, Any]], plan: Any) -> tuple[Any, dict[str, Any]]:
    """Map a partition's ``steps`` over the plan's partitions (the ``partition`` group); return
    the mapped group and the report's arguments: the plan and each step's results."""
    built: dict[str, Any] = {}

    @task_group(group_id=PARTITION_GROUP, tooltip=steps.__doc__)
    def partition_group(partition: Any) -> None:
        built.update(steps(partition))

    mapped = partition_group.expand(partition=plan.output)
    results = {f"{name}_results": step.output for name, step in built.items()}
    return mapped, {"partitions": plan.output, **results}


def _copy_step(partition: Any, picked: Any, count: str, **kwargs: Any) -> S3CopyBatchOperator:
    """A partition's ``copy_batch``: copies the ``copy_manifest`` that ``picked`` (the output of
    ``diff`` or ``select``) wrote, ``count`` naming its number of objects."""
    return S3CopyBatchOperator(
        task_id="copy_batch",
        partition=partition,
        manifest_uri=picked["copy_manifest"],
        expected=picked[count],
        **kwargs,
    )


def backup_group(
    *,
    group_id: str,
    source_bucket: str,
    backup_bucket: str,
    verify: bool | str = B.verify,
    source_bucket_variable: str | None = None,
    backup_bucket_variable: str | None = None,
    prefix_group_id: bool = True,
    region_name: str | None = None,
    botocore_config: dict[str, Any] | None = None,
    known_params: Sequence[str] | None = None,
    **options: Unpack[BackupArguments],
) -> TaskGroup:
    """Back up ``source_bucket`` into ``backup_bucket``: ``validate -> plan_partitions ->
    partition[p](diff -> copy_batch -> tag_deleted) -> report``, inside the current DAG.

    The keywords are ``s3_backup``'s Params (see the README; ``core.settings.BackupArguments``
    declares their types, ``BACKUP_DEFAULTS`` their defaults), plus:

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
    _check_keywords("backup_group", options, BackupArguments)
    shared = B.to_dict() | dict(options) | {"source_bucket": source_bucket, "backup_bucket": backup_bucket}
    del shared["verify"]  # the copies' verify; a task's own ``verify`` is its TLS setting
    shared |= {"verify_copies": verify, "region_name": region_name, "botocore_config": botocore_config}
    source_conn, backup_conn = shared["source_aws_conn_id"], shared["backup_aws_conn_id"]
    tooltip = f"s3br backup {group_id}: validate, plan, partitions, report"
    with _group(group_id, prefix_group_id, tooltip, shared) as group:
        validate = S3BackupValidateOperator(
            task_id="validate",
            source_bucket_variable=source_bucket_variable,
            backup_bucket_variable=backup_bucket_variable,
            known_params=known_params,
            **options,
        ).as_setup()
        plan = S3PlanPartitionsOperator(
            task_id="plan_partitions",
            bucket=source_bucket,
            aws_conn_id=source_conn,
            stats_bucket=backup_bucket,
            stats_aws_conn_id=backup_conn,
            size_by_change_rate=True,
        )

        def backup_partition(partition: Any) -> dict[str, Any]:
            """One key partition: diff, then copy, then tag what vanished."""
            diff = S3DiffPartitionOperator(task_id="diff", partition=partition, aws_conn_id=backup_conn)
            copy = _copy_step(
                partition,
                diff.output,
                "to_copy",
                target_bucket=backup_bucket,
                storage_class=shared["backup_storage_class"],
                kms_key_id=shared["backup_kms_key_id"],
                aws_conn_id=backup_conn,
            )
            tag = S3TagDeletedOperator(
                task_id="tag_deleted",
                partition=partition,
                manifest_uri=diff.output["vanished_manifest"],
                expected=diff.output["vanished"],
                aws_conn_id=backup_conn,
                # After the copy step whatever its failures (one bad object must not leave the
                # partition's vanished objects untagged), but never after a failed diff.
                trigger_rule=TAG_TRIGGER_RULE,
            )
            diff >> copy >> tag
            return {"diff": diff, "copy": copy, "tag": tag}

        partitions, results = _over_partitions(backup_partition, plan)
        report = S3BackupReportOperator(task_id="report", aws_conn_id=backup_conn, **results)
        validate >> plan
        partitions >> report
    return group


def restore_group(
    *,
    group_id: str,
    backup_bucket: str,
    target_bucket: str,
    prefix_group_id: bool = True,
    region_name: str | None = None,
    botocore_config: dict[str, Any] | None = None,
    known_params: Sequence[str] | None = None,
    **options: Unpack[RestoreArguments],
) -> TaskGroup:
    """Restore ``backup_bucket`` into ``target_bucket``: ``validate -> create_target ->
    plan_partitions -> partition[p](select -> request_restore -> wait_for_restore ->
    copy_batch) -> verify_and_report``, inside the current DAG.

    The keywords are ``s3_restore``'s Params (see the README; ``core.settings.RestoreArguments``
    declares their types, ``RESTORE_DEFAULTS`` their defaults), plus ``group_id``,
    ``prefix_group_id``, ``region_name``, ``botocore_config`` and ``known_params`` as for
    :func:`backup_group`.
    :return: the TaskGroup.
    """
    _check_keywords("restore_group", options, RestoreArguments)
    shared = R.to_dict() | dict(options) | {"backup_bucket": backup_bucket, "target_bucket": target_bucket}
    shared |= {"region_name": region_name, "botocore_config": botocore_config}
    backup_conn, target_conn = shared["backup_aws_conn_id"], shared["target_aws_conn_id"]
    tooltip = f"s3br restore {group_id}: validate, create, plan, partitions, report"
    with _group(group_id, prefix_group_id, tooltip, shared) as group:
        validate = S3RestoreValidateOperator(
            task_id="validate", known_params=known_params, **options
        ).as_setup()
        create_target = S3CreateTargetBucketOperator(task_id="create_target", aws_conn_id=target_conn)
        plan = S3RestorePlanOperator(task_id="plan_partitions", bucket=backup_bucket, aws_conn_id=backup_conn)

        def restore_partition(partition: Any) -> dict[str, Any]:
            """One key partition: select, restore archived objects, wait, copy."""
            select = S3RestoreSelectOperator(task_id="select", partition=partition, aws_conn_id=backup_conn)
            archived = select.output["archived_manifest"]
            request = S3RequestRestoreOperator(
                task_id="request_restore", partition=partition, manifest_uri=archived, aws_conn_id=backup_conn
            )
            wait = GlacierRestoreSensor(
                task_id="wait_for_restore",
                bucket=backup_bucket,
                manifest_uri=archived,
                aws_conn_id=backup_conn,
                poll_interval=shared["poll_interval_seconds"],
                restore_timeout=_times_60(shared["restore_timeout_minutes"]),
                partition_name=select.output["partition_name"],
            )
            copy = _copy_step(
                partition,
                select.output,
                "selected",
                source_bucket=backup_bucket,
                source_aws_conn_id=backup_conn,
                manifest_aws_conn_id=backup_conn,
                aws_conn_id=target_conn,
            )
            select >> request >> wait >> copy
            return {"select": select, "copy": copy}

        partitions, results = _over_partitions(restore_partition, plan)
        report = S3RestoreReportOperator(task_id="verify_and_report", aws_conn_id=target_conn, **results)
        validate >> create_target >> plan
        partitions >> report
    return group


def drill_group(
    *,
    group_id: str,
    backup_bucket: str,
    drill_bucket: str,
    backup_bucket_variable: str | None = None,
    drill_bucket_variable: str | None = None,
    prefix_group_id: bool = True,
    region_name: str | None = None,
    botocore_config: dict[str, Any] | None = None,
    known_params: Sequence[str] | None = None,
    **options: Unpack[DrillArguments],
) -> TaskGroup:
    """A restore drill of ``backup_bucket`` into ``drill_bucket``: ``validate -> plan_partitions
    -> partition[p](sample) -> choose -> request_restore -> wait_for_restore ->
    restore_and_verify``, inside the current DAG.

    The keywords are ``s3_restore_drill``'s Params (``core.settings.DrillArguments``, defaults
    ``DRILL_DEFAULTS``), plus ``group_id``, ``prefix_group_id``, ``region_name``,
    ``botocore_config``, ``known_params`` and the ``*_bucket_variable`` names as for
    :func:`backup_group`.
    :return: the TaskGroup.
    """
    _check_keywords("drill_group", options, DrillArguments)
    shared = D.to_dict() | dict(options) | {"backup_bucket": backup_bucket, "drill_bucket": drill_bucket}
    shared |= {"region_name": region_name, "botocore_config": botocore_config}
    backup_conn = shared["backup_aws_conn_id"]
    tooltip = f"s3br restore drill {group_id}: validate, plan, sample, restore and verify"
    with _group(group_id, prefix_group_id, tooltip, shared) as group:
        validate = S3DrillValidateOperator(
            task_id="validate",
            backup_bucket_variable=backup_bucket_variable,
            drill_bucket_variable=drill_bucket_variable,
            known_params=known_params,
            **options,
        ).as_setup()
        plan = S3PlanPartitionsOperator(
            task_id="plan_partitions", bucket=backup_bucket, aws_conn_id=backup_conn
        )

        def sample_partition(partition: Any) -> dict[str, Any]:
            """One key partition: its candidates for the drill's sample."""
            return {
                "sample": S3DrillSampleOperator(
                    task_id="sample", partition=partition, aws_conn_id=backup_conn
                )
            }

        partitions, results = _over_partitions(sample_partition, plan)
        choose = S3DrillChooseOperator(
            task_id="choose", sample_results=results["sample_results"], aws_conn_id=backup_conn
        )
        archived = choose.output["archived_manifest"]
        request = S3RequestRestoreOperator(
            task_id="request_restore", manifest_uri=archived, aws_conn_id=backup_conn
        )
        wait = GlacierRestoreSensor(
            task_id="wait_for_restore",
            bucket=backup_bucket,
            manifest_uri=archived,
            aws_conn_id=backup_conn,
            poll_interval=shared["poll_interval_seconds"],
            restore_timeout=_times_60(shared["restore_timeout_minutes"]),
            partition_name=choose.output["partition_name"],
        )
        verify = S3DrillVerifyOperator(
            task_id="restore_and_verify", chosen=choose.output, aws_conn_id=shared["drill_aws_conn_id"]
        )
        validate >> plan
        partitions >> choose >> request >> wait >> verify
    return group
