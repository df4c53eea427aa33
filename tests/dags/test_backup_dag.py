"""Whole ``s3_backup`` runs (``dag.test``) against moto; both buckets checked object by object.

Each test runs the DAG several times in sequence, so one data set goes through the life of a
backup: first copy, changes, deletions, a run with nothing to do, a dry run, a comeback.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest

from tests.dags.conftest import (
    MARKER_TAGS,
    Obj,
    assert_copies,
    assert_source,
    odd_objects,
    put,
    seed,
    user_tags,
)
from tests.support.dag_runs import RunResult, load_dag, run_dag
from tests.support.s3 import Snapshot, list_keys, local_client, set_restore_transition, snapshot_bucket

pytestmark = pytest.mark.slow

DAG_ID = "s3_backup"
RUNS_PREFIX = f"_s3br/runs/{DAG_ID}/"
DELETED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d$")
OLD_DELETED_AT = "2020-01-02T03:04"
TARGET_KEYS_ENV = "AIRFLOW__S3BR__TARGET_KEYS_PER_PARTITION"
MTIME_TICK = 1.1  # S3 LastModified has one-second granularity


@dataclass(frozen=True)
class Gone:
    """A backup object whose source vanished: what it held before, and its expected DeletedAt
    (None: any value within a few minutes of now)."""

    before: Snapshot
    deleted_at: str | None = None


@dataclass
class Backup:
    """One finished run: its result and the report it wrote (None when it wrote none)."""

    run: RunResult
    report: dict[str, Any] | None

    @property
    def totals(self) -> dict[str, int]:
        assert self.report is not None, "the run wrote no report.json"
        return self.report["totals"]


# Helpers ---------------------------------------------------------------------------------------


def reports(s3: Any, bucket: str) -> set[str]:
    keys = list_keys(s3, bucket, include_reserved=True)
    return {k for k in keys if k.startswith(RUNS_PREFIX) and k.endswith("/report.json")}


@cache
def param_defaults() -> dict[str, Any]:
    return dict(load_dag(DAG_ID).params.dump())


@cache
def restore_defaults() -> dict[str, Any]:
    params = load_dag("s3_restore").params
    return {name: params.get_param(name).value for name in params if params.get_param(name).has_value}


def full_conf(*, source: str, backup: str, **conf: Any) -> dict[str, Any]:
    """Every Param, defaults filled in.

    ``dag.test()`` in one process reuses the operators, and Airflow's ``process_params``
    writes each run's conf into the task's shared ``Param`` objects: a Param left out of
    the conf would keep the previous run's value (a dry run would stay a dry run).
    """
    return {**param_defaults(), "source_bucket": source, "backup_bucket": backup, **conf}


def backup_run(s3: Any, source: str, backup: str, **conf: Any) -> Backup:
    """Run the DAG once with ``conf``; return the run and the report.json it added."""
    before = reports(s3, backup) if bucket_exists(s3, backup) else set()
    run = run_dag(DAG_ID, full_conf(source=source, backup=backup, **conf))
    after = reports(s3, backup) if bucket_exists(s3, backup) else set()
    new = sorted(after - before)
    assert len(new) <= 1, new
    report = json.loads(s3.get_object(Bucket=backup, Key=new[0])["Body"].read()) if new else None
    return Backup(run, report)


def assert_succeeded(result: Backup) -> None:
    assert result.run.state == "success", result.run.failed_tasks()
    assert result.run.failed_tasks() == []


def bucket_exists(s3: Any, bucket: str) -> bool:
    return bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def raw_state(s3: Any, bucket: str) -> dict[str, tuple[Any, str, int]]:
    """Every key of a bucket, ``_s3br/`` included, with LastModified, ETag and size."""
    state = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            state[item["Key"]] = (item["LastModified"], item["ETag"], item["Size"])
    return state


def assert_deleted_marker(snap: Snapshot, gone: Gone, key: str) -> None:
    """Old bytes, Content-Type and metadata; old tags plus Deleted/DeletedAt, at most 10."""
    before = gone.before
    assert (snap.body, snap.content_type, snap.metadata) == (
        before.body,
        before.content_type,
        before.metadata,
    ), key
    assert snap.tags.get("Deleted") == "True", (key, snap.tags)
    deleted_at = snap.tags.get("DeletedAt", "")
    assert DELETED_AT.match(deleted_at), (key, deleted_at)
    if gone.deleted_at is not None:
        assert deleted_at == gone.deleted_at, key
    else:
        when = datetime.strptime(deleted_at, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
        now = datetime.now(UTC)
        assert now - timedelta(minutes=5) <= when <= now + timedelta(minutes=1), (key, deleted_at)
    assert len(snap.tags) <= 10, (key, snap.tags)
    old, kept = user_tags(before.tags), user_tags(snap.tags)
    if len(old) + len(MARKER_TAGS) <= 10:
        assert kept == old, key
    else:
        assert kept.items() <= old.items(), key
        assert len(kept) == 10 - len(MARKER_TAGS), key


def assert_backup(
    s3: Any,
    source: str,
    backup: str,
    *,
    prefix: str = "",
    gone: dict[str, Gone] | None = None,
    as_is: dict[str, Snapshot] | None = None,
) -> dict[str, Snapshot]:
    """Check the backup object by object against the source.

    Every source object under ``prefix`` has its copy; each ``gone`` key holds its old object
    with the deleted marker; each ``as_is`` key holds exactly that snapshot (content, tags and
    LastModified); nothing else exists outside ``_s3br/``.
    """
    gone, as_is = gone or {}, as_is or {}
    src, dst = snapshot_bucket(s3, source), snapshot_bucket(s3, backup)
    live = {k for k in src if k.startswith(prefix)} - set(as_is)
    assert sorted(dst) == sorted(live | set(gone) | set(as_is))
    assert_copies(src, dst, live)
    for key in live:
        assert not set(MARKER_TAGS) & set(dst[key].tags), (key, dst[key].tags)
    for key, expected in gone.items():
        assert_deleted_marker(dst[key], expected, key)
    for key, expected in as_is.items():
        assert dst[key] == expected, key
    return dst


def cloudwatch(endpoint: str) -> Any:
    return local_client("cloudwatch", endpoint)


def all_metrics(cw: Any) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    found = set()
    for page in cw.get_paginator("list_metrics").paginate():
        for metric in page["Metrics"]:
            dims = tuple(sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions", [])))
            found.add((metric["Namespace"], metric["MetricName"], dims))
    return found


def metrics_for(cw: Any, backup: str) -> set[tuple[str, str]]:
    """(namespace, metric) pairs published with the dimension BackupBucket=``backup``."""
    return {(ns, name) for ns, name, dims in all_metrics(cw) if ("BackupBucket", backup) in dims}


def asset_events(backup: str) -> int:
    """How many asset events the metadata database holds for ``s3://<backup>``."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    uris = [f"s3://{backup}", f"s3://{backup}/"]
    with create_session() as session:
        query = (
            select(func.count())
            .select_from(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri.in_(uris))
        )
        return int(session.scalar(query) or 0)


