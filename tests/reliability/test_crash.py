"""Crashes: a copy task killed with SIGKILL halfway through its partition, with a multipart
upload open, and a run that stopped before its tag step. The next try or run finishes the work
without redoing what was done and leaves nothing half-made behind."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.reliability.conftest import (
    PROXY_CONN_ID,
    TEXT,
    MiB,
    Obj,
    assert_succeeded,
    backup_run,
    differences,
    forwarded,
    report_json,
    seed,
    via,
)
from tests.support import steps
from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import list_keys, snapshot

pytestmark = pytest.mark.slow

WHOLE = {"index": 0, "start_after": None, "end": None}
SMALL = 200
BIG_KEY = "m/thirty MiB.bin"  # sorts between a/ and z/: its upload opens mid-partition
COPY_DELAY = 0.3
PART_DELAY = 4.0


def plan_work(source: str, backup: str, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """validate and diff over the whole key space, as the DAG's first tasks would."""
    run = steps.validate(
        source, backup, run_id=run_id, multipart_threshold_mb=5, **via(PROXY_CONN_ID, "s3_backup")
    )
    return run, steps.diff(run)


def copy(settings: dict[str, Any], work: dict[str, Any], run_id: str, try_number: int) -> dict[str, Any]:
    assert settings["run_id"] == run_id
    return steps.copy(settings, work, try_number=try_number)


def copy_in_child(settings: dict[str, Any], work: dict[str, Any], run_id: str) -> None:
    """Entry point of the child process that is killed."""
    copy(settings, work, run_id, try_number=1)


def put_quickly(s3: Any, bucket: str, objects: dict[str, Obj]) -> None:
    def put(item: tuple[str, Obj]) -> None:
        key, obj = item
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=obj.body,
            ContentType=obj.content_type,
            Metadata=obj.metadata,
            Tagging=urlencode(obj.tags),
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, objects.items()))


def crash_objects() -> dict[str, Obj]:
    objects = {
        f"{'a' if i < SMALL // 2 else 'z'}/{i:03d} item.txt": Obj(
            f"item {i}\n".encode() * 10, TEXT, {"i": str(i)}, {"i": str(i), "half": str(i < SMALL // 2)}
        )
        for i in range(SMALL)
    }
    objects[BIG_KEY] = Obj(os.urandom(30 * MiB), "application/x-big", {"size": "30MiB"}, {"kind": "big"})
    return objects


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_copy_killed_mid_partition_is_finished_by_its_retry_without_copying_twice(
    s3: Any, bucket_names: Any, proxy: FaultProxy
) -> None:
    source, backup = bucket_names("src"), bucket_names("bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    objects = crash_objects()
    put_quickly(s3, source, objects)
    run_id = "manual__crash"
    settings, work = plan_work(source, backup, run_id)
    assert work["new"] == SMALL + 1, work
    proxy.reset_records()
    proxy.set_faults(
        [
            {"kind": "slow", "operation": "CopyObject", "delay": COPY_DELAY},
            {"kind": "slow", "operation": "UploadPartCopy", "delay": PART_DELAY},
        ]
    )

    def copies_done() -> int:
        return len([r for r in forwarded(proxy.records, "CopyObject") if r.status == 200])

    def upload_open() -> bool:
        return bool(forwarded(proxy.records, "CreateMultipartUpload"))

    child = multiprocessing.get_context("spawn").Process(target=copy_in_child, args=(settings, work, run_id))
    child.start()
    try:
        wait_for(lambda: copies_done() >= SMALL // 2 and upload_open(), 120, "half the copies")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.join(timeout=30)
    assert child.exitcode == -signal.SIGKILL
    assert not forwarded(proxy.records, "CompleteMultipartUpload"), "the big copy finished before the kill"
    time.sleep(PART_DELAY + 1)  # requests in flight at the proxy still land

    done = set(list_keys(s3, backup))
    uploads = s3.list_multipart_uploads(Bucket=backup).get("Uploads", [])
    assert [u["Key"] for u in uploads] == [BIG_KEY], uploads  # the kill left an open upload
    assert BIG_KEY not in done
    assert SMALL // 4 <= len(done) < SMALL, len(done)  # killed midway, really
    print(f"killed after {len(done)} of {SMALL + 1} copies, with the upload of {BIG_KEY!r} open")

    proxy.clear_faults()
    proxy.reset_records()
    result = copy(settings, work, run_id, try_number=2)

    second = Counter(r.key for r in forwarded(proxy.records, "CopyObject"))
    assert sum(second.values()) == SMALL - len(done), (sum(second.values()), SMALL - len(done))
    assert set(second) == set(objects) - done - {BIG_KEY}
    assert max(second.values()) == 1
    assert result["skipped_done"] == len(done), result
    assert result["copied"] == SMALL + 1 - len(done) and result["failed"] == 0, result
    aborted = [r.key for r in forwarded(proxy.records, "AbortMultipartUpload")]
    assert aborted == [BIG_KEY], aborted
    assert s3.list_multipart_uploads(Bucket=backup).get("Uploads", []) == []
    assert sorted(list_keys(s3, backup)) == sorted(objects)
    assert differences(s3, backup, objects) == {}


def test_run_stopped_before_tagging_is_tagged_by_the_next_run(
    s3: Any, bucket_names: Any, proxy: FaultProxy
) -> None:
    source, backup = bucket_names("src"), bucket_names("bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    kept = {
        f"k{i % 2}/kept-{i}.txt": Obj(f"kept {i}".encode(), TEXT, {"i": str(i)}, {"i": str(i)})
        for i in range(12)
    }
    vanishing = {
        f"k{i % 2}/gone-{i}.txt": Obj(f"gone {i}".encode(), TEXT, {}, {"was": str(i)}) for i in range(3)
    }
    seed(s3, source, kept | vanishing)
    settings, work = plan_work(source, backup, "manual__first")
    copy(settings, work, "manual__first", try_number=1)
    for key in vanishing:
        s3.delete_object(Bucket=source, Key=key)

    # A run that diffs and copies, then stops: its tag step never runs.
    settings, work = plan_work(source, backup, "manual__stopped")
    copy(settings, work, "manual__stopped", try_number=1)
    assert work["vanished"] == len(vanishing), work
    for key in vanishing:
        assert "Deleted" not in snapshot(s3, backup, key, body=False).tags

    proxy.reset_records()
    result = backup_run(source, backup, **via(PROXY_CONN_ID, "s3_backup"))

    assert_succeeded(result)
    report = report_json(s3, backup, "s3_backup", result.run_id)
    assert report is not None and report["totals"]["tagged_deleted"] == len(vanishing), report
    assert differences(s3, backup, kept) == {}
    assert differences(s3, backup, vanishing, strip_marker=True) == {}
    for key in vanishing:
        tags = snapshot(s3, backup, key, body=False).tags
        assert tags.get("Deleted") == "True" and len(tags.get("DeletedAt", "")) == 16, (key, tags)
    copies = [r.key for r in forwarded(proxy.records, "CopyObject") if not (r.key or "").startswith("_s3br/")]
    assert not copies  # nothing changed: nothing rewritten (validate's tag probe copies its own key)
