"""S3 Inventory reports as a listing (core.inventory): manifests, data files, partitions."""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from s3br_provider.core.external_sort import sorted_objects
from s3br_provider.core.inventory import (
    DataFile,
    InventoryError,
    ReadCounts,
    check_configuration,
    check_manifest,
    check_md5,
    cut_sorted,
    data_file_objects,
    folder_time,
    inventory_minute,
    iso_minute,
    parse_manifest,
    partition_size,
    report_folders,
    schema_fields,
    split_inventory_uri,
)
from s3br_provider.core.settings import SettingsError, backup_settings, check_argument
from tests.support.inventory import CSV_FIELDS, Row, inventory_report

WHEN = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
ODD_KEYS = [
    "a b/c d.txt",
    "plus+sign+.txt",
    "percent%20and%25.txt",
    "query?x=1&y=2#frag",
    'quote"and,comma.csv',
    "données/été.csv",
    "emoji 😀🚀.bin",
    "日本語/ファイル.txt",
    "d//double//slash",
    "dir/",
    "tilde~star*paren().txt",
]


def _manifest(report):  # the parsed manifest of a report built by tests.support.inventory
    key = report.manifest_key
    checksum = report.files[key.replace("manifest.json", "manifest.checksum")]
    return parse_manifest(report.files[key], key.split("/")[-2], checksum)


def _objects(report, prefix: str = "") -> tuple[list, ReadCounts]:
    manifest, counts = _manifest(report), ReadCounts()
    objects = []
    for data_file in manifest.files:
        objects += list(data_file_objects(manifest, io.BytesIO(report.files[data_file.key]), counts, prefix))
    return objects, counts


def _rows() -> list[Row]:
    base = datetime(2026, 11, 29, 12, 30, 15, 123000, tzinfo=UTC)
    rows = [Row(key, size=i + 1, last_modified=base, etag=f"{i:032x}") for i, key in enumerate(ODD_KEYS)]
    return rows + [
        Row("old/version", size=5, is_latest=False, version_id="v1"),
        Row("old/version", size=6, version_id="v2"),
        Row("gone/marker", is_latest=True, is_delete_marker=True, version_id="v3"),
        Row("cold/archive.bin", size=9, storage_class="DEEP_ARCHIVE"),
        Row("_s3br/runs/x.json", size=1),
    ]


# Manifest ---------------------------------------------------------------------------------------


def test_parse_manifest_reads_the_documented_fields() -> None:
    created = WHEN + timedelta(hours=3)
    report = inventory_report("src", "dest", _rows(), when=WHEN, created=created, data_files=3)
    manifest = _manifest(report)
    assert manifest.source_bucket == "src" and manifest.destination_bucket == "dest"
    assert manifest.file_format == "CSV" and manifest.fields == CSV_FIELDS
    assert len(manifest.files) == 3 and all(len(f.md5) == 32 for f in manifest.files)
    assert manifest.created == created and manifest.folder_time == WHEN
    assert manifest.snapshot == WHEN  # the earlier of folder and creation
    assert iso_minute(manifest.snapshot) == "2026-11-30T00:00Z"
    assert inventory_minute(manifest.snapshot.isoformat()) == "2026-11-30T00:00Z"


def test_parse_manifest_refuses_a_checksum_mismatch_and_a_non_manifest() -> None:
    report = inventory_report("src", "dest", _rows(), when=WHEN)
    body = report.files[report.manifest_key]
    with pytest.raises(InventoryError, match="does not match manifest.checksum"):
        parse_manifest(body, "2026-11-30T00-00Z", b"0" * 32)
    with pytest.raises(InventoryError, match="not an S3 Inventory manifest"):
        parse_manifest(b'{"sourceBucket": "src"}', "2026-11-30T00-00Z")
    with pytest.raises(InventoryError, match="not an S3 Inventory manifest"):
        parse_manifest(b"<html>", "2026-11-30T00-00Z")
    with pytest.raises(InventoryError, match="not an inventory report folder"):
        parse_manifest(body, "data")


def test_check_manifest_accepts_a_fresh_report_of_the_source() -> None:
    manifest = _manifest(inventory_report("src", "dest", _rows(), when=WHEN))
    check_manifest(manifest, source_bucket="src", max_age_hours=48, now=WHEN + timedelta(hours=47))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"manifest_source": "other"}, "is of bucket 'other', not of source_bucket 'src'"),
        ({"when": WHEN - timedelta(hours=49)}, "49 hours old, older than inventory_max_age_hours 48"),
        ({"file_format": "JSON"}, "format is JSON; s3br reads CSV, Parquet, ORC"),
        ({"fields": ("Bucket", "Key", "LastModifiedDate")}, "lacks the field\\(s\\) Size"),
        ({"fields": ("Bucket", "Key")}, "lacks the field\\(s\\) Size, LastModifiedDate"),
    ],
)
def test_check_manifest_names_each_problem(change: dict, message: str) -> None:
    arguments = {"when": WHEN, **change}
    if arguments.get("file_format") == "JSON":
        arguments["file_format"] = "CSV"
        report = inventory_report("src", "dest", _rows(), **arguments)
        data = json.loads(report.files[report.manifest_key])
        manifest = parse_manifest(json.dumps({**data, "fileFormat": "JSON"}).encode(), "2026-11-30T00-00Z")
    else:
        manifest = _manifest(inventory_report("src", "dest", [Row("k")], **arguments))
    with pytest.raises(InventoryError, match=message):
        check_manifest(manifest, source_bucket="src", max_age_hours=48, now=WHEN + timedelta(minutes=1))