def mapped(run: RunResult, task_id: str) -> list[str]:
    return [name for name in run.tasks if name.startswith(f"{task_id}[")]


# Tests -----------------------------------------------------------------------------------------


def test_prefix_compare_and_switches(s3: Any, buckets: tuple[str, str], endpoint: str) -> None:
    """prefix limits copies and tags; tag_deleted=false tags nothing; checksum catches what
    size_mtime cannot (same size, copy newer); an empty CloudWatch namespace publishes nothing."""
    source, backup = buckets
    text = "text/plain"
    model = {
        "keep/a.txt": Obj(b"a", text, {"m": "a"}, {"t": "a"}),
        "keep/same.txt": Obj(b"source bytes", text, {"m": "same"}, {"t": "same"}),
        "keep/sub/b.txt": Obj(b"b", text),
        "keeper.txt": Obj(b"outside: shares the string but not the folder", text),
        "other/c.txt": Obj(b"c", text, {}, {"t": "c"}),
    }
    seed(s3, source, model)
    assert_source(s3, source, model)
    time.sleep(MTIME_TICK)
    # Written after the source: same size, newer, other bytes. size_mtime must keep it.
    stale = Obj(b"backup bytes", text, {"m": "same"}, {"t": "same"})
    assert len(stale.body) == len(model["keep/same.txt"].body)
    put(s3, backup, "keep/same.txt", stale)
    put(s3, backup, "keep/gone.txt", Obj(b"gone inside", text, {}, {"k": "v"}))
    put(s3, backup, "other/gone.txt", Obj(b"gone outside", text, {}, {"k": "v"}))
    hand = snapshot_bucket(s3, backup)
    cw = cloudwatch(endpoint)
    metrics_before = all_metrics(cw)

    first = backup_run(s3, source, backup, prefix="keep/", tag_deleted=False, cloudwatch_namespace="")
    assert_succeeded(first)
    assert_backup(s3, source, backup, prefix="keep/", as_is=hand)
    assert (first.totals["copied"], first.totals["vanished"], first.totals["tagged_deleted"]) == (2, 1, 0)
    assert all_metrics(cw) == metrics_before
    assert metrics_for(cw, backup) == set()

    namespace = f"S3brTest{backup.rsplit('-', 1)[-1]}"
    second = backup_run(
        s3, source, backup, prefix="keep/", compare="checksum", cloudwatch_namespace=namespace
    )
    assert_succeeded(second)
    dst = assert_backup(
        s3,
        source,
        backup,
        prefix="keep/",
        gone={"keep/gone.txt": Gone(hand["keep/gone.txt"])},
        as_is={"other/gone.txt": hand["other/gone.txt"]},
    )
    assert dst["keep/same.txt"].body == b"source bytes"
    assert (second.totals["copied"], second.totals["tagged_deleted"]) == (1, 1)
    assert (namespace, "ObjectsToBackup") in metrics_for(cw, backup)


