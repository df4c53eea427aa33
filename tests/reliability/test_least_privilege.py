"""What the runs ask of S3 stays within the published IAM policies, and never deletes.

The proxy recorded every request of the shared scenario (two backups with deletions, tagging
and multipart copies; a restore ``as_of`` of a versioned backup with GLACIER objects) and of
retried copy tasks. Each request is mapped to the IAM actions it needs, on the ARN it needs them
for, and checked against ``iam/backup-policy.json`` or ``iam/restore-policy.json`` with
SOURCE_BUCKET, BACKUP_BUCKET and TARGET_BUCKET filled in.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace
from typing import Any

import pytest

from tests.reliability.conftest import (
    PROXY_CONN_ID,
    TEXT,
    MiB,
    Obj,
    Scenario,
    seed,
    via,
)
from tests.support import steps
from tests.support.fault_proxy import FaultProxy, RequestRecord
from tests.support.iam import allowed, listed, missing_permissions, policy, split_copy_source, used
from tests.support.s3 import REGION, aws_conn_env, local_client

pytestmark = pytest.mark.slow

WHOLE = {"index": 0, "start_after": None, "end": None}
DELETES = {"DeleteObject", "DeleteObjects", "DeleteBucket", "DeleteObjectTagging"}


# The scenario's runs ----------------------------------------------------------------------------


def backup_records(scenario: Scenario) -> list[RequestRecord]:
    return scenario.runs["backup-1"].records + scenario.runs["backup-2"].records


def test_backup_runs_stay_within_the_backup_policy(scenario: Scenario) -> None:
    statements = policy("backup-policy", SOURCE_BUCKET=scenario.source, BACKUP_BUCKET=scenario.backup)
    records = backup_records(scenario)
    print("backup actions used:", used(records))
    assert {"s3:PutObjectTagging", "s3:PutObject", "cloudwatch:PutMetricData"} <= set(used(records))
    assert missing_permissions(records, statements) == {}


def test_restore_run_stays_within_the_restore_policy(scenario: Scenario) -> None:
    statements = policy(
        "restore-policy",
        BACKUP_BUCKET=scenario.backup,
        TARGET_BUCKET=scenario.target,
    )
    records = scenario.runs["restore"].records
    print("restore actions used:", used(records))
    assert {"s3:RestoreObject", "s3:ListBucketVersions", "s3:GetObjectVersion"} <= set(used(records))
    assert missing_permissions(records, statements) == {}


def test_metrics_go_to_the_namespace_the_policies_allow(scenario: Scenario) -> None:
    for name in ("backup-policy", "restore-policy"):
        for statement in policy(name):
            if "cloudwatch:PutMetricData" in listed(statement["Action"]):
                allowed_ns = statement["Condition"]["StringEquals"]["cloudwatch:namespace"]
                for recorded in scenario.runs.values():
                    assert recorded.report is not None
                    assert recorded.report["settings"]["cloudwatch_namespace"] == allowed_ns


def test_no_run_ever_deletes(scenario: Scenario) -> None:
    for name, recorded in scenario.runs.items():
        deletes = [(r.operation, r.bucket, r.key) for r in recorded.records if r.operation in DELETES]
        assert deletes == [], name
        source_keys = {k for k in (*scenario.first, *scenario.live)}
        for record in recorded.records:
            if record.operation == "AbortMultipartUpload":  # only of a copy of ours
                assert record.key in source_keys and record.bucket in (scenario.backup, scenario.target)


def test_backup_never_writes_the_source(scenario: Scenario) -> None:
    writes = [
        (r.operation, r.key) for r in backup_records(scenario) if _writes(r) and r.bucket == scenario.source
    ]
    assert writes == []


def test_restore_writes_only_new_keys_of_the_target_and_run_files_of_the_backup(scenario: Scenario) -> None:
    assert not scenario.target_existed  # so no key existed in the target before
    writes = [r for r in scenario.runs["restore"].records if _writes(r)]
    target_writes = {r.key for r in writes if r.bucket == scenario.target and r.key}
    assert target_writes <= set(scenario.live), sorted(target_writes - set(scenario.live))
    backup_writes = {r.key for r in writes if r.bucket == scenario.backup and r.operation != "RestoreObject"}
    assert all(key.startswith("_s3br/") for key in backup_writes), sorted(backup_writes)
    assert {r.bucket for r in writes} <= {scenario.target, scenario.backup, None}


def _writes(record: RequestRecord) -> bool:
    return record.operation in (
        "PutObject",
        "CopyObject",
        "UploadPartCopy",
        "CreateMultipartUpload",
        "CompleteMultipartUpload",
        "PutObjectTagging",
        "AbortMultipartUpload",
        "RestoreObject",
        "DeleteObject",
        "DeleteObjects",
        "DeleteObjectTagging",
    )


# Retried copy tasks (what Airflow runs after a crash) -------------------------------------------


def context(params: dict[str, Any], run_id: str, try_number: int = 1) -> dict[str, Any]:
    ti = SimpleNamespace(try_number=try_number, xcom_push=lambda **kwargs: None)
    return {"params": params, "run_id": run_id, "ti": ti}


@pytest.fixture
def two_buckets(s3: Any, bucket_names: Any) -> tuple[str, str, dict[str, Obj]]:
    first, second = bucket_names("one"), bucket_names("two")
    s3.create_bucket(Bucket=first)
    s3.create_bucket(Bucket=second)
    objects = {
        "a/small.txt": Obj(b"small", TEXT, {"m": "1"}, {"t": "1"}),
        "b/big.bin": Obj(os.urandom(6 * MiB), "application/x-big", {"m": "2"}, {"t": "2"}),
    }
    seed(s3, first, objects)
    return first, second, objects


def test_retried_backup_copy_stays_within_the_backup_policy(
    two_buckets: tuple[str, str, dict[str, Obj]], proxy: FaultProxy
) -> None:
    source, backup, _ = two_buckets
    run = steps.validate(
        source, backup, run_id="manual__b", multipart_threshold_mb=5, **via(PROXY_CONN_ID, "s3_backup")
    )
    work = steps.diff(run)
    proxy.reset_records()
    steps.copy(run, work, try_number=2)

    assert proxy.operations()["ListMultipartUploads"] >= 1  # the retry path ran
    statements = policy("backup-policy", SOURCE_BUCKET=source, BACKUP_BUCKET=backup)
    assert missing_permissions(proxy.records, statements) == {}


def test_retried_restore_copy_stays_within_the_restore_policy(
    two_buckets: tuple[str, str, dict[str, Obj]], bucket_names: Any, proxy: FaultProxy
) -> None:
    backup, _, _ = two_buckets
    target = bucket_names("target")
    run = steps.validate_restore(
        backup, target, run_id="manual__r", multipart_threshold_mb=5, **via(PROXY_CONN_ID, "s3_restore")
    )
    steps.create_target(run)
    work = steps.select(run)
    proxy.reset_records()
    steps.restore_copy(run, work, try_number=2)

    assert proxy.operations()["ListMultipartUploads"] >= 1  # the retry path ran
    statements = policy("restore-policy", BACKUP_BUCKET=backup, TARGET_BUCKET=target)
    assert missing_permissions(proxy.records, statements) == {}


# SSE-KMS: what S3 asks of KMS on the caller's behalf ---------------------------------------------


def kms_needs(
    record: RequestRecord, encrypted: dict[str, str], source: str, backup: str, backup_key: str | None
) -> list[tuple[str, str]]:
    """The KMS actions (on a key's ARN) a request of an SSE-KMS backup needs, as AWS documents
    them ("Using SSE-KMS", "Multipart upload and permissions"): reading an encrypted object
    decrypts its data key, writing one under a key generates a data key, and completing a
    multipart upload under a key decrypts the parts' data key; validate asks KMS itself."""
    op = record.operation
    if op == "GenerateDataKey":
        return [("kms:GenerateDataKey", backup_key or "no key")]
    pairs = []
    if op in ("CopyObject", "UploadPartCopy"):
        src_bucket, src_key, _ = split_copy_source(record.copy_source or "")
        if src_bucket == source and src_key in encrypted:
            pairs.append(("kms:Decrypt", encrypted[src_key]))
    if backup_key and record.bucket == backup and not (record.key or "").startswith("_s3br/"):
        if op in ("CopyObject", "CreateMultipartUpload"):
            pairs.append(("kms:GenerateDataKey", backup_key))
        if op in ("UploadPartCopy", "CompleteMultipartUpload"):
            pairs.append(("kms:Decrypt", backup_key))
    return pairs


def test_sse_kms_backup_and_restore_stay_within_their_policies(
    s3: Any, bucket_names: Any, proxy: FaultProxy
) -> None:
    """An SSE-KMS source (the bucket's default key) copied under a backup key, single-part
    and in parts: the policy's two KMS actions, on the two keys, are all it needs; restoring
    the copies needs the restore policy's kms:Decrypt of the backup key."""
    kms = local_client("kms", proxy.endpoint_url)
    source_key, backup_key = (kms.create_key()["KeyMetadata"]["Arn"] for _ in range(2))
    source, backup = bucket_names("src"), bucket_names("bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    default = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": source_key}
    s3.put_bucket_encryption(
        Bucket=source,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": default}]},
    )
    objects = {
        "a/small.txt": Obj(b"small", TEXT, {"m": "1"}, {"t": "1"}),
        "b/big.bin": Obj(os.urandom(6 * MiB), "application/x-big", {"m": "2"}, {"t": "2"}),
    }
    seed(s3, source, objects)
    proxy.reset_records()

    run = steps.validate(
        source,
        backup,
        run_id="manual__kms",
        multipart_threshold_mb=5,
        backup_kms_key_id=backup_key,
        **via(PROXY_CONN_ID, "s3_backup"),
    )
    steps.copy(run, steps.diff(run))
    assert proxy.operations()["GenerateDataKey"] == 1  # validate's check of the key

    for key in objects:
        head = s3.head_object(Bucket=backup, Key=key)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", backup_key), key
    statements = policy(
        "backup-policy",
        SOURCE_BUCKET=source,
        BACKUP_BUCKET=backup,
        SOURCE_KMS_KEY_ARN=source_key,
        BACKUP_KMS_KEY_ARN=backup_key,
    )
    encrypted = dict.fromkeys(objects, source_key)
    needed = {pair for r in proxy.records for pair in kms_needs(r, encrypted, source, backup, backup_key)}
    assert {action for action, _ in needed} == {"kms:Decrypt", "kms:GenerateDataKey"}, needed
    assert [pair for pair in sorted(needed) if not allowed(statements, *pair)] == []
    assert missing_permissions(proxy.records, statements) == {}
    kms_actions = {a for st in statements for a in listed(st["Action"]) if a.startswith("kms:")}
    assert kms_actions == {"kms:Decrypt", "kms:GenerateDataKey"}

    # A restore of those copies reads them under the backup key: kms:Decrypt, in its policy.
    target = bucket_names("target")
    proxy.reset_records()
    restore = steps.validate_restore(
        backup, target, run_id="manual__kmsr", multipart_threshold_mb=5, **via(PROXY_CONN_ID, "s3_restore")
    )
    steps.create_target(restore)
    steps.restore_copy(restore, steps.select(restore))
    assert sorted(k for k in objects) == sorted(
        o["Key"] for o in s3.list_objects_v2(Bucket=target)["Contents"]
    )
    statements = policy(
        "restore-policy", BACKUP_BUCKET=backup, TARGET_BUCKET=target, BACKUP_KMS_KEY_ARN=backup_key
    )
    encrypted = dict.fromkeys(objects, backup_key)
    needed = {pair for r in proxy.records for pair in kms_needs(r, encrypted, backup, target, None)}
    assert needed == {("kms:Decrypt", backup_key)}, needed
    assert [pair for pair in sorted(needed) if not allowed(statements, *pair)] == []
    assert missing_permissions(proxy.records, statements) == {}


def test_a_connection_kms_key_stays_within_the_policies(
    s3: Any, bucket_names: Any, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the connection extra ``s3br_kms_key_id`` every object written into the backup
    bucket, run files included, is under the key: the backup needs kms:GenerateDataKey and
    kms:Decrypt on it (writing, then reading its own manifests back), and so does the restore,
    which writes its manifests there too."""
    key = local_client("kms", proxy.endpoint_url).create_key()["KeyMetadata"]["Arn"]
    conn_id = "s3br_proxy_kms"
    extra = {"endpoint_url": proxy.endpoint_url, "region_name": REGION, "s3br_kms_key_id": key}
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({**json.loads(aws_conn_env(proxy.endpoint_url)), "extra": extra}),
    )
    source, backup, target = bucket_names("src"), bucket_names("bak"), bucket_names("target")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    objects = {"a/small.txt": Obj(b"small", TEXT, {"m": "1"}, {"t": "1"})}
    seed(s3, source, objects)

    def needs(record: RequestRecord) -> list[tuple[str, str]]:
        """What S3 asks of KMS for a request when every object of the backup is under ``key``."""
        if record.operation == "GenerateDataKey":
            return [("kms:GenerateDataKey", key)]
        writes = record.bucket == backup and record.operation in (
            "PutObject",
            "CopyObject",
            "CreateMultipartUpload",
        )
        reads = record.bucket == backup and record.operation == "GetObject"
        copied_from_backup = split_copy_source(record.copy_source or "")[0] == backup
        return [("kms:GenerateDataKey", key)] * writes + [("kms:Decrypt", key)] * (
            reads or copied_from_backup
        )

    proxy.reset_records()
    run = steps.validate(source, backup, run_id="manual__ckms", **via(conn_id, "s3_backup"))
    steps.copy(run, steps.diff(run))
    backup_statements = policy(
        "backup-policy",
        SOURCE_BUCKET=source,
        BACKUP_BUCKET=backup,
        SOURCE_KMS_KEY_ARN="arn:aws:kms:us-east-1:000000000000:key/unused",
        BACKUP_KMS_KEY_ARN=key,
    )
    needed = {pair for r in proxy.records for pair in needs(r)}
    assert needed == {("kms:GenerateDataKey", key), ("kms:Decrypt", key)}, needed
    assert [pair for pair in sorted(needed) if not allowed(backup_statements, *pair)] == []
    assert missing_permissions(proxy.records, backup_statements) == {}

    proxy.reset_records()
    restore = steps.validate_restore(backup, target, run_id="manual__ckmsr", **via(conn_id, "s3_restore"))
    steps.create_target(restore)
    steps.restore_copy(restore, steps.select(restore))
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=target)["Contents"]] == list(objects)
    restore_statements = policy(
        "restore-policy", BACKUP_BUCKET=backup, TARGET_BUCKET=target, BACKUP_KMS_KEY_ARN=key
    )
    needed = {pair for r in proxy.records for pair in needs(r)}
    assert needed == {("kms:GenerateDataKey", key), ("kms:Decrypt", key)}, needed
    assert [pair for pair in sorted(needed) if not allowed(restore_statements, *pair)] == []
    assert missing_permissions(proxy.records, restore_statements) == {}
