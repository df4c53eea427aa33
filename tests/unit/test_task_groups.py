"""The factories' keyword contract: options declared once, each reaching every task that takes it."""

from __future__ import annotations

import pendulum
import pytest
from airflow.sdk import DAG

from s3br_provider.core.settings import (
    BACKUP_DEFAULTS,
    RESTORE_DEFAULTS,
    BackupArguments,
    RestoreArguments,
)
from s3br_provider.params import backup_params, restore_params
from s3br_provider.task_groups import backup_group, restore_group


def _dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))


def test_the_typed_options_are_the_settings_fields_less_the_explicit_keywords() -> None:
    backup_fields = set(BACKUP_DEFAULTS.to_dict())
    restore_fields = set(RESTORE_DEFAULTS.to_dict())
    assert set(BackupArguments.__annotations__) == backup_fields - {
        "source_bucket",
        "backup_bucket",
        "verify",
    }
    assert set(RestoreArguments.__annotations__) == restore_fields - {"backup_bucket", "target_bucket"}
    assert list(backup_params()) == list(BACKUP_DEFAULTS.to_dict())
    assert list(restore_params()) == list(RESTORE_DEFAULTS.to_dict())


def test_an_unknown_keyword_fails_when_the_dag_is_parsed() -> None:
    with _dag("typo"), pytest.raises(TypeError, match="unexpected keyword argument.*retention_dayz"):
        backup_group(group_id="g", source_bucket="a-src", backup_bucket="a-bak", retention_dayz=3)
    with _dag("typo2"), pytest.raises(TypeError, match="unexpected keyword argument.*prefixx"):
        restore_group(group_id="g", backup_bucket="a-bak", target_bucket="a-new", prefixx="x/")


def test_a_backup_keyword_reaches_every_task_that_takes_it() -> None:
    with _dag("reach") as dag:
        backup_group(
            group_id="orders",
            source_bucket="{{ params.src }}",
            backup_bucket="orders-backup",
            prefix="2026/",
            dry_run="{{ params.dry }}",
            retention_mode="GOVERNANCE",
            retention_days=7,
            verify=True,
            backup_aws_conn_id="aws_backup",
            source_aws_conn_id="aws_source",
        )
    tasks = {task.task_id: task for task in dag.tasks}
    for task_id in ("orders.validate", "orders.plan_partitions", "orders.partition.diff"):
        assert tasks[task_id].prefix == "2026/", task_id
    copy = tasks["orders.partition.copy_batch"]
    assert (copy.prefix, copy.dry_run, copy.retention_mode, copy.retention_days) == (
        "2026/",
        "{{ params.dry }}",
        "GOVERNANCE",
        7,
    )
    assert (copy.source_bucket, copy.target_bucket) == ("{{ params.src }}", "orders-backup")
    assert (copy.verify_copies, copy.verify) == (True, None)  # the copy check, not TLS
    assert (copy.aws_conn_id, copy.source_aws_conn_id) == ("aws_backup", "aws_source")
    assert tasks["orders.plan_partitions"].aws_conn_id == "aws_source"
    assert tasks["orders.partition.tag_deleted"].dry_run == "{{ params.dry }}"
    assert tasks["orders.validate"].retention_days == 7
    assert tasks["orders.report"].source_bucket == "{{ params.src }}"
    assert {task.run_scope for task in dag.tasks if hasattr(task, "run_scope")} == {"orders"}


def test_a_restore_keyword_reaches_every_task_that_takes_it() -> None:
    with _dag("reach_restore") as dag:
        restore_group(
            group_id="r",
            backup_bucket="orders-backup",
            target_bucket="orders-new",
            as_of="2026-01-31T00:00:00Z",
            restore_tier="Bulk",
            restore_timeout_minutes=10,
            target_aws_conn_id="aws_target",
        )
    tasks = {task.task_id: task for task in dag.tasks}
    assert tasks["r.partition.select"].as_of == "2026-01-31T00:00:00Z"
    assert tasks["r.verify_and_report"].as_of == "2026-01-31T00:00:00Z"
    assert tasks["r.partition.request_restore"].restore_tier == "Bulk"
    assert tasks["r.partition.wait_for_restore"].restore_timeout == 600
    copy = tasks["r.partition.copy_batch"]
    assert (copy.source_bucket, copy.target_bucket, copy.aws_conn_id) == (
        "orders-backup",
        "orders-new",
        "aws_target",
    )
    assert tasks["r.create_target"].aws_conn_id == "aws_target"


