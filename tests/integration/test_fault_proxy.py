"""Tests for the fault-injecting S3 proxy (tests/support/fault_proxy.py)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from tests.support.fault_proxy import FaultProxy, FaultRule, RequestInfo, classify
from tests.support.moto_server import free_port, running_moto_server

REPO_ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "us-east-1",
}


def make_client(endpoint_url: str, max_attempts: int = 3, **config: object):
    """An S3 client with standard retries (a fresh client has a full retry quota).

    Note: in ``Config(retries=...)`` botocore reads ``max_attempts`` as the number
    of *retries* (it becomes ``total_max_attempts = max_attempts + 1``).
    """
    retries = {"mode": "standard", "max_attempts": max_attempts}
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        config=Config(retries=retries, **config),
        **CREDENTIALS,
    )


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with running_moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def proxy(moto_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_url, seed=1234) as running:
        yield running


@pytest.fixture(autouse=True)
def clean_proxy(proxy: FaultProxy) -> Iterator[None]:
    proxy.clear_faults()
    proxy.reset_records()
    yield
    proxy.clear_faults()


@pytest.fixture
def s3(proxy: FaultProxy):
    return make_client(proxy.endpoint_url)


@pytest.fixture
def bucket(moto_url: str) -> str:
    """A fresh bucket, created directly on moto so the proxy records stay empty."""
    name = f"fp-{uuid.uuid4().hex[:12]}"
    make_client(moto_url).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_two_retries(proxy: FaultProxy):
    """``max_attempts=2`` in ``Config(retries=...)`` means 2 *retries*: 3 requests."""
    return make_client(proxy.endpoint_url, max_attempts=2)


def forwarded_ops(proxy: FaultProxy) -> list[str]:
    return [r.operation for r in proxy.records if r.forwarded]


# ----------------------------------------------------------------- pass-through


def test_large_object_round_trip(proxy: FaultProxy, s3, bucket: str) -> None:
    payload = os.urandom(20 * MIB + 7)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=payload)
    body = s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ContentLength"] == len(payload)
    assert forwarded_ops(proxy) == ["PutObject", "GetObject", "HeadObject"]
    assert all(r.status == 200 for r in proxy.records)


def test_multipart_upload_and_copy(proxy: FaultProxy, s3, bucket: str, tmp_path: Path) -> None:
    payload = os.urandom(12 * MIB + 1)
    source = tmp_path / "src.bin"
    source.write_bytes(payload)
    small_parts = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.upload_file(str(source), bucket, "mp.bin", Config=small_parts)
    assert proxy.operations() == Counter(
        {"CreateMultipartUpload": 1, "UploadPart": 3, "CompleteMultipartUpload": 1}
    )
    copy_source = {"Bucket": bucket, "Key": "mp.bin"}
    s3.copy(copy_source, bucket, "mp-copy.bin", Config=small_parts)
    assert proxy.operations()["UploadPartCopy"] == 3
    part_copies = [r for r in proxy.records if r.operation == "UploadPartCopy"]
    assert {r.copy_source for r in part_copies} == {f"{bucket}/mp.bin"}
    target = tmp_path / "back.bin"
    s3.download_file(bucket, "mp-copy.bin", str(target))
    assert target.read_bytes() == payload


AWKWARD_KEYS = [
    "with space/a b.txt",
    "ünïcödé/ключ 文件.bin",
    "plus+sign+",
    "percent%20not-a-space%",
    "query?like=1&x#frag",
    "dir//double/slash",
    "tilde~star*paren(1)",
]


def test_awkward_keys_pass_through_and_decode(proxy: FaultProxy, s3, bucket: str) -> None:
    for key in AWKWARD_KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    for key in AWKWARD_KEYS:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(listed) == sorted(AWKWARD_KEYS)
    puts = [r.key for r in proxy.records if r.operation == "PutObject"]
    assert puts == AWKWARD_KEYS


def test_chunked_request_body_is_decoded(proxy: FaultProxy, moto_url: str, bucket: str) -> None:
    conn = http.client.HTTPConnection(*proxy.endpoint_url[len("http://") :].split(":"))
    conn.request("PUT", f"/{bucket}/chunked", body=iter([b"hello ", b"chunks"]), encode_chunked=True)
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 200
    body = make_client(moto_url).get_object(Bucket=bucket, Key="chunked")["Body"].read()
    assert body == b"hello chunks"


# --------------------------------------------------------------- classification


def test_operations_are_classified(proxy: FaultProxy, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    s3.put_object_tagging(Bucket=bucket, Key="dst", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    s3.get_object_tagging(Bucket=bucket, Key="dst")
    s3.delete_object_tagging(Bucket=bucket, Key="dst")
    s3.list_objects_v2(Bucket=bucket)
    s3.list_objects(Bucket=bucket)
    s3.list_object_versions(Bucket=bucket)
    s3.head_bucket(Bucket=bucket)
    s3.get_bucket_location(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.get_bucket_versioning(Bucket=bucket)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    s3.list_multipart_uploads(Bucket=bucket)
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id)
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "src"}]})
    s3.delete_object(Bucket=bucket, Key="dst")
    assert forwarded_ops(proxy) == [
        "PutObject",
        "CopyObject",
        "PutObjectTagging",
        "GetObjectTagging",
        "DeleteObjectTagging",
        "ListObjectsV2",
        "ListObjects",
        "ListObjectVersions",
        "HeadBucket",
        "GetBucketLocation",
        "PutBucketVersioning",
        "GetBucketVersioning",
        "CreateMultipartUpload",
        "ListMultipartUploads",
        "AbortMultipartUpload",
        "DeleteObjects",
        "DeleteObject",
    ]
    copy = next(r for r in proxy.records if r.operation == "CopyObject")
    assert (copy.bucket, copy.key, copy.copy_source) == (bucket, "dst", f"{bucket}/src")


@pytest.mark.parametrize(
    ("method", "target", "headers", "expected"),
    [
        ("PUT", "/b/k?partNumber=2&uploadId=u", {"x-amz-copy-source": "b/s"}, "UploadPartCopy"),
        ("PUT", "/b/k?partNumber=2&uploadId=u", {}, "UploadPart"),
        ("PUT", "/b/k", {"x-amz-copy-source": "/b/s%20x"}, "CopyObject"),
        ("POST", "/b/k?uploads", {}, "CreateMultipartUpload"),
        ("POST", "/b/k?uploadId=u", {}, "CompleteMultipartUpload"),
        ("GET", "/b/k?uploadId=u", {}, "ListParts"),
        ("POST", "/b/k?restore", {}, "RestoreObject"),
        ("GET", "/b?tagging", {}, "GetBucketTagging"),
        ("PUT", "/b", {}, "CreateBucket"),
        ("DELETE", "/b", {}, "DeleteBucket"),
        ("GET", "/", {}, "ListBuckets"),
        ("GET", "/moto-api/data.json", {}, "MotoApi"),
        ("POST", "/", {"X-Amz-Target": "DynamoDB_20120810.ListTables"}, "ListTables"),
        ("GET", "/k", {"Host": "mybucket.localhost:9000"}, "GetObject"),
    ],
)
def test_classify_table(method: str, target: str, headers: dict, expected: str) -> None:
    assert classify(method, target, headers).operation == expected


def test_classify_query_protocol_and_decoding() -> None:
    auth = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/monitoring/aws4_request, "
        "SignedHeaders=host, Signature=0",
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
    }
    info = classify("POST", "/", auth, b"Action=PutMetricData&Version=2010-08-01")
    assert (info.operation, info.bucket) == ("PutMetricData", None)
    info = classify("PUT", "/my-bkt/a%20b/%C3%BC%2B%25", {"x-amz-copy-source": "src/x%2By"})
    assert (info.bucket, info.key, info.copy_source) == ("my-bkt", "a b/ü+%", "src/x+y")
    vhost = classify("GET", "/k%20x", {"Host": "mybucket.localhost:9000"})
    assert (vhost.bucket, vhost.key) == ("mybucket", "k x")


def test_non_s3_service_through_proxy(proxy: FaultProxy) -> None:
    cloudwatch = boto3.client("cloudwatch", endpoint_url=proxy.endpoint_url, **CREDENTIALS)
    cloudwatch.put_metric_data(Namespace="s3br", MetricData=[{"MetricName": "m", "Value": 1.0}])
    assert proxy.operations() == Counter({"PutMetricData": 1})
    assert proxy.writes()[0].operation == "PutMetricData"


# ----------------------------------------------------------------------- faults


def test_slowdown_is_retried_by_standard_mode(proxy: FaultProxy, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    proxy.reset_records()
    (rule,) = proxy.set_faults([{"operation": "GetObject", "kind": "slowdown", "count": 2}])
    response = s3.get_object(Bucket=bucket, Key="k")
    assert response["Body"].read() == b"data"
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert rule.fired == 2
    kinds = [(r.operation, r.faulted_kind, r.status) for r in proxy.records]
    assert kinds == [
        ("GetObject", "slowdown", 503),
        ("GetObject", "slowdown", 503),
        ("GetObject", None, 200),
    ]


def test_access_denied_is_not_retried(proxy: FaultProxy, s3, bucket: str) -> None:
    proxy.set_faults([{"operation": "*", "bucket": bucket, "kind": "access_denied", "rate": 1.0}])
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="anything")
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as head_err:  # HEAD errors carry no body
        s3.head_object(Bucket=bucket, Key="anything")
    assert head_err.value.response["Error"]["Code"] == "403"
    assert [r.faulted_kind for r in proxy.records] == ["access_denied", "access_denied"]
    assert proxy.operations() == Counter()


def test_internal_error_exhausts_retries(proxy: FaultProxy, s3_two_retries, bucket: str) -> None:
    proxy.set_faults([{"operation": "ListObjectsV2", "kind": "internal"}])
    with pytest.raises(ClientError) as err:
        s3_two_retries.list_objects_v2(Bucket=bucket)
    assert err.value.response["Error"]["Code"] == "InternalError"
    assert err.value.response["ResponseMetadata"]["MaxAttemptsReached"] is True
    # Config(retries={"max_attempts": 2}) counts retries, unlike AWS_MAX_ATTEMPTS.
    assert [r.status for r in proxy.records] == [500, 500, 500]


def test_error_200_on_copy_object_is_retried(proxy: FaultProxy, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    proxy.reset_records()
    proxy.set_faults([{"operation": "CopyObject", "kind": "error_200", "count": 1}])
    source = {"Bucket": bucket, "Key": "src"}
    response = s3.copy_object(Bucket=bucket, Key="dst", CopySource=source)
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert [(r.faulted_kind, r.status) for r in proxy.records] == [("error_200", 200), (None, 200)]


def test_error_200_on_copy_object_fails_when_persistent(
    proxy: FaultProxy, s3_two_retries, bucket: str
) -> None:
    proxy.set_faults([{"operation": "CopyObject", "kind": "error_200"}])
    source = {"Bucket": bucket, "Key": "src"}
    with pytest.raises(ClientError) as err:
        s3_two_retries.copy_object(Bucket=bucket, Key="dst", CopySource=source)
    # botocore rewrites the 200 to a 500 before parsing, so it surfaces as InternalError.
    assert err.value.response["Error"]["Code"] == "InternalError"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert len(proxy.faulted()) == 3


def test_error_200_on_put_object_is_also_retried(proxy: FaultProxy, s3, bucket: str) -> None:
    """botocore 1.43 checks every S3 operation whose output is not a blob payload."""
    proxy.set_faults([{"operation": "PutObject", "kind": "error_200", "count": 1}])
    response = s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert response["ResponseMetadata"]["RetryAttempts"] == 1


def test_error_200_on_get_object_is_returned_as_data(proxy: FaultProxy, s3, bucket: str) -> None:
    """GetObject's output is a streaming blob, so botocore cannot spot the error."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"real data")
    proxy.set_faults([{"operation": "GetObject", "kind": "error_200", "count": 1}])
    body = s3.get_object(Bucket=bucket, Key="k")["Body"].read()
    assert body.startswith(b"<?xml") and b"<Code>InternalError</Code>" in body


