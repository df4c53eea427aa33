"""Copy chunks against the endpoint: diff writes them, each chunk copy (and its retry) keeps to its range."""

from __future__ import annotations

from typing import Any

from s3br_provider.core.chunks import chunk_copies
from s3br_provider.core.manifest import read_manifest
from s3br_provider.hooks.s3_bucket import S3BucketHook
from s3br_provider.operators.copy_batch import S3CopyBatchOperator
from s3br_provider.operators.diff import S3DiffPartitionOperator
from tests.integration.conftest import PROXY_CONN_ID
from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import list_keys
from tests.support.steps import context

KEYS = [f"k/{i:02d}" for i in range(20)]


def chunked_diff(source: str, backup: str, *, chunk_copies: bool = True) -> dict[str, Any]:
    return S3DiffPartitionOperator(
        task_id="diff",
        source_bucket=source,
        backup_bucket=backup,
        chunk_copies=chunk_copies,
        copy_chunk_keys=6,
        aws_conn_id=PROXY_CONN_ID,
    ).execute(context())


def chunk_copy(source: str, backup: str, kwargs: dict[str, Any], try_number: int = 1) -> dict[str, Any]:
    op = S3CopyBatchOperator(task_id="copy_chunk", source_bucket=source, target_bucket=backup, **kwargs)
    op.aws_conn_id = PROXY_CONN_ID
    return op.execute(context(try_number=try_number))


def seeded_pair(s3: Any, bucket_names: Any) -> tuple[str, str]:
    """A source holding KEYS (each key its own body) and an empty backup bucket."""
    source, backup = bucket_names("src"), bucket_names("bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    for key in KEYS:
        s3.put_object(Bucket=source, Key=key, Body=key.encode())
    return source, backup


def test_diff_writes_sorted_chunks_and_a_retried_chunk_copy_keeps_to_its_range(
    s3: Any, bucket_names: Any, fault_proxy: FaultProxy
) -> None:
    source, backup = seeded_pair(s3, bucket_names)

    work = chunked_diff(source, backup)

    assert (work["to_copy"], work["copy_manifest_objects"], len(work["copy_chunks"])) == (20, 6, 3)
    assert work["copy_partition"] == {
        "index": 0,
        "start_after": None,
        "end": "k/05",
        "chunk": "1",
        "chunks": 4,
    }
    hook = S3BucketHook(aws_conn_id="aws_default")
    first = [r["k"] for r in read_manifest(hook, work["copy_manifest"])]
    rest = [[r["k"] for r in read_manifest(hook, c["manifest"])] for c in work["copy_chunks"]]
    assert first + sum(rest, []) == KEYS and [len(r) for r in rest] == [6, 6, 2]
    assert [(c["start_after"], c["end"]) for c in work["copy_chunks"]] == [
        ("k/05", "k/11"),
        ("k/11", "k/17"),
        ("k/17", "k/19"),
    ]
    copies = chunk_copies([work], limit=2)  # 3 chunks, 2 tasks: chunks 2-3 merged, then 4
    assert [c["partition"]["chunk"] for c in copies] == ["2-3", "4"]

    # Chunk 4 is copied while a stale upload of an earlier try sits in chunks 2-3's range and
    # another in its own; its retry aborts only its own and lists only (k/17, k/19].
    s3.put_object(Bucket=backup, Key="k/18", Body=b"k/18")  # as if copied by the first try
    theirs = s3.create_multipart_upload(Bucket=backup, Key="k/08")["UploadId"]
    mine = s3.create_multipart_upload(Bucket=backup, Key="k/19")["UploadId"]
    fault_proxy.reset_records()
    result = chunk_copy(source, backup, copies[1], try_number=2)
    assert (result["chunk"], result["copied"], result["skipped_done"], result["failed"]) == ("4", 1, 1, 0)
    aborted = [r.query["uploadId"] for r in fault_proxy.records if r.operation == "AbortMultipartUpload"]
    assert aborted == [mine]
    listings = [r.query for r in fault_proxy.records if r.operation == "ListObjectsV2" and r.bucket == backup]
    assert listings and all(q.get("start-after") == "k/17" for q in listings), listings
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=backup).get("Uploads", [])] == [theirs]

    merged = chunk_copy(source, backup, copies[0])
    assert (merged["chunk"], merged["copied"]) == ("2-3", 12)
    assert (
        chunk_copy(
            source, backup, {"partition": work["copy_partition"], "manifest_uri": work["copy_manifest"]}
        )["copied"]
        == 6
    )
    assert list_keys(s3, backup) == KEYS


def test_without_chunk_copies_the_copy_manifest_holds_every_key(
    s3: Any, bucket_names: Any, fault_proxy: FaultProxy
) -> None:
    source, backup = seeded_pair(s3, bucket_names)

    work = chunked_diff(source, backup, chunk_copies=False)

    assert (work["copy_manifest_objects"], work["copy_chunks"]) == (20, [])
    assert work["copy_partition"] == {"index": 0, "start_after": None, "end": None}
    hook = S3BucketHook(aws_conn_id="aws_default")
    assert [r["k"] for r in read_manifest(hook, work["copy_manifest"])] == KEYS