def test_check_configuration_needs_the_destination_and_a_filter_covering_prefix() -> None:
    config = {
        "Id": "daily",
        "Destination": {"S3BucketDestination": {"Bucket": "arn:aws:s3:::dest", "Prefix": "inv"}},
        "Filter": {"Prefix": "logs/"},
    }
    check_configuration(config, config_id="daily", prefix="logs/2026/", destination="dest")
    check_configuration({**config, "Filter": {}}, config_id="daily", prefix="", destination="dest")
    with pytest.raises(InventoryError, match="lists only keys under 'logs/', and prefix 'img/' reaches"):
        check_configuration(config, config_id="daily", prefix="img/", destination="dest")
    with pytest.raises(InventoryError, match="lists only keys under 'logs/', and prefix '' reaches"):
        check_configuration(config, config_id="daily", prefix="", destination="dest")
    with pytest.raises(InventoryError, match="delivers into arn:aws:s3:::dest, not into .* 'other'"):
        check_configuration(config, config_id="daily", prefix="logs/", destination="other")


def test_report_folders_latest_first_other_names_left_out() -> None:
    names = ["data/", "hive/", "2026-11-29T00-00Z/", "2026-11-30T00-00Z/", "2026-02-30T00-00Z/", "x/"]
    assert report_folders(names) == ["2026-11-30T00-00Z", "2026-11-29T00-00Z"]
    assert folder_time("2026-11-30T01-02Z") == datetime(2026, 11, 30, 1, 2, tzinfo=UTC)
    assert folder_time("2026-11-30") is None


def test_schema_fields_of_csv_parquet_and_orc() -> None:
    orc = "struct<bucket:string,key:string,size:bigint,last_modified_date:timestamp,e_tag:string>"
    assert schema_fields("ORC", orc) == ("Bucket", "Key", "Size", "LastModifiedDate", "ETag")
    assert schema_fields("CSV", "Bucket, Key, Size") == ("Bucket", "Key", "Size")
    parquet = (
        "message s3.inventory { required binary bucket (STRING); required binary key (STRING); "
        "optional int64 size; optional int64 last_modified_date (TIMESTAMP(MILLIS,true)); "
        "optional binary e_tag (STRING); optional binary checksum_algorithm (STRING);}"
    )
    assert schema_fields("Parquet", parquet) == ("Bucket", "Key", "Size", "LastModifiedDate", "ETag")


def test_split_inventory_uri() -> None:
    assert split_inventory_uri("s3://dest/inv/src/cfg") == ("dest", "inv/src/cfg/")
    with pytest.raises(InventoryError):
        split_inventory_uri("dest/inv/src/cfg/")


# Data files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", ["CSV", "Parquet", "ORC"])
def test_data_files_give_the_latest_objects_with_their_keys_decoded(file_format: str) -> None:
    report = inventory_report("src", "dest", _rows(), when=WHEN, file_format=file_format, data_files=2)
    objects, counts = _objects(report)
    by_key = {obj.key: obj for obj in objects}
    assert sorted(by_key) == sorted([*ODD_KEYS, "old/version", "cold/archive.bin"])
    first = by_key[ODD_KEYS[0]]
    assert (first.size, first.etag, first.storage_class) == (1, f"{0:032x}", "STANDARD")
    assert first.last_modified == datetime(2026, 11, 29, 12, 30, 15, 123000, tzinfo=UTC).timestamp()
    assert by_key["old/version"].size == 6  # the latest version only
    assert by_key["cold/archive.bin"].is_archived
    assert counts.files == 2 and counts.rows == len(_rows()) and counts.kept == len(objects)
    assert (counts.not_latest, counts.delete_markers) == (1, 1)
    assert counts.reserved == ["_s3br/runs/x.json"]


def test_csv_keys_decode_plus_as_space_and_percent_2b_as_plus() -> None:
    report = inventory_report("src", "dest", [Row("a b+c")], when=WHEN)
    data = report.files[next(k for k in report.files if "/data/" in k)]
    import gzip

    assert b'"a+b%2Bc"' in gzip.decompress(data)  # as S3 encodes it
    objects, _ = _objects(report)
    assert [obj.key for obj in objects] == ["a b+c"]


