"""``S3BucketHook.copy(create_only=True)``, what a ``missing_only`` restore writes with: never over
an existing key, on the direct path, through boto3 and in parts, both where the endpoint honours
``If-None-Match: *`` (one conditional write, refused with 412) and where it is not known to (a
HeadObject just before the copy)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from s3br_provider.core.objects import ObjectInfo
from s3br_provider.hooks.s3_bucket import S3BucketHook
from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import DUMMY_KEY, REGION

MiB = 1024 * 1024
KEYS = {"direct.txt": b"direct", "boto3.txt": b"through boto3", "big.bin": os.urandom(6 * MiB)}


@pytest.mark.parametrize("conditional", [True, False], ids=["if-none-match", "head-first"])
def test_create_only_copies_write_missing_keys_and_never_overwrite(
    s3: Any, endpoint: str, bucket_names: Any, monkeypatch: pytest.MonkeyPatch, conditional: bool
) -> None:
    source, target = bucket_names("src"), bucket_names("dst")
    for bucket in (source, target):
        s3.create_bucket(Bucket=bucket)
    for key, body in KEYS.items():
        s3.put_object(Bucket=source, Key=key, Body=body, Metadata={"from": "backup"})
    listed = [ObjectInfo.from_listing(item) for item in s3.list_objects_v2(Bucket=source)["Contents"]]
    with FaultProxy(endpoint, seed=3) as proxy:
        extra = {
            "endpoint_url": proxy.endpoint_url,
            "region_name": REGION,
            "s3br_conditional_writes": conditional,
        }
        conn = {"conn_type": "aws", "login": DUMMY_KEY, "password": DUMMY_KEY, "extra": extra}
        monkeypatch.setenv("AIRFLOW_CONN_S3BR_CREATE_ONLY", json.dumps(conn))
        fast, slow = S3BucketHook("s3br_create_only"), S3BucketHook("s3br_create_only", fast_path=False)

        def copy_all() -> dict[str, bool]:
            return {
                obj.key: (slow if obj.key == "boto3.txt" else fast).copy(
                    obj, source, target, multipart_threshold=5 * MiB, create_only=True
                )
                for obj in listed
            }

        assert fast.conditional_writes is conditional
        assert copy_all() == dict.fromkeys(KEYS, True)
        for key in KEYS:
            s3.put_object(Bucket=target, Key=key, Body=b"theirs")
        before = {key: s3.head_object(Bucket=target, Key=key)["LastModified"] for key in KEYS}
        proxy.reset_records()

        assert copy_all() == dict.fromkeys(KEYS, False)

        records = [(r.operation, r.status) for r in proxy.records]
    for key in KEYS:
        assert s3.get_object(Bucket=target, Key=key)["Body"].read() == b"theirs", key
        assert s3.head_object(Bucket=target, Key=key)["LastModified"] == before[key], key
    if conditional:
        refused = sorted(op for op, status in records if status == 412)
        assert refused == ["CompleteMultipartUpload", "CopyObject", "CopyObject"]
    else:
        assert sorted(records) == [("HeadObject", 200)] * 3  # asked, and nothing else sent
