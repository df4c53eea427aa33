"""``listing_source="inventory"`` in whole ``s3_backup`` runs: the source's S3 Inventory report
(built in AWS's layout by ``tests.support.inventory``, in a moto bucket) stands in for its
listing; every request goes through the recording proxy, and none lists the source.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from s3br_provider.core.inventory import iso_minute
from s3br_provider.core.keys import TAG_PROBE_SOURCE, TAG_PROBE_TARGET
from tests.dags.conftest import MARKER_TAGS, Obj, assert_copies, odd_objects, put, seed
from tests.dags.test_backup_dag import MTIME_TICK, Gone, assert_backup, assert_succeeded, backup_run
from tests.support.fault_proxy import FaultProxy
from tests.support.iam import missing_permissions, policy
from tests.support.inventory import configure_inventory, inventory_report, rows_of_bucket, write_report
from tests.support.s3 import aws_conn_env, list_keys, snapshot, snapshot_bucket

pytestmark = pytest.mark.slow

PROXY_CONN_ID = "s3br_inventory_proxy"
LISTINGS = ("ListObjectsV2", "ListObjects", "ListObjectVersions")
TEXT = "text/plain; charset=utf-8"


@pytest.fixture
def proxy(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    with FaultProxy(endpoint) as running:
        monkeypatch.setenv(f"AIRFLOW_CONN_{PROXY_CONN_ID.upper()}", aws_conn_env(running.endpoint_url))
        yield running


@pytest.fixture
def destination(s3: Any, bucket_names: Any) -> str:
    """The inventory configuration's destination bucket."""
    name = bucket_names("inv")
    s3.create_bucket(Bucket=name)
    return name


def inventory_conf(uri: str, **conf: Any) -> dict[str, Any]:
    return {
        "listing_source": "inventory",
        "inventory_uri": uri,
        "source_aws_conn_id": PROXY_CONN_ID,
        "backup_aws_conn_id": PROXY_CONN_ID,
        **conf,
    }


def source_listings(proxy: FaultProxy, source: str) -> list[str]:
    return [r.operation for r in proxy.records if r.bucket == source and r.operation in LISTINGS]


def minute(when: datetime) -> datetime:
    return when.replace(second=0, microsecond=0)