def test_drop_is_retried_as_connection_error(proxy: FaultProxy, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    proxy.reset_records()
    proxy.set_faults([{"operation": "HeadObject", "kind": "drop", "count": 1}])
    response = s3.head_object(Bucket=bucket, Key="k")
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert [(r.faulted_kind, r.status) for r in proxy.records] == [("drop", None), (None, 200)]


def test_persistent_drop_raises_connection_closed(proxy: FaultProxy, s3_two_retries, bucket: str) -> None:
    proxy.set_faults([{"operation": "PutObject", "kind": "drop"}])
    with pytest.raises(ConnectionClosedError):
        s3_two_retries.put_object(Bucket=bucket, Key="k", Body=os.urandom(2 * MIB))
    assert [r.faulted_kind for r in proxy.records] == ["drop"] * 3
    assert proxy.writes() == []


def test_slow_delays_then_forwards(proxy: FaultProxy, s3, bucket: str) -> None:
    proxy.set_faults([{"operation": "HeadBucket", "kind": "slow", "delay": 0.3}])
    started = time.monotonic()
    s3.head_bucket(Bucket=bucket)
    assert time.monotonic() - started >= 0.3
    (record,) = proxy.records
    assert (record.faulted_kind, record.forwarded, record.status) == ("slow", True, 200)
    assert proxy.operations() == Counter({"HeadBucket": 1})


@pytest.mark.parametrize(("keep", "sizes"), [(0, [0, 0, 0, 4, 4, 1]), (2, [2, 2, 2, 3])])
def test_short_pages_list_every_key_once_in_order(
    proxy: FaultProxy, s3, bucket: str, keep: int, sizes: list[int]
) -> None:
    """``short_page``: truncated answers with fewer keys than asked (none at all with keep 0),
    as AWS may send; the proxy's continuation token resumes after the last key given."""
    keys = sorted(f"k/{i:02d} é+%" for i in range(9))
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    proxy.set_faults([{"operation": "ListObjectsV2", "kind": "short_page", "keep": keep, "count": 3}])
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 4})
    )
    assert [len(p.get("Contents", [])) for p in pages] == sizes
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == keys
    assert all(p["IsTruncated"] for p in pages[:3]) and not pages[-1]["IsTruncated"]


