"""Whole ``s3_restore`` runs (``dag.test``) against moto; the target checked object by object.

The backup bucket is built by hand, as ``s3_backup`` leaves it: odd keys, zero-byte objects,
metadata, Content-Type and tags, objects tagged ``Deleted=True``, objects in GLACIER and
DEEP_ARCHIVE, and s3br's own files under ``_s3br/`` (never restored).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import ParamValidationError

from s3br_provider.core.manifest import run_folder
from s3br_provider.core.settings import BACKUP_STORAGE_CLASSES
from tests.dags.conftest import Obj, odd_objects, put, user_tags
from tests.support.dag_runs import RunResult, run_dag
from tests.support.s3 import list_keys, set_restore_transition, snapshot, snapshot_bucket

pytestmark = pytest.mark.slow

DAG_ID = "s3_restore"
RUNS_PREFIX = f"_s3br/runs/{DAG_ID}/"
RESTORE_SECONDS = 4
OLD_DELETED_AT = "2026-01-02T03:04"
MTIME_TICK = 1.1  # S3 LastModified has one-second granularity
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Item:
    """One object of the hand-made backup bucket."""

    obj: Obj
    storage_class: str = "STANDARD"

    @property
    def deleted(self) -> bool:
        return self.obj.tags.get("Deleted") == "True"

    @property
    def archived(self) -> bool:
        return self.storage_class in ("GLACIER", "DEEP_ARCHIVE")


@dataclass
class Backup:
    """A hand-made backup bucket and what it holds (``_s3br/`` files apart)."""

    bucket: str
    items: dict[str, Item]
    reserved: dict[str, Obj] = field(default_factory=dict)
    created: float = 0.0  # time.monotonic() when the archived objects were put

    def keys(self, *, include_deleted: bool = False, prefix: str = "") -> list[str]:
        return sorted(
            key
            for key, item in self.items.items()
            if key.startswith(prefix) and (include_deleted or not item.deleted)
        )

    @property
    def archived_keys(self) -> list[str]:
        return sorted(key for key, item in self.items.items() if item.archived)


# Helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def slow_restores(endpoint: str) -> Iterator[int]:
    """Archive restores take RESTORE_SECONDS during one test.

    moto counts the delay from an object's last state change (its creation, at first): a
    restore requested on an object younger than the delay looks done at once, so callers
    let the objects age first (``let_age``).
    """
    set_restore_transition(endpoint, {"progression": "time", "seconds": RESTORE_SECONDS})
    try:
        yield RESTORE_SECONDS
    finally:
        set_restore_transition(endpoint, {"progression": "immediate"})


def let_age(created: float, seconds: float = RESTORE_SECONDS) -> None:
    time.sleep(max(0.0, created + seconds + 0.3 - time.monotonic()))


def backup_items() -> dict[str, Item]:
    """odd_objects() plus deleted-tagged and archived objects."""
    items = {key: Item(obj) for key, obj in odd_objects().items()}
    marker = {"Deleted": "True", "DeletedAt": OLD_DELETED_AT}
    items |= {
        "a/gone.txt": Item(Obj(b"gone", TEXT, {"owner": "bob"}, {"team": "data", **marker})),
        "g/only-marker": Item(Obj(b"only the marker", None, {}, dict(marker))),
        "g/zero-deleted": Item(Obj(b"", "application/x-empty", {}, {"z": "1", **marker})),
        "cold/glacier.bin": Item(
            Obj(b"\x00glacier\xff" * 100, "application/x-cold", {"tier": "g"}, {"class": "glacier"}),
            "GLACIER",
        ),
        "cold/deep archive é.bin": Item(
            Obj(b"deep" * 50, "application/x-deep", {"tier": "d"}), "DEEP_ARCHIVE"
        ),
        "h/deep+tagged": Item(
            Obj(b"deep tagged", TEXT, {}, {"class": "deep", "k with space": "v with space"}), "DEEP_ARCHIVE"
        ),
        "cold/glacier-deleted.bin": Item(Obj(b"cold and gone", TEXT, {}, {"x": "y", **marker}), "GLACIER"),
    }
    return items


def reserved_objects() -> dict[str, Obj]:
    return {
        "_s3br/runs/s3_backup/manual__old/report.json": Obj(b'{"totals": {}}', "application/json"),
        "_s3br/notes.txt": Obj(b"s3br bookkeeping", TEXT),
    }


def put_item(s3: Any, bucket: str, key: str, item: Item) -> None:
    if item.storage_class == "STANDARD":
        put(s3, bucket, key, item.obj)
        return
    kwargs: dict[str, Any] = {
        "Bucket": bucket,
        "Key": key,
        "Body": item.obj.body,
        "Metadata": item.obj.metadata,
        "StorageClass": item.storage_class,
    }
    if item.obj.content_type is not None:
        kwargs["ContentType"] = item.obj.content_type
    s3.put_object(**kwargs)
    if item.obj.tags:
        tag_set = [{"Key": k, "Value": v} for k, v in item.obj.tags.items()]
        s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tag_set})


def build_backup(s3: Any, bucket: str, items: dict[str, Item] | None = None) -> Backup:
    """Create ``bucket`` and fill it with ``items`` (default: backup_items()) and _s3br/ files."""
    s3.create_bucket(Bucket=bucket)
    backup = Backup(bucket, backup_items() if items is None else items, reserved_objects())
    for key, obj in backup.reserved.items():
        put(s3, bucket, key, obj)
    for key, item in backup.items.items():
        put_item(s3, bucket, key, item)
    backup.created = time.monotonic()
    return backup


def restore(backup: str, target: str, **conf: Any) -> RunResult:
    return run_dag(
        DAG_ID, {"backup_bucket": backup, "target_bucket": target, "poll_interval_seconds": 1, **conf}
    )


def bucket_exists(s3: Any, bucket: str) -> bool:
    return bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def run_files(s3: Any, bucket: str) -> list[str]:
    return [k for k in list_keys(s3, bucket, include_reserved=True) if k.startswith(RUNS_PREFIX)]


def report_of(s3: Any, backup: str, run: RunResult) -> dict[str, Any]:
    uri = run_folder(backup, DAG_ID, run.run_id) + "/report.json"
    key = uri.removeprefix(f"s3://{backup}/")
    return json.loads(s3.get_object(Bucket=backup, Key=key)["Body"].read())


def assert_succeeded(run: RunResult) -> None:
    assert run.state == "success", run.failed_tasks()
    assert run.failed_tasks() == [], run.tasks


def mapped(run: RunResult, task_id: str) -> dict[str, str]:
    return {name: state for name, state in run.tasks.items() if name.startswith(f"{task_id}[")}


def assert_restored(s3: Any, backup: Backup, target: str, keys: list[str]) -> None:
    """The target holds exactly ``keys``, each with the backup object's bytes, Content-Type,
    user metadata and tags (without Deleted/DeletedAt), in STANDARD."""
    assert list_keys(s3, target, include_reserved=True) == sorted(keys)
    for key in keys:
        obj = backup.items[key].obj
        snap = snapshot(s3, target, key)
        expected_type = obj.content_type or s3.head_object(Bucket=backup.bucket, Key=key)["ContentType"]
        assert snap.body == obj.body, key
        assert snap.content_type == expected_type, key
        assert snap.metadata == obj.metadata, key
        assert snap.tags == user_tags(obj.tags), key
        assert snap.storage_class == "STANDARD", key


def assert_failed_in_validate(s3: Any, run: RunResult, target: str) -> None:
    assert run.state == "failed", run.tasks
    assert run.tasks["validate"] == "failed", run.tasks
    succeeded = sorted(name for name, state in run.tasks.items() if state == "success")
    assert succeeded == [], succeeded
    assert not bucket_exists(s3, target)


def assert_logged(capfd: pytest.CaptureFixture[str], *fragments: str) -> None:
    """Some line of the run's output (task logs included) holds every fragment."""
    out = capfd.readouterr()
    lines = (out.out + out.err).splitlines()
    assert any(all(f in line for f in fragments) for line in lines), f"no line with {fragments}"


