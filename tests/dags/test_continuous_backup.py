"""``s3_continuous_backup`` on a live Airflow: api-server, scheduler (LocalExecutor),
dag-processor and triggerer, on a fresh SQLite database, against the session's moto server
through a recording proxy. moto's S3 delivers the bucket's notifications to its SQS; the
AssetWatcher's trigger wakes a run whenever messages wait.

Measured here (printed, not asserted: no timed assertions): the lag from each change to its
backup write, and the S3 and SQS requests sent per change.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest

from s3br_provider.core.events import percentile
from s3br_provider.operators.events_setup import S3EventsSetupOperator
from tests.integration.test_events_batch import assert_backup_follows
from tests.reliability.conftest import report_json
from tests.support.dag_runs import DAGS_FOLDER, run_dag
from tests.support.fault_proxy import FaultProxy, FaultRule
from tests.support.moto_server import free_port
from tests.support.s3 import Obj, aws_conn_env, list_keys, put, snapshot
from tests.support.steps import context

pytestmark = pytest.mark.slow

DAG_ID = "s3_continuous_backup"
SOURCE, BACKUP = "live-events-src", "live-events-bak"
VISIBILITY = 20  # seconds a killed batch's messages stay hidden
STARTUP = 240.0
DELETED = {f"early/{n:03d}" for n in range(50)}
BACKUP_WRITES = {"CopyObject", "PutObjectTagging", "UploadPartCopy"}
SQS_OPERATIONS = {
    "ReceiveMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibilityBatch",
    "GetQueueAttributes",
}


class LiveAirflow:
    """The four Airflow processes, each in its own process group, logging into the home."""

    def __init__(self, home: Path, env: dict[str, str], api: str) -> None:
        self.home, self.env, self.api = home, env, api
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> None:
        log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.home / f"{name}.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"airflow {name} exited with {proc.returncode}:\n{tail}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.api}{path}", timeout=10) as response:
            return json.loads(response.read())

    def wait_for(self, what: str, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                if ready():
                    return
            except (OSError, urllib.error.HTTPError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not after {timeout:.0f} s; logs in {self.home}")
            time.sleep(1)

    def runs(self) -> list[dict[str, Any]]:
        return self.get(f"/api/v2/dags/{DAG_ID}/dagRuns?limit=1000")["dag_runs"]

    def task_pids(self) -> list[int]:
        """Task processes ("airflow worker -- <ti id>") under our scheduler, never anyone else's."""
        scheduler = psutil.Process(self.procs["scheduler"].pid)
        return [
            p.pid
            for p in scheduler.children(recursive=True)
            if " ".join(p.cmdline()).startswith("airflow worker -- ")
            and "LocalExecutor" not in " ".join(p.cmdline())
        ]


@pytest.fixture(scope="module")
def proxy(endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(endpoint, seed=3) as recording:
        yield recording


@pytest.fixture(scope="module")
def queue_url(s3: Any) -> str:
    for bucket in (SOURCE, BACKUP):
        s3.create_bucket(Bucket=bucket)
    setup = S3EventsSetupOperator(task_id="setup", source_bucket=SOURCE, queue_name=f"q-{SOURCE}")
    return setup.execute(context())["queue_url"]


@pytest.fixture(scope="module")
def airflow(
    tmp_path_factory: pytest.TempPathFactory, proxy: FaultProxy, queue_url: str
) -> Iterator[LiveAirflow]:
    home = tmp_path_factory.mktemp("live-airflow")
    (home / "dags").mkdir()
    (home / "dags" / f"{DAG_ID}.py").symlink_to(Path(DAGS_FOLDER) / f"{DAG_ID}.py")
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        # Unpaused from its first parse: a paused DAG's AssetWatcher gets no trigger until the
        # file is parsed again after unpausing.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
        "AIRFLOW_CONN_AWS_DEFAULT": aws_conn_env(proxy.endpoint_url),
        "AIRFLOW_VAR_S3BR_SOURCE_BUCKET": SOURCE,
        "AIRFLOW_VAR_S3BR_BACKUP_BUCKET": BACKUP,
        "AIRFLOW_VAR_S3BR_EVENTS_QUEUE_URL": queue_url,
        "AIRFLOW_VAR_S3BR_EVENTS_VISIBILITY_TIMEOUT": str(VISIBILITY),
    }
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
    )
    live = LiveAirflow(home, env, api)
    try:
        live.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port), "-w", "1")
        live.start("scheduler", "scheduler")
        live.start("dag-processor", "dag-processor")
        live.start("triggerer", "triggerer")
        live.wait_for("the api-server", lambda: bool(live.get("/api/v2/monitor/health")), STARTUP)
        live.wait_for(
            f"{DAG_ID} parsed", lambda: not live.get(f"/api/v2/dags/{DAG_ID}")["is_paused"], STARTUP
        )
        yield live
    finally:
        live.stop()


def converged(s3: Any, deleted: set[str], retagged: Sequence[str] = ()) -> bool:
    """The backup holds every source object (same ETag), marks every deleted key, and carries
    the source's tags on every retagged key (a tag change alters no ETag: it is waited for
    explicitly, else the check below could run before the batch that applies it)."""
    source = {o["Key"]: o["ETag"] for o in listing(s3, SOURCE)}
    backup = {o["Key"]: o["ETag"] for o in listing(s3, BACKUP)}
    if any(backup.get(key) != etag for key, etag in source.items()):
        return False
    if any(
        snapshot(s3, BACKUP, key, body=False).tags != snapshot(s3, SOURCE, key, body=False).tags
        for key in retagged
    ):
        return False
    return all("Deleted" in snapshot(s3, BACKUP, key, body=False).tags for key in deleted)


