"""Encryption in whole ``s3_backup`` runs: SSE-KMS objects (the bucket's default key or one per
object) are copied on both copy paths, under ``backup_kms_key_id``, which validate checks first;
a source object under SSE-C fails alone, at once, named with its reason, while the rest of its
partition is copied and tagged. A backup bucket whose policy denies writes without SSE-KMS takes
every write of a backup and a restore under the connection extra ``s3br_kms_key_id``.

moto serves SSE-C objects to anyone; ``tests/support/moto_aws.py`` refuses them without their
key as AWS does. moto's S3 checks no KMS key of a copy; KMS itself (CreateKey, GenerateDataKey)
it implements on the same endpoint.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from s3br_provider.core.s3_errors import CUSTOMER_KEY_REASON, CUSTOMER_KEY_REQUIRED
from tests.dags.conftest import Obj, assert_copies, odd_objects, put, seed
from tests.dags.test_backup_dag import assert_backup, assert_succeeded, backup_run, restore_defaults
from tests.reliability.conftest import task_tries
from tests.support.dag_runs import run_dag
from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import REGION, aws_conn_env, list_keys, local_client, snapshot, snapshot_bucket

pytestmark = pytest.mark.slow

PROXY_CONN_ID = "s3br_encryption_proxy"
MiB = 1024 * 1024
SMALL_SSE_C, BIG_SSE_C = "m/customer-key.txt", "m/customer-key-big.bin"


@pytest.fixture
def kms(endpoint: str) -> Any:
    return local_client("kms", endpoint)


@pytest.fixture
def proxy(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    with FaultProxy(endpoint) as running:
        monkeypatch.setenv(f"AIRFLOW_CONN_{PROXY_CONN_ID.upper()}", aws_conn_env(running.endpoint_url))
        yield running


def new_key(kms: Any) -> str:
    return kms.create_key(Description="s3br test")["KeyMetadata"]["Arn"]


def test_sse_kms_sources_are_copied_on_both_paths_under_the_backup_key(
    s3: Any, buckets: tuple[str, str], kms: Any, bucket_names: Any
) -> None:
    """The bucket's default key and a key per object; single-part and multipart copies, each
    encrypted under ``backup_kms_key_id``; a restore reads them back."""
    source, backup = buckets
    default_key, object_key, backup_key = new_key(kms), new_key(kms), new_key(kms)
    s3.put_bucket_encryption(
        Bucket=source,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": default_key,
                    }
                }
            ]
        },
    )
    model = {key: obj for key, obj in odd_objects().items() if key.startswith(("a/", "b/"))}
    seed(s3, source, model)  # under the bucket's default key
    own = {
        "k/own-key.txt": Obj(b"under a key of its own", "text/plain", {"k": "own"}, {"kms": "own"}),
        "k/own-key-big.bin": Obj(os.urandom(6 * MiB), "application/x-big", {"k": "big"}, {"kms": "big"}),
    }
    for key, obj in own.items():
        put(s3, source, key, obj, ServerSideEncryption="aws:kms", SSEKMSKeyId=object_key)
    assert s3.head_object(Bucket=source, Key="a/plain.txt")["SSEKMSKeyId"] in (
        default_key,
        default_key.split("/")[-1],
    )

    conf = {
        "multipart_threshold_mb": 5,
        "compare": "checksum",
        "backup_kms_key_id": backup_key,
        "verify": True,
    }
    result = backup_run(s3, source, backup, **conf)
    assert_succeeded(result)
    assert_backup(s3, source, backup)
    assert result.totals["copied"] == len(model) + len(own)
    for key in [*model, *own]:
        head = s3.head_object(Bucket=backup, Key=key)
        assert (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")) == ("aws:kms", backup_key), key

    again = backup_run(s3, source, backup, **conf)
    assert_succeeded(again)
    assert again.totals["copied"] == 0, again.totals

    target = bucket_names("restored")  # a restore reads the copies under the backup key
    restored = run_dag("s3_restore", {**restore_defaults(), "backup_bucket": backup, "target_bucket": target})
    assert restored.state == "success", restored.failed_tasks()
    src = snapshot_bucket(s3, source)
    assert_copies(src, snapshot_bucket(s3, target), src)


def test_sse_c_source_objects_fail_alone_at_once_named_with_the_reason(
    s3: Any, buckets: tuple[str, str], proxy: FaultProxy
) -> None:
    source, backup = buckets
    model = {key: obj for key, obj in odd_objects().items() if key.startswith(("a/", "c/"))}
    seed(s3, source, model)
    customer_key = os.urandom(32)
    for key, size in ((SMALL_SSE_C, 100), (BIG_SSE_C, 6 * MiB)):
        put(
            s3,
            source,
            key,
            Obj(b"s" * size, "application/octet-stream"),
            SSECustomerAlgorithm="AES256",
            SSECustomerKey=customer_key,
        )
    gone = "m/gone.txt"  # a backup object whose source vanished, in the same partition
    put(s3, backup, gone, Obj(b"source gone", "text/plain"))

    result = backup_run(
        s3,
        source,
        backup,
        multipart_threshold_mb=5,
        max_partitions=1,
        source_aws_conn_id=PROXY_CONN_ID,
        backup_aws_conn_id=PROXY_CONN_ID,
    )

    assert result.run.state == "failed"
    assert result.run.failed_tasks() == ["partition.copy_batch[0]", "report"], result.run.tasks
    assert task_tries("s3_backup", result.run.run_id)["partition.copy_batch[0]"] == 1  # not retried
    tries = Counter(
        (r.operation, r.key) for r in proxy.records if r.forwarded and r.key in (SMALL_SSE_C, BIG_SSE_C)
    )
    # One refused CopyObject; s3transfer's head of the source, which botocore's region
    # redirector sends once more (it reads a bare 400 to HeadObject as a possible wrong region).
    assert tries == Counter({("CopyObject", SMALL_SSE_C): 1, ("HeadObject", BIG_SSE_C): 2}), tries

    assert sorted(list_keys(s3, backup)) == sorted([*model, gone])
    for key, obj in model.items():
        snap = snapshot(s3, backup, key)
        assert (snap.body, snap.metadata, snap.tags) == (obj.body, obj.metadata, obj.tags), key
    assert snapshot(s3, backup, gone).tags.get("Deleted") == "True"
    assert result.report is not None
    (copy_step,) = [row["copy"] for row in result.report["partitions"]]
    named = sorted((f["key"], f["error"], f.get("reason")) for f in copy_step["failures"])
    assert named == [
        (BIG_SSE_C, CUSTOMER_KEY_REQUIRED, CUSTOMER_KEY_REASON),
        (SMALL_SSE_C, CUSTOMER_KEY_REQUIRED, CUSTOMER_KEY_REASON),
    ]
    assert result.report["totals"]["failed"] == 2 and result.report["totals"]["copied"] == len(model)


def test_a_backup_kms_key_that_cannot_encrypt_fails_validate_naming_it(
    s3: Any, buckets: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    source, backup = buckets
    seed(s3, source, {"k.txt": Obj(b"x")})
    missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    result = backup_run(s3, source, backup, backup_kms_key_id=missing)
    assert result.run.state == "failed" and result.run.tasks["validate"] == "failed", result.run.tasks
    out = capsys.readouterr().out
    assert f"backup_kms_key_id {missing!r} cannot encrypt copies" in out and "NotFoundException" in out
    assert list_keys(s3, backup, include_reserved=True) == []


KMS_CONN_ID = "s3br_kms_policy"
SSE_WRITES = ("PutObject", "CopyObject", "CreateMultipartUpload")


def deny_unencrypted_writes(proxy: FaultProxy, bucket: str) -> None:
    """AWS's "deny unencrypted object uploads" bucket policy, which moto does not enforce: the
    proxy refuses every write into ``bucket`` without ``x-amz-server-side-encryption``."""
    proxy.set_faults(
        [
            {
                "kind": "access_denied",
                "operation": op,
                "bucket": bucket,
                "unless_header": "x-amz-server-side-encryption",
            }
            for op in SSE_WRITES
        ]
    )


def test_a_bucket_policy_requiring_sse_kms_takes_every_write_under_the_connection_key(
    s3: Any,
    buckets: tuple[str, str],
    kms: Any,
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
    bucket_names: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without the extra the policy stops the backup at validate's first write; with it the
    backup (a multipart copy, a directory marker, a vanished object) and a restore from that
    bucket succeed, and every object in the backup bucket, run files included, is under the key."""
    source, backup = buckets
    key = new_key(kms)
    model = {key_: obj for key_, obj in odd_objects().items() if key_.startswith(("a/", "d/"))}
    model["big.bin"] = Obj(os.urandom(6 * MiB), "application/x-big", {"k": "big"}, {"size": "big"})
    seed(s3, source, model)
    put(
        s3,
        backup,
        "gone.txt",
        Obj(b"source gone", "text/plain"),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=key,
    )
    deny_unencrypted_writes(proxy, backup)
    conns = {
        "source_aws_conn_id": PROXY_CONN_ID,
        "backup_aws_conn_id": PROXY_CONN_ID,
        "multipart_threshold_mb": 5,
    }

    refused = backup_run(s3, source, backup, **conns)
    assert refused.run.state == "failed" and refused.run.tasks["validate"] == "failed", refused.run.tasks
    assert task_tries("s3_backup", refused.run.run_id)["validate"] == 1  # bad input: not retried
    assert f"backup_bucket {backup!r} refuses s3br's writes" in capsys.readouterr().out
    assert [r.operation for r in proxy.faulted()] == ["PutObject"]
    assert list_keys(s3, backup, include_reserved=True) == ["gone.txt"]

    extra = {"endpoint_url": proxy.endpoint_url, "region_name": REGION, "s3br_kms_key_id": key}
    connection = {**json.loads(aws_conn_env(proxy.endpoint_url)), "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{KMS_CONN_ID.upper()}", json.dumps(connection))
    conns = {**conns, "backup_aws_conn_id": KMS_CONN_ID}
    proxy.reset_records()
    result = backup_run(s3, source, backup, **conns)
    assert_succeeded(result)
    src = snapshot_bucket(s3, source)
    assert_copies(src, snapshot_bucket(s3, backup), src)
    assert snapshot(s3, backup, "gone.txt").tags.get("Deleted") == "True"
    assert proxy.faulted() == []
    writes = [r for r in proxy.writes() if r.bucket == backup and r.operation in SSE_WRITES]
    assert all("x-amz-server-side-encryption" in r.headers for r in writes)
    written = Counter(r.operation for r in writes)
    assert written["CopyObject"] >= len(model) - 1 and written["CreateMultipartUpload"] == 1, written
    assert written["PutObject"] >= 3, written  # run files: manifests, report, statistics

    # A restore through a connection without the key: its first run file is refused, at once.
    unkeyed = {**restore_defaults(), "backup_bucket": backup, "target_bucket": bucket_names("refused")}
    refused_restore = run_dag(
        "s3_restore", {**unkeyed, "backup_aws_conn_id": PROXY_CONN_ID, "target_aws_conn_id": PROXY_CONN_ID}
    )
    assert refused_restore.state == "failed", refused_restore.tasks
    assert refused_restore.tasks["partition.select[0]"] == "failed", refused_restore.tasks
    assert task_tries("s3_restore", refused_restore.run_id)["partition.select[0]"] == 1  # not retried
    out = capsys.readouterr().out
    assert "AccessDenied to PutObject with connection 's3br_encryption_proxy'" in out
    assert "set the connection extra s3br_kms_key_id" in out
    proxy.clear_faults()  # the refused restore wrote nothing: every key below stays under the key
    deny_unencrypted_writes(proxy, backup)
    proxy.reset_records()

    target = bucket_names("restored")
    restored = run_dag(
        "s3_restore",
        {
            **restore_defaults(),
            "backup_bucket": backup,
            "target_bucket": target,
            "backup_aws_conn_id": KMS_CONN_ID,
            "target_aws_conn_id": KMS_CONN_ID,
        },
    )
    assert restored.state == "success", restored.failed_tasks()
    assert proxy.faulted() == []
    # One connection for the backup and the target: validate checks its key once.
    assert proxy.operations()["GenerateDataKey"] == 1
    assert_copies(src, snapshot_bucket(s3, target), src)
    assert sorted(list_keys(s3, target)) == sorted(model)  # gone.txt is deleted: not restored
    written = list_keys(s3, backup, include_reserved=True)
    assert any(name.startswith("_s3br/runs/s3_restore/") for name in written), written
    for name in written:
        head = s3.head_object(Bucket=backup, Key=name)
        assert (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")) == ("aws:kms", key), name
