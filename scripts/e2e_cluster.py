"""End-to-end proof on a real cluster: CeleryExecutor, two workers, PostgreSQL, Redis, a triggerer.

Run with ``scripts/e2e-cluster``. It starts, on loopback ports, a moto S3 server and an Airflow
3 cluster (api-server, scheduler, dag-processor, triggerer, two Celery workers) on a fresh
PostgreSQL database and a Redis database, runs ``s3_backup`` then ``s3_restore`` through the REST
API, checks the buckets object by object, checks from the task instances that the partitions
ran on both workers, in parallel, and that the archive wait deferred to the triggerer, runs
``s3_continuous_backup`` twice on a bucket whose notifications go to an SQS queue, then
drives the UI in a headless Chromium (``tests/cluster/test_ui_browser.py``). Everything it
started is stopped by PID at the end, also on failure or Ctrl-C, and the database is dropped.

Needs: ``pip install -e ".[dev,cluster]"``, Debian's ``chromium`` at ``/usr/bin/chromium``, and
a PostgreSQL (trust auth for ``postgres``) and a Redis on 127.0.0.1 (override with
``S3BR_E2E_POSTGRES`` = ``user@host:port`` and ``S3BR_E2E_REDIS`` = ``host:port/db``).
Process logs and task logs go to ``artifacts/e2e-cluster/``, screenshots to ``artifacts/ui/``.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.moto_aws import server_argv  # noqa: E402
from tests.support.moto_server import free_port  # noqa: E402
from tests.support.s3 import aws_conn_env, local_client, s3_client  # noqa: E402

ARTIFACTS = ROOT / "artifacts" / "e2e-cluster"
SCREENSHOTS = ROOT / "artifacts" / "ui"
BIN = Path(sys.executable).parent
AIRFLOW = str(BIN / "airflow")
CHROMIUM = "/usr/bin/chromium"
WORKERS = ("s3br-worker-a", "s3br-worker-b")
SOURCE, BACKUP, TARGET = "e2e-source", "e2e-backup", "e2e-restored"
LIVE_SOURCE, LIVE_BACKUP = "e2e-live-source", "e2e-live-backup"  # s3_continuous_backup's
DAG_CONTINUOUS = "s3_continuous_backup"
PREFIXES = ("analytics", "billing", "crm", "datasets", "exports", "finance", "images", "logs")
OBJECTS_PER_PREFIX = 150
ARCHIVED = {
    "billing/2026/0007.csv": "GLACIER",
    "billing/2026/0042.csv": "DEEP_ARCHIVE",
    "exports/2026/0100.csv": "GLACIER",
    "logs/2026/0149 é+%.csv": "DEEP_ARCHIVE",
}
RESTORE_SECONDS = 6
RUN_TIMEOUT = 300  # generous: on a busy 2-core machine every task start costs seconds
STARTUP = 240  # seconds each component may take to come up
STARTED = time.monotonic()


class E2EFailure(Exception):
    """A check failed or a component misbehaved; the message says which."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the cluster up after the checks (Ctrl-C)")
    parser.add_argument("--no-ui", action="store_true", help="skip the browser test (the run then fails)")
    args = parser.parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)  # also when started in the background (SIGINT ignored)
    cluster = Cluster()
    try:
        ok = run(cluster, args)
    except E2EFailure as exc:
        print(f"\nFAILED: {exc}", flush=True)
        cluster.print_tails()
        ok = False
    except KeyboardInterrupt:
        print("\nInterrupted: stopping the cluster", flush=True)
        ok = False
    except Exception:
        traceback.print_exc()
        cluster.print_tails()
        ok = False
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        cluster.close()
    print(f"\n{'PASSED' if ok else 'FAILED'} in {time.monotonic() - STARTED:.0f} s; logs in {ARTIFACTS}")
    return 0 if ok else 1


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def step(text: str) -> None:
    print(f"\n== [{time.monotonic() - STARTED:5.1f}s] {text}", flush=True)


# --------------------------------------------------------------------------------------------
# Processes, database and broker


