"""Bad input fails a run before anything is written, with a message that names the problem.

Two layers refuse bad input. Airflow checks each Param's JSON schema (type, enum, minimum...)
when the run is created: ``dag.test()`` raises ``ParamValidationError`` naming the Param and no
task runs. What the schema cannot express (bucket names and existence, access, reserved
prefixes, ISO instants, unknown Params, a non-empty target...) is refused by the ``validate``
task, the first of each DAG, which fails the run. Every case goes through a recording proxy:
not one write request may reach S3.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from airflow.sdk.exceptions import ParamValidationError

from tests.reliability.conftest import (
    PROXY_CONN_ID,
    TEXT,
    Obj,
    assert_succeeded,
    backup_run,
    differences,
    odd_keys,
    put,
    restore_run,
    run,
    seed,
    via,
)
from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import list_keys

pytestmark = pytest.mark.slow

PARAM_LAYER = "Param schema (dag.test raises ParamValidationError, no task runs)"
VALIDATE_LAYER = "validate task (the run fails in its first task)"
EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception): .+$")


@pytest.fixture
def buckets(s3: Any, bucket_names: Any) -> dict[str, str]:
    """A source with one object, an empty backup, a backup with one object (and a run file), a
    target name."""
    names = {role: bucket_names(role) for role in ("src", "bak", "full", "new")}
    for role in ("src", "bak", "full"):
        s3.create_bucket(Bucket=names[role])
    put(s3, names["src"], "a.txt", Obj(b"a", TEXT))
    put(s3, names["full"], "a.txt", Obj(b"a", TEXT))
    put(s3, names["full"], "_s3br/runs/s3_backup/old/report.json", Obj(b"{}", TEXT))  # a backup's
    return names


def backup_conf(names: dict[str, str], **conf: Any) -> dict[str, Any]:
    return {
        "source_bucket": names["src"],
        "backup_bucket": names["bak"],
        **via(PROXY_CONN_ID, "s3_backup"),
        **conf,
    }


def restore_conf(names: dict[str, str], **conf: Any) -> dict[str, Any]:
    base = {"backup_bucket": names["full"], "target_bucket": names["new"], "poll_interval_seconds": 1}
    return {**base, **via(PROXY_CONN_ID, "s3_restore"), **conf}


def exception_lines(output: str) -> list[str]:
    """The ``module.SomeError: message`` lines of the tracebacks a run logged."""
    return [line.strip() for line in output.splitlines() if EXCEPTION_LINE.match(line.strip())]


def assert_nothing_written(proxy: FaultProxy) -> None:
    writes = [(r.operation, r.bucket, r.key) for r in proxy.writes()]
    assert writes == [], writes


# The Param schema layer -------------------------------------------------------------------------

SCHEMA_CASES = [
    ("s3_backup", {"compare": "md5"}),
    ("s3_backup", {"tag_deleted": "yes"}),
    ("s3_backup", {"dry_run": "no"}),
    ("s3_backup", {"verify": 1}),
    ("s3_backup", {"multipart_threshold_mb": 1}),
    ("s3_backup", {"multipart_threshold_mb": "big"}),
    ("s3_backup", {"multipart_threshold_mb": 6000}),
    ("s3_backup", {"max_partitions": 0}),
    ("s3_backup", {"source_bucket": 123}),
    ("s3_backup", {"cloudwatch_namespace": None}),
    ("s3_restore", {"restore_tier": "Fast"}),
    ("s3_restore", {"restore_days": 0}),
    ("s3_restore", {"storage_class": "GLACIER"}),
    ("s3_restore", {"as_of": 20260101}),
    ("s3_restore", {"include_deleted": "yes"}),
    ("s3_restore", {"poll_interval_seconds": 0}),
    ("s3_restore", {"restore_timeout_minutes": -5}),
    ("s3_restore", {"max_partitions": 0}),
    ("s3_restore", {"multipart_threshold_mb": "big"}),
    ("s3_restore", {"target_bucket": "ab"}),
]


@pytest.mark.parametrize(
    ("dag_id", "bad"),
    [pytest.param(d, b, id=f"{d}-{next(iter(b))}={next(iter(b.values()))!r}") for d, b in SCHEMA_CASES],
)
def test_schema_violations_are_refused_before_the_run(
    dag_id: str, bad: dict[str, Any], buckets: dict[str, str], proxy: FaultProxy
) -> None:
    conf = backup_conf(buckets, **bad) if dag_id == "s3_backup" else restore_conf(buckets, **bad)
    name = next(iter(bad))

    with pytest.raises(ParamValidationError) as refused:
        run(dag_id, conf)

    assert name in str(refused.value), str(refused.value)
    assert proxy.records == []  # no task ran at all
    print(f"{dag_id} {bad}: refused by the {PARAM_LAYER}: {str(refused.value)[:160]}")


# The validate layer -----------------------------------------------------------------------------

# (dag_id, conf change, fault rules, what the message must name); "{src}" etc. are bucket names.
VALIDATE_CASES = {
    "backup-prefix-reserved": ("s3_backup", {"prefix": "_s3br/x"}, [], "prefix"),
    "backup-namespace-AWS": ("s3_backup", {"cloudwatch_namespace": "AWS/S3"}, [], "cloudwatch_namespace"),
    "backup-unknown-param": ("s3_backup", {"max_partition": 3}, [], "max_partition"),
    "backup-bucket-name-invalid": ("s3_backup", {"source_bucket": "Bad_Bucket"}, [], "Bad_Bucket"),
    "backup-source-missing": ("s3_backup", {"source_bucket": "{new}"}, [], "{new}"),
    "backup-backup-missing": ("s3_backup", {"backup_bucket": "{new}"}, [], "{new}"),
    "backup-source-denied": ("s3_backup", {}, [("HeadBucket", "{src}")], "{src}"),
    "backup-source-is-backup": ("s3_backup", {"backup_bucket": "{src}"}, [], "{src}"),
    "backup-backup-refuses-writes": ("s3_backup", {}, [("PutObject", "{bak}")], "refuses s3br's writes"),
    "backup-source-holds-reserved": ("s3_backup", {"source_bucket": "{full}"}, [], "'_s3br/'"),
    "backup-connection-unknown": ("s3_backup", {"backup_aws_conn_id": "s3br_nowhere"}, [], "s3br_nowhere"),
    "restore-as_of-yesterday": ("s3_restore", {"as_of": "yesterday"}, [], "as_of"),
    "restore-unknown-param": ("s3_restore", {"max_partition": 3}, [], "max_partition"),
    "restore-backup-missing": (
        "s3_restore",
        {"backup_bucket": "{new}", "target_bucket": "{bak}"},
        [],
        "{new}",
    ),
    "restore-backup-denied": ("s3_restore", {}, [("HeadBucket", "{full}")], "{full}"),
    "restore-target-denied": ("s3_restore", {"target_bucket": "{bak}"}, [("HeadBucket", "{bak}")], "{bak}"),
    "restore-target-is-backup": ("s3_restore", {"target_bucket": "{full}"}, [], "target_bucket"),
    "restore-target-not-empty": ("s3_restore", {"target_bucket": "{src}"}, [], "{src}"),
}


def filled(value: Any, names: dict[str, str]) -> Any:
    return value.format(**names) if isinstance(value, str) else value


@pytest.mark.parametrize("case", list(VALIDATE_CASES))
def test_bad_input_fails_in_validate_naming_it_and_writes_nothing(
    case: str,
    s3: Any,
    buckets: dict[str, str],
    proxy: FaultProxy,
    capfd: pytest.CaptureFixture[str],
) -> None:
    dag_id, change, denied, named = VALIDATE_CASES[case]
    change = {k: filled(v, buckets) for k, v in change.items()}
    named = filled(named, buckets)
    proxy.set_faults(
        [{"kind": "access_denied", "operation": op, "bucket": filled(b, buckets)} for op, b in denied]
    )
    conf = backup_conf(buckets, **change) if dag_id == "s3_backup" else restore_conf(buckets, **change)
    before = {b: list_keys(s3, b, include_reserved=True) for r, b in buckets.items() if r != "new"}

    result = run(dag_id, conf)
    errors = exception_lines("".join(capfd.readouterr()))

    assert result.state == "failed", result.tasks
    assert result.tasks["validate"] == "failed", result.tasks
    assert [t for t, state in result.tasks.items() if state == "success"] == [], result.tasks
    assert any(named in line for line in errors), (named, errors)
    assert_nothing_written(proxy)
    after = {b: list_keys(s3, b, include_reserved=True) for r, b in buckets.items() if r != "new"}
    assert after == before
    assert buckets["new"] not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    print(f"{case}: refused by the {VALIDATE_LAYER}: {next(e for e in errors if named in e)[:200]}")


# Keys that need URL encoding are not bad input --------------------------------------------------


def test_keys_needing_url_encoding_are_backed_up_and_restored(
    s3: Any, bucket_names: Any, proxy: FaultProxy
) -> None:
    source, backup, target = bucket_names("src"), bucket_names("bak"), bucket_names("new")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    objects = odd_keys() | {
        "q/what?.txt": Obj(b"question", TEXT),
        "h/#hash#.txt": Obj(b"hash", TEXT),
        "p/100%.txt": Obj(b"percent", TEXT, {"p": "100%"}),
        "s/ leading and trailing ": Obj(b"spaces", TEXT),
        "u/ünïcødé ✓ 中文.txt": Obj("✓".encode(), TEXT, {}, {"u": "yes"}),
    }
    seed(s3, source, objects)

    backed_up = backup_run(source, backup, **via(PROXY_CONN_ID, "s3_backup"))
    assert_succeeded(backed_up)
    assert sorted(list_keys(s3, backup)) == sorted(objects)
    assert differences(s3, backup, objects) == {}

    restored = restore_run(backup, target, **via(PROXY_CONN_ID, "s3_restore"))
    assert_succeeded(restored)
    assert sorted(list_keys(s3, target, include_reserved=True)) == sorted(objects)
    assert differences(s3, target, objects) == {}
