"""Support for the reliability and security tests.

A recording fault proxy, whole-DAG runs with every Param spelled out, an object-by-object model
of a bucket, run artefacts (captured output, XComs, task tries, report.json), and one shared,
recorded scenario: a backup, changes and deletions, a second backup, two backup objects moved to
GLACIER, and a restore ``as_of`` -- all under 10% injected faults, through a dedicated
connection that carries marker credentials. ``test_faults`` checks its data, ``test_secrets``
its output, ``test_least_privilege`` its requests.
"""

from __future__ import annotations

import glob
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest

from tests.support.dag_runs import DAGS_FOLDER, RunResult
from tests.support.fault_proxy import FaultProxy, RequestRecord
from tests.support.s3 import Obj, aws_conn_env, list_keys, put, seed, snapshot

__all__ = ["Obj", "put", "seed"]  # re-exported for the reliability tests

PROXY_CONN_ID = "s3br_proxy"
MiB = 1024 * 1024
TEXT = "text/plain; charset=utf-8"
MARKER_TAGS = ("Deleted", "DeletedAt")
COPY_OPERATIONS = ("CopyObject", "UploadPartCopy", "CompleteMultipartUpload")
QUICK_RETRY = timedelta(seconds=1)


# Param defaults and runs ------------------------------------------------------------------------


@cache
def param_defaults(dag_id: str) -> dict[str, Any]:
    """The Params' declared defaults, from a fresh parse of the DAG file (in-process,
    ``dag.test()`` writes each run's conf into a DAG's ``Param`` objects: a DAG object that ran
    no longer shows its defaults)."""
    params = fresh_dag(dag_id).params
    return {name: params.get_param(name).value for name in params if params.get_param(name).has_value}


def full_conf(dag_id: str, **conf: Any) -> dict[str, Any]:
    """Every Param with its default, overridden by ``conf`` (so no run inherits another's)."""
    return {**param_defaults(dag_id), **conf}