class Cluster:
    """Everything the run starts, so that it can all be stopped and dropped at the end."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.cleanups: list[tuple[str, Callable[[], None]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` in its own process group, output to ``artifacts/e2e-cluster/<name>.log``."""
        log = ARTIFACTS / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
            )
        self.procs[name] = proc
        self.logs[name] = log
        print(f"   started {name} (pid {proc.pid}): {' '.join(argv[1:4])} ...", flush=True)
        return proc

    def on_close(self, what: str, fn: Callable[[], None]) -> None:
        self.cleanups.append((what, fn))

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise E2EFailure(f"{name} (pid {proc.pid}) exited with {proc.returncode}")

    def close(self) -> None:
        """Stop the started process groups by PID (TERM, then KILL), then run the clean-ups."""
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name, proc in reversed(list(self.procs.items())):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"   {name} (pid {proc.pid}) did not stop: killing it", flush=True)
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=10)
            # Children left behind in the group (task supervisors, uvicorn workers).
            _signal_group(proc, signal.SIGKILL)
        if self.procs:
            print(f"   stopped {len(self.procs)} processes", flush=True)
        for what, fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as exc:  # one failed clean-up must not hide the others
                print(f"   clean-up '{what}' failed: {exc}", flush=True)

    def print_tails(self, lines: int = 25) -> None:
        for log in self.logs.values():
            text = log.read_text(errors="replace").splitlines() if log.exists() else []
            print(f"\n--- last {lines} lines of {log.relative_to(ROOT)} ---")
            print("\n".join(line[:300] for line in text[-lines:]), flush=True)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the group we created with start_new_session, named by its PID
    except (ProcessLookupError, PermissionError):
        pass


def postgres_target() -> tuple[str, str, int]:
    user_host = os.environ.get("S3BR_E2E_POSTGRES", "postgres@127.0.0.1:5432")
    user, _, host_port = user_host.rpartition("@")
    host, _, port = host_port.partition(":")
    return user or "postgres", host, int(port or 5432)


def redis_target() -> tuple[str, int, int]:
    host_port, _, db = os.environ.get("S3BR_E2E_REDIS", "127.0.0.1:6379/5").partition("/")
    host, _, port = host_port.partition(":")
    return host, int(port or 6379), int(db or 0)


