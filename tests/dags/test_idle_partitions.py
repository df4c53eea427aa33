"""Partitions with nothing to do skip their idle steps: whole runs against moto, as scheduled.

The runs decide twice which tasks are ready before each batch (``run_dag(as_scheduled=True)``),
as a scheduler loops while tasks start: then a mapped task group's later tasks exist when its
first task ends, and ``diff`` (``select``) can mark them skipped. Both buckets are checked
object by object.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from s3br_provider.core.stats import STATS_PREFIX, stats_uri
from tests.dags.conftest import Obj, put, seed
from tests.dags.test_backup_dag import (
    DAG_ID,
    MTIME_TICK,
    TARGET_KEYS_ENV,
    Backup,
    Gone,
    assert_backup,
    assert_succeeded,
    full_conf,
    raw_state,
    reports,
)
from tests.dags.test_restore_dag import TEXT, Item, assert_restored, build_backup, mapped, restore
from tests.support.dag_runs import run_dag, scheduling_while_tasks_start
from tests.support.s3 import snapshot_bucket

pytestmark = pytest.mark.slow

IDLE = ("partition.copy_batch", "partition.tag_deleted")


def scheduled_backup(s3: Any, source: str, backup: str, **conf: Any) -> Backup:
    """One ``s3_backup`` run as scheduled; its result and the report.json it added. The last
    run's statistics are dropped first, so that each run plans several partitions from the key
    space (with them, a bucket this small that rarely changes is one partition)."""
    s3.delete_object(Bucket=backup, Key=stats_uri(backup, "").removeprefix(f"s3://{backup}/"))
    before = reports(s3, backup)
    run = run_dag(DAG_ID, full_conf(source=source, backup=backup, **conf), as_scheduled=True)
    new = sorted(reports(s3, backup) - before)
    report = json.loads(s3.get_object(Bucket=backup, Key=new[0])["Body"].read()) if new else None
    return Backup(run, report)


def without_statistics(state: dict[str, Any]) -> dict[str, Any]:
    """A bucket's raw state without the statistics ``scheduled_backup`` drops."""
    return {key: value for key, value in state.items() if not key.startswith(STATS_PREFIX)}


def model() -> dict[str, Obj]:
    """Five top-level prefixes of four objects: a first run plans several partitions."""
    return {
        f"{top}/{name}": Obj(f"{top} {name}".encode(), TEXT, {"top": top}, {"n": name})
        for top in "abcde"
        for name in ("one.txt", "two.txt", "three.txt", "four.txt")
    }


def states(backup: Backup, task_id: str) -> dict[int, str]:
    """Map index -> state of a mapped task of the run."""
    prefix = f"{task_id}["
    tasks = backup.run.tasks.items()
    return {int(name[len(prefix) : -1]): state for name, state in tasks if name.startswith(prefix)}


def busy_partitions(backup: Backup) -> set[int]:
    """Partitions whose diff found something to copy or tag."""
    return copying_partitions(backup) | tagging_partitions(backup)


def copying_partitions(backup: Backup) -> set[int]:
    """Partitions whose diff found something to copy."""
    assert backup.report is not None
    return {row["index"] for row in backup.report["partitions"] if row["diff"]["to_copy"]}


def tagging_partitions(backup: Backup) -> set[int]:
    """Partitions whose diff found something vanished to tag (when tagging is on): not only
    objects the deleted-key index says are marked already."""
    assert backup.report is not None
    rows = backup.report["partitions"]
    return {row["index"] for row in rows if row["diff"]["vanished_manifest"] and row["diff"]["to_tag"]}


def assert_idle_skipped(backup: Backup, busy: set[int], tagging: set[int] | None = None) -> None:
    """copy_batch ran where there was work (to copy or to tag) and was skipped everywhere else;
    tag_deleted ran where there was something to tag (``tagging``; default ``busy``) and was
    skipped everywhere else; the report counts a skipped step as zero work."""
    tagging = busy if tagging is None else tagging
    assert_succeeded(backup)
    diffs = states(backup, "partition.diff")
    assert diffs and set(diffs.values()) == {"success"}, diffs
    for task_id, ran in (("partition.copy_batch", busy), ("partition.tag_deleted", tagging)):
        expected = {p: "success" if p in ran else "skipped" for p in diffs}
        assert states(backup, task_id) == expected, (task_id, backup.run.tasks)
    assert backup.report is not None
    for row in backup.report["partitions"]:
        index = row["index"]
        assert bool(row["diff"].get("idle_steps_skipped")) is (index not in tagging), row
        assert (row["copy"].get("skipped") == "nothing to do") is (index not in busy), row
        assert (row["tag"].get("skipped") == "nothing to do") is (index not in tagging), row


