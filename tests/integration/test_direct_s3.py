"""The fast CopyObject path against real endpoints: signatures checked, faults retried,
objects identical to what boto3's copy_object makes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from s3br_provider.core.objects import ObjectInfo
from s3br_provider.core.sizes import MiB
from s3br_provider.hooks.direct_s3 import DirectS3, WrongRegionError, copy_source_header
from s3br_provider.hooks.s3_bucket import S3BucketHook
from tests.integration.conftest import PROXY_CONN_ID
from tests.integration.test_hook_s3_bucket import assert_same_object, put_rich
from tests.support import fault_proxy as fault_proxy_module
from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import DUMMY_KEY, REGION, moto_process, snapshot

ODD_KEYS = ["plain.bin", "space and+plus %.txt", "ünï/😀/é", "a/./b/../c", "x//y", "~t(p)*!'"]


def copy_requests(proxy: FaultProxy) -> list[Any]:
    """Every CopyObject that reached the proxy, faulted or forwarded."""
    return [r for r in proxy.records if r.operation == "CopyObject"]


def copy_headers(bucket: str, key: str) -> dict[str, str]:
    return {
        "x-amz-copy-source": copy_source_header(bucket, key),
        "x-amz-metadata-directive": "COPY",
        "x-amz-tagging-directive": "COPY",
    }


@pytest.fixture(scope="module")
def signing_moto() -> Iterator[tuple[str, dict[str, str]]]:
    """A moto server that checks SigV4 signatures (IAM auth on), and one IAM user's keys."""
    # The first 3 requests (creating the user, its policy and key) go unauthenticated.
    with moto_process(env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"}) as url:
        iam = boto3.client(
            "iam",
            endpoint_url=url,
            aws_access_key_id=DUMMY_KEY,
            aws_secret_access_key=DUMMY_KEY,
            region_name=REGION,
        )
        iam.create_user(UserName="s3br")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="s3br", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="s3br")["AccessKey"]
        yield url, {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


def sender_for(url: str, keys: dict[str, str]) -> tuple[DirectS3, Any]:
    session = boto3.session.Session(region_name=REGION, **keys)
    client = session.client("s3", endpoint_url=url)
    sender = DirectS3.for_client(client, session, pool_size=4, verify=None)
    assert sender is not None
    return sender, client


def test_signatures_are_accepted_by_an_endpoint_that_checks_them(signing_moto) -> None:
    url, keys = signing_moto
    sender, s3 = sender_for(url, keys)
    s3.create_bucket(Bucket="signed-src")
    s3.create_bucket(Bucket="signed-dst")
    for key in ODD_KEYS:
        s3.put_object(Bucket="signed-src", Key=key, Body=key.encode(), Metadata={"k": "v"})

    for key in ODD_KEYS:
        sender.copy("signed-dst", key, copy_headers("signed-src", key))

    for key in ODD_KEYS:
        copy = snapshot(s3, "signed-dst", key)
        assert (copy.body, copy.metadata) == (key.encode(), {"k": "v"}), key


def test_a_wrong_secret_is_refused_with_the_s3_error_code(signing_moto) -> None:
    url, keys = signing_moto
    good, s3 = sender_for(url, keys)
    s3.create_bucket(Bucket="refused-src")
    s3.create_bucket(Bucket="refused-dst")
    s3.put_object(Bucket="refused-src", Key="k", Body=b"x")
    bad, _ = sender_for(url, {**keys, "aws_secret_access_key": "not-the-secret"})

    with pytest.raises(ClientError) as raised:
        bad.copy("refused-dst", "k", copy_headers("refused-src", "k"))

    assert raised.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert "Contents" not in s3.list_objects_v2(Bucket="refused-dst")


@pytest.mark.parametrize("fast_path", [True, False])
def test_both_paths_make_the_same_object(
    fast_path: bool, s3: Any, bucket_names: Callable[[str], str], fault_proxy: FaultProxy
) -> None:
    source, plain, retagged = bucket_names("src"), bucket_names("dst"), bucket_names("tagged")
    for bucket in (source, plain, retagged):
        s3.create_bucket(Bucket=bucket)
    obj = put_rich(s3, source, "docs/ünï code+plus %.txt", b"same either way\n" * 64)
    hook = S3BucketHook(aws_conn_id=PROXY_CONN_ID, fast_path=fast_path)

    hook.copy(obj, source, plain, multipart_threshold=8 * MiB)
    hook.copy(
        obj, source, retagged, multipart_threshold=8 * MiB, tags={"only": "this"}, storage_class="STANDARD_IA"
    )

    assert (hook.direct is not None) is fast_path
    assert fault_proxy.operations()["CopyObject"] == 2
    assert_same_object(s3, source, plain, obj.key)
    head = s3.head_object(Bucket=retagged, Key=obj.key)
    assert head["ContentLength"] == obj.size and head["StorageClass"] == "STANDARD_IA"
    assert snapshot(s3, retagged, obj.key).tags == {"only": "this"}


@pytest.mark.parametrize("kind", ["slowdown", "internal", "error_200", "drop"])
def test_transient_faults_are_retried(
    kind: str, s3: Any, bucket_names: Callable[[str], str], fault_proxy: FaultProxy
) -> None:
    source, target = bucket_names("src"), bucket_names("dst")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=target)
    s3.put_object(Bucket=source, Key="k", Body=b"payload")
    fault_proxy.set_faults([{"operation": "CopyObject", "kind": kind, "count": 2}])
    hook = S3BucketHook(aws_conn_id=PROXY_CONN_ID)

    hook.copy(ObjectInfo("k", 7, "", 0.0), source, target, multipart_threshold=8 * MiB)

    assert len(copy_requests(fault_proxy)) == 3  # two faulted, the third forwarded
    assert fault_proxy.operations()["CopyObject"] == 1
    assert s3.get_object(Bucket=target, Key="k")["Body"].read() == b"payload"