def listing(s3: Any, bucket: str) -> list[dict[str, Any]]:
    return [
        o
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    ]


def lags(proxy: FaultProxy, changed_at: dict[str, float]) -> list[float]:
    """Seconds from each change to the first backup write of its key after it."""
    first: dict[str, float] = {}
    for record in proxy.records:
        if record.bucket != BACKUP or record.operation not in BACKUP_WRITES or record.key not in changed_at:
            continue
        if record.ended >= changed_at[record.key] and record.key not in first:
            first[record.key] = record.ended
    return [first[key] - when for key, when in changed_at.items() if key in first]


def test_500_writes_50_deletes_20_tag_changes(
    s3: Any, proxy: FaultProxy, airflow: LiveAirflow, airflow_db: str
) -> None:
    # Keys to delete and retag later, backed up by the DAG first.
    early = {
        f"early/{n:03d}": Obj(f"early {n}".encode(), "text/plain", {"n": str(n)}, {"v": "1"})
        for n in range(70)
    }
    for key, obj in early.items():
        put(s3, SOURCE, key, obj)
    airflow.wait_for("the early objects backed up", lambda: converged(s3, set()), 180)
    proxy.reset_records()

    changed_at: dict[str, float] = {}
    deleted = DELETED
    retagged = [f"early/{n:03d}" for n in range(50, 70)]
    changes: list[tuple[str, str]] = [("put", f"new/{n:03d}") for n in range(500)]
    changes += [("delete", key) for key in sorted(deleted)] + [("tag", key) for key in retagged]
    began = time.monotonic()
    for n, (what, key) in enumerate(changes):  # 570 changes over about 60 seconds
        if what == "put":
            s3.put_object(  # one request, tags included: one event, as a client's write
                Bucket=SOURCE,
                Key=key,
                Body=os.urandom(64),
                ContentType="application/x-test",
                Metadata={"i": key},
                Tagging=f"k={key[-1]}",
            )
        elif what == "delete":
            s3.delete_object(Bucket=SOURCE, Key=key)
        else:
            s3.put_object_tagging(Bucket=SOURCE, Key=key, Tagging={"TagSet": [{"Key": "v", "Value": "2"}]})
        changed_at[key] = time.monotonic()
        time.sleep(max(0.0, began + (n + 1) * 60 / len(changes) - time.monotonic()))
    last_change = time.monotonic()
    airflow.wait_for("the backup in step with the source", lambda: converged(s3, deleted, retagged), 180)
    settled = time.monotonic() - last_change

    assert_backup_follows(s3, SOURCE, BACKUP, deleted)
    measured = lags(proxy, changed_at)
    assert len(measured) == len(changes)
    operations = Counter(r.operation for r in proxy.records)
    sqs = sum(n for op, n in operations.items() if op in SQS_OPERATIONS)
    s3_requests = sum(n for op, n in operations.items() if op not in SQS_OPERATIONS and op != "PutMetricData")
    report = {
        "changes": len(changes),
        "settled_after_last_change_s": round(settled, 1),
        "lag_p50_s": round(percentile(measured, 50), 1),
        "lag_p95_s": round(percentile(measured, 95), 1),
        "lag_max_s": round(max(measured), 1),
        "requests": dict(sorted(operations.items())),
        "s3_per_change": round(s3_requests / len(changes), 2),
        "sqs_per_change": round(sqs / len(changes), 3),
        "runs": len(airflow.runs()),
    }
    print("continuous backup:", json.dumps(report))

    # A run of s3_backup afterwards finds nothing to do.
    result = run_dag("s3_backup", {"source_bucket": SOURCE, "backup_bucket": BACKUP, "max_partitions": 2})
    assert result.state == "success", result.failed_tasks()
    report = report_json(s3, BACKUP, "s3_backup", result.run_id)
    assert report is not None
    assert (report["totals"]["to_copy"], report["totals"]["tagged_deleted"]) == (0, 0), report["totals"]


def test_a_batch_killed_mid_way_loses_nothing(s3: Any, proxy: FaultProxy, airflow: LiveAirflow) -> None:
    keys = [f"killed/{n:03d}" for n in range(200)]
    proxy.set_faults([FaultRule("slow", operation="CopyObject", bucket=BACKUP, delay=1.5)])

    def copied() -> int:
        return sum(key.startswith("killed/") for key in list_keys(s3, BACKUP))

    for key in keys:
        put(s3, SOURCE, key, Obj(key.encode()))
    airflow.wait_for(
        "a batch under way", lambda: 20 <= copied() < len(keys) and bool(airflow.task_pids()), 180
    )
    pids = airflow.task_pids()
    assert pids, "no task process to kill"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert copied() < len(keys)  # killed mid-way
    proxy.clear_faults()
    airflow.wait_for("the backup in step after the kill", lambda: converged(s3, DELETED), 240)
    assert_backup_follows(s3, SOURCE, BACKUP, DELETED)
    tries = airflow.get(f"/api/v2/dags/{DAG_ID}/dagRuns/~/taskInstances?limit=1000")["task_instances"]
    assert max(ti["try_number"] for ti in tries) >= 2  # the killed try failed; its retry finished the work
    print("after the kill:", len(airflow.runs()), "runs,", sum(ti["try_number"] for ti in tries), "tries")
