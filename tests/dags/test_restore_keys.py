"""Item-level and in-place restores: ``keys`` and ``target_mode`` of ``s3_restore``, whole runs
through a recording proxy.

``missing_only`` brings five deleted objects back into the source itself (one of them copied in
parts); the source's other objects, two changed since the backup among them (one large, so its
refused write is a CompleteMultipartUpload), keep their bytes and LastModified: every refused
write is one 412 the proxy saw. ``keys`` restores named keys without listing the backup, leaves a
deleted-tagged key out and names it; a key the backup lacks, or more than 1,000 keys, fail
``validate`` before anything is written.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.reliability.conftest import (
    TEXT,
    assert_succeeded,
    backup_run,
    report_json,
    restore_run,
    via,
)
from tests.support.fault_proxy import FaultProxy
from tests.support.iam import missing_permissions, policy
from tests.support.s3 import DUMMY_KEY, REGION, Obj, list_keys, seed, snapshot

pytestmark = pytest.mark.slow

CONDITIONAL_CONN_ID = "s3br_conditional"
MiB = 1024 * 1024
DELETED = ("d/obj-01.txt", "d/obj-04.txt", "d/obj-07.txt", "e/tagged.txt", "big/deleted.bin")
CHANGED = ("d/obj-02.txt", "big/changed.bin")
EXCEPTION_LINE = re.compile(r"^[\w.]*(?:Error|Exception): .+$", re.MULTILINE)


def source_objects() -> dict[str, Obj]:
    objects = {
        f"d/obj-{i:02d}.txt": Obj(f"object {i}\n".encode() * (i + 1), TEXT, {"i": str(i)}, {"n": str(i)})
        for i in range(10)
    }
    objects["e/tagged.txt"] = Obj(b"tagged", "application/x-tagged", {"m": "v"}, {"t": "v w"})
    objects["big/deleted.bin"] = Obj(os.urandom(6 * MiB), "application/x-big", {"p": "multipart"}, {"k": "v"})
    objects["big/changed.bin"] = Obj(os.urandom(6 * MiB), "application/x-big")
    return objects


def parts(s3: Any, bucket: str, key: str) -> tuple[bytes, str, dict[str, str], dict[str, str]]:
    snap = snapshot(s3, bucket, key)
    return snap.body, snap.content_type, snap.metadata, snap.tags


@pytest.fixture
def proxy(endpoint: str, monkeypatch: pytest.MonkeyPatch, airflow_db: str) -> Iterator[FaultProxy]:
    """A recording proxy as connection ``s3br_conditional``, which says the endpoint honours
    ``If-None-Match: *`` on copies (as AWS does; moto does through ``moto_aws``)."""
    with FaultProxy(endpoint, seed=14) as running:
        extra = {"endpoint_url": running.endpoint_url, "region_name": REGION, "s3br_conditional_writes": True}
        conn = {"conn_type": "aws", "login": DUMMY_KEY, "password": DUMMY_KEY, "extra": extra}
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONDITIONAL_CONN_ID.upper()}", json.dumps(conn))
        yield running


@pytest.fixture
def backed_up(s3: Any, bucket_names: Any, airflow_db: str) -> tuple[str, str, dict[str, Obj]]:
    """A source and its backup (one s3_backup run), then five source objects deleted and two
    changed."""
    source, backup = bucket_names("src"), bucket_names("bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    objects = source_objects()
    seed(s3, source, objects)
    assert_succeeded(backup_run(source, backup, multipart_threshold_mb=5))
    for key in DELETED:
        s3.delete_object(Bucket=source, Key=key)
    seed(s3, source, {key: Obj(f"changed {key}".encode(), "application/x-changed") for key in CHANGED})
    return source, backup, objects


def test_missing_only_restores_deleted_objects_into_the_source(
    s3: Any, proxy: FaultProxy, backed_up: tuple[str, str, dict[str, Obj]]
) -> None:
    source, backup, objects = backed_up
    before = {key: snapshot(s3, source, key) for key in list_keys(s3, source)}
    time.sleep(1.1)  # LastModified has one-second granularity: a rewrite would show
    proxy.reset_records()

    result = restore_run(
        backup,
        source,
        target_mode="missing_only",
        multipart_threshold_mb=5,
        **via(CONDITIONAL_CONN_ID, "s3_restore"),
    )

    assert_succeeded(result)
    assert sorted(list_keys(s3, source)) == sorted(objects)
    for key in DELETED:
        assert parts(s3, source, key) == parts(s3, backup, key), key
    after = {key: snapshot(s3, source, key) for key in before}
    assert after == before  # bytes, type, metadata, tags and LastModified of every other object
    totals = report_json(s3, backup, "s3_restore", result.run_id)["totals"]
    assert (totals["restored"], totals["skipped_existing"], totals["failed"]) == (5, len(before), 0)
    writes = [r for r in proxy.records if r.bucket == source and r.method in ("PUT", "POST", "DELETE")]
    refused = sorted((r.operation, r.key) for r in writes if r.status == 412)
    large = [("CompleteMultipartUpload", "big/changed.bin")]
    assert refused == sorted([("CopyObject", key) for key in before if not key.startswith("big/")] + large)
    assert not [r for r in writes if r.operation.startswith("Delete")]
    statements = policy("restore-policy", BACKUP_BUCKET=backup, TARGET_BUCKET=source)
    assert missing_permissions(proxy.records, statements) == {}
    # The one upload aborted is the refused one of ours (s3transfer aborts what it could not complete).
    assert [(r.operation, r.key) for r in writes if r.method == "DELETE"] == [
        ("AbortMultipartUpload", "big/changed.bin")
    ]


def test_keys_restores_named_keys_without_listing_the_backup(
    s3: Any, proxy: FaultProxy, bucket_names: Any, backed_up: tuple[str, str, dict[str, Obj]]
) -> None:
    _, backup, objects = backed_up
    marked = {"t": "v w", "Deleted": "True", "DeletedAt": "2026-01-02T03:04"}
    s3.put_object_tagging(
        Bucket=backup,
        Key="e/tagged.txt",
        Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in marked.items()]},
    )
    target = bucket_names("items")
    keys = ["d/obj-04.txt", "big/deleted.bin", "e/tagged.txt"]
    proxy.reset_records()

    result = restore_run(
        backup, target, keys=keys, multipart_threshold_mb=5, **via(CONDITIONAL_CONN_ID, "s3_restore")
    )

    assert_succeeded(result)
    assert list_keys(s3, target) == ["big/deleted.bin", "d/obj-04.txt"]
    for key in ("big/deleted.bin", "d/obj-04.txt"):
        assert parts(s3, target, key) == (objects[key].body, *parts(s3, backup, key)[1:]), key
    totals = report_json(s3, backup, "s3_restore", result.run_id)["totals"]
    assert (totals["restored"], totals["left_out_deleted"], totals["deleted_keys"]) == (
        2,
        1,
        ["e/tagged.txt"],
    )
    listings = [r for r in proxy.records if r.bucket == backup and r.operation.startswith("List")]
    assert listings == []


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        (["d/obj-00.txt", "d/no-such-key.txt"], "1 of the keys are not in the backup"),
        ([f"k/{i:04d}" for i in range(1001)], "keys names 1001 keys, more than 1,000"),
    ],
    ids=["missing-key", "too-many"],
)
def test_bad_keys_fail_validate_before_anything_is_written(
    s3: Any,
    proxy: FaultProxy,
    bucket_names: Any,
    capfd: pytest.CaptureFixture[str],
    keys: list[str],
    named: str,
) -> None:
    backup, target = bucket_names("bak"), bucket_names("never")
    s3.create_bucket(Bucket=backup)
    seed(s3, backup, {"d/obj-00.txt": Obj(b"zero", TEXT)})
    capfd.readouterr()
    proxy.reset_records()

    result = restore_run(backup, target, keys=keys, **via(CONDITIONAL_CONN_ID, "s3_restore"))

    assert result.state == "failed"
    assert result.tasks["validate"] == "failed"
    errors = [line for line in EXCEPTION_LINE.findall("".join(capfd.readouterr())) if named in line]
    assert errors, f"no error naming {named!r}"
    assert [r for r in proxy.records if r.method in ("PUT", "POST", "DELETE")] == []
    assert target not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
