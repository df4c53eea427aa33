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
from typing import Any, TypedDict, Unpack

from airflow.sdk import TaskGroup, task_group

from s3br_provider.core.settings import BACKUP_DEFAULTS as B
from s3br_provider.core.settings import DRILL_DEFAULTS as D
from s3br_provider.core.settings import RESTORE_DEFAULTS as R
from s3br_provider.core.settings import BackupArguments, DrillArguments, RestoreArguments
from s3br_provider.operators.chunks import S3GatherChunksOperator
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


class GroupArguments(TypedDict, total=False):
    """What every factory takes besides its flow's options.

    :param prefix_group_id: False keeps the task ids without the ``group_id.`` prefix (the ready
        DAGs do this; the run's files then stay in the run folder itself). Default True.
    :param region_name: AWS region of every connection; default: each connection's.
    :param botocore_config: botocore ``Config`` keyword arguments for every S3 client.
    :param known_params: the DAG's Param names: validate fails a run whose conf names another.
    """

    prefix_group_id: bool
    region_name: str | None
    botocore_config: dict[str, Any] | None
    known_params: Sequence[str] | None


class BackupGroupArguments(BackupArguments, GroupArguments, total=False):
    """``backup_group``'s keywords: the backup's options, the group's, and the Variables that
    templates of the buckets fall back on (named in validate's error when both are empty)."""

    source_bucket_variable: str | None
    backup_bucket_variable: str | None


class RestoreGroupArguments(RestoreArguments, GroupArguments, total=False):
    """``restore_group``'s keywords: the restore's options and the group's."""


class DrillGroupArguments(DrillArguments, GroupArguments, total=False):
    """``drill_group``'s keywords: the drill's options, the group's, and the buckets' Variables."""

    backup_bucket_variable: str | None
    drill_bucket_variable: str | None


_AWS_KEYWORDS = ("region_name", "botocore_config")
PARTITION_GROUP = "partition"
TAG_TRIGGER_RULE = "all_done_min_one_success"
"""tag_deleted's upstreams are diff and copy_batch: it runs when both are done and diff succeeded."""
RESTORE_COPY_TRIGGER_RULE = "none_failed"
"""A restore's copy_batch runs after its select and wait_for_restore, also when select skipped
the wait (no archived object): never after a failure of either."""
BACKUP_IDLE_STEPS = ("copy_batch", "tag_deleted")
"""What diff skips when its partition has nothing to copy or tag (``operators.idle``)."""
RESTORE_IDLE_STEPS = ("request_restore", "wait_for_restore")
"""What select skips when its partition has no archived object."""
DIFF_OUTPUT_KEYS = (
    "copy_partition",
    "copy_manifest",
    "copy_manifest_objects",
    "vanished_manifest",
    "vanished",
)
"""The keys of diff's result that its partition's copy_batch and tag_deleted take as XComs of their
own; the rest of it reaches the report whole (``return_value``): 6 execution-API requests at a
diff's end instead of 27."""
SELECT_OUTPUT_KEYS = (
    "copy_partition",
    "copy_manifest",
    "copy_manifest_objects",
    "archived_manifest",
    "partition_name",
)
"""The same for select: what request_restore, wait_for_restore and copy_batch take."""
_ONE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)


def _times_60(minutes: int | str) -> int | str:
    """Minutes as seconds, also for a template of one expression (``{{ params.x }}``)."""
    if isinstance(minutes, int):
        return minutes * 60
    match = _ONE_EXPRESSION.match(minutes)
    if match is None:
        return int(minutes) * 60
    return f"{{{{ (({match.group('expr')}) | int) * 60 }}}}"


def _names(typed: Any) -> frozenset[str]:
    return typed.__required_keys__ | typed.__optional_keys__


