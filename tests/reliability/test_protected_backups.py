"""A backup under Object Lock, through a recording proxy: never a delete, and restorable as of
any instant.

Two backups run into a bucket with Object Lock (GOVERNANCE retention on every copy, one object
copied in parts), with a deletion and a rewrite in the source between them. Every request of
both runs and of the restores is recorded: not one asks S3 to delete anything (an object, a
version, tags), so a locked copy is never even attempted. Then ``s3_restore`` with ``as_of``
between the runs brings back the first state, and without it the latest, object by object.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.reliability.conftest import (
    PROXY_CONN_ID,
    TEXT,
    Obj,
    assert_succeeded,
    backup_run,
    differences,
    put,
    restore_run,
    seed,
    via,
)
from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import list_keys

pytestmark = pytest.mark.slow

MTIME_TICK = 1.1  # LastModified has one-second granularity
BIG = "big/six MiB.bin"
GONE, REWRITTEN = "a/gone.txt", "b/rewritten é.csv"


def first_state() -> dict[str, Obj]:
    return {
        GONE: Obj(b"deleted from the source later", TEXT, {"owner": "ann"}, {"team": "data"}),
        REWRITTEN: Obj(b"version one", "text/csv", {"v": "1"}),
        "c/kept+plus.txt": Obj(b"kept", TEXT, {}, {"k with space": "v"}),
        "d/empty": Obj(b"", "application/x-empty"),
        BIG: Obj(b"6" * (6 * 1024 * 1024), "application/octet-stream", {"s": "big"}, {"b": "1"}),
    }


def deletes(proxy: FaultProxy) -> list[tuple[str, str | None, str | None]]:
    return [(r.operation, r.bucket, r.key) for r in proxy.records if r.operation.startswith("Delete")]


def test_locked_backups_are_never_deleted_and_restore_as_of(
    s3: Any, bucket_names: Any, proxy: FaultProxy
) -> None:
    source, backup = bucket_names("src"), bucket_names("locked")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup, ObjectLockEnabledForBucket=True)
    first = first_state()
    seed(s3, source, first)
    lock = {"retention_mode": "GOVERNANCE", "retention_days": 1, "multipart_threshold_mb": 5}

    assert_succeeded(backup_run(source, backup, **lock, **via(PROXY_CONN_ID, "s3_backup")))
    time.sleep(MTIME_TICK)
    between = datetime.now(UTC)
    # DeletedAt has minutes only, and as_of counts an object marked deleted in its own minute
    # as deleted: the second run must tag in a later minute than ``between``.
    time.sleep(60.2 - between.second - between.microsecond / 1e6)
    s3.delete_object(Bucket=source, Key=GONE)
    put(s3, source, REWRITTEN, Obj(b"version two, longer", "text/csv", {"v": "2"}))
    second = backup_run(source, backup, **lock, **via(PROXY_CONN_ID, "s3_backup"))
    assert_succeeded(second)

    copies = [r for r in proxy.records if r.operation in ("CopyObject", "UploadPartCopy")]
    assert copies, "the runs copied nothing through the proxy"
    for key in first:
        for version in s3.list_object_versions(Bucket=backup, Prefix=key)["Versions"]:
            head = s3.head_object(Bucket=backup, Key=key, VersionId=version["VersionId"])
            assert head.get("ObjectLockMode") == "GOVERNANCE", (key, head)
    assert {t["Key"] for t in s3.get_object_tagging(Bucket=backup, Key=GONE)["TagSet"]} >= {
        "Deleted",
        "DeletedAt",
    }

    then, latest = bucket_names("asof"), bucket_names("latest")
    proxy_conf = {**via(PROXY_CONN_ID, "s3_restore"), "multipart_threshold_mb": 5}
    assert_succeeded(restore_run(backup, then, as_of=between.isoformat(), **proxy_conf))
    assert_succeeded(restore_run(backup, latest, **proxy_conf))

    assert list_keys(s3, then) == sorted(first) and differences(s3, then, first) == {}
    now = {**first, REWRITTEN: Obj(b"version two, longer", "text/csv", {"v": "2"})}
    del now[GONE]
    assert list_keys(s3, latest) == sorted(now) and differences(s3, latest, now) == {}
    assert deletes(proxy) == []
    assert len(s3.list_object_versions(Bucket=backup, Prefix=REWRITTEN)["Versions"]) == 2