def create_database(cluster: Cluster) -> str:
    """Create a fresh PostgreSQL database, dropped (connections forced out) at the end."""
    import psycopg2

    user, host, port = postgres_target()
    name = f"s3br_e2e_{os.getpid()}"

    def admin(sql: str) -> None:
        conn = psycopg2.connect(host=host, port=port, user=user, dbname="postgres", connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    try:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin(f'CREATE DATABASE "{name}"')
    except psycopg2.Error as exc:
        raise E2EFailure(f"cannot create database {name} on {user}@{host}:{port}: {exc}") from exc
    cluster.on_close(f"drop database {name}", lambda: admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print(f"   PostgreSQL database {name} on {host}:{port}")
    return f"{user}@{host}:{port}/{name}"


def claim_redis(cluster: Cluster) -> str:
    """Lock and flush the Redis database used as broker, so concurrent runs cannot collide."""
    import redis

    host, port, db = redis_target()
    lock = open(Path(tempfile.gettempdir()) / f"s3br-e2e-redis-{port}-{db}.lock", "w")  # noqa: SIM115
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise E2EFailure(
            f"another e2e-cluster run uses Redis db {db}; wait, or set S3BR_E2E_REDIS=host:port/<other db>"
        ) from None
    cluster.on_close("release the Redis lock", lock.close)
    try:
        client = redis.Redis(host=host, port=port, db=db, socket_timeout=5)
        client.flushdb()
    except redis.RedisError as exc:
        raise E2EFailure(f"cannot reach Redis at {host}:{port}: {exc}") from exc
    cluster.on_close(f"flush Redis db {db}", client.flushdb)
    print(f"   Redis db {db} on {host}:{port} (flushed)")
    return f"redis://{host}:{port}/{db}"


# --------------------------------------------------------------------------------------------
# S3


def start_moto(cluster: Cluster) -> str:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cluster.start("moto", server_argv(port), dict(os.environ))
    wait_for(f"moto at {url}", lambda: http_ok(f"{url}/moto-api/"), cluster, timeout=30)
    return url


Kept = tuple[str, str, dict[str, str], dict[str, str]]
"""What backup and restore promise to keep of an object: MD5 of its bytes, Content-Type,
user metadata, tags."""


def seed(s3: Any) -> dict[str, Kept]:
    """Fill the source bucket (several prefixes, each a partition of its own); return what it holds."""
    s3.create_bucket(Bucket=SOURCE)
    s3.create_bucket(Bucket=BACKUP)
    objects = []
    for team in PREFIXES:
        for i in range(OBJECTS_PER_PREFIX):
            key = f"{team}/2026/{i:04d} é+%.csv" if i % 50 == 49 else f"{team}/2026/{i:04d}.csv"
            body = f"{team},{i}\n".encode() * (1 + i % 20)
            content_type = "application/json" if i % 10 == 0 else "text/csv"
            tags = {"team": team, "tier": "gold" if i % 2 else "silver"} if i % 3 else {}
            objects.append((key, body, content_type, {"team": team, "row": str(i)}, tags))

    def put(item: tuple[str, bytes, str, dict[str, str], dict[str, str]]) -> None:
        key, body, content_type, metadata, tags = item
        tagging = {"Tagging": urllib.parse.urlencode(tags)} if tags else {}
        s3.put_object(
            Bucket=SOURCE, Key=key, Body=body, ContentType=content_type, Metadata=metadata, **tagging
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, objects))
    return {key: (hashlib.md5(body).hexdigest(), ct, meta, tags) for key, body, ct, meta, tags in objects}


def archive_some(s3: Any, endpoint: str) -> None:
    """Move a few backup objects to GLACIER / DEEP_ARCHIVE; moto restores them in a few seconds."""
    body = {"model_name": "s3::keyrestore", "transition": {"progression": "time", "seconds": RESTORE_SECONDS}}
    http_json("POST", f"{endpoint}/moto-api/state-manager/set-transition", body)
    for key, storage_class in ARCHIVED.items():
        s3.copy_object(
            Bucket=BACKUP,
            Key=key,
            CopySource={"Bucket": BACKUP, "Key": key},
            StorageClass=storage_class,
            MetadataDirective="COPY",
        )
        got = s3.head_object(Bucket=BACKUP, Key=key).get("StorageClass")
        if got != storage_class:
            raise E2EFailure(f"s3://{BACKUP}/{key} is {got}, not {storage_class}")
    print(f"   {len(ARCHIVED)} backup objects now GLACIER / DEEP_ARCHIVE (restores take {RESTORE_SECONDS} s)")


def list_etags(s3: Any, bucket: str) -> dict[str, str]:
    """Key -> ETag of every data object (``_s3br/`` left out), from the listing."""
    etags = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if not obj["Key"].startswith("_s3br/"):
                etags[obj["Key"]] = obj["ETag"].strip('"')
    return etags


def observe(s3: Any, bucket: str, key: str, *, read_body: bool) -> Kept:
    """What ``bucket`` holds under ``key``; the bytes' MD5 from the body or, for single-part
    objects, the ETag (moto computes it from the stored bytes)."""
    head = s3.head_object(Bucket=bucket, Key=key)
    md5 = head["ETag"].strip('"')
    if read_body:
        md5 = hashlib.md5(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
    return md5, head.get("ContentType", ""), head.get("Metadata", {}), tags


def compare_bucket(s3: Any, expected: dict[str, Kept], bucket: str) -> None:
    """Fail unless ``bucket`` holds exactly the ``expected`` objects: bytes, type, metadata, tags."""
    got = list_etags(s3, bucket)
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    if missing or extra:
        raise E2EFailure(f"s3://{bucket}: missing {missing[:5]}, unexpected {extra[:5]}")
    fields = ("bytes (MD5)", "Content-Type", "metadata", "tags")
    # Every archived object and every 20th other one are read in full; the rest by ETag.
    full = set(ARCHIVED) | set(sorted(expected)[::20])

    def check(key: str) -> list[str]:
        have = observe(s3, bucket, key, read_body=key in full)
        want = expected[key]
        return [
            f"{key}: {f} {w!r:.50} != {h!r:.50}" for f, w, h in zip(fields, want, have, strict=True) if w != h
        ]

    with ThreadPoolExecutor(16) as pool:
        problems = [p for found in pool.map(check, sorted(expected)) for p in found]
    if problems:
        raise E2EFailure(f"s3://{bucket} differs from s3://{SOURCE} ({len(problems)}): {problems[:3]}")
    print(
        f"   s3://{bucket} == s3://{SOURCE}: {len(got)} objects with the same bytes, Content-Type, "
        f"metadata and tags ({len(full)} read in full)"
    )


# --------------------------------------------------------------------------------------------
# Airflow


def airflow_env(db_url: str, broker: str, endpoint: str, home: Path, api_port: int) -> dict[str, str]:
    api = f"http://127.0.0.1:{api_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
            # No scheduled s3_backup run (it would read unset Variables and, with max_active_runs=1,
            # hold up the triggered one): only the runs this script triggers.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "false",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            # The api-server loads the provider's plugin (the Backups view) from its provider info.
            "AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS": "False",
            "AIRFLOW__API__BASE_URL": api,
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{db_url}",
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{db_url}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(ARTIFACTS / "task-logs"),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
            # The DAG files do not change during the run: parse them once, keep the CPU for tasks.
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            # One partition per seeded prefix (150 keys each), as a big bucket would get.
            "AIRFLOW__S3BR__TARGET_KEYS_PER_PARTITION": str(OBJECTS_PER_PREFIX),
            "AIRFLOW_CONN_AWS_DEFAULT": aws_conn_env(endpoint),
        }
    )
    return env


