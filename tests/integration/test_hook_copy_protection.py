"""What S3BucketHook.copy asks of every copy, on the direct path, through boto3 and in parts: a
full-object checksum (the source's own where its listing names one, else CRC64NVME, or CRC32C
where an endpoint refuses that, found out once per hook) and, given a key, SSE-KMS encryption;
and validate's check of that key."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from s3br_provider.core.fingerprints import full_object_checksums
from s3br_provider.core.objects import ObjectInfo
from s3br_provider.hooks.s3_bucket import S3BucketHook
from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import aws_conn_env, local_client, moto_process, s3_client

MiB = 1024 * 1024
OLD_CONN_ID = "s3br_old_endpoint"


def listed(s3: Any, bucket: str) -> dict[str, ObjectInfo]:
    return {
        item["Key"]: ObjectInfo.from_listing(item) for item in s3.list_objects_v2(Bucket=bucket)["Contents"]
    }


def seeded(s3: Any, bucket_names: Any) -> tuple[str, str, dict[str, ObjectInfo]]:
    source, target = bucket_names("src"), bucket_names("dst")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=target)
    s3.put_object(Bucket=source, Key="direct.txt", Body=b"direct", Metadata={"m": "1"})
    s3.put_object(Bucket=source, Key="boto3.txt", Body=b"through boto3")
    s3.put_object(Bucket=source, Key="big.bin", Body=os.urandom(6 * MiB))
    return source, target, listed(s3, source)


def copy_all(source: str, target: str, objects: dict[str, ObjectInfo], **kwargs: Any) -> None:
    fast, slow = S3BucketHook(), S3BucketHook(fast_path=False)
    for key, obj in objects.items():
        hook = slow if key == "boto3.txt" else fast
        hook.copy(obj, source, target, multipart_threshold=5 * MiB, **kwargs)


def test_copies_carry_a_full_object_checksum_and_the_kms_key_on_every_path(
    s3: Any, endpoint: str, bucket_names: Any
) -> None:
    source, target, objects = seeded(s3, bucket_names)
    key = local_client("kms", endpoint).create_key()["KeyMetadata"]["Arn"]

    copy_all(source, target, objects, kms_key_id=key)

    assert {obj.checksum for obj in objects.values()} == {"CRC32"}  # boto3's, listed
    for name in objects:
        head = s3.head_object(Bucket=target, Key=name, ChecksumMode="ENABLED")
        assert (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")) == ("aws:kms", key), name
        kept = s3.head_object(Bucket=source, Key=name, ChecksumMode="ENABLED")["ChecksumCRC32"]
        expected = {"CRC64NVME": head.get("ChecksumCRC64NVME")} if name == "big.bin" else {"CRC32": kept}
        assert full_object_checksums(head) == expected, (name, head)
        body = s3.get_object(Bucket=target, Key=name)["Body"].read()
        assert body == s3.get_object(Bucket=source, Key=name)["Body"].read(), name
    assert s3.head_object(Bucket=target, Key="direct.txt")["Metadata"] == {"m": "1"}


@pytest.fixture
def old_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, FaultProxy]]:
    """A moto server that refuses copies asking for CRC64NVME, behind a recording proxy."""
    with moto_process(env={"S3BR_MOTO_REFUSED_CHECKSUMS": "CRC64NVME"}) as url, FaultProxy(url) as proxy:
        monkeypatch.setenv(f"AIRFLOW_CONN_{OLD_CONN_ID.upper()}", aws_conn_env(proxy.endpoint_url))
        yield s3_client(url), proxy


def test_an_endpoint_without_crc64nvme_gets_crc32c_after_one_refusal(
    old_endpoint: tuple[Any, FaultProxy], bucket_names: Any
) -> None:
    s3, proxy = old_endpoint
    source, target, objects = seeded(s3, bucket_names)
    hook = S3BucketHook(aws_conn_id=OLD_CONN_ID)
    proxy.reset_records()

    for obj in objects.values():  # one after the other: one refusal, then none
        obj.checksum = None  # as listed by an endpoint that names no checksum
        hook.copy(obj, source, target, multipart_threshold=5 * MiB)

    assert hook.copy_checksum == "CRC32C"
    refused = Counter(r.operation for r in proxy.records if r.status == 400)
    assert sum(refused.values()) == 1, refused
    for name in objects:
        head = s3.head_object(Bucket=target, Key=name, ChecksumMode="ENABLED")
        assert head.get("ChecksumCRC32C"), (name, head)
    # CRC32C parts make a composite checksum, which is compared with nothing.
    assert s3.head_object(Bucket=target, Key="big.bin", ChecksumMode="ENABLED")["ChecksumType"] == "COMPOSITE"


def test_kms_key_problem_names_a_missing_key(endpoint: str) -> None:
    key = local_client("kms", endpoint).create_key()["KeyMetadata"]["KeyId"]
    hook = S3BucketHook()
    assert hook.kms_key_problem(key) is None
    problem = hook.kms_key_problem("arn:aws:kms:us-east-1:123456789012:key/no-such-key")
    assert problem is not None and problem.startswith("NotFoundException"), problem