@pytest.fixture
def restore_buckets(s3: Any, bucket_names: Any, airflow_db: str) -> tuple[str, str]:
    """Names of a (backup, target) pair; neither exists yet."""
    return bucket_names("bak"), bucket_names("restored")


# Restores --------------------------------------------------------------------------------------


def test_default_restore_brings_back_every_live_object(
    s3: Any, restore_buckets: tuple[str, str], slow_restores: int
) -> None:
    backup_name, target = restore_buckets
    backup = build_backup(s3, backup_name)
    let_age(backup.created)  # so each restore stays in progress for RESTORE_SECONDS

    run = restore(backup_name, target)

    assert_succeeded(run)
    expected = backup.keys()
    assert_restored(s3, backup, target, expected)
    assert "cold/glacier-deleted.bin" not in expected  # archived and marked deleted: left out by select
    sensors = mapped(run, "partition.wait_for_restore")
    assert sensors and set(sensors.values()) == {"success"}, sensors
    # moto refuses CopyObject from an archived object while its restore is in progress, so the
    # archived objects in the target prove that the sensor waited for the restores.
    for key in backup.archived_keys:
        header = s3.head_object(Bucket=backup_name, Key=key).get("Restore") or ""
        if key in expected:
            assert 'ongoing-request="false"' in header, (key, header)
        else:  # selection happens before any restore request: no retrieval paid for it
            assert header == "", (key, header)
    assert s3.get_bucket_versioning(Bucket=target).get("Status") is None
    totals = report_of(s3, backup_name, run)["totals"]
    assert totals["restored"] == len(expected), totals
    assert totals["bytes_restored"] == sum(len(backup.items[k].obj.body) for k in expected), totals
    assert totals["left_out_deleted"] == len(backup.items) - len(expected), totals
    assert totals["failed"] == 0, totals