def _snapshot_all(s3: Any, bucket: str) -> Any:
    if not bucket_exists(s3, bucket):
        return None
    return raw_state(s3, bucket), snapshot_bucket(s3, bucket)


@pytest.mark.parametrize("case", ["missing_source", "missing_backup", "same_bucket"])
def test_bad_input_fails_in_validate(s3: Any, buckets: tuple[str, str], capsys: Any, case: str) -> None:
    """Bad buckets fail the run in validate, with a message naming the bucket, writing nothing."""
    source, backup = buckets
    missing = f"missing-{backup}"
    seed(s3, source, {"a/x.txt": Obj(b"x", "text/plain", {}, {"t": "1"})})
    put(s3, backup, "a/old.txt", Obj(b"old", "text/plain", {}, {"t": "old"}))
    conf, expected = {
        "missing_source": ((missing, backup), rf"source_bucket '{re.escape(missing)}' does not exist"),
        "missing_backup": ((source, missing), rf"backup_bucket '{re.escape(missing)}' does not exist"),
        "same_bucket": ((source, source), rf"'{re.escape(source)}'.*cannot be its own backup"),
    }[case]
    watched = [source, backup, missing]
    before = {b: _snapshot_all(s3, b) for b in watched}
    capsys.readouterr()

    result = backup_run(s3, *conf)
    out = capsys.readouterr()
    assert result.run.state == "failed"
    assert result.run.tasks["validate"] == "failed"
    succeeded = [t for t, state in result.run.tasks.items() if state == "success"]
    assert succeeded == [], succeeded
    assert {b: _snapshot_all(s3, b) for b in watched} == before
    assert re.search(expected, out.out + out.err), f"no message matching {expected!r}"


