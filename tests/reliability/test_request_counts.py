"""The fewest requests: exact counts of what a backup and a restore send, recorded by the proxy.

For N objects and P planned partitions, a full backup may send at most N CopyObject plus
2 x ceil(N/1000) listings plus 30 requests per partition (the run's fixed costs: bucket checks,
statistics, manifests, reports, metrics), and a run with nothing to do at most the listings and
the per-partition costs, no copy at all (validate's tag probe, one or two CopyObject of s3br's
own keys under ``_s3br/probe/``, counts among the fixed costs). Counts are exact (a proxy sees
every request), so these are assertions, not benchmarks; the breakdown is printed for the
closing notes.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from s3br_provider.core.deleted_index import tagged_marker_key
from s3br_provider.core.keys import is_reserved
from s3br_provider.core.manifest import run_folder, split_s3_uri
from tests.reliability.conftest import (
    PROXY_CONN_ID,
    TEXT,
    Obj,
    assert_succeeded,
    backup_run,
    put,
    restore_run,
    via,
)
from tests.support.dag_runs import RunResult
from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import list_keys

pytestmark = pytest.mark.slow

N = 2_000
PER_PARTITION = 30


def partitions(result: RunResult) -> int:
    return sum(1 for name in result.tasks if name.startswith(("partition.diff[", "partition.select[")))


def bounded_requests(
    proxy: FaultProxy, result: RunResult, label: str, n: int = N
) -> tuple[Counter[str], int]:
    """The run's requests by operation, and the bound on those that are not CopyObject."""
    operations = proxy.operations()
    parts = partitions(result)
    bound = 2 * math.ceil(n / 1000) + PER_PARTITION * parts
    print(f"{label}: N={n}, partitions={parts}, requests={sum(operations.values())}: {dict(operations)}")
    return operations, bound


def data_copies(proxy: FaultProxy) -> int:
    """CopyObject of data keys: not validate's tag probe (``_s3br/probe/``)."""
    return data_requests(proxy, "CopyObject")


def data_requests(proxy: FaultProxy, operation: str) -> int:
    """Requests of ``operation`` for data keys: not s3br's own (the tag probe's, say)."""
    return sum(1 for r in proxy.records if r.operation == operation and not is_reserved(r.key or ""))