def _split(factory: str, keywords: dict[str, Any], options_type: Any, factory_type: Any) -> tuple[dict, dict]:
    """A factory's ``**keywords`` as (the flow's options, the group's own keywords); one that
    ``factory_type`` lacks is a TypeError, raised when the DAG file is parsed."""
    unknown = sorted(set(keywords) - _names(factory_type))
    if unknown:
        raise TypeError(f"{factory}() got unexpected keyword argument(s): {', '.join(unknown)}")
    options = {name: value for name, value in keywords.items() if name in _names(options_type)}
    return options, {name: value for name, value in keywords.items() if name not in options}


def _shared(defaults: Any, options: dict[str, Any], grouping: dict[str, Any], **buckets: str) -> dict:
    """A group's keywords with the defaults filled in: its tasks' ``default_args`` (``_group``)."""
    aws = {name: grouping.get(name) for name in _AWS_KEYWORDS}
    return defaults.to_dict() | options | buckets | aws


def _validate_step(operator: type, options: dict[str, Any], grouping: dict[str, Any]) -> Any:
    """The group's setup task: checks every option once, before anything is written; when it
    fails, nothing else runs and its message is the run's only error. It also gets the group's
    ``known_params`` and ``*_bucket_variable`` names."""
    own = {name: value for name, value in grouping.items() if name not in ("prefix_group_id", *_AWS_KEYWORDS)}
    return operator(task_id="validate", **own, **options).as_setup()


def _wait_step(bucket: str, chooser: Any, shared: dict[str, Any], aws_conn_id: str) -> GlacierRestoreSensor:
    """``wait_for_restore``: waits (deferred) until the archived objects ``chooser`` (``select``
    or ``choose``) listed are readable; the group's poll interval and timeout in minutes."""
    return GlacierRestoreSensor(
        task_id="wait_for_restore",
        bucket=bucket,
        manifest_uri=chooser.output["archived_manifest"],
        aws_conn_id=aws_conn_id,
        poll_interval=shared["poll_interval_seconds"],
        restore_timeout=_times_60(shared["restore_timeout_minutes"]),
        partition_name=chooser.output["partition_name"],
    )


def _group(group_id: str, grouping: dict[str, Any], tooltip: str, shared: dict[str, Any]) -> TaskGroup:
    """The group whose ``default_args`` are its keywords: Airflow gives each task the ones its
    operator's signature names (as a DAG's ``default_args``), so a keyword is passed once here
    and reaches every operator that takes it. Names that mean something else to an operator
    (``aws_conn_id``, the base's TLS ``verify``) are passed to each task explicitly instead."""
    prefix_group_id = grouping.get("prefix_group_id", True)
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


def _chunk_steps(diff_results: Any, **kwargs: Any) -> tuple[S3GatherChunksOperator, Any]:
    """``gather_chunks`` (after the diffs only, not their copies) and the mapped ``copy_chunk``
    that copies the partitions' chunks after their first, with ``copy_batch``'s ``kwargs``.
    Without such chunks gather_chunks marks ``copy_chunk`` skipped."""
    gather = S3GatherChunksOperator(
        task_id="gather_chunks", diff_results=diff_results, skip_when_empty=("copy_chunk",)
    )
    copy = S3CopyBatchOperator.partial(
        task_id="copy_chunk", map_index_template="{{ partition_label }}", **kwargs
    ).expand_kwargs(gather.output)
    return gather, copy


