"""The fewest requests: exact counts of what a backup sends, recorded by the proxy.

For N objects and P planned partitions, a full backup may send at most N CopyObject plus
2 x ceil(N/1000) listings plus 30 requests per partition (the run's fixed costs: bucket checks,
statistics, manifests, reports, metrics), and a run with nothing to do at most the listings and
the per-partition costs, no copy at all. Counts are exact (a proxy sees every request), so these
are assertions, not benchmarks; the breakdown is printed for the closing notes.
"""

from __future__ import annotations

import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.reliability.conftest import PROXY_CONN_ID, TEXT, Obj, assert_succeeded, backup_run, put, via
from tests.support.dag_runs import RunResult
from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import list_keys

pytestmark = pytest.mark.slow

N = 2_000
PER_PARTITION = 30


def partitions(result: RunResult) -> int:
    return sum(1 for name in result.tasks if name.startswith("partition.diff["))


def bounded_requests(proxy: FaultProxy, result: RunResult, label: str) -> tuple[Counter[str], int]:
    """The run's requests by operation, and the bound on those that are not CopyObject."""
    operations = proxy.operations()
    parts = partitions(result)
    bound = 2 * math.ceil(N / 1000) + PER_PARTITION * parts
    print(f"{label}: N={N}, partitions={parts}, requests={sum(operations.values())}: {dict(operations)}")
    return operations, bound


def test_a_backup_sends_one_copy_per_object_and_few_other_requests(
    s3: Any, bucket_names: Any, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The suite plans 10 keys per partition to exercise mapping; here partitions of a realistic
    # share of the bucket (4 for N keys), so the fixed per-partition costs are what they cost.
    monkeypatch.setenv("AIRFLOW__S3BR__TARGET_KEYS_PER_PARTITION", str(N // 4))
    source, backup = bucket_names("src"), bucket_names("bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    objects = {f"p{i % 10}/obj-{i:05d}.txt": Obj(f"object {i}".encode(), TEXT) for i in range(N)}
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda item: put(s3, source, *item), objects.items()))
    conf = {**via(PROXY_CONN_ID, "s3_backup"), "cloudwatch_namespace": "S3brRequestCounts"}

    full = backup_run(source, backup, **conf)
    assert_succeeded(full)
    operations, bound = bounded_requests(proxy, full, "full backup")
    assert operations["CopyObject"] == N
    others = sum(operations.values()) - operations["CopyObject"]
    assert others <= bound, (others, bound, operations)
    assert list_keys(s3, backup) == sorted(objects)

    proxy.reset_records()
    idle = backup_run(source, backup, **conf)
    assert_succeeded(idle)
    operations, bound = bounded_requests(proxy, idle, "nothing to do")
    assert operations["CopyObject"] == 0 and operations["PutObjectTagging"] == 0, operations
    assert sum(operations.values()) <= bound, (bound, operations)