def test_a_backup_from_the_inventory_never_lists_the_source(
    s3: Any, buckets: tuple[str, str], destination: str, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__S3BR__TARGET_KEYS_PER_PARTITION", "5")  # several partitions
    source, backup = buckets
    model = odd_objects()
    seed(s3, source, model)
    configure_inventory(s3, source, destination)
    # An older report with other content: the latest one is read.
    stale = inventory_report(source, destination, [], when=minute(datetime.now(UTC)) - timedelta(days=1))
    write_report(s3, stale)
    # The snapshot: every object as it stands, in two CSV data files, a minute in the past.
    snapshot_time = minute(datetime.now(UTC)) - timedelta(minutes=1)
    report = write_report(
        s3,
        inventory_report(source, destination, rows_of_bucket(s3, source), when=snapshot_time, data_files=2),
    )
    assert report.uri == stale.uri and report.manifest_key > stale.manifest_key
    time.sleep(MTIME_TICK)
    # After the snapshot: an object written (its copy not in this run), one deleted (the copy
    # finds it gone: no failure), and one written and already copied by the continuous backup
    # (its copy is newer than the snapshot: not tagged deleted).
    late = Obj(b"written after the snapshot", TEXT)
    put(s3, source, "late/after.txt", late)
    deleted = "a/plain.txt"
    s3.delete_object(Bucket=source, Key=deleted)
    continuous = Obj(b"copied by the continuous backup", TEXT, {"via": "events"}, {"c": "1"})
    put(s3, source, "late/continuous.txt", continuous)
    put(s3, backup, "late/continuous.txt", continuous)
    kept = snapshot(s3, backup, "late/continuous.txt")

    proxy.reset_records()
    first = backup_run(s3, source, backup, **inventory_conf(report.uri))
    assert_succeeded(first)
    assert source_listings(proxy, source) == []
    # Within iam/backup-policy.json: its inventory statements are all a run needs besides.
    buckets = {"SOURCE_BUCKET": source, "BACKUP_BUCKET": backup, "INVENTORY_BUCKET": destination}
    statements = policy("backup-policy", **buckets, INVENTORY_PREFIX="inventory")
    assert missing_permissions(proxy.records, statements) == {}
    src, dst = snapshot_bucket(s3, source), snapshot_bucket(s3, backup)
    listed = set(model) - {deleted}
    assert sorted(dst) == sorted(listed | {"late/continuous.txt"})
    assert_copies(src, dst, listed)
    assert dst["late/continuous.txt"] == kept and not set(MARKER_TAGS) & set(kept.tags)
    totals = first.totals
    assert (totals["copied"], totals["vanished"], totals["failed"]) == (len(listed), 0, 0), totals
    assert (totals["gone_since_inventory"], totals["newer_than_inventory"]) == (1, 1), totals
    assert first.report["settings"]["listing_source"] == "inventory"
    stamp = iso_minute(snapshot_time)
    assert first.report["listing"] == (
        f"source listed by its S3 Inventory report of {stamp}: objects written after {stamp} are "
        "caught by the next run or the continuous backup"
    )
    assert len(first.report["partitions"]) > 1
    assert all(p["index"] == i for i, p in enumerate(first.report["partitions"]))

    # The next report (Parquet this time) has the late object and lacks one deleted since the
    # last run: the late object is copied, the deleted one's copy tagged, nothing else moves.
    time.sleep(MTIME_TICK)
    gone = "c/plus+sign+.txt"
    before = snapshot(s3, backup, gone)
    s3.delete_object(Bucket=source, Key=gone)
    later = minute(datetime.now(UTC)) + timedelta(minutes=1)  # after every copy of the first run
    second_report = write_report(
        s3,
        inventory_report(source, destination, rows_of_bucket(s3, source), when=later, file_format="Parquet"),
    )
    proxy.reset_records()
    second = backup_run(s3, source, backup, **inventory_conf(second_report.uri))
    assert_succeeded(second)
    assert source_listings(proxy, source) == []
    assert_backup(s3, source, backup, gone={gone: Gone(before)})
    totals = second.totals
    assert (totals["copied"], totals["tagged_deleted"], totals["newer_than_inventory"]) == (1, 1, 0), totals

    # Nothing to do, from an ORC report: the source gets two requests, both validate's.
    orc = inventory_report(
        source, destination, rows_of_bucket(s3, source), when=later + timedelta(minutes=1), file_format="ORC"
    )
    write_report(s3, orc)
    proxy.reset_records()
    idle = backup_run(s3, source, backup, **inventory_conf(orc.uri))
    assert_succeeded(idle)
    on_source = sorted(r.operation for r in proxy.records if r.bucket == source)
    assert on_source == ["GetBucketInventoryConfiguration", "HeadBucket"]
    assert (idle.totals["copied"], idle.totals["tagged_deleted"], idle.totals["failed"]) == (0, 0, 0)
    assert idle.totals["source_objects"] == len(list_keys(s3, source)), idle.totals
    assert_backup(s3, source, backup, gone={gone: Gone(before)})


@pytest.mark.parametrize(
    "case", ["no_configuration", "narrow_filter", "no_report", "other_bucket", "too_old", "json", "no_size"]
)
def test_a_bad_inventory_fails_in_validate_writing_nothing(
    s3: Any, buckets: tuple[str, str], destination: str, capsys: Any, case: str
) -> None:
    source, backup = buckets
    seed(s3, source, {"a/x.txt": Obj(b"x", TEXT)})
    now = minute(datetime.now(UTC))
    rows = rows_of_bucket(s3, source)
    uri = f"s3://{destination}/inventory/{source}/s3br/"
    if case != "no_configuration":
        configure_inventory(s3, source, destination, filter_prefix="a/" if case == "narrow_filter" else "")
    if case in ("no_configuration", "narrow_filter"):
        write_report(s3, inventory_report(source, destination, rows, when=now))
    elif case == "other_bucket":
        write_report(s3, inventory_report(source, destination, rows, when=now, manifest_source="elsewhere"))
    elif case == "too_old":
        write_report(s3, inventory_report(source, destination, rows, when=now - timedelta(hours=30)))
    elif case == "json":  # not a format S3 Inventory writes
        write_report(s3, inventory_report(source, destination, rows, when=now, file_format="JSON"))
    elif case == "no_size":
        fields = ("Bucket", "Key", "LastModifiedDate", "ETag")
        write_report(s3, inventory_report(source, destination, rows, when=now, fields=fields))
    expected = {
        "no_configuration": f"source_bucket '{source}' has no inventory configuration 's3br'",
        "narrow_filter": r"lists only keys under 'a/', and prefix '' reaches beyond it",
        "no_report": f"no inventory report under {re.escape(uri)}",
        "other_bucket": f"is of bucket 'elsewhere', not of source_bucket '{source}'",
        "too_old": "30 hours old, older than inventory_max_age_hours 24",
        "json": "format is JSON; s3br reads CSV, Parquet, ORC",
        "no_size": r"lacks the field\(s\) Size",
    }[case]
    inventory_before = list_keys(s3, destination, include_reserved=True)
    capsys.readouterr()
    conf = {"listing_source": "inventory", "inventory_uri": uri, "inventory_max_age_hours": 24}
    result = backup_run(s3, source, backup, **conf)
    out = capsys.readouterr()
    assert result.run.state == "failed" and result.run.tasks["validate"] == "failed"
    assert [t for t, state in result.run.tasks.items() if state == "success"] == []
    assert list_keys(s3, backup, include_reserved=True) == []
    assert list_keys(s3, destination, include_reserved=True) == inventory_before
    assert re.search(f"listing_source inventory: .*{expected}", out.out + out.err), expected


def test_a_report_listing_reserved_keys_fails_in_plan_writing_nothing(
    s3: Any, buckets: tuple[str, str], destination: str, capsys: Any
) -> None:
    """validate makes no LIST of the source with an inventory, so the plan refuses a report
    that lists keys under ``_s3br/`` (a backup never copies them) before it writes anything
    (validate's tag probe apart: its two fixed keys)."""
    source, backup = buckets
    seed(s3, source, {"a/x.txt": Obj(b"x", TEXT), "_s3br/runs/old.json": Obj(b"{}", "application/json")})
    configure_inventory(s3, source, destination)
    report = write_report(
        s3, inventory_report(source, destination, rows_of_bucket(s3, source), when=minute(datetime.now(UTC)))
    )
    capsys.readouterr()
    result = backup_run(s3, source, backup, listing_source="inventory", inventory_uri=report.uri)
    out = capsys.readouterr()
    lines = [line[:300] for line in out.out.splitlines() if "nventory" in line or "Planned" in line]
    assert result.run.state == "failed" and result.run.tasks["plan_partitions"] == "failed", lines
    assert result.run.tasks["validate"] == "success"
    assert list_keys(s3, backup, include_reserved=True) == [TAG_PROBE_SOURCE, TAG_PROBE_TARGET]
    assert "lists keys under '_s3br/' (first: '_s3br/runs/old.json')" in out.out + out.err