def test_a_final_error_is_raised_after_one_request(
    s3: Any, bucket_names: Callable[[str], str], fault_proxy: FaultProxy
) -> None:
    source, target = bucket_names("src"), bucket_names("dst")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=target)
    s3.put_object(Bucket=source, Key="k", Body=b"payload")
    fault_proxy.set_faults([{"operation": "CopyObject", "kind": "access_denied"}])

    with pytest.raises(ClientError) as raised:
        S3BucketHook(aws_conn_id=PROXY_CONN_ID).copy(
            ObjectInfo("k", 7, "", 0.0), source, target, multipart_threshold=8 * MiB
        )

    assert raised.value.response["Error"]["Code"] == "AccessDenied"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert len(copy_requests(fault_proxy)) == 1


def test_a_missing_source_is_final(s3: Any, bucket_names: Callable[[str], str]) -> None:
    source, target = bucket_names("src"), bucket_names("dst")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=target)

    with pytest.raises(ClientError) as raised:
        S3BucketHook(aws_conn_id="aws_default").copy(
            ObjectInfo("gone", 7, "", 0.0), source, target, multipart_threshold=8 * MiB
        )

    assert raised.value.response["Error"]["Code"] == "NoSuchKey"


def test_listing_pages_are_signed_and_read_as_boto3_reads_them(signing_moto) -> None:
    url, keys = signing_moto
    direct, s3 = sender_for(url, keys)
    s3.create_bucket(Bucket="signed-list")
    names = [f"p/{i:04d} +é" for i in range(1005)] + ODD_KEYS
    for key in names:
        s3.put_object(Bucket="signed-list", Key=key, Body=b"x")

    listed, token = [], None
    while True:
        page = direct.list_page("signed-list", "", None, token)
        listed += page.objects
        if page.next_token is None:
            break
        token = page.next_token
    after = direct.list_page("signed-list", "p/", "p/1000 +é", None).objects

    expected = [
        item
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="signed-list")
        for item in page["Contents"]
    ]
    assert [o.key for o in listed] == [item["Key"] for item in expected] == sorted(names)
    assert [(o.size, o.etag) for o in listed] == [
        (item["Size"], item["ETag"].strip('"')) for item in expected
    ]
    assert [o.last_modified for o in listed] == [item["LastModified"].timestamp() for item in expected]
    assert [o.key for o in after] == [f"p/{i:04d} +é" for i in range(1001, 1005)]


def test_a_bucket_in_another_region_costs_one_refused_request(
    s3: Any, bucket_names: Callable[[str], str], fault_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first region refusal, the bucket's copies go to boto3 without asking again."""
    kinds = {**fault_proxy_module.ERROR_KINDS}
    kinds["wrong_region"] = (400, "AuthorizationHeaderMalformed", "the region 'us-east-1' is wrong")
    monkeypatch.setattr(fault_proxy_module, "ERROR_KINDS", kinds)
    monkeypatch.setattr(fault_proxy_module, "FAULT_KINDS", frozenset(kinds) | {"drop", "slow"})
    source, target = bucket_names("src"), bucket_names("far")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=target)
    s3.put_object(Bucket=source, Key="k", Body=b"x")
    fault_proxy.set_faults([{"kind": "wrong_region", "operation": "CopyObject"}])
    direct = S3BucketHook(aws_conn_id=PROXY_CONN_ID).direct
    assert direct is not None

    for _ in range(3):
        with pytest.raises(WrongRegionError):
            direct.copy(target, "k", copy_headers(source, "k"))

    assert len(copy_requests(fault_proxy)) == 1


@pytest.mark.parametrize(
    ("environment", "direct"),
    [
        ({"HTTP_PROXY": "http://proxy.invalid:3128", "HTTPS_PROXY": "http://proxy.invalid:3128"}, False),
        ({"HTTP_PROXY": "http://proxy.invalid:3128", "NO_PROXY": "127.0.0.1,localhost"}, True),
        ({"AIRFLOW_CONN_S3BR_PROXY": '{"conn_type": "aws"}'}, True),
        ({}, True),
    ],
    ids=["proxy", "endpoint-exempt", "a-connection-named-proxy", "no-proxy"],
)
def test_a_proxy_from_the_environment_leaves_requests_to_botocore(
    environment: dict[str, str], direct: bool, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore sends through ``HTTP(S)_PROXY`` unless ``NO_PROXY`` exempts the endpoint; the
    direct path, which would connect straight, is then not used."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    session = boto3.session.Session(
        region_name=REGION, aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY
    )
    client = session.client("s3", endpoint_url=endpoint)

    assert (DirectS3.for_client(client, session, pool_size=4, verify=None) is not None) is direct