def backup_group(
    *,
    group_id: str,
    source_bucket: str,
    backup_bucket: str,
    verify: bool | str = B.verify,
    **keywords: Unpack[BackupGroupArguments],
) -> TaskGroup:
    """Back up ``source_bucket`` into ``backup_bucket``: ``validate -> plan_partitions ->
    partition[p](diff -> copy_batch -> tag_deleted) -> report``, and, for partitions with more
    to copy than a chunk, ``diff[p] -> gather_chunks -> copy_chunk[c] -> report``, inside the
    current DAG. A partition with nothing to copy or tag has its ``copy_batch`` and
    ``tag_deleted`` skipped by its diff (they never start).

    The keywords are ``s3_backup``'s Params (see the README; ``core.settings.BackupArguments``
    declares their types, ``BACKUP_DEFAULTS`` their defaults), and those of
    ``BackupGroupArguments``; ``group_id`` is the TaskGroup's id, also the sub-folder of the
    run's files, so several groups in one DAG keep apart.

    :return: the TaskGroup, to set dependencies on (``start >> backup_group(...)``).
    """
    options, grouping = _split("backup_group", keywords, BackupArguments, BackupGroupArguments)
    shared = _shared(B, options, grouping, source_bucket=source_bucket, backup_bucket=backup_bucket)
    del shared["verify"]  # the copies' verify; a task's own ``verify`` is its TLS setting
    shared["verify_copies"] = verify
    source_conn, backup_conn = shared["source_aws_conn_id"], shared["backup_aws_conn_id"]
    tooltip = f"s3br backup {group_id}: validate, plan, partitions, report"
    with _group(group_id, grouping, tooltip, shared) as group:
        # The tag probe's answer (XCom exact_tag_copy) saves each changed object's tag read.
        validate = _validate_step(S3BackupValidateOperator, {**options, "probe_tag_copy": True}, grouping)
        exact_tag_copy = validate.output["exact_tag_copy"]
        plan = S3PlanPartitionsOperator(
            task_id="plan_partitions",
            bucket=source_bucket,
            aws_conn_id=source_conn,
            stats_bucket=backup_bucket,
            stats_aws_conn_id=backup_conn,
            size_by_change_rate=True,
        )

        copying = {
            "target_bucket": backup_bucket,
            "storage_class": shared["backup_storage_class"],
            "kms_key_id": shared["backup_kms_key_id"],
            "aws_conn_id": backup_conn,
        }

        def backup_partition(partition: Any) -> dict[str, Any]:
            """One key partition: diff, then copy, then tag what vanished."""
            diff = S3DiffPartitionOperator(
                task_id="diff",
                partition=partition,
                chunk_copies=True,
                exact_tag_copy=exact_tag_copy,
                skip_when_idle=BACKUP_IDLE_STEPS,
                output_keys=DIFF_OUTPUT_KEYS,
                aws_conn_id=backup_conn,
            )
            copy = _copy_step(diff.output["copy_partition"], diff.output, "copy_manifest_objects", **copying)
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
        gather, copy_chunk = _chunk_steps(results["diff_results"], **copying)
        report = S3BackupReportOperator(
            task_id="report",
            aws_conn_id=backup_conn,
            chunks=gather.output,
            chunk_results=copy_chunk.output,
            **results,
        )
        validate >> plan
        partitions >> report
        copy_chunk >> report
    return group