def test_a_backup_in_every_storage_class_is_restored(
    s3: Any, restore_buckets: tuple[str, str], slow_restores: int
) -> None:
    """Each class a backup may write (``backup_storage_class``) comes back: GLACIER_IR and the
    IA and tiering classes at once, GLACIER and DEEP_ARCHIVE after their restores."""
    backup_name, target = restore_buckets
    items = {
        f"{storage_class.lower()}/obj é+1.bin": Item(
            Obj(storage_class.encode() * 7, "application/x-c", {"class": storage_class}, {"c": "1"}),
            storage_class,
        )
        for storage_class in BACKUP_STORAGE_CLASSES
    }
    backup = build_backup(s3, backup_name, items)
    let_age(backup.created)

    run = restore(backup_name, target)

    assert_succeeded(run)
    assert_restored(s3, backup, target, backup.keys())
    classes = report_of(s3, backup_name, run)["classes"]
    assert set(classes) == set(BACKUP_STORAGE_CLASSES), classes
    requested = [k for k in backup.keys() if s3.head_object(Bucket=backup_name, Key=k).get("Restore")]
    assert sorted(requested) == backup.archived_keys == ["deep_archive/obj é+1.bin", "glacier/obj é+1.bin"]


def test_include_deleted_restores_marked_objects_without_the_marker(
    s3: Any, restore_buckets: tuple[str, str]
) -> None:
    backup_name, target = restore_buckets
    backup = build_backup(s3, backup_name)

    run = restore(backup_name, target, include_deleted=True)

    assert_succeeded(run)
    expected = backup.keys(include_deleted=True)
    assert {"a/gone.txt", "g/only-marker", "cold/glacier-deleted.bin"} <= set(expected)
    assert_restored(s3, backup, target, expected)


def test_prefix_restores_only_that_prefix(s3: Any, restore_buckets: tuple[str, str]) -> None:
    backup_name, target = restore_buckets
    backup = build_backup(s3, backup_name)

    run = restore(backup_name, target, prefix="c")

    assert_succeeded(run)
    expected = backup.keys(prefix="c")
    assert {"c/plus+sign+.txt", "cold/glacier.bin"} <= set(expected)
    assert_restored(s3, backup, target, expected)