def fresh_dag(dag_id: str) -> Any:
    """Parse the DAG file anew, so a run changes no DAG object another test uses."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.path.join(DAGS_FOLDER, f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def run(dag_id: str, conf: dict[str, Any]) -> RunResult:
    """Run a freshly parsed DAG to the end with every Param set; retry delays of 1 s.

    ``dag.test()`` waits retry delays (30 s, exponential) in real time. The number of tries --
    what the tests count -- stays the DAG's own; only the wait between them shrinks.
    """
    dag = fresh_dag(dag_id)
    for task in dag.tasks:
        if task.retries:
            task.retry_delay = QUICK_RETRY
    dag_run = dag.test(run_conf=full_conf(dag_id, **conf))
    tasks = {}
    for ti in dag_run.get_task_instances():
        tasks[ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"] = str(ti.state)
    return RunResult(state=str(dag_run.state), tasks=tasks, run_id=dag_run.run_id)


def backup_run(source: str, backup: str, **conf: Any) -> RunResult:
    return run("s3_backup", {"source_bucket": source, "backup_bucket": backup, **conf})


def restore_run(backup: str, target: str, **conf: Any) -> RunResult:
    return run(
        "s3_restore", {"backup_bucket": backup, "target_bucket": target, "poll_interval_seconds": 1, **conf}
    )


def via(conn_id: str, dag_id: str) -> dict[str, str]:
    """conf that sends every request of a run through one connection."""
    if dag_id == "s3_backup":
        return {"source_aws_conn_id": conn_id, "backup_aws_conn_id": conn_id}
    return {"backup_aws_conn_id": conn_id, "target_aws_conn_id": conn_id}


def assert_succeeded(result: RunResult) -> None:
    assert result.state == "success", result.failed_tasks()
    assert result.failed_tasks() == [], result.tasks


# Objects ----------------------------------------------------------------------------------------


def odd_keys() -> dict[str, Obj]:
    """Keys that need URL encoding or trip tools up, with metadata and tags."""
    return {
        "odd/with space/a b.txt": Obj(b"spaces", TEXT, {"k": "v w"}, {"tag with space": "v w"}),
        "odd/plus+sign+.txt": Obj(b"plus", TEXT, {"p": "a+b"}, {"p": "a+b"}),
        "odd/percent%20and%25.txt": Obj(b"percent", TEXT, {}, {"pct": "a=b"}),
        "odd/query?x=1&y=2#frag": Obj(b"query and fragment", TEXT),
        "odd/données/été.csv": Obj("é,ü\n".encode(), "text/csv; charset=utf-8", {"lang": "fr"}),
        "odd/emoji 😀🚀.bin": Obj("🎉".encode() * 3, "application/x-emoji", {}, {"fun": "yes"}),
        "odd/日本語/ファイル.txt": Obj("こんにちは".encode(), TEXT, {}, {"lang": "ja"}),
        "odd/tilde~quote'<>&.txt": Obj(b"punctuation", TEXT, {"q": "'"}),
        "odd/folder/": Obj(b"", "application/x-directory"),
        "odd/empty": Obj(b"", "application/x-empty", {"kind": "marker"}, {"zero": "yes"}),
    }


def without_marker(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k not in MARKER_TAGS}


def differences(s3: Any, bucket: str, expected: dict[str, Obj], *, strip_marker: bool = False) -> dict:
    """Keys of ``expected`` that ``bucket`` lacks or holds differently (bytes, Content-Type,
    user metadata, tags); ``strip_marker`` ignores Deleted/DeletedAt."""
    present = set(list_keys(s3, bucket))
    found: dict[str, Any] = {}
    for key, obj in sorted(expected.items()):
        if key not in present:
            found[key] = "missing"
            continue
        snap = snapshot(s3, bucket, key)
        tags = without_marker(snap.tags) if strip_marker else snap.tags
        got = (snap.body, snap.content_type, snap.metadata, tags)
        want = (obj.body, obj.content_type, obj.metadata, obj.tags)
        if got != want:
            found[key] = {"got": _shown(got), "want": _shown(want)}
    return found


def _shown(parts: tuple[Any, ...]) -> tuple[Any, ...]:
    body = parts[0] if len(parts[0]) <= 48 else f"<{len(parts[0])} bytes>"
    return (body, *parts[1:])


# Requests ---------------------------------------------------------------------------------------


def forwarded(records: list[RequestRecord], operation: str | None = None) -> list[RequestRecord]:
    """Requests that reached moto (``operation`` None: all of them)."""
    return [r for r in records if r.forwarded and operation in (None, r.operation)]


def fault_rate(records: list[RequestRecord]) -> float:
    """Share of S3 requests a fault rule broke (``slow`` does not break a request)."""
    s3_records = [r for r in records if r.operation not in ("MotoApi", "PutMetricData")]
    broken = [r for r in s3_records if r.faulted_kind not in (None, "slow")]
    return len(broken) / max(1, len(s3_records))


def fault_kinds(records: list[RequestRecord]) -> Counter[str]:
    return Counter(f"{r.faulted_kind}:{r.operation}" for r in records if r.faulted_kind)


def mixed_faults(rate: float = 0.10) -> list[dict[str, Any]]:
    """About ``rate`` of every S3 request broken: SlowDown, InternalError or a dropped
    connection on any operation, and ``200 OK`` with an error body on the copy operations --
    the first of each copy operation for certain, then at random."""
    each = 1 - (1 - rate) ** (1 / 3)  # three independent rules on every operation make `rate`
    rules: list[dict[str, Any]] = [
        {"kind": "error_200", "operation": op, "count": 1} for op in COPY_OPERATIONS
    ]
    rules += [{"kind": "error_200", "operation": op, "rate": rate / 4} for op in COPY_OPERATIONS]
    rules += [{"kind": kind, "operation": "*", "rate": each} for kind in ("slowdown", "internal", "drop")]
    return rules


# Run artefacts ----------------------------------------------------------------------------------


def run_folder_key(dag_id: str, run_id: str) -> str:
    from s3br_provider.core.manifest import run_folder

    return run_folder("b", dag_id, run_id).removeprefix("s3://b/") + "/"


def report_json(s3: Any, bucket: str, dag_id: str, run_id: str) -> dict[str, Any] | None:
    key = run_folder_key(dag_id, run_id) + "report.json"
    if key not in list_keys(s3, bucket, include_reserved=True):
        return None
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def run_xcoms(dag_id: str, run_id: str) -> list[tuple[str, int, str, Any]]:
    """Every XCom of a run: (task_id, map_index, key, value)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = select(XComModel.task_id, XComModel.map_index, XComModel.key, XComModel.value).where(
        XComModel.dag_id == dag_id, XComModel.run_id == run_id
    )
    with create_session() as session:
        return [tuple(row) for row in session.execute(query).all()]