def test_backup_life_cycle(
    s3: Any, buckets: tuple[str, str], endpoint: str, capsys: Any, monkeypatch: Any
) -> None:
    """First copy, changes and deletions, nothing to do, dry run, and an object coming back."""
    source, backup = buckets
    text = "text/plain"
    model = odd_objects() | {
        "z/rewrite.txt": Obj(b"version-1", text, {"rev": "1"}, {"keep": "me"}),
        "z/resize.txt": Obj(b"short", text),
        "z/tagged-gone.txt": Obj(b"tagged and gone", text, {"m": "1"}, {"a": "1"}),
        "z/plain-gone.txt": Obj(b"plain and gone", text),
        "z/ten-tags.txt": Obj(b"ten tags", text, {}, {f"t{i}": str(i) for i in range(10)}),
    }
    seed(s3, source, model)
    assert_source(s3, source, model)
    cw = cloudwatch(endpoint)

    # 1. First backup: several partitions, every object copied as it is.
    monkeypatch.setenv(TARGET_KEYS_ENV, "4")  # about 25 keys: several partitions on a first run
    first = backup_run(s3, source, backup)
    monkeypatch.undo()
    assert_succeeded(first)
    assert len(mapped(first.run, "partition.copy_batch")) >= 3, first.run.tasks
    assert len(mapped(first.run, "partition.diff")) == len(mapped(first.run, "partition.copy_batch"))
    assert_backup(s3, source, backup)
    assert first.totals["copied"] == len(model)
    assert first.totals["failed"] == 0
    assert ("BackupRecovery", "ObjectsToBackup") in metrics_for(cw, backup)
    assert asset_events(backup) >= 1
    olds = snapshot_bucket(s3, backup)

    # 2. Same-size rewrite (newer), resize, new object, three deletions.
    time.sleep(MTIME_TICK)
    model["z/rewrite.txt"] = Obj(b"version-2", text, {"rev": "2"}, {"keep": "me"})
    assert len(model["z/rewrite.txt"].body) == len(olds["z/rewrite.txt"].body)
    model["z/resize.txt"] = Obj(b"a little longer now", text)
    model["a/new.txt"] = Obj(b"new", text, {"n": "1"}, {"fresh": "yes"})
    for key in ("z/tagged-gone.txt", "z/plain-gone.txt", "z/ten-tags.txt"):
        s3.delete_object(Bucket=source, Key=key)
        del model[key]
    for key in ("z/rewrite.txt", "z/resize.txt", "a/new.txt"):
        put(s3, source, key, model[key])
    assert_source(s3, source, model)

    second = backup_run(s3, source, backup)
    assert_succeeded(second)
    gone = {k: Gone(olds[k]) for k in ("z/tagged-gone.txt", "z/plain-gone.txt", "z/ten-tags.txt")}
    dst = assert_backup(s3, source, backup, gone=gone)
    assert dst["z/tagged-gone.txt"].tags["a"] == "1"
    assert second.totals["copied"] == 3
    assert second.totals["vanished"] == 3
    assert second.totals["tagged_deleted"] == 3

    # 3. Nothing to do: nothing rewritten or retagged; a DeletedAt set earlier stays.
    s3.put_object_tagging(
        Bucket=backup,
        Key="z/plain-gone.txt",
        Tagging={
            "TagSet": [{"Key": "Deleted", "Value": "True"}, {"Key": "DeletedAt", "Value": OLD_DELETED_AT}]
        },
    )
    gone["z/plain-gone.txt"] = Gone(olds["z/plain-gone.txt"], OLD_DELETED_AT)
    gone["z/tagged-gone.txt"] = Gone(olds["z/tagged-gone.txt"], dst["z/tagged-gone.txt"].tags["DeletedAt"])
    gone["z/ten-tags.txt"] = Gone(olds["z/ten-tags.txt"], dst["z/ten-tags.txt"].tags["DeletedAt"])
    before = snapshot_bucket(s3, backup)
    capsys.readouterr()
    idle = backup_run(s3, source, backup)
    log = capsys.readouterr().out
    assert_succeeded(idle)
    assert snapshot_bucket(s3, backup) == before  # bytes, tags and LastModified of every object
    assert_backup(s3, source, backup, gone=gone)
    totals = idle.totals
    assert (totals["to_copy"], totals["copied"], totals["tagged_deleted"]) == (0, 0, 0), totals
    assert totals["vanished"] == 3
    assert re.search(r"Totals: .*\b0 to copy, 0 copied\b", log), "report log does not say 0 copied"

    # 4. Dry run over real changes (one of them a comeback): the backup bucket stays as it is.
    time.sleep(MTIME_TICK)
    model["a/plain.txt"] = Obj(b"alpha, rewritten", text, {"owner": "bob"}, {"team": "ops"})
    model["a/new2.txt"] = Obj(b"another new one", text)
    model["z/tagged-gone.txt"] = Obj(b"tagged and gone", text, {"m": "1"}, {"a": "1"})  # comes back
    for key in ("a/plain.txt", "a/new2.txt", "z/tagged-gone.txt"):
        put(s3, source, key, model[key])
    s3.delete_object(Bucket=source, Key="a/empty")
    del model["a/empty"]
    assert_source(s3, source, model)
    raw_before, data_before, events_before = (
        raw_state(s3, backup),
        snapshot_bucket(s3, backup),
        asset_events(backup),
    )

    dry = backup_run(s3, source, backup, dry_run=True)
    assert_succeeded(dry)
    assert raw_state(s3, backup) == raw_before  # _s3br/ included: no manifest, report or stats
    assert snapshot_bucket(s3, backup) == data_before
    assert dry.report is None
    assert asset_events(backup) == events_before

    # 5. The same changes for real: the comeback is copied again and loses its marker (moto
    # merges old tags into a copy's: validate's tag probe says so, and its tags are set explicitly).
    capsys.readouterr()
    fifth = backup_run(s3, source, backup)
    assert_succeeded(fifth)
    assert "a copy with TaggingDirective=COPY was left with tags" in "".join(capsys.readouterr())
    del gone["z/tagged-gone.txt"]
    gone["a/empty"] = Gone(olds["a/empty"])
    dst = assert_backup(s3, source, backup, gone=gone)
    assert dst["z/tagged-gone.txt"].tags == {"a": "1"}
    assert dst["z/tagged-gone.txt"].last_modified > data_before["z/tagged-gone.txt"].last_modified
    assert fifth.totals["copied"] == 3
    assert fifth.totals["tagged_deleted"] == 1