def restore_group(
    *,
    group_id: str,
    backup_bucket: str,
    target_bucket: str,
    **keywords: Unpack[RestoreGroupArguments],
) -> TaskGroup:
    """Restore ``backup_bucket`` into ``target_bucket``: ``validate -> create_target ->
    plan_partitions -> partition[p](select -> request_restore -> wait_for_restore ->
    copy_batch) -> verify_and_report``, and, for partitions with more to copy than a chunk,
    ``wait_for_restore[p] -> gather_chunks -> copy_chunk[c] -> verify_and_report``, inside the
    current DAG. A partition without archived objects has its ``request_restore`` and
    ``wait_for_restore`` skipped by its select; its ``copy_batch`` runs (trigger rule
    ``none_failed``).

    The keywords are ``s3_restore``'s Params (see the README; ``core.settings.RestoreArguments``
    declares their types, ``RESTORE_DEFAULTS`` their defaults) and ``GroupArguments``; ``group_id``
    as for :func:`backup_group`.
    :return: the TaskGroup.
    """
    options, grouping = _split("restore_group", keywords, RestoreArguments, RestoreGroupArguments)
    shared = _shared(R, options, grouping, backup_bucket=backup_bucket, target_bucket=target_bucket)
    backup_conn, target_conn = shared["backup_aws_conn_id"], shared["target_aws_conn_id"]
    tooltip = f"s3br restore {group_id}: validate, create, plan, partitions, report"
    with _group(group_id, grouping, tooltip, shared) as group:
        validate = _validate_step(S3RestoreValidateOperator, options, grouping)
        create_target = S3CreateTargetBucketOperator(task_id="create_target", aws_conn_id=target_conn)
        plan = S3RestorePlanOperator(task_id="plan_partitions", bucket=backup_bucket, aws_conn_id=backup_conn)

        copying = {
            "source_bucket": backup_bucket,
            "source_aws_conn_id": backup_conn,
            "manifest_aws_conn_id": backup_conn,
            "aws_conn_id": target_conn,
        }
        waits: dict[str, Any] = {}

        def restore_partition(partition: Any) -> dict[str, Any]:
            """One key partition: select, restore archived objects, wait, copy."""
            select = S3RestoreSelectOperator(
                task_id="select",
                partition=partition,
                chunk_copies=True,
                skip_when_idle=RESTORE_IDLE_STEPS,
                output_keys=SELECT_OUTPUT_KEYS,
                aws_conn_id=backup_conn,
            )
            archived = select.output["archived_manifest"]
            request = S3RequestRestoreOperator(
                task_id="request_restore", partition=partition, manifest_uri=archived, aws_conn_id=backup_conn
            )
            wait = _wait_step(backup_bucket, select, shared, backup_conn)
            copy = _copy_step(
                select.output["copy_partition"],
                select.output,
                "copy_manifest_objects",
                trigger_rule=RESTORE_COPY_TRIGGER_RULE,
                **copying,
            )
            select >> request >> wait >> copy
            waits["wait"] = wait
            return {"select": select, "copy": copy}

        partitions, results = _over_partitions(restore_partition, plan)
        gather, copy_chunk = _chunk_steps(results["select_results"], **copying)
        (
            waits["wait"] >> gather
        )  # chunks may hold archived objects: copied once every partition's are readable
        report = S3RestoreReportOperator(
            task_id="verify_and_report",
            aws_conn_id=target_conn,
            chunks=gather.output,
            chunk_results=copy_chunk.output,
            **results,
        )
        validate >> create_target >> plan
        partitions >> report
        copy_chunk >> report
    return group


def drill_group(
    *,
    group_id: str,
    backup_bucket: str,
    drill_bucket: str,
    **keywords: Unpack[DrillGroupArguments],
) -> TaskGroup:
    """A restore drill of ``backup_bucket`` into ``drill_bucket``: ``validate -> plan_partitions
    -> partition[p](sample) -> choose -> request_restore -> wait_for_restore ->
    restore_and_verify``, inside the current DAG.

    The keywords are ``s3_restore_drill``'s Params (``core.settings.DrillArguments``, defaults
    ``DRILL_DEFAULTS``) and those of ``DrillGroupArguments``; ``group_id`` as for
    :func:`backup_group`.
    :return: the TaskGroup.
    """
    options, grouping = _split("drill_group", keywords, DrillArguments, DrillGroupArguments)
    shared = _shared(D, options, grouping, backup_bucket=backup_bucket, drill_bucket=drill_bucket)
    backup_conn = shared["backup_aws_conn_id"]
    tooltip = f"s3br restore drill {group_id}: validate, plan, sample, restore and verify"
    with _group(group_id, grouping, tooltip, shared) as group:
        validate = _validate_step(S3DrillValidateOperator, options, grouping)
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
        wait = _wait_step(backup_bucket, choose, shared, backup_conn)
        verify = S3DrillVerifyOperator(
            task_id="restore_and_verify", chosen=choose.output, aws_conn_id=shared["drill_aws_conn_id"]
        )
        validate >> plan
        partitions >> choose >> request >> wait >> verify
    return group