def wait_migrated(cluster: Cluster, proc: subprocess.Popen[bytes]) -> None:
    """Wait for the ``airflow db migrate`` started with the seeding."""
    try:
        code = proc.wait(timeout=180)
    except subprocess.TimeoutExpired:
        raise E2EFailure("airflow db migrate took longer than 180 s") from None
    if code:
        raise E2EFailure(f"airflow db migrate failed with exit code {code}")
    del cluster.procs["db-migrate"]  # finished: not a component that must stay alive


def start_airflow(cluster: Cluster, env: dict[str, str], api_port: int) -> str:
    step("Airflow: api-server, scheduler, dag-processor, triggerer, 2 Celery workers")
    began = time.monotonic()
    home = Path(env["AIRFLOW_HOME"])
    cluster.start(
        "api-server", [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(api_port), "-w", "1"], env
    )
    cluster.start("scheduler", [AIRFLOW, "scheduler"], env)
    cluster.start("dag-processor", [AIRFLOW, "dag-processor"], env)
    cluster.start("triggerer", [AIRFLOW, "triggerer", "--pid", str(home / "triggerer.pid")], env)
    for name in WORKERS:
        worker_env = {
            **env,
            "S3BR_WORKER_NAME": name,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.cluster.hostname.from_env",
        }
        argv = [AIRFLOW, "celery", "worker", "--concurrency", "4", "-H", name]
        argv += ["--pid", str(home / f"{name}.pid"), "--skip-serve-logs"]
        cluster.start(name, argv, worker_env)
    api = f"http://127.0.0.1:{api_port}"
    wait_for("the api-server", lambda: http_ok(f"{api}/api/v2/monitor/health"), cluster, timeout=STARTUP)
    for dag_id in ("s3_backup", "s3_restore", DAG_CONTINUOUS):
        wait_for(
            f"{dag_id} parsed and unpaused", lambda d=dag_id: dag_ready(api, d), cluster, timeout=STARTUP
        )
    for name in WORKERS:
        wait_for(f"worker {name} ready", lambda n=name: worker_ready(cluster, n), cluster, timeout=STARTUP)
    print(f"   cluster up in {time.monotonic() - began:.0f} s; UI and REST API at {api}")
    return api


def dag_ready(api: str, dag_id: str) -> bool:
    try:
        dag = http_json("GET", f"{api}/api/v2/dags/{dag_id}")
    except E2EFailure:
        return False
    return dag.get("is_paused") is False