def test_failed_validation_says_its_problem_once(s3: Any, buckets: tuple[str, str], capsys: Any) -> None:
    """After validate rejects the input nothing else runs (validate is the setup task): the one
    error a user sees is the one that names the problem, with no XCom lookups failing after it."""
    source, backup = buckets
    capsys.readouterr()
    result = backup_run(s3, f"missing-{source}", backup)
    out = capsys.readouterr().out
    assert result.run.state == "failed"
    assert result.run.tasks["validate"] == "failed"
    assert {state for task, state in result.run.tasks.items() if task != "validate"} == {"upstream_failed"}
    tracebacks = re.findall(r"^(\w+(?:\.\w+)*(?:Error|Exception)): (.*)$", out, flags=re.M)
    assert [name for name, _ in tracebacks] == ["s3br_provider.operators.base.InvalidArgumentsError"], (
        tracebacks
    )
    assert f"source_bucket 'missing-{source}' does not exist" in tracebacks[0][1]
    assert "XCom not found" not in out


def test_backup_storage_class_and_lifecycle_transitions(s3: Any, buckets: tuple[str, str]) -> None:
    """New copies land in ``backup_storage_class``; a copy moved to another class later (as a
    lifecycle rule would) is unchanged for the next run, which copies nothing again."""
    source, backup = buckets
    model = {key: obj for key, obj in odd_objects().items() if not key.startswith("e/")}
    seed(s3, source, model)
    src = assert_source(s3, source, model)

    first = backup_run(s3, source, backup, backup_storage_class="STANDARD_IA", max_partitions=2)
    assert_succeeded(first)
    dst = snapshot_bucket(s3, backup)
    assert_copies(src, dst, model)
    assert {snap.storage_class for snap in dst.values()} == {"STANDARD_IA"}

    moved = sorted(model)[:3]
    for key, storage_class in zip(moved, ("GLACIER", "DEEP_ARCHIVE", "GLACIER_IR"), strict=True):
        s3.copy_object(
            Bucket=backup, Key=key, CopySource={"Bucket": backup, "Key": key}, StorageClass=storage_class
        )
    before = raw_state(s3, backup)

    second = backup_run(s3, source, backup, backup_storage_class="GLACIER", max_partitions=2)
    assert_succeeded(second)
    assert second.totals["to_copy"] == 0 and second.totals["copied"] == 0, second.totals
    after = raw_state(s3, backup)
    assert {k: v for k, v in after.items() if not k.startswith("_s3br/")} == {
        k: v for k, v in before.items() if not k.startswith("_s3br/")
    }

    put(s3, source, "new/arrival.txt", Obj(b"new", "text/plain", {"n": "1"}, {"t": "1"}))
    third = backup_run(s3, source, backup, backup_storage_class="GLACIER", max_partitions=2)
    assert_succeeded(third)
    assert third.totals["copied"] == 1, third.totals
    head = s3.head_object(Bucket=backup, Key="new/arrival.txt")
    assert head.get("StorageClass") == "GLACIER", head


def test_archived_source_objects_are_skipped_or_restored_then_copied(
    s3: Any, buckets: tuple[str, str], endpoint: str
) -> None:
    """One GLACIER object in the source never fails a run: ``skip`` names it and succeeds;
    ``restore`` requests a Bulk restore once, and a later run copies it once readable."""
    source, backup = buckets
    model = {key: obj for key, obj in odd_objects().items() if key.startswith(("a/", "b/"))}
    seed(s3, source, model)
    archived = {"cold/deep.bin": "DEEP_ARCHIVE", "cold/glacier.bin": "GLACIER"}
    for key, storage_class in archived.items():
        s3.put_object(Bucket=source, Key=key, Body=key.encode() * 10, StorageClass=storage_class)
    set_restore_transition(endpoint, {"progression": "immediate"})

    skipped = backup_run(s3, source, backup)
    assert_succeeded(skipped)
    assert skipped.totals["skipped_archived"] == 2 and skipped.totals["copied"] == len(model), skipped.totals
    assert sorted(skipped.report["archived_not_copied"]) == sorted(archived)
    assert list_keys(s3, backup) == sorted(model)
    assert all("Restore" not in s3.head_object(Bucket=source, Key=key) for key in archived)  # no request

    requested = backup_run(s3, source, backup, archived_source="restore")
    assert_succeeded(requested)
    assert requested.totals["archive_restores_requested"] == 2, requested.totals
    assert requested.totals["copied"] == 0 and list_keys(s3, backup) == sorted(model)

    copied = backup_run(s3, source, backup, archived_source="restore")
    assert_succeeded(copied)
    assert copied.totals["copied"] == 2 and copied.totals["archive_restores_requested"] == 0, copied.totals
    assert list_keys(s3, backup) == sorted([*model, *archived])
    for key in archived:
        body = s3.get_object(Bucket=backup, Key=key)["Body"].read()
        assert body == key.encode() * 10, key

    again = backup_run(s3, source, backup, archived_source="restore")
    assert_succeeded(again)
    assert (again.totals["copied"], again.totals["archive_restores_requested"]) == (0, 0), again.totals


