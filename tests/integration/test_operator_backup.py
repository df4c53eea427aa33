"""The backup operators' execute() against moto, with the minimal context each one reads."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from s3br_provider.core.manifest import read_manifest, split_s3_uri
from s3br_provider.core.partitions import KeyRange
from s3br_provider.core.stats import encode_stats, stats_uri
from s3br_provider.hooks.s3_bucket import MiB, S3BucketHook
from s3br_provider.operators.diff import S3DiffPartitionOperator
from s3br_provider.operators.restore import S3RestoreSelectOperator
from tests.integration.conftest import PROXY_CONN_ID
from tests.support import steps
from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import list_keys, snapshot
from tests.support.steps import copy, diff, plan, run_uri, tag, validate

PROXIED = {"source_aws_conn_id": PROXY_CONN_ID, "backup_aws_conn_id": PROXY_CONN_ID}
PROXIED_RESTORE = {"backup_aws_conn_id": PROXY_CONN_ID, "target_aws_conn_id": PROXY_CONN_ID}
SOURCE_OBJECTS: dict[str, tuple[bytes, dict[str, str]]] = {
    "docs/readme.txt": (b"read me\n" * 50, {"team": "blue", "note": "a b+c"}),
    "docs/ünï code+plus %.txt": (b"unicode", {"lang": "Grüße"}),
    "emoji/🚀 launch": (b"\xf0\x9f\x9a\x80" * 10, {}),
    "folder/": (b"", {}),
    "gone/soon.txt": (b"soon gone", {"keep": "me", "owner": "ops"}),
    **{f"data/{i:02d}": (os.urandom(100 + i), {"n": str(i)}) for i in range(8)},
}
DATA_WRITES = {"CopyObject", "UploadPartCopy", "CreateMultipartUpload", "PutObjectTagging"}


def put_objects(s3: Any, bucket: str, objects: dict[str, tuple[bytes, dict[str, str]]]) -> None:
    for key, (body, tags) in objects.items():
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType="text/plain" if key.endswith(".txt") else "application/octet-stream",
            Metadata={"origin": "test", "size": str(len(body))},
            Tagging=urlencode(tags),
        )


def assert_backup_equals_source(s3: Any, source: str, backup: str) -> None:
    keys = list_keys(s3, source)
    assert list_keys(s3, backup) == keys
    for key in keys:
        src, dst = snapshot(s3, source, key), snapshot(s3, backup, key)
        assert (dst.body, dst.content_type, dst.metadata, dst.tags) == (
            src.body,
            src.content_type,
            src.metadata,
            src.tags,
        ), key


def keys_of(uri: str) -> str:
    return split_s3_uri(uri)[1]


@pytest.fixture
def buckets(s3: Any, bucket_names: Callable[[str], str]) -> SimpleNamespace:
    """A source with SOURCE_OBJECTS (and one 6 MiB object) and an empty backup bucket."""
    names = SimpleNamespace(source=bucket_names("src"), backup=bucket_names("bak"))
    s3.create_bucket(Bucket=names.source)
    s3.create_bucket(Bucket=names.backup)
    put_objects(s3, names.source, SOURCE_OBJECTS)
    put_objects(s3, names.source, {"big/six-mib.bin": (os.urandom(6 * MiB), {"size": "big"})})
    return names


# validate ------------------------------------------------------------------------------------


def test_validate_returns_settings_and_writes_nothing(
    buckets: SimpleNamespace, fault_proxy: FaultProxy
) -> None:
    settings = validate(buckets.source, buckets.backup, compare="checksum", **PROXIED)
    assert settings["source_bucket"] == buckets.source and settings["backup_bucket"] == buckets.backup
    assert settings["compare"] == "checksum" and settings["dry_run"] is False
    assert run_uri(settings) == f"s3://{buckets.backup}/_s3br/runs/adhoc_airflow/manual__x"
    assert fault_proxy.writes() == []
    # Both buckets' HeadBucket, and one listing of the source's _s3br/ (a source holding s3br's
    # reserved prefix is refused).
    assert fault_proxy.operations() == {"HeadBucket": 2, "ListObjectsV2": 1}


def test_validate_finds_reserved_keys_behind_pages_without_keys(
    s3: Any, buckets: SimpleNamespace, fault_proxy: FaultProxy
) -> None:
    """S3 may answer truncated pages holding no key (over delete markers): validate reads on."""
    s3.put_object(Bucket=buckets.source, Key="_s3br/runs/x.json", Body=b"{}")
    fault_proxy.set_faults([{"operation": "ListObjectsV2", "kind": "short_page", "keep": 0, "count": 2}])
    with pytest.raises(AirflowFailException, match="first: '_s3br/runs/x.json'"):
        validate(buckets.source, buckets.backup, **PROXIED)
    assert fault_proxy.operations()["ListObjectsV2"] == 3 and fault_proxy.writes() == []


def test_validate_missing_source_bucket(buckets: SimpleNamespace, bucket_names: Callable[[str], str]) -> None:
    missing = bucket_names("nosuch")
    with pytest.raises(AirflowFailException, match=f"source_bucket '{missing}' does not exist") as error:
        validate(missing, buckets.backup)
    assert type(error.value) is not AirflowFailException  # a subclass: InvalidRunError
    with pytest.raises(AirflowFailException, match=f"backup_bucket '{missing}' does not exist"):
        validate(buckets.source, missing)


def test_validate_source_equal_to_backup(buckets: SimpleNamespace, fault_proxy: FaultProxy) -> None:
    with pytest.raises(AirflowFailException, match=f"both '{buckets.source}'"):
        validate(buckets.source, buckets.source, **PROXIED)
    assert fault_proxy.records == []  # rejected before any request


def test_validate_bad_compare_names_the_param(buckets: SimpleNamespace, fault_proxy: FaultProxy) -> None:
    with pytest.raises(AirflowFailException, match="compare 'sha1'"):
        validate(buckets.source, buckets.backup, compare="sha1", **PROXIED)
    assert fault_proxy.records == []


def test_validate_names_the_variable_an_empty_bucket_fell_back_on(buckets: SimpleNamespace) -> None:
    with pytest.raises(
        AirflowFailException, match="^source_bucket is empty and the Variable s3br_src is not set$"
    ):
        validate("", buckets.backup, source_bucket_variable="s3br_src")
    with pytest.raises(AirflowFailException, match="^source_bucket is required"):
        validate("", buckets.backup)


def test_validate_converts_rendered_templates(buckets: SimpleNamespace) -> None:
    """Templated arguments arrive as strings unless the DAG renders native objects."""
    settings = validate(buckets.source, buckets.backup, dry_run="True", max_partitions="8", verify="false")
    assert (settings["dry_run"], settings["max_partitions"], settings["verify"]) == (True, 8, False)
    with pytest.raises(AirflowFailException, match="max_partitions must be a whole number, got 'many'"):
        validate(buckets.source, buckets.backup, max_partitions="many")


# plan ----------------------------------------------------------------------------------------


def covered_keys(settings: dict[str, Any], partitions: list[dict[str, Any]]) -> list[str]:
    hook = S3BucketHook(aws_conn_id="aws_default")
    keys: list[str] = []
    for partition in partitions:
        key_range = KeyRange.from_dict(partition)
        keys += [o.key for o in hook.iter_objects(settings["source_bucket"], settings["prefix"], key_range)]
    return keys


def assert_contiguous(partitions: list[dict[str, Any]]) -> None:
    assert [p["index"] for p in partitions] == list(range(len(partitions)))
    assert partitions[0]["start_after"] is None and partitions[-1]["end"] is None
    for before, after in zip(partitions, partitions[1:], strict=False):
        assert before["end"] == after["start_after"]


def test_plan_from_common_prefixes(s3: Any, bucket_names: Callable[[str], str]) -> None:
    source, backup = bucket_names("src"), bucket_names("bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    keys = ["0-root", "zz-root"] + [f"p{i}/{name}" for i in range(10) for name in ("", "a", "b/c")]
    put_objects(s3, source, {key: (b"x", {}) for key in keys})
    settings = validate(source, backup, max_partitions=4)
    partitions = plan(settings, target_keys=3)  # would be ten ranges without max_partitions
    assert len(partitions) == 4
    assert_contiguous(partitions)
    covered = covered_keys(settings, partitions)
    assert sorted(covered) == sorted(keys) and len(covered) == len(keys)
    assert all(covered_keys(settings, [p]) for p in partitions)  # no empty partition


def test_plan_descends_a_single_common_prefix(s3: Any, bucket_names: Callable[[str], str]) -> None:
    source, backup = bucket_names("src"), bucket_names("bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    keys = [f"root/{i}/k" for i in range(6)]
    put_objects(s3, source, {key: (b"x", {}) for key in keys})
    settings = validate(source, backup, max_partitions=3)
    partitions = plan(settings, target_keys=1)
    assert len(partitions) == 3
    assert all(p["end"] is None or p["end"].startswith("root/") for p in partitions)
    assert sorted(covered_keys(settings, partitions)) == keys


@pytest.mark.parametrize("fast_path", [True, False])
def test_probes_and_listings_read_on_through_short_pages(
    s3: Any, bucket_names: Callable[[str], str], fault_proxy: FaultProxy, fast_path: bool
) -> None:
    """S3 may answer a truncated page with fewer keys than asked, none over many delete
    markers: a planning probe reads on until it has the page it asked for (a short page is not
    the end of the keys), and a partition's listing, direct or through boto3, sees every key."""
    from s3br_provider.operators.plan import listing_probe

    bucket = bucket_names("short")
    s3.create_bucket(Bucket=bucket)
    keys = [f"k{i:03d}" for i in range(30)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    short = [
        {"operation": "ListObjectsV2", "kind": "short_page", "keep": 0, "count": 2},
        {"operation": "ListObjectsV2", "kind": "short_page", "keep": 3, "count": 2},
    ]
    hook = S3BucketHook(aws_conn_id=PROXY_CONN_ID, fast_path=fast_path)
    fault_proxy.set_faults(short)
    probe = listing_probe(hook, bucket, "")
    assert probe(None, 10) == keys[:10]
    assert probe(keys[9], 10) == keys[10:20]
    fault_proxy.set_faults(short)
    assert [obj.key for obj in hook.iter_objects(bucket, "", KeyRange(keys[4], None))] == keys[5:]
    assert sum(r.faulted_kind == "short_page" for r in fault_proxy.records) == 8


def with_statistics(
    s3: Any, bucket_names: Callable[[str], str], copy_fraction: float | None = None
) -> tuple[str, str]:
    """A source and a backup bucket whose statistics sample 100,000 keys ``k0000``..``k0999``
    (100 keys each), and the last run's ``copy_fraction``."""
    source, backup = bucket_names("src"), bucket_names("bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    samples = [(f"k{i:04d}", 100) for i in range(1000)]
    bucket, key = split_s3_uri(stats_uri(backup, ""))
    s3.put_object(Bucket=bucket, Key=key, Body=encode_stats("", samples, copy_fraction))
    return source, backup


def test_plan_from_statistics(s3: Any, bucket_names: Callable[[str], str]) -> None:
    source, backup = with_statistics(s3, bucket_names)
    settings = validate(source, backup)
    partitions = plan(settings, target_keys=20_000)
    assert [p["end"] for p in partitions] == ["k0199", "k0399", "k0599", "k0799", None]
    assert_contiguous(partitions)
    assert len(plan(settings, target_keys=25_000)) == 4
    assert len(plan(validate(source, backup, max_partitions=3), target_keys=20_000)) == 3
    # Statistics of another prefix do not apply (and that prefix holds no keys).
    assert plan(validate(source, backup, prefix="other/")) == [{"index": 0, "start_after": None, "end": None}]


# 100,000 keys, 20,000 keys per partition when every key is copied
@pytest.mark.parametrize(
    ("copy_fraction", "partitions"),
    [(1.0, 5), (None, 1), (0.0, 1), (0.25, 2), (0.5, 3)],
)
def test_backup_plan_sizes_partitions_by_the_last_runs_change_rate(
    s3: Any, bucket_names: Callable[[str], str], copy_fraction: float | None, partitions: int
) -> None:
    """A backup that mostly lists gets fewer, larger partitions; a restore (no flag) does not."""
    source, backup = with_statistics(s3, bucket_names, copy_fraction)
    settings = validate(source, backup)

    planned = plan(settings, target_keys=20_000, size_by_change_rate=True)

    assert len(planned) == partitions
    assert_contiguous(planned)
    assert len(plan(settings, target_keys=20_000)) == 5


def test_backup_plan_splits_a_partition_sized_for_listing(
    s3: Any, bucket_names: Callable[[str], str]
) -> None:
    """One partition of 100,000 keys (the last run copied nothing) is listed as five sub-ranges."""
    source, backup = with_statistics(s3, bucket_names, 0.0)

    (planned,) = plan(validate(source, backup), target_keys=20_000, size_by_change_rate=True)
    assert planned["list_splits"] == ["k0199", "k0399", "k0599", "k0799"]
    assert all("list_splits" not in p for p in plan(validate(source, backup), target_keys=20_000))


def test_a_split_partition_diffs_as_one_listing(
    s3: Any, bucket_names: Callable[[str], str], put_many: Any, fault_proxy: FaultProxy
) -> None:
    """Listed as four sub-ranges side by side, a partition gives the same manifests and counts
    as listed whole; each sub-range is a listing of its own from its split point."""
    source, backup = bucket_names("src"), bucket_names("bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    keys = [f"d{i % 7}/k{i:05d}" for i in range(2_600)]
    put_many(source, {k: b"new" if k.endswith("7") else b"" for k in keys})
    put_many(backup, [k for k in keys if not k.endswith("3")] + ["d0/gone-1", "d5/gone-2", "d6/zz"])
    partition = {"index": 0, "start_after": "d0/k00100", "end": None}
    splits = ["d0/zzz", "d3/k01000", "d5/k00500"]

    whole = diff(validate(source, backup, run_id="manual__whole", **PROXIED), partition)
    fault_proxy.reset_records()
    split = diff(
        validate(source, backup, run_id="manual__split", **PROXIED), {**partition, "list_splits": splits}
    )

    counted = ("source_objects", "backup_objects", "new", "changed", "unchanged", "vanished", "bytes_to_copy")
    assert {k: split[k] for k in counted} == {k: whole[k] for k in counted}
    assert (whole["vanished"], whole["new"], whole["changed"]) == (2, 259, 258)
    hook = S3BucketHook(aws_conn_id="aws_default")
    for manifest in ("copy_manifest", "vanished_manifest"):
        assert list(read_manifest(hook, split[manifest])) == list(read_manifest(hook, whole[manifest]))
    first_pages = {
        (r.bucket, r.query.get("start-after"))
        for r in fault_proxy.records
        if r.operation == "ListObjectsV2" and "continuation-token" not in r.query
    }
    for bucket in (source, backup):
        assert {(bucket, point) for point in ["d0/k00100", *splits]} <= first_pages


def test_a_split_partition_selects_as_one_listing(
    s3: Any, bucket_names: Callable[[str], str], put_many: Any, fault_proxy: FaultProxy
) -> None:
    """A restore's select over a split partition writes the manifest it writes listed whole."""
    backup = bucket_names("bak")
    s3.create_bucket(Bucket=backup)
    put_many(backup, {f"d{i % 5}/k{i:05d}": b"x" * (i % 3) for i in range(2_300)})
    for key in ("d1/k00001", "d4/k02004"):
        s3.put_object_tagging(
            Bucket=backup, Key=key, Tagging={"TagSet": [{"Key": "Deleted", "Value": "True"}]}
        )
    partition = {"index": 0, "start_after": None, "end": "d4/k02100"}
    splits = ["d1/k00500", "d2/k01000", "d3/k00003"]

    whole = steps.select(
        steps.validate_restore(backup, bucket_names("tgt"), run_id="manual__whole", **PROXIED_RESTORE),
        partition,
    )
    fault_proxy.reset_records()
    run = steps.validate_restore(backup, bucket_names("tgt"), run_id="manual__split", **PROXIED_RESTORE)
    split = steps.select(run, {**partition, "list_splits": splits})

    assert (split["selected"], split["skipped_deleted"]) == (whole["selected"], whole["skipped_deleted"])
    assert whole["skipped_deleted"] == 2 and whole["selected"] > 2_000
    hook = S3BucketHook(aws_conn_id="aws_default")
    assert list(read_manifest(hook, split["copy_manifest"])) == list(
        read_manifest(hook, whole["copy_manifest"])
    )
    first_pages = {
        r.query.get("start-after")
        for r in fault_proxy.records
        if r.operation == "ListObjectsV2" and r.bucket == backup and "continuation-token" not in r.query
    }
    assert set(splits) <= first_pages


# diff -> copy -> tag -------------------------------------------------------------------------


def test_diff_copy_tag_flow(s3: Any, buckets: SimpleNamespace, fault_proxy: FaultProxy) -> None:
    settings = validate(buckets.source, buckets.backup, multipart_threshold_mb=5, **PROXIED)
    folder = run_uri(settings)
    work = diff(settings)
    sources = list_keys(s3, buckets.source)
    sizes = sum(len(body) for body, _ in SOURCE_OBJECTS.values()) + 6 * MiB
    assert (work["source_objects"], work["backup_objects"], work["new"]) == (len(sources), 0, len(sources))
    assert (work["changed"], work["unchanged"], work["vanished"]) == (0, 0, 0)
    assert work["bytes_to_copy"] == sizes
    assert work["copy_manifest"] == f"{folder}/copy/p00000.jsonl.gz"
    assert work["vanished_manifest"] == ""
    reserved = list_keys(s3, buckets.backup, include_reserved=True)
    assert {keys_of(work["copy_manifest"]), keys_of(work["samples_uri"])} <= set(reserved)
    hook = S3BucketHook(aws_conn_id="aws_default")
    assert [r["k"] for r in read_manifest(hook, work["copy_manifest"])] == sources

    fault_proxy.reset_records()
    done = copy(settings, work)
    assert (done["copied"], done["bytes"], done["failed"], done["skipped_done"]) == (
        len(sources),
        sizes,
        0,
        0,
    )
    assert_backup_equals_source(s3, buckets.source, buckets.backup)
    ops = fault_proxy.operations()
    assert (ops["CopyObject"], ops["UploadPartCopy"]) == (len(sources) - 1, 2)

    # The source object vanishes: the backup keeps it, tagged, with its old tags.
    s3.delete_object(Bucket=buckets.source, Key="gone/soon.txt")
    settings = validate(buckets.source, buckets.backup, run_id="manual__y", **PROXIED)
    work = diff(settings)
    assert (work["vanished"], work["unchanged"], work["new"]) == (1, len(sources) - 1, 0)
    assert work["copy_manifest"] == ""
    assert work["vanished_manifest"] == f"{run_uri(settings)}/vanished/p00000.jsonl.gz"
    assert keys_of(work["vanished_manifest"]) in list_keys(s3, buckets.backup, include_reserved=True)
    assert copy(settings, work)["copied"] == 0
    tagged = tag(settings, work)
    assert (tagged["tagged"], tagged["already_tagged"], tagged["failed"]) == (1, 0, 0)
    gone = snapshot(s3, buckets.backup, "gone/soon.txt")
    assert gone.body == b"soon gone"
    deleted_at = gone.tags.pop("DeletedAt")
    assert gone.tags == {"keep": "me", "owner": "ops", "Deleted": "True"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d", deleted_at)
    age = datetime.now(UTC) - datetime.fromisoformat(deleted_at).replace(tzinfo=UTC)
    assert 0 <= age.total_seconds() < 120

    # A later run leaves the first DeletedAt alone (here: one set on an earlier day).
    first_marked = {"keep": "me", "owner": "ops", "Deleted": "True", "DeletedAt": "2020-01-02T03:04"}
    S3BucketHook(aws_conn_id="aws_default").put_tags(buckets.backup, "gone/soon.txt", first_marked)
    settings = validate(buckets.source, buckets.backup, run_id="manual__z", **PROXIED)
    work = diff(settings)
    fault_proxy.reset_records()
    again = tag(settings, work)
    assert (again["tagged"], again["already_tagged"]) == (0, 1)
    assert snapshot(s3, buckets.backup, "gone/soon.txt").tags == first_marked
    assert fault_proxy.operations()["PutObjectTagging"] == 0


def test_nothing_to_do_rewrites_nothing(s3: Any, buckets: SimpleNamespace, fault_proxy: FaultProxy) -> None:
    settings = validate(buckets.source, buckets.backup, multipart_threshold_mb=5, **PROXIED)
    copy(settings, diff(settings))
    before = {key: snapshot(s3, buckets.backup, key, body=False) for key in list_keys(s3, buckets.backup)}
    fault_proxy.reset_records()
    settings = validate(buckets.source, buckets.backup, run_id="manual__again", **PROXIED)
    work = diff(settings)
    assert (work["new"], work["changed"], work["vanished"]) == (0, 0, 0)
    assert work["unchanged"] == len(before) and work["copy_manifest"] == ""
    assert copy(settings, work)["copied"] == 0
    assert tag(settings, work)["tagged"] == 0
    assert {w.operation for w in fault_proxy.writes()} == {"PutObject"}
    assert all(w.key.startswith("_s3br/") for w in fault_proxy.writes())  # run files only
    after = {key: snapshot(s3, buckets.backup, key, body=False) for key in list_keys(s3, buckets.backup)}
    assert after == before


def test_object_back_in_source_is_copied_again(s3: Any, buckets: SimpleNamespace) -> None:
    settings = validate(buckets.source, buckets.backup, multipart_threshold_mb=5)
    copy(settings, diff(settings))
    s3.delete_object(Bucket=buckets.source, Key="gone/soon.txt")
    settings = validate(buckets.source, buckets.backup, run_id="manual__2")
    tag(settings, diff(settings))
    assert snapshot(s3, buckets.backup, "gone/soon.txt").tags["Deleted"] == "True"
    put_objects(s3, buckets.source, {"gone/soon.txt": (b"back again, longer", {"keep": "again"})})
    settings = validate(buckets.source, buckets.backup, run_id="manual__3")
    work = diff(settings)
    assert (work["changed"], work["vanished"]) == (1, 0)
    assert copy(settings, work)["copied"] == 1
    src, dst = snapshot(s3, buckets.source, "gone/soon.txt"), snapshot(s3, buckets.backup, "gone/soon.txt")
    assert (dst.body, dst.content_type, dst.metadata) == (src.body, src.content_type, src.metadata)
    # On AWS the copy carries exactly the source's tags, so the marker is gone. moto keeps the old
    # tags of an overwritten destination (see test_copy_over_a_tagged_object_keeps_only_source_tags).
    assert dst.tags.items() >= src.tags.items()


def test_dry_run_writes_nothing(s3: Any, buckets: SimpleNamespace, fault_proxy: FaultProxy) -> None:
    put_objects(s3, buckets.backup, {"old/only-in-backup": (b"old", {}), "docs/readme.txt": (b"older", {})})
    before = list_keys(s3, buckets.backup, include_reserved=True)
    settings = validate(buckets.source, buckets.backup, dry_run=True, **PROXIED)
    work = diff(settings)
    total = len(list_keys(s3, buckets.source))
    assert (work["new"], work["changed"], work["vanished"]) == (total - 1, 1, 1)
    assert (work["copy_manifest"], work["vanished_manifest"]) == ("", "")
    assert "samples_uri" not in work
    assert copy(settings, work)["copied"] == 0
    assert tag(settings, work)["tagged"] == 0
    assert fault_proxy.writes() == []
    assert list_keys(s3, buckets.backup, include_reserved=True) == before


# copy_batch: retries and failures ------------------------------------------------------------


@pytest.fixture
def twenty(s3: Any, bucket_names: Callable[[str], str], fault_proxy: FaultProxy) -> SimpleNamespace:
    """A source of 20 small objects, an empty backup, and the settings and diff of a run."""
    names = SimpleNamespace(source=bucket_names("src"), backup=bucket_names("bak"))
    s3.create_bucket(Bucket=names.source)
    s3.create_bucket(Bucket=names.backup)
    names.keys = [f"obj/{i:02d} ü+" for i in range(19)] + ["bad/ key+ü %"]
    put_objects(s3, names.source, {key: (key.encode() * 3, {"i": "x"}) for key in names.keys})
    names.settings = validate(names.source, names.backup, **PROXIED)
    names.work = diff(names.settings)
    assert names.work["new"] == 20
    return names


def test_retried_copy_skips_finished_work(s3: Any, twenty: SimpleNamespace, fault_proxy: FaultProxy) -> None:
    hook = S3BucketHook(aws_conn_id="aws_default")
    listing = {o.key: o for o in hook.iter_objects(twenty.source, "", KeyRange())}
    finished = sorted(twenty.keys)[::2] + sorted(twenty.keys)[1:5:2]
    assert len(set(finished)) == 12
    for key in finished:
        hook.copy(listing[key], twenty.source, twenty.backup, multipart_threshold=5 * MiB)
    stale = s3.create_multipart_upload(Bucket=twenty.backup, Key=twenty.keys[0])["UploadId"]
    fault_proxy.reset_records()
    result = copy(twenty.settings, twenty.work, try_number=2)
    assert (result["skipped_done"], result["copied"], result["failed"]) == (12, 8, 0)
    aborted = [r for r in fault_proxy.records if r.operation == "AbortMultipartUpload"]
    assert [(r.key, r.query["uploadId"]) for r in aborted] == [(twenty.keys[0], stale)]
    assert s3.list_multipart_uploads(Bucket=twenty.backup).get("Uploads", []) == []
    copies = [r for r in fault_proxy.records if r.operation == "CopyObject"]
    assert len(copies) == 8
    assert sorted(r.key for r in copies) == sorted(set(twenty.keys) - set(finished))
    assert_backup_equals_source(s3, twenty.source, twenty.backup)


def test_one_failing_object_does_not_stop_the_others(
    s3: Any, twenty: SimpleNamespace, fault_proxy: FaultProxy
) -> None:
    fault_proxy.set_faults([{"kind": "access_denied", "operation": "CopyObject", "key": "bad/ key+ü %"}])
    with pytest.raises(AirflowException, match=re.escape("'bad/ key+ü %' (AccessDenied)")) as error:
        copy(twenty.settings, twenty.work)
    assert "1 object(s) could not be copied" in str(error.value)
    assert list_keys(s3, twenty.backup) == sorted(k for k in twenty.keys if not k.startswith("bad/"))
    assert [r.key for r in fault_proxy.faulted()] == ["bad/ key+ü %"]  # AccessDenied is not retried


# output_keys ---------------------------------------------------------------------------------


def test_diff_and_select_push_only_their_output_keys(s3: Any, buckets: SimpleNamespace) -> None:
    """Every result holds every key ``output_keys`` may name; named keys alone are pushed."""
    run = validate(buckets.source, buckets.backup)
    task_context = steps.context(run["run_id"])
    found = diff(run, task_context=task_context, output_keys=["copy_manifest", "to_copy"])

    assert S3DiffPartitionOperator.OUTPUT_KEYS <= set(found)
    assert task_context["ti"].pushed == {"copy_manifest": found["copy_manifest"], "to_copy": found["to_copy"]}
    assert found["to_copy"] == len(SOURCE_OBJECTS) + 1
    copy(run, found)

    restore = steps.validate_restore(buckets.backup, "output-keys-target", run_id="manual__keys")
    task_context = steps.context(restore["run_id"])
    selected = steps.select(restore, task_context=task_context, output_keys=["archived_manifest"])

    assert S3RestoreSelectOperator.OUTPUT_KEYS <= set(selected)
    assert selected["selected"] == len(SOURCE_OBJECTS) + 1
    assert task_context["ti"].pushed == {"archived_manifest": ""}


def test_an_unknown_output_key_fails_when_the_dag_is_built() -> None:
    with pytest.raises(ValueError, match=r"diff: output_keys names \['to_kopy'\], not keys of its result"):
        S3DiffPartitionOperator(task_id="diff", source_bucket="a", backup_bucket="b", output_keys=["to_kopy"])
    operator = S3DiffPartitionOperator(task_id="diff", source_bucket="a", backup_bucket="b")
    assert operator.multiple_outputs is True
    assert operator.output_keys is None