def test_objects_above_the_threshold_are_copied_in_parts(s3: Any, restore_buckets: tuple[str, str]) -> None:
    """UploadPartCopy carries neither metadata nor tags by itself: the restore must set them."""
    backup_name, target = restore_buckets
    big = bytes(range(256)) * (6 * 4096)  # 6 MiB, above the 5 MiB threshold
    items = {
        "big/standard.bin": Item(Obj(big, "application/x-big", {"size": "6m"}, {"team": "data"})),
        "big/glacier.bin": Item(
            Obj(big[::-1], "application/x-cold", {"c": "1"}, {"k with space": "v"}), "GLACIER"
        ),
        "small.txt": Item(Obj(b"small", TEXT, {}, {"s": "1"})),
    }
    backup = build_backup(s3, backup_name, items)

    run = restore(backup_name, target, multipart_threshold_mb=5)

    assert_succeeded(run)
    assert_restored(s3, backup, target, backup.keys())
    head = s3.head_object(Bucket=target, Key="big/standard.bin")
    assert "-" in head["ETag"], "not a multipart copy: the test did not exercise UploadPartCopy"


def test_dry_run_creates_nothing_and_requests_no_restore(s3: Any, restore_buckets: tuple[str, str]) -> None:
    backup_name, target = restore_buckets
    backup = build_backup(s3, backup_name)
    standard = [k for k in backup.items if not backup.items[k].archived]
    before = {k: snapshot(s3, backup_name, k) for k in standard}

    run = restore(backup_name, target, dry_run=True)

    assert_succeeded(run)
    assert not bucket_exists(s3, target)
    for key in backup.archived_keys:
        assert s3.head_object(Bucket=backup_name, Key=key).get("Restore") is None, key
    assert run_files(s3, backup_name) == []
    assert sorted(list_keys(s3, backup_name, include_reserved=True)) == sorted(
        [*backup.items, *backup.reserved]
    )
    assert {k: snapshot(s3, backup_name, k) for k in standard} == before


# as_of -----------------------------------------------------------------------------------------


def test_as_of_restores_the_backup_as_it_stood(s3: Any, restore_buckets: tuple[str, str]) -> None:
    backup_name, target = restore_buckets
    s3.create_bucket(Bucket=backup_name)
    s3.put_bucket_versioning(Bucket=backup_name, VersioningConfiguration={"Status": "Enabled"})
    v1 = {
        "kept.txt": Obj(b"v1 kept", TEXT, {"v": "1"}, {"team": "data"}),
        "changed.txt": Obj(b"v1 changed", TEXT, {"v": "1"}, {"rev": "1"}),
        "later/deleted.bin": Obj(b"v1 deleted later", "application/x-bin", {"v": "1"}),
        "later/tagged-deleted.txt": Obj(b"v1 tagged later", TEXT, {}, {"team": "ops"}),
        "old/deleted-long-ago.txt": Obj(b"v1 marked before as_of", TEXT),
        "early/gone-before.txt": Obj(b"deleted before as_of", TEXT),
        "zero": Obj(b"", "application/x-empty", {"kind": "marker"}),
    }
    for key, obj in v1.items():
        put(s3, backup_name, key, obj)
    long_ago = {"team": "x", "Deleted": "True", "DeletedAt": OLD_DELETED_AT}
    s3.put_object_tagging(
        Bucket=backup_name,
        Key="old/deleted-long-ago.txt",
        Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in long_ago.items()]},
    )
    time.sleep(MTIME_TICK)  # a delete marker in the same second as the version would tie with it
    s3.delete_object(Bucket=backup_name, Key="early/gone-before.txt")
    time.sleep(MTIME_TICK)
    as_of = datetime.now(UTC)
    time.sleep(MTIME_TICK)

    put(s3, backup_name, "changed.txt", Obj(b"v2 changed!", "application/json", {"v": "2"}, {"rev": "2"}))
    put(s3, backup_name, "zero", Obj(b"now with bytes", TEXT))
    s3.delete_object(Bucket=backup_name, Key="later/deleted.bin")
    put(s3, backup_name, "new-after.txt", Obj(b"did not exist at as_of", TEXT))
    deleted_at = (as_of + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M")
    later_marker = {"team": "ops", "Deleted": "True", "DeletedAt": deleted_at}
    s3.put_object_tagging(
        Bucket=backup_name,
        Key="later/tagged-deleted.txt",
        Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in later_marker.items()]},
    )

    run = restore(backup_name, target, as_of=as_of.isoformat().replace("+00:00", "Z"))

    assert_succeeded(run)
    expected = {k: v1[k] for k in v1 if k not in ("old/deleted-long-ago.txt", "early/gone-before.txt")}
    assert list_keys(s3, target, include_reserved=True) == sorted(expected)
    for key, obj in expected.items():
        snap = snapshot(s3, target, key)
        expected_content = (obj.body, obj.content_type, obj.metadata, obj.tags)
        assert (snap.body, snap.content_type, snap.metadata, snap.tags) == expected_content, key