def test_rule_filters_and_deadline(proxy: FaultProxy, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="logs/a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="data/b", Body=b"b")
    proxy.set_faults(
        [
            {"operation": "*", "key": "logs/*", "kind": "access_denied"},
            {"operation": "*", "bucket": "other-*", "kind": "internal"},
            {"operation": "*", "kind": "internal", "until": time.monotonic() - 1},
        ]
    )
    assert s3.get_object(Bucket=bucket, Key="data/b")["Body"].read() == b"b"
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.get_object(Bucket=bucket, Key="logs/a")


def test_concurrent_clients_survive_random_faults(proxy: FaultProxy, bucket: str) -> None:
    client = make_client(proxy.endpoint_url, max_attempts=6, max_pool_connections=16)
    proxy.set_faults([{"operation": "*", "kind": "internal", "rate": 0.2}])

    def round_trip(i: int) -> bytes:
        client.put_object(Bucket=bucket, Key=f"c/{i}", Body=str(i).encode())
        return client.get_object(Bucket=bucket, Key=f"c/{i}")["Body"].read()

    with ThreadPoolExecutor(max_workers=16) as pool:
        bodies = list(pool.map(round_trip, range(64)))
    assert bodies == [str(i).encode() for i in range(64)]
    assert proxy.operations() == Counter({"PutObject": 64, "GetObject": 64})
    assert len(proxy.records) == 128 + len(proxy.faulted()) > 128


def test_rate_is_reproducible_with_seed() -> None:
    proxy = FaultProxy("http://127.0.0.1:9")  # never started: rules only
    info = RequestInfo("GetObject", "b", "k")

    def pattern() -> list[bool]:
        proxy.set_faults([FaultRule(kind="internal", rate=0.3)], seed=42)
        return [proxy.pick_fault(info) is not None for _ in range(200)]

    first = pattern()
    assert first == pattern()
    assert 30 < sum(first) < 90
    with pytest.raises(ValueError):
        FaultRule(kind="explode")


def test_moto_api_is_never_faulted(proxy: FaultProxy) -> None:
    proxy.set_faults([{"operation": "*", "kind": "internal"}])
    with urllib.request.urlopen(f"{proxy.endpoint_url}/moto-api/config") as response:
        status = response.status  # moto answers 201 here
    (record,) = proxy.records
    assert (record.operation, record.faulted_kind, record.status) == ("MotoApi", None, status)
    assert proxy.operations() == Counter()


# ------------------------------------------------------------------------ writes


def test_writes_lists_exactly_the_mutations(proxy: FaultProxy, s3, bucket: str, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="a", Body=b"a")
    s3.get_object(Bucket=bucket, Key="a")["Body"].read()
    s3.head_object(Bucket=bucket, Key="a")
    s3.copy_object(Bucket=bucket, Key="b", CopySource={"Bucket": bucket, "Key": "a"})
    s3.list_objects_v2(Bucket=bucket)
    s3.put_object_tagging(Bucket=bucket, Key="b", Tagging={"TagSet": [{"Key": "t", "Value": "1"}]})
    s3.get_object_tagging(Bucket=bucket, Key="b")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}]})
    s3.delete_object(Bucket=bucket, Key="b")
    proxy.set_faults([{"operation": "PutObject", "kind": "access_denied"}])
    with pytest.raises(ClientError):
        s3.put_object(Bucket=bucket, Key="denied", Body=b"x")
    assert [(w.operation, w.key) for w in proxy.writes()] == [
        ("PutObject", "a"),
        ("CopyObject", "b"),
        ("PutObjectTagging", "b"),
        ("DeleteObjects", None),
        ("DeleteObject", "b"),
    ]


# --------------------------------------------------------------------------- CLI


def test_cli_serves_until_sigterm(moto_url: str, bucket: str) -> None:
    faults = json.dumps([{"operation": "ListObjectsV2", "kind": "access_denied"}])
    command = [sys.executable, "-m", "tests.support.fault_proxy", "--upstream", moto_url]
    command += ["--port", str(free_port()), "--faults", faults]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        endpoint = process.stdout.readline().strip()
        assert endpoint.startswith("http://127.0.0.1:")
        client = make_client(endpoint)
        client.head_bucket(Bucket=bucket)
        with pytest.raises(ClientError, match="AccessDenied"):
            client.list_objects_v2(Bucket=bucket)
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