def worker_ready(cluster: Cluster, name: str) -> bool:
    return f"celery@{name} ready" in cluster.logs[name].read_text(errors="replace")


def trigger(api: str, dag_id: str, conf: dict[str, Any]) -> str:
    run = http_json("POST", f"{api}/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
    print(f"   triggered {dag_id}: run_id {run['dag_run_id']}", flush=True)
    return str(run["dag_run_id"])


def wait_for_run(api: str, dag_id: str, run_id: str, cluster: Cluster) -> dict[str, Any]:
    """Poll the run until it finishes; fail naming the failed task instances."""
    url = f"{api}/api/v2/dags/{dag_id}/dagRuns/{run_id}"
    deadline = time.monotonic() + RUN_TIMEOUT
    last = ""
    while True:
        cluster.check_alive()
        run = http_json("GET", url)
        if run["state"] in ("success", "failed"):
            break
        states = summarize_states(task_instances(api, dag_id, run_id))
        if states != last:
            print(f"   {dag_id} {run['state']}: {states}", flush=True)
            last = states
        if time.monotonic() > deadline:
            raise E2EFailure(f"{dag_id} run {run_id} not finished after {RUN_TIMEOUT} s ({states})")
        time.sleep(2)
    tis = task_instances(api, dag_id, run_id)
    seconds = (parse_time(run["end_date"]) - parse_time(run["start_date"])).total_seconds()
    print(f"   {dag_id}: {run['state']} in {seconds:.1f} s ({summarize_states(tis)})", flush=True)
    if run["state"] != "success":
        bad = [f"{t['task_id']}[{t['map_index']}]={t['state']}" for t in tis if t["state"] != "success"]
        raise E2EFailure(f"{dag_id} run {run_id} {run['state']}: {bad}; task logs in {ARTIFACTS}/task-logs")
    run["seconds"] = seconds
    return run


def task_instances(api: str, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    tis: list[dict[str, Any]] = []
    while True:
        url = f"{api}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100&offset={len(tis)}"
        page = http_json("GET", url)
        tis += page["task_instances"]
        if not page["task_instances"] or len(tis) >= page["total_entries"]:
            return tis


def summarize_states(tis: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for ti in tis:
        counts[str(ti["state"])] = counts.get(str(ti["state"]), 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --------------------------------------------------------------------------------------------
# Checks on task instances and logs


def check_distribution(tis: list[dict[str, Any]], dag_id: str) -> None:
    """Mapped partitions ran on both workers, and at least two ran at the same time."""
    for task_id in ("partition.copy_batch", "partition.diff", "partition.select"):
        mapped = [t for t in tis if t["task_id"] == task_id and t["map_index"] >= 0]
        if not mapped:
            continue
        hosts = sorted({t["hostname"] for t in mapped})
        overlaps = overlapping_pairs(mapped)
        print(
            f"   {dag_id} {task_id}: {len(mapped)} mapped instances on {hosts}, {overlaps} overlapping pairs"
        )
        if set(WORKERS) <= set(hosts) and overlaps:
            return
    raise E2EFailure(f"{dag_id}: no mapped task ran on both workers {WORKERS} with overlapping instances")


def overlapping_pairs(tis: list[dict[str, Any]]) -> int:
    spans = sorted((parse_time(t["start_date"]), parse_time(t["end_date"])) for t in tis)
    return sum(1 for i, a in enumerate(spans) for b in spans[i + 1 :] if b[0] < a[1])


def check_deferral(tis: list[dict[str, Any]]) -> None:
    """``wait_for_restore`` handed its wait to the triggerer, which ran the trigger to its event."""
    waits = [t for t in tis if t["task_id"] == "partition.wait_for_restore"]
    deferred = []
    for ti in waits:
        folder = task_log_folder(ti)
        logs = sorted(folder.glob("attempt=*.log")) if folder.is_dir() else []
        task_text = "".join(p.read_text(errors="replace") for p in logs if ".trigger." not in p.name)
        if "Pausing task as DEFERRED" not in task_text:
            continue
        triggers = [p for p in logs if ".trigger." in p.name]
        trigger_text = "".join(p.read_text(errors="replace") for p in triggers)
        for needed in ("GlacierRestoreTrigger", "Trigger fired event", "trigger completed"):
            if needed not in trigger_text:
                raise E2EFailure(f"{folder}: deferred, but no trigger log beside it says {needed!r}")
        deferred.append((ti, triggers[0]))
    if not deferred:
        raise E2EFailure(
            f"no partition.wait_for_restore log says 'Pausing task as DEFERRED' ({len(waits)} checked)"
        )
    for ti, trigger_log in deferred:
        print(f"   {ti['rendered_map_index']}: deferred; triggerer log {trigger_log.relative_to(ARTIFACTS)}")
    print(f"   {len(deferred)} of {len(waits)} wait_for_restore instances deferred; the triggerer ran them")


def task_log_folder(ti: dict[str, Any]) -> Path:
    folder = ARTIFACTS / "task-logs" / f"dag_id={ti['dag_id']}" / f"run_id={ti['dag_run_id']}"
    folder = folder / f"task_id={ti['task_id']}"
    return folder / f"map_index={ti['map_index']}" if ti["map_index"] >= 0 else folder


def print_worker_table(
    dag_id: str, tis: list[dict[str, Any]], tasks: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Print which worker ran each partition's tasks (and how long its copy took); return the rows."""
    by_index: dict[int, dict[str, Any]] = {}
    for ti in tis:
        if ti["map_index"] < 0 or not ti["task_id"].startswith("partition."):
            continue
        row = by_index.setdefault(ti["map_index"], {"partition": ""})
        task = ti["task_id"].removeprefix("partition.")
        row[task] = ti["hostname"] or str(ti["state"])  # a skipped idle step ran nowhere
        row["partition"] = row["partition"] or ti.get("rendered_map_index") or f"[{ti['map_index']}]"
        if task == "copy_batch" and ti["start_date"] and ti["end_date"]:
            took = parse_time(ti["end_date"]) - parse_time(ti["start_date"])
            row["copy_seconds"] = round(took.total_seconds(), 1)
    rows = [by_index[index] for index in sorted(by_index)]
    short = {name: name.removeprefix("s3br-") for name in WORKERS}
    width = min(64, max(len("partition"), *(len(r["partition"]) for r in rows)))
    print(f"\n   {dag_id}: which worker ran which partition")
    print(f"   {'partition':{width}}" + "".join(f"  {t:16}" for t in tasks) + "  copy s")
    for row in rows:
        hosts = "".join(f"  {short.get(row.get(t, '-'), row.get(t, '-')):16}" for t in tasks)
        print(f"   {row['partition'][:width]:{width}}{hosts}  {row.get('copy_seconds', '-'):>6}")
    counts = {w: sum(1 for r in rows for t in tasks if r.get(t) == w) for w in WORKERS}
    print(f"   mapped task instances per worker: {counts}")
    return rows


# --------------------------------------------------------------------------------------------
# The browser test


def check_continuous(api: str, cluster: Cluster, endpoint: str) -> dict[str, Any]:
    """s3_continuous_backup on the cluster: a bucket notifying an SQS queue; two runs (on a Celery
    worker) apply new objects, then deletes and tag changes; the queue ends empty. (Event-driven
    runs need the scheduler's job schedule, off here: tests/dags/test_continuous_backup.py runs
    the AssetWatcher on a LocalExecutor cluster.)"""
    step("s3_continuous_backup: the source's notifications through SQS, two runs")
    s3, sqs = s3_client(endpoint), local_client("sqs", endpoint)
    for bucket in (LIVE_SOURCE, LIVE_BACKUP):
        s3.create_bucket(Bucket=bucket)
    queue = sqs.create_queue(QueueName=f"{LIVE_SOURCE}-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:ObjectTagging:*"]
    s3.put_bucket_notification_configuration(
        Bucket=LIVE_SOURCE,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": events}]},
    )
    variables = {
        "s3br_source_bucket": LIVE_SOURCE,
        "s3br_backup_bucket": LIVE_BACKUP,
        "s3br_events_queue_url": queue,
    }
    for key, value in variables.items():
        http_json("POST", f"{api}/api/v2/variables", {"key": key, "value": value})
    keys = [f"live/{n:02d} é+%.txt" for n in range(20)]
    for key in keys:
        s3.put_object(Bucket=LIVE_SOURCE, Key=key, Body=key.encode(), Metadata={"k": "v"}, Tagging="t=1")
    first = wait_for_run(api, DAG_CONTINUOUS, trigger(api, DAG_CONTINUOUS, {}), cluster)
    for key in keys[:5]:
        s3.delete_object(Bucket=LIVE_SOURCE, Key=key)
    for key in keys[5:8]:
        s3.put_object_tagging(Bucket=LIVE_SOURCE, Key=key, Tagging={"TagSet": [{"Key": "t", "Value": "2"}]})
    second = wait_for_run(api, DAG_CONTINUOUS, trigger(api, DAG_CONTINUOUS, {}), cluster)
    live = {key: observe(s3, LIVE_SOURCE, key, read_body=True) for key in keys[5:]}
    for key, want in live.items():
        if observe(s3, LIVE_BACKUP, key, read_body=True) != want:
            raise E2EFailure(f"s3://{LIVE_BACKUP}/{key} differs from its source")
    for key in keys[:5]:
        if observe(s3, LIVE_BACKUP, key, read_body=False)[3].get("Deleted") != "True":
            raise E2EFailure(f"s3://{LIVE_BACKUP}/{key}: deleted in the source, not tagged Deleted")
    counts = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    left = int(counts["ApproximateNumberOfMessages"]) + int(counts["ApproximateNumberOfMessagesNotVisible"])
    if left:
        raise E2EFailure(f"{left} message(s) left in the event queue after the runs")
    print(f"   {len(live)} live objects equal, 5 deleted tagged Deleted, queue empty after two runs")
    return {"continuous_seconds": [first["seconds"], second["seconds"]]}


def run_ui_test(api: str, backup_run: str, restore_run: str) -> None:
    step("UI in headless Chromium: tests/cluster/test_ui_browser.py")
    junit = ARTIFACTS / "ui-junit.xml"
    env = {
        **os.environ,
        "S3BR_UI_URL": api,
        "S3BR_BACKUP_RUN_ID": backup_run,
        "S3BR_RESTORE_RUN_ID": restore_run,
        "S3BR_UI_SCREENSHOTS": str(SCREENSHOTS),
        "S3BR_CHROMIUM": CHROMIUM,
    }
    argv = [sys.executable, "-m", "pytest", "tests/cluster", "-q", "-p", "no:cacheprovider", "-rA"]
    argv += ["--confcutdir", str(ROOT / "tests" / "cluster"), f"--junitxml={junit}", "--timeout=300"]
    done = subprocess.run(argv, cwd=ROOT, env=env)
    if done.returncode != 0 or not junit.exists():
        raise E2EFailure(f"browser test failed (exit {done.returncode}); screenshots in {SCREENSHOTS}")
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert suite is not None
    counts = {k: int(suite.get(k, "0")) for k in ("tests", "skipped", "failures", "errors")}
    if counts["tests"] == 0 or counts["skipped"] or counts["failures"] or counts["errors"]:
        raise E2EFailure(f"browser test did not pass outright: {counts}")
    print(f"   {counts['tests']} browser tests passed; screenshots in {SCREENSHOTS.relative_to(ROOT)}/")


# --------------------------------------------------------------------------------------------
# The run


def run(cluster: Cluster, args: argparse.Namespace) -> bool:
    step("Preflight: PostgreSQL, Redis, Chromium")
    if not args.no_ui and not Path(CHROMIUM).exists():
        raise E2EFailure(f"{CHROMIUM} not found: apt-get install -y chromium")
    broker = claim_redis(cluster)  # first: it also keeps a concurrent run off our artifacts
    for folder in (ARTIFACTS, SCREENSHOTS):
        shutil.rmtree(folder, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    db_url = create_database(cluster)
    home = Path(tempfile.mkdtemp(prefix="s3br-e2e-home-"))
    cluster.on_close(f"remove {home}", lambda: shutil.rmtree(home, ignore_errors=True))

    step("moto S3 server; airflow db migrate while the source bucket is seeded")
    endpoint = start_moto(cluster)
    s3 = s3_client(endpoint)
    api_port = free_port()
    env = airflow_env(db_url, broker, endpoint, home, api_port)
    began = time.monotonic()
    migrating = cluster.start("db-migrate", [AIRFLOW, "db", "migrate"], env)
    expected = seed(s3)
    print(
        f"   s3://{SOURCE}: {len(expected)} objects, {len(PREFIXES)} prefixes "
        f"({time.monotonic() - began:.0f} s)"
    )
    wait_migrated(cluster, migrating)
    print(f"   airflow db migrate done ({time.monotonic() - began:.0f} s)")
    api = start_airflow(cluster, env, api_port)

    step("s3_backup through the REST API")
    conf = {"source_bucket": SOURCE, "backup_bucket": BACKUP, "max_partitions": 8}
    backup_run_id = trigger(api, "s3_backup", conf)
    backup = wait_for_run(api, "s3_backup", backup_run_id, cluster)
    backup_tis = task_instances(api, "s3_backup", backup_run_id)

    step("Checks: the backup object by object; backup partitions on both workers, in parallel")
    if {k: v[0] for k, v in expected.items()} != list_etags(s3, SOURCE):
        raise E2EFailure(f"s3://{SOURCE} changed during the run")
    compare_bucket(s3, expected, BACKUP)
    check_distribution(backup_tis, "s3_backup")

    step("Archive some backup objects, then s3_restore through the REST API")
    archive_some(s3, endpoint)
    conf = {"backup_bucket": BACKUP, "target_bucket": TARGET, "poll_interval_seconds": 2}
    restore_run_id = trigger(api, "s3_restore", conf)
    restore = wait_for_run(api, "s3_restore", restore_run_id, cluster)
    restore_tis = task_instances(api, "s3_restore", restore_run_id)

    step("Checks: the restored bucket object by object; restore partitions; the archive wait deferred")
    compare_bucket(s3, expected, TARGET)
    check_distribution(restore_tis, "s3_restore")
    check_deferral(restore_tis)
    backup_rows = print_worker_table("s3_backup", backup_tis, ("diff", "copy_batch", "tag_deleted"))
    restore_rows = print_worker_table(
        "s3_restore", restore_tis, ("select", "request_restore", "wait_for_restore", "copy_batch")
    )

    continuous = check_continuous(api, cluster, endpoint)

    if args.no_ui:
        print("\n   --no-ui: browser test skipped, so this run does not count as a pass")
    else:
        run_ui_test(api, backup_run_id, restore_run_id)

    summary = {
        "backup_run_id": backup_run_id,
        "restore_run_id": restore_run_id,
        "backup_seconds": backup["seconds"],
        "restore_seconds": restore["seconds"],
        "wall_seconds": round(time.monotonic() - STARTED, 1),
        "backup_partitions": backup_rows,
        "restore_partitions": restore_rows,
        **continuous,
    }
    (ARTIFACTS / "summary.json").write_text(json.dumps(summary, indent=2))
    step(
        f"All checks passed: s3_backup {backup['seconds']:.0f} s, s3_restore {restore['seconds']:.0f} s, "
        f"whole run so far {summary['wall_seconds']:.0f} s"
    )
    if args.keep:
        print(f"   --keep: cluster up at {api} (UI, REST API); Ctrl-C stops it", flush=True)
        with suppress_interrupt():
            while True:
                cluster.check_alive()
                time.sleep(2)
    return not args.no_ui


@contextmanager
def suppress_interrupt() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        print("\n   stopping the cluster", flush=True)


# --------------------------------------------------------------------------------------------
# Small HTTP helpers


def http_json(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("Accept", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise E2EFailure(f"{method} {url}: HTTP {exc.code}: {detail}") from None
    except OSError as exc:
        raise E2EFailure(f"{method} {url}: {exc}") from None
    return json.loads(raw) if raw else None


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 200 <= response.status < 300
    except OSError:
        return False


def wait_for(what: str, ready: Callable[[], bool], cluster: Cluster, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        cluster.check_alive()
        if time.monotonic() > deadline:
            raise E2EFailure(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


if __name__ == "__main__":
    raise SystemExit(main())