def test_nothing_to_do_skips_copy_and_tag_of_every_partition(
    s3: Any, buckets: tuple[str, str], monkeypatch: Any, capsys: Any
) -> None:
    source, backup = buckets
    objects = model()
    seed(s3, source, objects)
    monkeypatch.setenv(TARGET_KEYS_ENV, "4")  # several partitions, in every run
    first = scheduled_backup(s3, source, backup)
    assert len(states(first, "partition.diff")) >= 3, first.run.tasks
    # A first backup copies in every partition and finds nothing vanished: its tag steps skipped.
    assert_idle_skipped(first, busy_partitions(first), tagging=set())
    assert copying_partitions(first) == set(states(first, "partition.diff"))
    assert_backup(s3, source, backup)
    assert first.totals["copied"] == len(objects)
    before = snapshot_bucket(s3, backup)
    capsys.readouterr()

    idle = scheduled_backup(s3, source, backup)

    assert len(states(idle, "partition.diff")) >= 3, idle.run.tasks
    assert_idle_skipped(idle, set())
    assert snapshot_bucket(s3, backup) == before  # bytes, tags and LastModified of every object
    totals = idle.totals
    assert (totals["to_copy"], totals["copied"], totals["tagged_deleted"], totals["failed"]) == (0, 0, 0, 0)
    assert idle.report is not None and idle.report["incomplete"] == []
    out = capsys.readouterr().out
    assert "nothing to copy or tag: copy_batch, tag_deleted skipped" in out
    # No partition had a second chunk: gather_chunks skipped copy_chunk (not expanded to nothing).
    assert idle.run.tasks["copy_chunk"] == "skipped"
    assert "No chunk to copy: copy_chunk skipped" in out


def test_partitions_with_work_next_to_idle_ones(s3: Any, buckets: tuple[str, str], monkeypatch: Any) -> None:
    """A rewrite in one partition and a deletion in another: those copy and tag, the others are
    skipped; tag_deleted=false makes a deletion alone nothing to do; a dry run skips them all."""
    source, backup = buckets
    objects = model()
    seed(s3, source, objects)
    monkeypatch.setenv(TARGET_KEYS_ENV, "4")  # several partitions, in every run
    assert_succeeded(scheduled_backup(s3, source, backup))
    olds = snapshot_bucket(s3, backup)

    time.sleep(MTIME_TICK)
    objects["a/two.txt"] = Obj(b"a two, rewritten", TEXT, {"top": "a", "rev": "2"}, {"n": "two.txt"})
    put(s3, source, "a/two.txt", objects["a/two.txt"])
    s3.delete_object(Bucket=source, Key="d/three.txt")
    mixed = scheduled_backup(s3, source, backup)

    busy = busy_partitions(mixed)
    assert 1 <= len(busy) <= 2 < len(states(mixed, "partition.diff")), mixed.report
    assert len(tagging_partitions(mixed)) == 1, mixed.report  # only the deletion has a tag step
    assert_idle_skipped(mixed, busy, tagging_partitions(mixed))
    gone = {"d/three.txt": Gone(olds["d/three.txt"])}
    dst = assert_backup(s3, source, backup, gone=gone)
    assert dst["a/two.txt"].body == b"a two, rewritten"
    assert (mixed.totals["copied"], mixed.totals["tagged_deleted"]) == (1, 1), mixed.totals

    s3.delete_object(Bucket=source, Key="b/one.txt")  # vanished, but tagging is off
    untagged = scheduled_backup(s3, source, backup, tag_deleted=False)
    assert_idle_skipped(untagged, set())
    assert untagged.totals["vanished"] == 2 and untagged.totals["tagged_deleted"] == 0, untagged.totals
    assert_backup(s3, source, backup, gone=gone, as_is={"b/one.txt": dst["b/one.txt"]})

    time.sleep(MTIME_TICK)
    put(s3, source, "e/new.txt", Obj(b"new", TEXT))
    raw_before = without_statistics(raw_state(s3, backup))
    dry = scheduled_backup(s3, source, backup, dry_run=True)
    assert_succeeded(dry)
    for task_id in IDLE:
        assert set(states(dry, task_id).values()) == {"skipped"}, dry.run.tasks
    assert without_statistics(raw_state(s3, backup)) == raw_before  # nothing written, _s3br/ included

    final = scheduled_backup(s3, source, backup)
    assert_succeeded(final)
    gone["b/one.txt"] = Gone(olds["b/one.txt"])
    assert_backup(s3, source, backup, gone=gone)
    assert (final.totals["copied"], final.totals["tagged_deleted"]) == (1, 1), final.totals

    # Both deletions are marked and named by final's deleted-key index: a run that finds them
    # vanished again starts no tag_deleted and reads no tag.
    history = scheduled_backup(s3, source, backup)
    assert_idle_skipped(history, set())
    totals = history.totals
    assert (totals["vanished"], totals["marked_deleted"], totals["tagged_deleted"]) == (2, 2, 0), totals
    assert history.report is not None and history.report["incomplete"] == []
    assert_backup(s3, source, backup, gone=gone)


def test_restore_skips_restore_steps_where_nothing_is_archived(
    s3: Any, bucket_names: Any, airflow_db: str
) -> None:
    """select skips request_restore and wait_for_restore of partitions without archived objects;
    every copy_batch runs, and the target holds every live object."""
    backup_name, target = bucket_names("bak"), bucket_names("restored")
    items = {key: Item(obj) for key, obj in model().items()}
    items["c/cold.bin"] = Item(Obj(b"cold", "application/x-cold", {"c": "1"}, {"t": "cold"}), "GLACIER")
    backup = build_backup(s3, backup_name, items)

    with scheduling_while_tasks_start():
        run = restore(backup_name, target)

    assert run.state == "success", run.tasks
    assert_restored(s3, backup, target, backup.keys())
    copies = mapped(run, "partition.copy_batch")
    assert len(copies) >= 2 and set(copies.values()) == {"success"}, run.tasks
    one_cold = ["skipped"] * (len(copies) - 1) + ["success"]  # only c/'s partition has to wait
    for task_id in ("partition.request_restore", "partition.wait_for_restore"):
        assert sorted(mapped(run, task_id).values()) == one_cold, run.tasks