def seeded_pair(
    s3: Any,
    bucket_names: Any,
    monkeypatch: pytest.MonkeyPatch,
    n: int,
    partitions: int,
    extra: dict[str, Obj] | None = None,
) -> tuple[str, str, dict[str, Obj]]:
    """A source of ``n`` objects over 10 prefixes (and ``extra``), an empty backup bucket, and
    plans of about ``partitions`` partitions for ``n`` keys. The suite plans 10 keys per
    partition to exercise mapping; here partitions of a realistic share of the bucket, so the
    fixed per-partition costs are what they cost."""
    monkeypatch.setenv("AIRFLOW__S3BR__TARGET_KEYS_PER_PARTITION", str(n // partitions))
    source, backup = bucket_names("src"), bucket_names("bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    objects = {f"p{i % 10}/obj-{i:05d}.txt": Obj(f"object {i}".encode(), TEXT) for i in range(n)}
    objects |= extra or {}
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda item: put(s3, source, *item), objects.items()))
    return source, backup, objects


def test_a_backup_sends_one_copy_per_object_and_few_other_requests(
    s3: Any, bucket_names: Any, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, backup, objects = seeded_pair(s3, bucket_names, monkeypatch, N, partitions=4)
    conf = {**via(PROXY_CONN_ID, "s3_backup"), "cloudwatch_namespace": "S3brRequestCounts"}

    full = backup_run(source, backup, **conf)
    assert_succeeded(full)
    operations, bound = bounded_requests(proxy, full, "full backup")
    assert data_copies(proxy) == N
    others = sum(operations.values()) - N
    assert others <= bound, (others, bound, operations)
    assert list_keys(s3, backup) == sorted(objects)

    proxy.reset_records()
    idle = backup_run(source, backup, **conf)
    assert_succeeded(idle)
    operations, bound = bounded_requests(proxy, idle, "nothing to do")
    assert data_copies(proxy) == 0 and operations["PutObjectTagging"] == 0, operations
    assert sum(operations.values()) <= bound, (bound, operations)


def test_a_restore_reads_no_tags_where_the_deleted_key_index_can_tell(
    s3: Any, bucket_names: Any, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a backup that tagged every vanished object, a restore of N live objects sends N
    CopyObject and no GetObjectTagging; once something else has marked objects deleted (the
    continuous backup's marker), it reads every object's tags again, and restores the same."""
    tagged = {"p1/tagged.txt": Obj(b"tagged", TEXT, {}, {"team": "data"})}
    source, backup, objects = seeded_pair(s3, bucket_names, monkeypatch, N, partitions=4, extra=tagged)
    conf = {**via(PROXY_CONN_ID, "s3_backup"), "cloudwatch_namespace": ""}
    assert_succeeded(backup_run(source, backup, **conf))
    gone = [key for key in sorted(objects)[::100] if key != "p1/tagged.txt"]
    s3.delete_objects(Bucket=source, Delete={"Objects": [{"Key": key} for key in gone]})
    assert_succeeded(backup_run(source, backup, **conf))
    live = sorted(set(objects) - set(gone))
    restore_conf = {**via(PROXY_CONN_ID, "s3_restore"), "cloudwatch_namespace": ""}

    proxy.reset_records()
    first = bucket_names("new")
    result = restore_run(backup, first, **restore_conf)
    assert_succeeded(result)
    operations, bound = bounded_requests(proxy, result, "restore with the index", n=len(live))
    assert operations["CopyObject"] == len(live) and operations["GetObjectTagging"] == 0, operations
    assert sum(operations.values()) - operations["CopyObject"] <= bound, (bound, operations)
    assert list_keys(s3, first) == live
    assert s3.get_object_tagging(Bucket=first, Key="p1/tagged.txt")["TagSet"] == [
        {"Key": "team", "Value": "data"}
    ]

    s3.put_object(Bucket=backup, Key=tagged_marker_key("continuous"), Body=b"{}")
    proxy.reset_records()
    second = bucket_names("again")
    result = restore_run(backup, second, **restore_conf)
    assert_succeeded(result)
    operations, _ = bounded_requests(proxy, result, "restore without a usable index", n=len(live))
    assert operations["GetObjectTagging"] == len(live) + len(gone), operations
    assert list_keys(s3, second) == live


def test_a_run_over_a_deletion_history_reads_no_tags(
    s3: Any, bucket_names: Any, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Objects tagged deleted by an earlier run are known by the deleted-key index: a run with
    nothing new to do sends no GetObjectTagging for them (as scheduled, its tag_deleted does not
    even start: tests/dags/test_idle_partitions.py), its index
    still names them (a restore reads no tags), and a backup object rewritten since the index is
    read and tagged again."""
    n = 600
    source, backup, objects = seeded_pair(s3, bucket_names, monkeypatch, n, partitions=3)
    conf = {**via(PROXY_CONN_ID, "s3_backup"), "cloudwatch_namespace": ""}
    assert_succeeded(backup_run(source, backup, **conf))
    gone = sorted(objects)[::20]
    s3.delete_objects(Bucket=source, Delete={"Objects": [{"Key": key} for key in gone]})

    proxy.reset_records()
    tagging = backup_run(source, backup, **conf)
    assert_succeeded(tagging)
    operations, _ = bounded_requests(proxy, tagging, "tags what vanished", n=n)
    assert data_requests(proxy, "GetObjectTagging") == len(gone), operations
    assert data_requests(proxy, "PutObjectTagging") == len(gone), operations

    proxy.reset_records()
    idle = backup_run(source, backup, **conf)
    assert_succeeded(idle)
    operations, bound = bounded_requests(proxy, idle, "nothing new, deletion history", n=n)
    assert data_requests(proxy, "GetObjectTagging") == data_requests(proxy, "PutObjectTagging") == 0
    assert data_copies(proxy) == 0 and sum(operations.values()) <= bound, (bound, operations)
    for key in gone:
        tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=backup, Key=key)["TagSet"]}
        assert tags.get("Deleted") == "True", (key, tags)

    live = sorted(set(objects) - set(gone))
    proxy.reset_records()
    restored = bucket_names("new")
    result = restore_run(backup, restored, **{**via(PROXY_CONN_ID, "s3_restore"), "cloudwatch_namespace": ""})
    assert_succeeded(result)
    assert data_requests(proxy, "GetObjectTagging") == 0, proxy.operations()
    assert list_keys(s3, restored) == live

    # A backup object written after the index (here by hand, untagged) is not taken on its word.
    rewritten = gone[0]
    s3.put_object(Bucket=backup, Key=rewritten, Body=b"written after the index")
    proxy.reset_records()
    again = backup_run(source, backup, **conf)
    assert_succeeded(again)
    assert data_requests(proxy, "GetObjectTagging") == data_requests(proxy, "PutObjectTagging") == 1
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=backup, Key=rewritten)["TagSet"]}
    assert tags.get("Deleted") == "True", tags
    # The rewritten key's partition tagged it; its other vanished keys were counted from the index.
    _, report_key = split_s3_uri(run_folder(backup, "s3_backup", again.run_id) + "/report.json")
    report = json.loads(s3.get_object(Bucket=backup, Key=report_key)["Body"].read())
    (tagging_step,) = [row["tag"] for row in report["partitions"] if row.get("tag")]
    assert tagging_step["tagged"] == 1, tagging_step
    assert tagging_step["already_tagged"] == tagging_step["marked_by_index"] >= 1, tagging_step