def task_tries(dag_id: str, run_id: str) -> dict[str, int]:
    """``task_id[map_index]`` -> how many tries the task instance took."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.try_number).where(
        TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
    )
    with create_session() as session:
        rows = session.execute(query).all()
    return {(task if index < 0 else f"{task}[{index}]"): tries for task, index, tries in rows}


def airflow_home_files() -> dict[str, bytes]:
    """Every file under ``$AIRFLOW_HOME`` (logs, metadata database...), path -> bytes."""
    found = {}
    for path in glob.glob(os.path.join(os.environ["AIRFLOW_HOME"], "**", "*"), recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                found[path] = handle.read()
    return found


class OutputTap:
    """What pytest captured of this process's stdout and stderr (where ``dag.test()`` task logs
    go), read from inside a fixture of any scope. None when capture is off (``-s``)."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._capman = request.config.pluginmanager.getplugin("capturemanager")

    def read(self) -> str | None:
        if self._capman is None or not self._capman.is_globally_capturing():
            return None
        out, err = self._capman.read_global_capture()
        return out + err


# Fixtures ---------------------------------------------------------------------------------------


@pytest.fixture
def proxy(endpoint: str, monkeypatch: pytest.MonkeyPatch, airflow_db: str) -> Iterator[FaultProxy]:
    """A recording FaultProxy in front of moto, reachable as connection ``s3br_proxy``."""
    with FaultProxy(endpoint, seed=20260101) as running:
        monkeypatch.setenv("AIRFLOW_CONN_S3BR_PROXY", aws_conn_env(running.endpoint_url))
        yield running


# The shared scenario ----------------------------------------------------------------------------

MARKED_CONN_ID = "s3br_marked"
MARKER_ACCESS_KEY = "AKIAS3BRTESTMARKER0"
MARKER_SECRET = "s3brSecretMarker/abcdefghijklmnopqrstuvw"
BIG_KEY = "big/twelve MiB+parts.bin"
ARCHIVED = ("d1/obj-001.txt", "odd/emoji 😀🚀.bin")
DELETED = (
    "d0/obj-000.txt",
    "d1/obj-005.txt",
    "d3/obj-043.txt",
    "odd/plus+sign+.txt",
    "odd/日本語/ファイル.txt",
)
CHANGED = ("d2/obj-002.txt", "d0/obj-012.txt", "odd/percent%20and%25.txt")
ADDED = ("new/added.json", "d3/obj-100.txt")


@dataclass
class Recorded:
    """One DAG run of the scenario: its result, its requests, its report.json."""

    dag_id: str
    result: RunResult
    records: list[RequestRecord]
    report: dict[str, Any] | None
    seconds: float


@dataclass
class Scenario:
    source: str
    backup: str
    target: str
    first: dict[str, Obj]  # the source at the first backup
    live: dict[str, Obj]  # the source at the second backup
    gone: dict[str, Obj]  # vanished before the second backup (as the backup held them)
    as_of: str
    target_existed: bool
    runs: dict[str, Recorded]
    output: str | None  # stdout and stderr of the runs, None when pytest did not capture
    rules: list[dict[str, Any]]


def scenario_objects() -> dict[str, Obj]:
    """About 60 objects over several prefixes: Content-Types, metadata, tags, odd keys, one
    object of 12 MiB (multipart at a 5 MiB threshold)."""
    objects = {}
    for i in range(44):
        objects[f"d{i % 4}/obj-{i:03d}.txt"] = Obj(
            f"object {i}\n".encode() * (i + 1),
            TEXT if i % 2 else "application/json",
            {"index": str(i)},
            {"n": str(i), "parity": "odd" if i % 2 else "even"} if i % 3 else {},
        )
    objects |= odd_keys()
    objects["many-tags/nine.txt"] = Obj(b"nine tags", TEXT, {}, {f"t{i}": str(i) for i in range(9)})
    objects[BIG_KEY] = Obj(
        os.urandom(12 * MiB),
        "application/x-tar",
        {"purpose": "multipart"},
        {"kind": "big", "v": "a+b=c/d e:f@g"},
    )
    return objects