def test_chunk_copies_get_the_groups_keywords_and_gather_waits_for_the_diffs_only() -> None:
    with _dag("chunks") as dag:
        backup_group(
            group_id="orders",
            source_bucket="{{ params.src }}",
            backup_bucket="orders-backup",
            prefix="2026/",
            retention_mode="GOVERNANCE",
            retention_days=7,
            backup_kms_key_id="alias/backup",
            backup_aws_conn_id="aws_backup",
            source_aws_conn_id="aws_source",
        )
    tasks = {task.task_id: task for task in dag.tasks}
    assert tasks["orders.partition.diff"].chunk_copies is True
    assert tasks["orders.gather_chunks"].upstream_task_ids == {"orders.partition.diff"}
    assert tasks["orders.copy_chunk"].upstream_task_ids == {"orders.gather_chunks"}
    assert {"orders.copy_chunk", "orders.gather_chunks"} <= tasks["orders.report"].upstream_task_ids
    chunk = {"index": 2, "start_after": "a", "end": "b", "chunk": "3", "chunks": 4}
    copy = tasks["orders.copy_chunk"].unmap({"partition": chunk, "manifest_uri": ["s3://m/c"], "expected": 5})
    assert (copy.prefix, copy.retention_mode, copy.retention_days, copy.kms_key_id) == (
        "2026/",
        "GOVERNANCE",
        7,
        "alias/backup",
    )
    assert (copy.source_bucket, copy.target_bucket) == ("{{ params.src }}", "orders-backup")
    assert (copy.aws_conn_id, copy.source_aws_conn_id, copy.run_scope) == (
        "aws_backup",
        "aws_source",
        "orders",
    )
    assert copy.label == "p2 chunk 3/4 ('a', 'b']"


def test_restore_chunk_copies_wait_for_every_partitions_archive_restores() -> None:
    with _dag("restore_chunks") as dag:
        restore_group(group_id="r", backup_bucket="a-bak", target_bucket="a-new", target_mode="missing_only")
    tasks = {task.task_id: task for task in dag.tasks}
    assert tasks["r.partition.select"].chunk_copies is True
    assert tasks["r.gather_chunks"].upstream_task_ids == {
        "r.partition.select",
        "r.partition.wait_for_restore",
    }
    assert {"r.copy_chunk", "r.gather_chunks"} <= tasks["r.verify_and_report"].upstream_task_ids
    chunk = {"index": 0, "start_after": None, "end": "k", "chunk": "2", "chunks": 2}
    copy = tasks["r.copy_chunk"].unmap({"partition": chunk, "manifest_uri": ["s3://m/c"], "expected": 1})
    assert (copy.source_bucket, copy.target_bucket, copy.target_mode) == ("a-bak", "a-new", "missing_only")


def test_backup_group_gives_each_diff_the_answer_of_validates_tag_probe() -> None:
    """Hand-wired operators keep the explicit tag read: only the factory asks validate to probe
    and passes its XCom ``exact_tag_copy`` on."""
    from s3br_provider.operators.diff import S3DiffPartitionOperator
    from s3br_provider.operators.validate import EXACT_TAG_COPY_XCOM, S3BackupValidateOperator

    with _dag("tag_probe") as dag:
        backup_group(group_id="g", source_bucket="a-src", backup_bucket="a-bak")
    tasks = {task.task_id: task for task in dag.tasks}
    assert tasks["g.validate"].probe_tag_copy is True
    answer = tasks["g.partition.diff"].exact_tag_copy
    assert (answer.operator.task_id, answer.key) == ("g.validate", EXACT_TAG_COPY_XCOM)
    assert "g.validate" in tasks["g.partition.diff"].upstream_task_ids
    bare = S3DiffPartitionOperator(task_id="d", source_bucket="a-src", backup_bucket="a-bak")
    assert bare.exact_tag_copy is False
    assert S3BackupValidateOperator(task_id="v", source_bucket="a", backup_bucket="b").probe_tag_copy is False
