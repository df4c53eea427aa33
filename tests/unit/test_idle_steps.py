"""Which tasks a diff or select may skip: only later tasks of its own mapped task group."""

from __future__ import annotations

import pendulum
import pytest
from airflow.sdk import DAG, task_group

from s3br_provider.operators.base import InvalidArgumentsError
from s3br_provider.operators.copy_batch import S3CopyBatchOperator
from s3br_provider.operators.diff import S3DiffPartitionOperator
from s3br_provider.operators.idle import steps_to_skip
from s3br_provider.task_groups import RESTORE_COPY_TRIGGER_RULE, backup_group, restore_group


def _dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))


@pytest.mark.parametrize(("prefix_group_id", "prefix"), [(True, "orders."), (False, "")])
def test_the_factories_skip_their_partitions_idle_steps(prefix_group_id: bool, prefix: str) -> None:
    with _dag(f"idle-{prefix_group_id}") as dag:
        backup_group(
            group_id="orders",
            source_bucket="orders",
            backup_bucket="orders-backup",
            tag_deleted="{{ params.tag }}",
            prefix_group_id=prefix_group_id,
        )
        restore_group(
            group_id="back", backup_bucket="orders-backup", target_bucket="orders-new", prefix_group_id=True
        )
    tasks = {task.task_id: task for task in dag.tasks}
    diff = tasks[f"{prefix}partition.diff"]
    assert diff.tag_deleted == "{{ params.tag }}"  # the group's option reaches diff too
    assert steps_to_skip(diff, diff.skip_when_idle) == [
        f"{prefix}partition.copy_batch",
        f"{prefix}partition.tag_deleted",
    ]
    gather = tasks[f"{prefix}gather_chunks"]
    assert steps_to_skip(gather, gather.skip_when_empty) == [f"{prefix}copy_chunk"]
    select = tasks["back.partition.select"]
    assert steps_to_skip(select, select.skip_when_idle) == [
        "back.partition.request_restore",
        "back.partition.wait_for_restore",
    ]
    # A skipped wait_for_restore must not skip the copy: it runs unless something failed.
    assert tasks["back.partition.copy_batch"].trigger_rule == RESTORE_COPY_TRIGGER_RULE == "none_failed"


def _hand_wired(dag_id: str, names: tuple[str, ...], *, mapped: bool = True) -> dict[str, object]:
    with _dag(dag_id) as dag:

        def steps(partition: object) -> None:
            diff = S3DiffPartitionOperator(
                task_id="diff",
                partition=partition,
                source_bucket="a-src",
                backup_bucket="a-bak",
                skip_when_idle=names,
            )
            copy = S3CopyBatchOperator(
                task_id="copy",
                source_bucket="a-src",
                target_bucket="a-bak",
                manifest_uri=diff.output["copy_manifest"],
            )
            diff >> copy

        if mapped:
            task_group(group_id="one")(steps).expand(partition=[{"index": 0}])
        else:
            steps({"index": 0})
        S3CopyBatchOperator(
            task_id="elsewhere", source_bucket="a-src", target_bucket="a-bak", manifest_uri=""
        )
    return {task.task_id: task for task in dag.tasks}


def test_a_hand_wired_diff_skips_only_what_follows_it_in_its_mapped_group() -> None:
    tasks = _hand_wired("wired", ("copy",))
    assert steps_to_skip(tasks["one.diff"], ("copy",)) == ["one.copy"]
    assert steps_to_skip(tasks["one.diff"], ()) == []
    with pytest.raises(InvalidArgumentsError, match=r"\['elsewhere'\], not tasks downstream of it"):
        steps_to_skip(tasks["one.diff"], ("copy", "elsewhere"))
    with pytest.raises(InvalidArgumentsError, match=r"\['diff'\], not tasks downstream"):
        steps_to_skip(tasks["one.diff"], ("diff",))
    unmapped = _hand_wired("unmapped", ("copy",), mapped=False)
    assert steps_to_skip(unmapped["diff"], ("copy",)) == ["copy"]
    with pytest.raises(InvalidArgumentsError, match="not tasks downstream of it outside every mapped"):
        steps_to_skip(unmapped["diff"], ("elsewhere",))
