"""Copies fan out over chunks when one listing range holds more than a chunk of keys to copy.

``max_partitions=1`` (as on an endpoint that lists out of order) and ``[s3br] copy_chunk_keys``
20 (set through its environment variable): the one partition's diff writes its copy manifest in
chunks of 20 records, its ``copy_batch`` copies the first and the mapped ``copy_chunk`` the
others. Checked object by object, and from every copy task's XCom result.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import pytest

from s3br_provider.task_groups import DIFF_OUTPUT_KEYS, SELECT_OUTPUT_KEYS
from tests.dags.conftest import Obj, put
from tests.dags.test_backup_dag import assert_backup, assert_succeeded, backup_run, mapped
from tests.dags.test_restore_dag import (  # noqa: F401 -- slow_restores is a fixture
    Item,
    assert_restored,
    build_backup,
    let_age,
    report_of,
    slow_restores,
)
from tests.dags.test_restore_dag import mapped as restore_mapped
from tests.reliability.conftest import run_xcoms, task_tries
from tests.support.dag_runs import run_dag

pytestmark = pytest.mark.slow

CHUNK_KEYS = 20
N = 95  # 5 chunks: 4 of 20, one of 15
COPY_TASKS = ("partition.copy_batch", "copy_chunk")


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__S3BR__COPY_CHUNK_KEYS", str(CHUNK_KEYS))


def flat_objects(n: int = N) -> dict[str, Obj]:
    return {f"flat-{i:04d}.txt": Obj(f"object {i}".encode(), "text/plain", {"i": str(i)}) for i in range(n)}


def copy_results(run_id: str) -> dict[str, dict[str, Any]]:
    """``task_id[map_index]`` -> the return value of every copy task of the run."""
    found = {}
    for task_id, index, key, value in run_xcoms("s3_backup", run_id):
        if key == "return_value" and task_id in COPY_TASKS:
            found[f"{task_id}[{index}]"] = json.loads(value) if isinstance(value, str) else value
    return found


def xcom_keys(dag_id: str, run_id: str, task_id: str) -> set[str]:
    return {key for task, _, key, _ in run_xcoms(dag_id, run_id) if task == task_id}


def test_one_large_partition_is_copied_in_chunks_by_many_tasks(s3: Any, buckets: tuple[str, str]) -> None:
    source, backup = buckets
    model = flat_objects()
    for key, obj in model.items():
        put(s3, source, key, obj)

    first = backup_run(s3, source, backup, max_partitions=1)

    assert_succeeded(first)
    assert_backup(s3, source, backup)
    chunks = math.ceil(N / CHUNK_KEYS)
    assert mapped(first.run, "partition.diff") == ["partition.diff[0]"]
    assert len(mapped(first.run, "copy_chunk")) == chunks - 1 > 1, first.run.tasks
    results = copy_results(first.run.run_id)
    assert len(results) == chunks, sorted(results)
    assert all(0 < r["copied"] <= CHUNK_KEYS for r in results.values()), results
    assert sum(r["copied"] for r in results.values()) == N
    assert sorted(r.get("chunk", "1") for r in results.values()) == [str(c) for c in range(1, chunks + 1)]
    totals = first.totals
    assert (totals["copied"], totals["to_copy"], totals["failed"]) == (N, N, 0), totals
    assert (totals["partitions"], totals["copy_chunks"], totals["chunk_copy_tasks"]) == (
        1,
        chunks,
        chunks - 1,
    )
    row = first.report["partitions"][0]
    assert row["copy"]["copied"] + row["chunked"]["copied"] == N
    assert len(row["chunk_copies"]) == chunks - 1
    # diff pushes its whole result and, as XComs of their own, only the keys the group wires.
    assert xcom_keys("s3_backup", first.run.run_id, "partition.diff") == {"return_value", *DIFF_OUTPUT_KEYS}

    idle = backup_run(s3, source, backup, max_partitions=1)

    assert_succeeded(idle)
    assert idle.run.tasks["copy_chunk"] == "skipped", idle.run.tasks  # mapped over no chunk
    assert idle.run.tasks["report"] == "success"
    assert (idle.totals["copied"], idle.totals["to_copy"], idle.totals["copy_chunks"]) == (0, 0, 0), (
        idle.totals
    )
    assert_backup(s3, source, backup)


def test_a_failed_chunk_fails_the_run_naming_its_object_while_the_others_are_copied(
    s3: Any, buckets: tuple[str, str]
) -> None:
    source, backup = buckets
    model = flat_objects()
    for key, obj in model.items():
        put(s3, source, key, obj)
    bad = "flat-0050.bin"  # sorts in chunk 3; an SSE-C object cannot be copied without its key
    put(
        s3,
        source,
        bad,
        Obj(b"secret", "application/octet-stream"),
        SSECustomerAlgorithm="AES256",
        SSECustomerKey=os.urandom(32),
    )

    result = backup_run(s3, source, backup, max_partitions=1)

    assert result.run.state == "failed"
    failed = result.run.failed_tasks()
    assert len(failed) == 2 and failed[0].startswith("copy_chunk[") and failed[1] == "report", failed
    assert task_tries("s3_backup", result.run.run_id)[failed[0]] == 1  # a lasting failure: not retried
    assert result.totals["failed"] == 1 and result.totals["copied"] == N, result.totals
    failing = [c for row in result.report["partitions"] for c in row["chunk_copies"] if c["failed"]]
    assert [f["key"] for c in failing for f in c["failures"]] == [bad]
    assert failing[0]["chunk"] == "3"
    backed_up = {item["Key"] for item in s3.list_objects_v2(Bucket=backup, Prefix="flat-")["Contents"]}
    assert backed_up == set(model)  # every other chunk copied, the bad object alone left out


@pytest.mark.usefixtures("slow_restores")
def test_a_restore_of_one_large_partition_is_copied_in_chunks_after_the_archive_restores(
    s3: Any, bucket_names: Any, airflow_db: str
) -> None:
    """select writes its manifest in chunks too; a chunk holding an archived object is copied only
    once every partition's restores are readable (moto refuses to copy it before)."""
    items = {key: Item(obj) for key, obj in flat_objects().items()}
    items["flat-0050.bin"] = Item(Obj(b"archived", "application/octet-stream"), "GLACIER")  # chunk 3
    backup_name, target = bucket_names("bak"), bucket_names("restored")
    backup = build_backup(s3, backup_name, items)
    let_age(backup.created)

    run = run_dag(
        "s3_restore",
        {
            "backup_bucket": backup_name,
            "target_bucket": target,
            "poll_interval_seconds": 1,
            "max_partitions": 1,
        },
    )

    assert run.state == "success", run.failed_tasks()
    assert_restored(s3, backup, target, backup.keys())
    chunks = math.ceil(len(items) / CHUNK_KEYS)
    assert len(restore_mapped(run, "copy_chunk")) == chunks - 1 > 1, run.tasks
    totals = report_of(s3, backup_name, run)["totals"]
    assert (totals["restored"], totals["failed"], totals["copy_chunks"]) == (len(items), 0, chunks), totals
    header = s3.head_object(Bucket=backup_name, Key="flat-0050.bin").get("Restore") or ""
    assert 'ongoing-request="false"' in header, header
    assert xcom_keys("s3_restore", run.run_id, "partition.select") == {"return_value", *SELECT_OUTPUT_KEYS}