def test_prefix_keeps_only_keys_under_it() -> None:
    rows = [Row("a/1"), Row("a/2"), Row("ab"), Row("b/1")]
    objects, counts = _objects(inventory_report("src", "dest", rows, when=WHEN), prefix="a/")
    assert [obj.key for obj in objects] == ["a/1", "a/2"] and counts.outside_prefix == 2


def test_an_optional_field_missing_takes_its_default() -> None:
    fields = ("Bucket", "Key", "Size", "LastModifiedDate")
    report = inventory_report("src", "dest", [Row("k", size=3)], when=WHEN, fields=fields)
    (obj,), _ = _objects(report)
    assert (obj.key, obj.size, obj.etag, obj.storage_class) == ("k", 3, "", "STANDARD")


def test_check_md5_refuses_a_changed_data_file(tmp_path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"abc")
    check_md5(str(path), DataFile("k", 3, "900150983cd24fb0d6963f7d28e17f72"))
    with pytest.raises(InventoryError, match="does not match the MD5 in manifest.json"):
        check_md5(str(path), DataFile("k", 3, "0" * 32))


# Sorting and partitions ---------------------------------------------------------------------------


def _cut(keys: list[str], per_partition: int) -> tuple[list, dict[int, list[str]]]:
    written: dict[int, list[str]] = {}
    rows = [Row(key) for key in keys]
    objects, _ = _objects(inventory_report("src", "dest", rows, when=WHEN, data_files=3))
    ranges = cut_sorted(
        sorted_objects(objects, run_size=7),
        per_partition,
        lambda i, o: written.setdefault(i, []).append(o.key),
    )
    return ranges, written


def test_unsorted_data_files_are_sorted_and_cut_into_covering_ranges() -> None:
    keys = [f"k/{n:05d}" for n in range(103)] + ODD_KEYS
    random.Random(7).shuffle(keys)
    ranges, written = _cut(keys, 25)
    assert len(ranges) == 5 and ranges[0].start_after is None and ranges[-1].end is None
    assert [len(written[i]) for i in range(5)] == [25, 25, 25, 25, 14]
    assert [key for i in range(5) for key in written[i]] == sorted(keys)
    for i, key_range in enumerate(ranges):
        assert all(key_range.contains(key) for key in written[i])
        if i:
            assert ranges[i - 1].end == key_range.start_after == written[i - 1][-1]


def test_an_empty_report_is_one_partition_of_the_whole_key_space() -> None:
    ranges, written = _cut([], 10)
    assert [(r.start_after, r.end) for r in ranges] == [(None, None)] and written == {}


def test_cut_drops_repeated_keys_and_refuses_unsorted_input() -> None:
    objects, _ = _objects(inventory_report("src", "dest", [Row("a"), Row("a"), Row("b")], when=WHEN))
    written: list[str] = []
    cut_sorted(objects, 10, lambda i, o: written.append(o.key))
    assert written == ["a", "b"]
    backwards, _ = _objects(inventory_report("src", "dest", [Row("b"), Row("a")], when=WHEN))
    with pytest.raises(InventoryError, match="out of order"):
        cut_sorted(backwards, 10, lambda i, o: None)


def test_partition_size_targets_keys_within_the_partition_limit() -> None:
    assert partition_size(1_000_000, 5_000, 64).per_partition == 15_625
    assert partition_size(1_000_000, 5_000, 64).partitions == 64
    assert partition_size(12_000, 5_000, 64).partitions == 3
    assert partition_size(0, 5_000, 64).partitions == 1


# Settings ---------------------------------------------------------------------------------------------


def test_inventory_settings_are_checked() -> None:
    base = {"source_bucket": "src", "backup_bucket": "bak"}
    settings = backup_settings(
        {**base, "listing_source": "inventory", "inventory_uri": "s3://dest/inv/src/cfg"}
    )
    assert settings.inventory_uri == "s3://dest/inv/src/cfg/" and settings.inventory_max_age_hours == 48
    assert backup_settings(base).listing_source == "list"
    with pytest.raises(SettingsError, match="listing_source 'bucket' is not one of list, inventory"):
        backup_settings({**base, "listing_source": "bucket"})
    with pytest.raises(SettingsError, match='listing_source "inventory" needs inventory_uri'):
        backup_settings({**base, "listing_source": "inventory"})
    with pytest.raises(SettingsError, match="inventory, not of source_bucket 'src'"):
        backup_settings({**base, "listing_source": "inventory", "inventory_uri": "s3://dest/inv/other/cfg/"})
    with pytest.raises(SettingsError, match="not the folder of an S3 Inventory configuration"):
        check_argument("inventory_uri", "s3://dest/")
    with pytest.raises(SettingsError, match="not the folder of an S3 Inventory configuration"):
        check_argument("inventory_uri", "https://dest/inv/src/cfg/")
    with pytest.raises(SettingsError, match="inventory_max_age_hours must be between 1 and"):
        check_argument("inventory_max_age_hours", 0)
    assert check_argument("inventory_max_age_hours", "24") == 24
