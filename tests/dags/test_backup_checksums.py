"""``compare="checksum"`` in whole ``s3_backup`` runs through the recording proxy: a backup copy
changed in place is re-copied under ``checksum`` and kept under ``size_mtime``; copies carry a
full-object checksum (the source's own, or CRC64NVME in parts); a full backup is still one CopyObject per
object, and checksum mode heads only the keys size and time did not decide.

moto differs from AWS here in two ways, coped with in ``tests/support/moto_aws.py``: its
HeadObject names no checksum type (added there), and without awscrt its CRC64NVME is a CRC32
under that name (moto computes every checksum of these tests, so they still compare alike).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from s3br_provider.core.fingerprints import full_object_checksums
from tests.dags.conftest import Obj, assert_source, odd_objects, put, seed
from tests.dags.test_backup_dag import MTIME_TICK, assert_backup, assert_succeeded, backup_run
from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import aws_conn_env, snapshot

pytestmark = pytest.mark.slow

PROXY_CONN_ID = "s3br_checksums_proxy"
BIG = "big/six-mib.bin"
EDITED = "a/plain.txt"
PER_KEY_OPERATIONS = ("CopyObject", "HeadObject", "GetObjectTagging", "PutObjectTagging", "UploadPartCopy")


@pytest.fixture
def proxy(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    with FaultProxy(endpoint) as running:
        monkeypatch.setenv(f"AIRFLOW_CONN_{PROXY_CONN_ID.upper()}", aws_conn_env(running.endpoint_url))
        yield running


def requests_per_key(proxy: FaultProxy, keys: Any) -> dict[str, Counter[tuple[str, str]]]:
    """key -> Counter of (operation, bucket) of the requests on that data key."""
    found: dict[str, Counter[tuple[str, str]]] = {}
    for record in proxy.records:
        if record.forwarded and record.key in keys and record.operation in PER_KEY_OPERATIONS:
            found.setdefault(record.key, Counter())[record.operation, record.bucket or ""] += 1
    return found


def run(s3: Any, proxy: FaultProxy, source: str, backup: str, compare: str) -> Any:
    proxy.reset_records()
    return backup_run(
        s3,
        source,
        backup,
        compare=compare,
        multipart_threshold_mb=5,
        max_partitions=2,
        source_aws_conn_id=PROXY_CONN_ID,
        backup_aws_conn_id=PROXY_CONN_ID,
    )


def test_checksum_catches_a_copy_changed_in_place_and_heads_only_undecided_keys(
    s3: Any, buckets: tuple[str, str], proxy: FaultProxy
) -> None:
    source, backup = buckets
    model = {key: obj for key, obj in odd_objects().items() if key.startswith(("a/", "b/", "c/"))}
    model[BIG] = Obj(b"6" * (6 * 1024 * 1024), "application/octet-stream", {"s": "big"}, {"b": "1"})
    seed(s3, source, model)
    assert_source(s3, source, model)
    small = sorted(set(model) - {BIG})

    # 1. A full backup under checksum: exactly one CopyObject per object, no head, no tagging.
    first = run(s3, proxy, source, backup, "checksum")
    assert_succeeded(first)
    assert_backup(s3, source, backup)
    seen = requests_per_key(proxy, model)
    assert {key: seen.get(key) for key in small} == {
        key: Counter({("CopyObject", backup): 1}) for key in small
    }
    assert seen[BIG][("UploadPartCopy", backup)] == 2 and ("CopyObject", backup) not in seen[BIG]
    for key in small:  # each copy keeps its source's full-object checksum (boto3's CRC32)
        theirs = full_object_checksums(s3.head_object(Bucket=source, Key=key, ChecksumMode="ENABLED"))
        ours = full_object_checksums(s3.head_object(Bucket=backup, Key=key, ChecksumMode="ENABLED"))
        assert ours == theirs and list(ours) == ["CRC32"], (key, ours, theirs)
    head = s3.head_object(Bucket=backup, Key=BIG, ChecksumMode="ENABLED")  # in parts: CRC64NVME
    assert full_object_checksums(head) == {"CRC64NVME": head["ChecksumCRC64NVME"]}, head

    # 2. The backup copy changed in place: same size, newer, other bytes. size_mtime keeps it.
    time.sleep(MTIME_TICK)
    stale = Obj(b"ALPHA", "text/plain; charset=utf-8", model[EDITED].metadata, model[EDITED].tags)
    assert len(stale.body) == len(model[EDITED].body)
    put(s3, backup, EDITED, stale)
    kept = snapshot(s3, backup, EDITED)
    second = run(s3, proxy, source, backup, "size_mtime")
    assert_succeeded(second)
    assert second.totals["copied"] == 0, second.totals
    assert snapshot(s3, backup, EDITED) == kept
    assert requests_per_key(proxy, model) == {}

    # 3. checksum heads the keys whose ETags differ (the edited one; the multipart copy, whose
    # CRC64NVME the source's CRC32 cannot be compared with) on both sides, and re-copies the edit.
    third = run(s3, proxy, source, backup, "checksum")
    assert_succeeded(third)
    assert third.totals["copied"] == 1, third.totals
    assert_backup(s3, source, backup)
    seen = requests_per_key(proxy, model)
    assert sorted(seen) == sorted([EDITED, BIG])
    assert seen[EDITED] == Counter(
        {
            ("HeadObject", source): 1,
            ("HeadObject", backup): 1,
            ("GetObjectTagging", source): 1,  # a changed object's tags replace the copy's
            ("CopyObject", backup): 1,
        }
    )
    assert seen[BIG] == Counter({("HeadObject", source): 1, ("HeadObject", backup): 1})
    diff_rows = [row["diff"] for row in third.report["partitions"]]
    assert sum(row["content_checked"] for row in diff_rows) == 2
    assert sum(row["content_unknown"] for row in diff_rows) == 1

    # 4. Nothing to do: nothing copied, still only the undecidable multipart copy is headed.
    fourth = run(s3, proxy, source, backup, "checksum")
    assert_succeeded(fourth)
    assert fourth.totals["copied"] == 0, fourth.totals
    assert sorted(requests_per_key(proxy, model)) == [BIG]
