"""``bench/moto_seeded.py`` answers ListObjectsV2 from its sorted index exactly as moto does.

One server: a bucket seeded in memory (indexed) and a bucket of the same keys put over HTTP
(plain moto), listed with the same arguments before and after keys are added and deleted (and
a delete marker left in a versioned bucket). LastModified differs (the seeded bucket's is the
one given), so it is left out of the comparison.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from bench.moto_seeded import body_of, key_of
from tests.support.s3 import s3_client
from tests.support.seaweedfs import HOST, free_ports, wait_until_up

SEEDED, PLAIN = "seeded", "plain"
KEYS = 600
SIZE = 16
COMPARED = ("KeyCount", "IsTruncated", "NextContinuationToken", "StartAfter", "Prefix", "MaxKeys")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    (port,) = free_ports(1)
    log = tmp_path_factory.mktemp("moto-seeded") / "server.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.moto_seeded", "-p", str(port), "--object-size", str(SIZE)]
            + ["--bucket", f"{SEEDED}={KEYS}@2026-11-30T10:00:00"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("SEEDED")
        url = f"http://{HOST}:{port}"
        wait_until_up(proc, url, log)
        s3 = s3_client(url)
        s3.create_bucket(Bucket=PLAIN)
        for index in range(KEYS):
            s3.put_object(Bucket=PLAIN, Key=key_of(index), Body=body_of(SIZE))
        yield s3
    finally:
        proc.terminate()
        proc.wait(30)


def listing(s3: Any, bucket: str, **kwargs: Any) -> dict[str, Any]:
    answer = s3.list_objects_v2(Bucket=bucket, **kwargs)
    compared = {name: answer.get(name) for name in COMPARED}
    compared["Contents"] = [
        (o["Key"], o["Size"], o["ETag"], o["StorageClass"]) for o in answer.get("Contents", [])
    ]
    compared["CommonPrefixes"] = answer.get("CommonPrefixes")
    return compared


def pages(s3: Any, bucket: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every page, following the continuation tokens."""
    found = [listing(s3, bucket, **kwargs)]
    while found[-1]["IsTruncated"]:
        found.append(listing(s3, bucket, ContinuationToken=found[-1]["NextContinuationToken"], **kwargs))
    return found


def cases(s3: Any) -> list[dict[str, Any]]:
    names = sorted(key_of(i) for i in range(KEYS))
    middle = names[KEYS // 2]
    return [
        {},
        {"MaxKeys": 0},
        {"MaxKeys": 1},
        {"MaxKeys": 7},
        {"StartAfter": ""},
        {"StartAfter": middle},
        {"StartAfter": middle + "0"},  # between two keys
        {"StartAfter": names[-1]},
        {"StartAfter": "~"},
        {"Prefix": "a"},
        {"Prefix": middle[:2]},
        {"Prefix": middle},
        {"Prefix": "zz"},
        {"Prefix": middle[:1], "StartAfter": middle},
        {"Prefix": middle[:1], "StartAfter": "0"},
        {"Prefix": middle[:1], "StartAfter": "~"},
        {"Delimiter": "/", "MaxKeys": 10},  # moto's own listing, not the index
    ]


def assert_same(s3: Any) -> None:
    for kwargs in cases(s3):
        assert listing(s3, SEEDED, **kwargs) == listing(s3, PLAIN, **kwargs), kwargs
    for kwargs in ({"MaxKeys": 50}, {"MaxKeys": 33, "Prefix": "1"}, {"MaxKeys": 100, "StartAfter": "5"}):
        assert pages(s3, SEEDED, **kwargs) == pages(s3, PLAIN, **kwargs), kwargs


def test_indexed_listings_are_moto_s_own(server: Any) -> None:
    s3 = server
    seeded = s3.list_objects_v2(Bucket=SEEDED)["Contents"][0]
    assert seeded["LastModified"].isoformat() == "2026-11-30T10:00:00+00:00"
    assert_same(s3)  # the index is built by the first listing
    names = sorted(key_of(i) for i in range(KEYS))
    for bucket in (SEEDED, PLAIN):  # kept up to date as keys come and go
        for key in ("0/first", names[10] + "x", "_s3br/runs/x", "~last"):
            s3.put_object(Bucket=bucket, Key=key, Body=b"new")
        s3.put_object(Bucket=bucket, Key=names[20], Body=body_of(SIZE))  # overwritten: no new name
        s3.delete_object(Bucket=bucket, Key=names[30])
        s3.delete_object(Bucket=bucket, Key="~last")
    assert_same(s3)
    for bucket in (SEEDED, PLAIN):  # a delete marker is left out of the listing
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.delete_object(Bucket=bucket, Key=names[40])
        s3.put_object(Bucket=bucket, Key=names[50], Body=b"a second version")
    assert_same(s3)
    assert names[40] not in {
        o["Key"] for o in s3.list_objects_v2(Bucket=SEEDED, StartAfter=names[39])["Contents"]
    }