def test_as_of_keeps_an_archived_object_marked_deleted_after_as_of(
    s3: Any, restore_buckets: tuple[str, str]
) -> None:
    """Where an archived object's tags are only readable once it is restored (moto), the
    copy step decides on the deleted marker: it must apply the as_of rule too."""
    backup_name, target = restore_buckets
    s3.create_bucket(Bucket=backup_name)
    s3.put_bucket_versioning(Bucket=backup_name, VersioningConfiguration={"Status": "Enabled"})
    cold = Item(Obj(b"cold v1", "application/x-cold", {"v": "1"}, {"team": "ops"}), "GLACIER")
    put_item(s3, backup_name, "cold/later-deleted.bin", cold)
    put(s3, backup_name, "kept.txt", Obj(b"kept", TEXT))
    time.sleep(MTIME_TICK)
    as_of = datetime.now(UTC)
    deleted_at = (as_of + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M")
    marker = {"team": "ops", "Deleted": "True", "DeletedAt": deleted_at}
    s3.put_object_tagging(
        Bucket=backup_name,
        Key="cold/later-deleted.bin",
        Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in marker.items()]},
    )

    run = restore(backup_name, target, as_of=as_of.isoformat())

    assert_succeeded(run)
    assert list_keys(s3, target, include_reserved=True) == ["cold/later-deleted.bin", "kept.txt"]
    snap = snapshot(s3, target, "cold/later-deleted.bin")
    assert (snap.body, snap.content_type, snap.metadata, snap.tags) == (
        b"cold v1",
        "application/x-cold",
        {"v": "1"},
        {"team": "ops"},
    )


def test_restores_into_an_existing_empty_target(s3: Any, restore_buckets: tuple[str, str]) -> None:
    backup_name, target = restore_buckets
    s3.create_bucket(Bucket=backup_name)
    put(s3, backup_name, "one.txt", Obj(b"one", TEXT, {"m": "1"}, {"t": "1"}))
    s3.create_bucket(Bucket=target)

    run = restore(backup_name, target)

    assert_succeeded(run)
    assert list_keys(s3, target, include_reserved=True) == ["one.txt"]
    assert snapshot(s3, target, "one.txt").tags == {"t": "1"}


def test_copy_versioning_enables_versioning_on_the_target(s3: Any, restore_buckets: tuple[str, str]) -> None:
    backup_name, target = restore_buckets
    s3.create_bucket(Bucket=backup_name)
    s3.put_bucket_versioning(Bucket=backup_name, VersioningConfiguration={"Status": "Enabled"})
    put(s3, backup_name, "one.txt", Obj(b"one", TEXT, {"m": "1"}, {"t": "1"}))

    run = restore(backup_name, target, copy_versioning=True)

    assert_succeeded(run)
    assert s3.get_bucket_versioning(Bucket=target).get("Status") == "Enabled"
    assert snapshot(s3, target, "one.txt").body == b"one"


# Bad input -------------------------------------------------------------------------------------


