"""DAGs that users compose: two factory groups from DESIGN.md's example, bare operators, and the
multi-bucket example; each run whole (``dag.test``), the buckets then checked object by object."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.dags.conftest import assert_copies, assert_source, odd_objects, seed
from tests.support.dag_runs import load_dag
from tests.support.s3 import list_keys, snapshot_bucket

pytestmark = pytest.mark.slow


def run(dag_id: str, conf: dict[str, Any]) -> dict[str, str]:
    dag_run = load_dag(dag_id).test(run_conf=conf)
    states = {f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in dag_run.get_task_instances()}
    assert str(dag_run.state) == "success", states
    return states


def pair(s3: Any, bucket_names: Any, role: str, objects: dict) -> tuple[str, str]:
    source, backup = bucket_names(f"{role}-src"), bucket_names(f"{role}-bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    seed(s3, source, objects)
    return source, backup


def assert_backed_up(s3: Any, source: str, backup: str, objects: dict) -> None:
    src = assert_source(s3, source, objects)
    assert list_keys(s3, backup) == sorted(objects)
    assert_copies(src, snapshot_bucket(s3, backup), objects)


def test_two_backup_groups_from_the_design_example(s3: Any, bucket_names: Any, airflow_db: str) -> None:
    objects = odd_objects()
    orders, orders_backup = pair(s3, bucket_names, "orders", objects)
    logs_objects = {key: obj for key, obj in objects.items() if key.startswith(("a/", "b/", "c/"))}
    logs, logs_backup = pair(s3, bucket_names, "logs", logs_objects)

    states = run(
        "two_pairs_backup",
        {"orders": orders, "orders_backup": orders_backup, "logs": logs, "logs_backup": logs_backup},
    )

    assert_backed_up(s3, orders, orders_backup, objects)
    assert_backed_up(s3, logs, logs_backup, logs_objects)
    assert {"orders.validate[-1]", "logs.report[-1]"} <= set(states)
    assert any(name.startswith("orders.partition.copy_batch[") for name in states)
    for backup, group in ((orders_backup, "orders"), (logs_backup, "logs")):
        reports = [
            k for k in list_keys(s3, backup, include_reserved=True) if k.endswith(f"/{group}/report.json")
        ]
        assert len(reports) == 1 and reports[0].startswith("_s3br/runs/two_pairs_backup/"), reports


def test_a_backup_from_bare_operators(s3: Any, bucket_names: Any, airflow_db: str) -> None:
    objects = odd_objects()
    source, backup = pair(s3, bucket_names, "bare", objects)
    s3.put_object(Bucket=backup, Key="gone/old.txt", Body=b"only in the backup")

    run("backup_from_operators", {"source": source, "backup": backup})

    src = assert_source(s3, source, objects)
    dst = snapshot_bucket(s3, backup)
    assert sorted(dst) == sorted([*objects, "gone/old.txt"])
    assert_copies(src, dst, objects)
    assert dst["gone/old.txt"].tags["Deleted"] == "True"  # tagged, never deleted


def test_multi_bucket_example_backs_up_every_pair_of_the_variable(
    s3: Any, bucket_names: Any, airflow_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = {key: obj for key, obj in odd_objects().items() if not key.startswith("e/")}
    first = pair(s3, bucket_names, "one", objects)
    second = pair(s3, bucket_names, "two", objects)
    listed = [
        {"source_bucket": first[0], "backup_bucket": first[1]},
        {"source_bucket": second[0], "backup_bucket": second[1], "prefix": "c/"},
    ]
    monkeypatch.setenv("AIRFLOW_VAR_S3BR_BACKUP_PAIRS", json.dumps(listed))

    run("multi_bucket_backup", {})

    assert_backed_up(s3, *first, objects)
    under_c = {key: obj for key, obj in objects.items() if key.startswith("c/")}
    src = snapshot_bucket(s3, second[0])
    assert list_keys(s3, second[1]) == sorted(under_c)
    assert_copies(src, snapshot_bucket(s3, second[1]), under_c)