def test_object_lock_retention_on_every_copy(s3: Any, bucket_names: Any, airflow_db: str) -> None:
    """Each copy, single-part and multipart, is retained until its copy time plus the days; a
    vanished object is still tagged on its locked copy, a rewritten one gets a new locked version,
    and a restore of the locked bucket brings back the live objects."""
    source, backup = bucket_names("src"), bucket_names("locked")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup, ObjectLockEnabledForBucket=True)
    model = {key: obj for key, obj in odd_objects().items() if key.startswith(("a/", "b/", "c/"))}
    model["big/six-mib.bin"] = Obj(
        b"6" * (6 * 1024 * 1024), "application/octet-stream", {"s": "big"}, {"b": "1"}
    )
    seed(s3, source, model)
    src = assert_source(s3, source, model)

    started = datetime.now(UTC)
    first = backup_run(
        s3, source, backup, retention_mode="GOVERNANCE", retention_days=2, multipart_threshold_mb=5
    )
    assert_succeeded(first)
    assert_copies(src, snapshot_bucket(s3, backup), model)
    for key in model:
        head = s3.head_object(Bucket=backup, Key=key)
        assert head.get("ObjectLockMode") == "GOVERNANCE", (key, head)
        until = head["ObjectLockRetainUntilDate"]
        assert (
            started + timedelta(days=2) - timedelta(minutes=1)
            <= until
            <= datetime.now(UTC) + timedelta(days=2)
        )

    gone, rewritten = "a/plain.txt", "b/données/été.csv"
    s3.delete_object(Bucket=source, Key=gone)
    time.sleep(MTIME_TICK)
    put(s3, source, rewritten, Obj(b"rewritten, longer than before", "text/csv", {"v": "2"}))
    second = backup_run(
        s3, source, backup, retention_mode="GOVERNANCE", retention_days=2, multipart_threshold_mb=5
    )
    assert_succeeded(second)
    assert second.totals["copied"] == 1 and second.totals["tagged_deleted"] == 1, second.totals
    assert s3.get_object_tagging(Bucket=backup, Key=gone)["TagSet"]
    versions = s3.list_object_versions(Bucket=backup, Prefix=rewritten)["Versions"]
    assert len(versions) == 2  # the old copy stays, locked; the new one is locked too
    for version in versions:
        head = s3.head_object(Bucket=backup, Key=rewritten, VersionId=version["VersionId"])
        assert head.get("ObjectLockMode") == "GOVERNANCE", head
    assert s3.get_object(Bucket=backup, Key=rewritten)["Body"].read() == b"rewritten, longer than before"

    target = bucket_names("restored")
    restored = run_dag("s3_restore", {**restore_defaults(), "backup_bucket": backup, "target_bucket": target})
    assert restored.state == "success", restored.failed_tasks()
    assert list_keys(s3, target) == sorted(set(model) - {gone})


def test_retention_needs_object_lock_on_the_backup_bucket(
    s3: Any, buckets: tuple[str, str], capsys: Any
) -> None:
    source, backup = buckets
    seed(s3, source, {"k": Obj(b"x")})
    result = backup_run(s3, source, backup, retention_mode="COMPLIANCE", retention_days=1)
    assert result.run.state == "failed" and result.run.tasks["validate"] == "failed", result.run.tasks
    assert f"backup_bucket '{backup}' does not have it enabled" in capsys.readouterr().out
    assert list_keys(s3, backup, include_reserved=True) == []