@pytest.fixture
def small_backup(s3: Any, restore_buckets: tuple[str, str]) -> tuple[Backup, str]:
    """An unversioned backup bucket with a few objects, and a target name."""
    backup_name, target = restore_buckets
    items = {
        "a.txt": Item(Obj(b"a", TEXT, {}, {"t": "a"})),
        "cold/g.bin": Item(Obj(b"g", "application/x-cold"), "GLACIER"),
    }
    return build_backup(s3, backup_name, items), target


def assert_backup_untouched(s3: Any, backup: Backup) -> None:
    assert run_files(s3, backup.bucket) == []
    assert sorted(list_keys(s3, backup.bucket, include_reserved=True)) == sorted(
        [*backup.items, *backup.reserved]
    )
    for key in backup.archived_keys:
        assert s3.head_object(Bucket=backup.bucket, Key=key).get("Restore") is None, key


@pytest.mark.parametrize(
    ("conf", "problem"),
    [
        pytest.param({"as_of": "not-a-date"}, ("as_of", "'not-a-date'"), id="as_of-malformed"),
        pytest.param({"as_of": "2026-01-31T12:00:00Z"}, ("as_of", "versioned"), id="as_of-unversioned"),
    ],
)
def test_bad_input_fails_in_validate(
    s3: Any,
    small_backup: tuple[Backup, str],
    conf: dict[str, Any],
    problem: tuple[str, ...],
    capfd: pytest.CaptureFixture[str],
) -> None:
    backup, target = small_backup

    run = restore(backup.bucket, target, **conf)

    assert_failed_in_validate(s3, run, target)
    assert_backup_untouched(s3, backup)
    assert_logged(capfd, *problem)


def test_missing_backup_bucket_fails_in_validate(
    s3: Any, restore_buckets: tuple[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    backup_name, target = restore_buckets

    run = restore(backup_name, target)

    assert_failed_in_validate(s3, run, target)
    assert not bucket_exists(s3, backup_name)
    assert_logged(capfd, "backup_bucket", backup_name, "does not exist")


def test_target_equal_to_backup_fails_in_validate(
    s3: Any, small_backup: tuple[Backup, str], capfd: pytest.CaptureFixture[str]
) -> None:
    backup, _ = small_backup

    run = restore(backup.bucket, backup.bucket)

    assert run.state == "failed" and run.tasks["validate"] == "failed", run.tasks
    assert [name for name, state in run.tasks.items() if state == "success"] == []
    assert_backup_untouched(s3, backup)
    assert_logged(capfd, "target_bucket", backup.bucket)


def test_non_empty_target_fails_in_validate_and_stays_untouched(
    s3: Any, small_backup: tuple[Backup, str], capfd: pytest.CaptureFixture[str]
) -> None:
    backup, target = small_backup
    s3.create_bucket(Bucket=target)
    put(s3, target, "a.txt", Obj(b"already here", TEXT, {"mine": "yes"}, {"keep": "me"}))
    before = snapshot_bucket(s3, target)

    run = restore(backup.bucket, target)

    assert run.state == "failed" and run.tasks["validate"] == "failed", run.tasks
    assert [name for name, state in run.tasks.items() if state == "success"] == []
    assert snapshot_bucket(s3, target) == before
    assert list_keys(s3, target, include_reserved=True) == ["a.txt"]
    assert_backup_untouched(s3, backup)
    assert_logged(capfd, target, "not empty")


@pytest.mark.parametrize(
    "conf",
    [
        pytest.param({"restore_tier": "Fast"}, id="tier-unknown"),
        pytest.param({"restore_days": 0}, id="days-zero"),
    ],
)
def test_params_outside_their_schema_are_rejected_before_the_run(
    s3: Any, small_backup: tuple[Backup, str], conf: dict[str, Any]
) -> None:
    """The Params' enum/minimum reject these when the run is created (dag.test raises),
    so no task runs at all."""
    backup, target = small_backup
    name = next(iter(conf))

    with pytest.raises(ParamValidationError, match=name):
        restore(backup.bucket, target, **conf)

    assert not bucket_exists(s3, target)
    assert_backup_untouched(s3, backup)