def changed_objects() -> dict[str, Obj]:
    new = {
        key: Obj(f"changed {key}".encode() * 3, "application/x-changed", {"rev": "2"}, {"rev": "2"})
        for key in CHANGED
    }
    new[ADDED[0]] = Obj(b'{"added": true}', "application/json", {"rev": "1"}, {"new": "yes"})
    new[ADDED[1]] = Obj(b"added", TEXT)
    return new


def move_to_glacier(s3: Any, bucket: str, key: str) -> None:
    s3.copy_object(
        Bucket=bucket,
        Key=key,
        CopySource={"Bucket": bucket, "Key": key},
        StorageClass="GLACIER",
        MetadataDirective="COPY",
        TaggingDirective="COPY",
    )


@pytest.fixture(scope="session")
def scenario(s3: Any, endpoint: str, airflow_db: str, request: pytest.FixtureRequest) -> Iterator[Scenario]:
    """Backup, change, backup again, archive two backup objects, restore as_of: every run
    through a FaultProxy breaking about 10% of the requests, on connection ``s3br_marked``."""
    token = uuid.uuid4().hex[:8]
    source, backup, target = f"src-{token}", f"bak-{token}", f"restored-{token}"
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    s3.put_bucket_versioning(Bucket=backup, VersioningConfiguration={"Status": "Enabled"})
    first = scenario_objects()
    seed(s3, source, first)
    tap = OutputTap(request)
    capturing = tap.read() is not None  # and drop what came before
    output: list[str] = []
    runs: dict[str, Recorded] = {}
    rules = mixed_faults(0.10)
    with pytest.MonkeyPatch.context() as patch, FaultProxy(endpoint, seed=424242) as proxy:
        patch.setenv(
            f"AIRFLOW_CONN_{MARKED_CONN_ID.upper()}",
            aws_conn_env(proxy.endpoint_url, MARKER_ACCESS_KEY, MARKER_SECRET),
        )

        def record(name: str, dag_id: str, bucket: str, start: Any) -> None:
            proxy.reset_records()
            proxy.set_faults(rules)
            started = time.monotonic()
            result = start()
            seconds = time.monotonic() - started
            proxy.clear_faults()
            report = report_json(s3, bucket, dag_id, result.run_id)
            runs[name] = Recorded(dag_id, result, proxy.records, report, seconds)
            output.append(tap.read() or "")

        conf = {"multipart_threshold_mb": 5, **via(MARKED_CONN_ID, "s3_backup")}
        record("backup-1", "s3_backup", backup, lambda: backup_run(source, backup, **conf))

        time.sleep(1.1)  # LastModified has one-second granularity
        gone = {key: first[key] for key in DELETED}
        for key in DELETED:
            s3.delete_object(Bucket=source, Key=key)
        live = {k: v for k, v in first.items() if k not in DELETED} | changed_objects()
        seed(s3, source, changed_objects())
        record("backup-2", "s3_backup", backup, lambda: backup_run(source, backup, **conf))

        for key in ARCHIVED:
            move_to_glacier(s3, backup, key)
        time.sleep(1.1)
        as_of = datetime.now(UTC).isoformat()
        time.sleep(1.1)
        target_existed = target in {b["Name"] for b in s3.list_buckets()["Buckets"]}
        restore_conf = {"multipart_threshold_mb": 5, "as_of": as_of, **via(MARKED_CONN_ID, "s3_restore")}
        record("restore", "s3_restore", backup, lambda: restore_run(backup, target, **restore_conf))

    yield Scenario(
        source,
        backup,
        target,
        first,
        live,
        gone,
        as_of,
        target_existed,
        runs,
        "".join(output) if capturing else None,
        rules,
    )
