"""A first ``s3_backup`` of a bucket nothing is known about yet spreads over many partitions.

The issue's bucket, at a fifth of its size: ``hot/`` with 1,800 flat keys and ``cold/`` with 200
under 50 sub-prefixes, ``target_keys_per_partition`` 80 (an Airflow option, set through its
environment variable). Planning from ``/``-delimited prefixes made two partitions of such a
bucket; probing makes 25. Both connections go through a recording proxy, so the planning
requests (ListObjectsV2 naming MaxKeys) are counted; the backup is then checked object by object.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.dags.test_backup_dag import TARGET_KEYS_ENV, assert_succeeded, backup_run, mapped
from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import aws_conn_env, local_client

pytestmark = pytest.mark.slow

PROXY_CONN_ID = "s3br_planning_proxy"
TARGET_KEYS = 80
PROBE_PAGE = "1000"  # the planner's probes name MaxKeys; listings for the diff do not


def two_prefix_keys() -> list[str]:
    """The issue's shape at a fifth of its size (a whole run of 125 partitions takes minutes in
    ``dag.test``; tests/unit/test_core_probe_plan.py plans the 10,000 keys themselves)."""
    hot = [f"hot/{i:05d}.bin" for i in range(1800)]
    cold = [f"cold/{p:02d}/{i:02d}.bin" for p in range(50) for i in range(4)]
    return hot + cold


@pytest.fixture
def proxy(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    with FaultProxy(endpoint) as running:
        monkeypatch.setenv(f"AIRFLOW_CONN_{PROXY_CONN_ID.upper()}", aws_conn_env(running.endpoint_url))
        yield running


def seed_keys(endpoint: str, bucket: str, keys: list[str]) -> None:
    """Put small objects (each holding its own key) from a bounded pool of threads."""
    client = local_client("s3", endpoint, pool=16)
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=key.encode()), keys))


def listing(s3: Any, bucket: str) -> dict[str, tuple[int, str]]:
    """key -> (size, ETag) of every object, ``_s3br/`` left out."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            if not item["Key"].startswith("_s3br/"):
                found[item["Key"]] = (item["Size"], item["ETag"])
    return found


def test_first_backup_of_two_prefixes_spreads_over_target_sized_partitions(
    s3: Any,
    endpoint: str,
    buckets: tuple[str, str],
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, backup = buckets
    keys = two_prefix_keys()
    seed_keys(endpoint, source, keys)
    monkeypatch.setenv(TARGET_KEYS_ENV, str(TARGET_KEYS))

    conns = {"source_aws_conn_id": PROXY_CONN_ID, "backup_aws_conn_id": PROXY_CONN_ID}
    result = backup_run(s3, source, backup, max_partitions=1024, **conns)

    assert_succeeded(result)
    copies = mapped(result.run, "partition.copy_batch")
    planned = result.totals["partitions"]
    assert len(copies) == planned == len(keys) // TARGET_KEYS
    copied = [row["copy"]["copied"] for row in result.report["partitions"]]
    assert sum(copied) == len(keys) and max(copied) <= 2 * TARGET_KEYS, sorted(copied)[-3:]
    probes = [
        r
        for r in proxy.records
        if r.operation == "ListObjectsV2" and r.bucket == source and r.query.get("max-keys") == PROBE_PAGE
    ]
    assert 1 <= len(probes) <= 2 * planned
    # Object by object: same keys, sizes and ETags (single-part MD5s: the same bytes).
    assert listing(s3, backup) == listing(s3, source)
    assert len(listing(s3, backup)) == len(keys)


def test_probes_leave_the_reserved_prefix_out(s3: Any, bucket_names: Any, airflow_db: str) -> None:
    """A restore plans over the backup bucket: its ``_s3br/`` keys are neither counted nor taken
    for the end of the key space, even when a page holds nothing else."""
    from s3br_provider.hooks.s3_bucket import S3BucketHook
    from s3br_provider.operators.plan import listing_probe

    bucket = bucket_names("probe")
    s3.create_bucket(Bucket=bucket)
    data = ["_a", "_s3br.txt", "_s3brz", "b"]
    for key in [*data, *(f"_s3br/runs/{i}" for i in range(5))]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    probe = listing_probe(S3BucketHook(), bucket, "")
    assert probe(None, 3) == ["_a", "_s3br.txt"] + ["_s3brz"]  # the page ended in _s3br/: refilled
    assert probe("_s3br.txt", 3) == ["_s3brz", "b"]
    assert probe("_s3br.txt", 1) == ["_s3brz"]
