"""The one-command demo: an embedded moto S3 server, SQLite Airflow, backup then restore.

Run with ``make demo``. Everything lives under ``.demo/`` and a moto server on a free loopback
port; nothing outside this folder is touched and no real AWS account is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.ui import LOGIN, save_buckets  # noqa: E402
from tests.support.s3 import (  # noqa: E402
    env_for_airflow,
    list_keys,
    moto_process,
    s3_client,
    set_restore_transition,
)

DEMO = ROOT / ".demo"
SOURCE, BACKUP, RESTORED = "demo-source", "demo-backup", "demo-restored"
DRILL = "demo-drill"
DELETED = ("logs/2026/11/part-003.csv", "logs/2026/11/part-004.csv", "images/2026/11/part-005.csv")
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def main() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    (DEMO / "airflow").mkdir(parents=True)
    started = time.monotonic()
    with moto_process() as endpoint:
        env = {**os.environ, **env_for_airflow(str(DEMO / "airflow"), endpoint)}
        # Small partitions so the demo's 242 objects show several mapped tasks (default 5,000).
        env["AIRFLOW__S3BR__TARGET_KEYS_PER_PARTITION"] = "50"
        s3 = s3_client(endpoint)
        step(f"moto S3 server at {endpoint}; Airflow home {DEMO / 'airflow'} (SQLite)")
        write_config(DEMO / "airflow", env)
        airflow(env, "db", "migrate")
        seed(s3)
        step("1. First backup of s3://demo-source into s3://demo-backup")
        summary(s3, backup(env, "first"))
        change(s3)
        step("2. Second backup after 2 rewrites, 2 new objects and 3 deletions in the source")
        summary(s3, backup(env, "second"))
        archive_some(s3, endpoint)
        step("3. Restore s3://demo-backup into the new bucket s3://demo-restored")
        run(
            env,
            "s3_restore",
            {"backup_bucket": BACKUP, "target_bucket": RESTORED, "poll_interval_seconds": 2},
            "restore",
        )
        ok = side_by_side(s3)
        ok = drill(env, s3) and ok
        ok = put_back_deleted(env, s3) and ok
        began = time.monotonic()
        saved = save_buckets(s3, [SOURCE, BACKUP, RESTORED, DRILL], DEMO / "s3")
        print(f"   {saved} objects kept in .demo/s3/ for make ui ({time.monotonic() - began:.1f} s)")
    step(f"Done in {time.monotonic() - started:.0f} s. Logs: {DEMO}/*.log and {DEMO}/airflow/logs/")
    how_to_look()
    return 0 if ok else 1


def how_to_look() -> None:
    user, password = LOGIN
    print(
        f"""
== To look at what the demo did in the Airflow UI: make ui
   then open http://127.0.0.1:8080 (login {user} / {password}): the DAG runs and their task logs,
   the mapped partitions named by key range, the Backups view ("Backups" in the navigation,
   or http://127.0.0.1:8080/s3br/), and s3_restore's Trigger form. Ctrl-C stops it.""",
        flush=True,
    )


def write_config(home: Path, env: dict[str, str]) -> None:
    """The demo home's airflow.cfg, so that ``airflow`` with only ``AIRFLOW_HOME`` set (``make ui``,
    ``airflow dags test``) finds the demo's DAGs and database, and the api-server the Backups
    view (a provider's plugin); and a known login for the UI."""
    keys = {
        "core": {
            "dags_folder": "AIRFLOW__CORE__DAGS_FOLDER",
            "load_examples": "AIRFLOW__CORE__LOAD_EXAMPLES",
        },
        "database": {"sql_alchemy_conn": "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"},
    }
    lines = []
    for section, options in keys.items():
        lines.append(f"[{section}]")
        lines += [f"{option} = {env[var]}" for option, var in options.items()]
        if section == "core":
            lines.append("simple_auth_manager_users = admin:admin")
            lines.append("lazy_discover_providers = False")  # the api-server loads provider plugins
    (home / "airflow.cfg").write_text("\n".join(lines) + "\n")
    user, password = LOGIN
    (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({user: password}) + "\n")


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def airflow(env: dict[str, str], *args: str, log: str | None = None) -> None:
    out = open(DEMO / (log or "airflow.log"), "a")  # noqa: SIM115 - handed to the child
    subprocess.run([AIRFLOW, *args], env=env, stdout=out, stderr=subprocess.STDOUT, check=True)


def run(env: dict[str, str], dag_id: str, conf: dict[str, Any], name: str) -> None:
    began = time.monotonic()
    airflow(env, "dags", "test", dag_id, "-c", json.dumps(conf), log=f"{name}.log")
    text = (DEMO / f"{name}.log").read_text()
    write_task_logs(text, dag_id, DEMO / "airflow" / "logs")
    state = "success" if "state=success" in text.split("DagRun Finished")[-1] else "FAILED"
    print(f"   {dag_id}: {state} in {time.monotonic() - began:.0f} s (log: .demo/{name}.log)")
    if state != "success":
        raise SystemExit(f"{dag_id} failed: see {DEMO / f'{name}.log'}")


# `airflow dags test` runs the tasks one after the other in its own process and logs them all to
# its output; the UI reads a task's log from the file a worker would have written. Each task's
# lines go to that file (Airflow's default log_filename_template), as JSON lines like a worker's.
TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
TASK_END = re.compile(r"\[DAG TEST\] end task task_id=")
RUN_ID = re.compile(r"DagRun Finished: dag_id=[^,]+, .*?run_id=([^,]+),")
LINE = re.compile(r"^(?P<timestamp>\S+Z) \[(?P<level>\w+)\s*\] (?P<rest>.*)$", re.S)
TAIL = re.compile(r"^(?P<event>.*?) \[(?P<logger>[\w.]+)\](?: (?P<extra>\w+=.*))?$", re.S)


def write_task_logs(text: str, dag_id: str, logs: Path) -> None:
    run_id = RUN_ID.search(text)
    if run_id is None:
        return
    attempts: dict[tuple[str, str], int] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if start := TASK_START.search(line):
            key = start.groups()
            attempts[key] = attempts.get(key, 0) + 1
            current = []
            task_id, map_index = key
            folder = logs / f"dag_id={dag_id}" / f"run_id={run_id.group(1)}" / f"task_id={task_id}"
            folder = folder / f"map_index={map_index}" if int(map_index) >= 0 else folder
            path = folder / f"attempt={attempts[key]}.log"
        elif current is not None and TASK_END.search(line):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in _entries(current))
            )
            current = None
        elif current is not None:
            current.append(line)


def _entries(lines: list[str]) -> list[dict[str, str]]:
    """One entry per log event; a line without a timestamp continues the event before it."""
    events: list[str] = []
    for line in lines:
        if LINE.match(line) or not events:
            events.append(line)
        else:
            events[-1] += "\n" + line
    entries = []
    for event in events:
        match = LINE.match(event)
        if match is None:
            entries.append({"event": event})
            continue
        entry = {"timestamp": match["timestamp"], "level": match["level"], "event": match["rest"]}
        if "[DAG TEST]" in entry["event"]:
            continue
        if tail := TAIL.match(match["rest"]):  # the key=value pairs after it are Airflow's ids
            entry |= {"event": tail["event"].rstrip(), "logger": tail["logger"]}
        entries.append(entry)
    return entries


def backup(env: dict[str, str], name: str) -> dict[str, Any]:
    run(
        env,
        "s3_backup",
        {"source_bucket": SOURCE, "backup_bucket": BACKUP, "multipart_threshold_mb": 8},
        name,
    )
    return latest_report(s3_client(json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]["endpoint_url"]))


def latest_report(s3: Any) -> dict[str, Any]:
    reports = [
        o
        for o in s3.list_objects_v2(Bucket=BACKUP, Prefix="_s3br/runs/s3_backup/").get("Contents", [])
        if o["Key"].endswith("/report.json")
    ]
    newest = max(reports, key=lambda o: o["LastModified"])
    return json.loads(s3.get_object(Bucket=BACKUP, Key=newest["Key"])["Body"].read())


def summary(s3: Any, report: dict[str, Any]) -> None:
    t = report["totals"]
    print(
        f"   {t['partitions']} partitions: {t['source_objects']} source objects, {t['copied']} copied "
        f"({t['bytes_copied'] / 2**20:.1f} MiB), {t['unchanged']} unchanged, {t['vanished']} vanished "
        f"({t['tagged_deleted']} newly tagged Deleted=True), {t['failed']} failed"
    )


def seed(s3: Any) -> None:
    s3.create_bucket(Bucket=SOURCE)
    s3.create_bucket(Bucket=BACKUP)
    s3.put_bucket_versioning(Bucket=BACKUP, VersioningConfiguration={"Status": "Enabled"})
    teams = ["analytics", "billing", "images", "logs", "ml-models", "reports"]
    count = 0
    for team in teams:
        for i in range(40):
            key = (
                f"{team}/2026/11/{i:03d} report é+%.csv" if i % 7 == 0 else f"{team}/2026/11/part-{i:03d}.csv"
            )
            s3.put_object(
                Bucket=SOURCE,
                Key=key,
                Body=f"{team},{i}\n".encode() * (i + 1),
                ContentType="text/csv",
                Metadata={"team": team, "row": str(i)},
                Tagging=f"team={team}&tier={'gold' if i % 2 else 'silver'}",
            )
            count += 1
    s3.put_object(
        Bucket=SOURCE,
        Key="ml-models/big-model.bin",
        Body=os.urandom(12 * 2**20),
        ContentType="application/octet-stream",
    )
    s3.put_object(Bucket=SOURCE, Key="empty-marker", Body=b"")
    print(f"   seeded s3://{SOURCE} with {count + 2} objects (one of 12 MiB, copied in parts)")


def change(s3: Any) -> None:
    time.sleep(1.1)  # S3 timestamps have one-second resolution
    s3.put_object(
        Bucket=SOURCE, Key="billing/2026/11/part-001.csv", Body=b"rewritten,1\n" * 5, ContentType="text/csv"
    )
    s3.put_object(
        Bucket=SOURCE, Key="reports/2026/11/part-002.csv", Body=b"resized\n" * 99, ContentType="text/csv"
    )
    s3.put_object(Bucket=SOURCE, Key="reports/2026/12/new-1.csv", Body=b"new\n", ContentType="text/csv")
    s3.put_object(Bucket=SOURCE, Key="reports/2026/12/new-2.csv", Body=b"new\n", ContentType="text/csv")
    for key in DELETED:
        s3.delete_object(Bucket=SOURCE, Key=key)


def report_of(s3: Any, dag_id: str) -> dict[str, Any]:
    """The newest report.json of a DAG's runs in the backup bucket."""
    prefix = f"_s3br/runs/{dag_id}/"
    found = [o for o in s3.list_objects_v2(Bucket=BACKUP, Prefix=prefix).get("Contents", [])]
    newest = max((o for o in found if o["Key"].endswith("/report.json")), key=lambda o: o["LastModified"])
    return json.loads(s3.get_object(Bucket=BACKUP, Key=newest["Key"])["Body"].read())


def drill(env: dict[str, str], s3: Any) -> bool:
    """A restore drill: 20 random backup objects restored into demo-drill and checked."""
    step(f"4. Restore drill: 20 random objects of s3://{BACKUP} restored into s3://{DRILL} and checked")
    s3.create_bucket(Bucket=DRILL)
    conf = {"backup_bucket": BACKUP, "source_bucket": SOURCE, "drill_bucket": DRILL}
    run(env, "s3_restore_drill", {**conf, "sample_size": 20, "drill_expiration_days": 7}, "drill")
    r = report_of(s3, "s3_restore_drill")
    print(
        f"   sampled {r['sampled']}, verified {r['verified']}, mismatched {r['mismatched']}, "
        f"{r['skipped_archived']} archived skipped, {r['source_compared']} also compared with the source; "
        f"{r['bytes'] / 1024:.1f} KiB in {r['seconds']:.2f} s ({r['bytes_per_second'] / 1024:.0f} KiB/s)"
    )
    estimate = r["estimate"]
    print(
        f"   a full restore of {estimate['backup_objects']} objects would take about "
        f"{estimate['full_restore_seconds'] / 3600:.1f} h ({estimate['copy_seconds']:.0f} s of copies "
        f"+ {estimate['retrieval_seconds'] / 3600:.0f} h of archive retrieval, tier Standard)"
    )
    return r["mismatched"] == 0


def put_back_deleted(env: dict[str, str], s3: Any) -> bool:
    """An item-level, in-place restore: the 3 deleted objects back into the source itself."""
    step(f"5. Put the 3 objects deleted in step 2 back into s3://{SOURCE} (keys, missing_only)")
    conf = {
        "backup_bucket": BACKUP,
        "target_bucket": SOURCE,
        "keys": [*DELETED, "billing/2026/11/part-001.csv"],
        "target_mode": "missing_only",
        "include_deleted": True,
        "poll_interval_seconds": 2,
    }
    run(env, "s3_restore", conf, "put-back")
    t = report_of(s3, "s3_restore")["totals"]
    back = [key for key in DELETED if key in set(list_keys(s3, SOURCE))]
    print(
        f"   {t['restored']} restored, {t['skipped_existing']} already in the source and left as it is "
        f"(billing/2026/11/part-001.csv, rewritten in step 2, keeps its new bytes); back: {', '.join(back)}"
    )
    return len(back) == len(DELETED)


def archive_some(s3: Any, endpoint: str) -> None:
    """Move a few backup objects to GLACIER / DEEP_ARCHIVE, as a lifecycle rule would."""
    set_restore_transition(endpoint, {"progression": "time", "seconds": 4})
    for key, storage_class in (
        ("analytics/2026/11/part-010.csv", "GLACIER"),
        ("analytics/2026/11/part-011.csv", "DEEP_ARCHIVE"),
    ):
        s3.copy_object(
            Bucket=BACKUP,
            Key=key,
            CopySource={"Bucket": BACKUP, "Key": key},
            StorageClass=storage_class,
            MetadataDirective="COPY",
        )
    print("   moved 2 backup objects to GLACIER and DEEP_ARCHIVE (restores take 4 s in moto)")


def fingerprint(s3: Any, bucket: str, key: str) -> tuple[str, str, str]:
    body = s3.get_object(Bucket=bucket, Key=key)
    tags = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    digest = hashlib.sha256(body["Body"].read()).hexdigest()[:12]
    return digest, body.get("ContentType", ""), ",".join(sorted(f"{t['Key']}={t['Value']}" for t in tags))


def side_by_side(s3: Any) -> bool:
    source, restored = set(list_keys(s3, SOURCE)), set(list_keys(s3, RESTORED))
    rows, mismatches = [], 0
    for key in sorted(source | restored):
        left = fingerprint(s3, SOURCE, key) if key in source else None
        right = fingerprint(s3, RESTORED, key) if key in restored else None
        same = left == right
        mismatches += not same
        rows.append((key, left, right, same))
    print(f"   {'key':44} {'source sha256/type/tags':44} {'restored':10}")
    for key, left, right, same in rows[:12] + rows[-3:]:
        shown = f"{left[0]} {left[1]} {left[2]}"[:44] if left else "(missing)"
        print(f"   {key[:44]:44} {shown:44} {'same' if same else 'DIFFERENT' if right else '(missing)'}")
    print(f"   ... {len(rows)} keys compared: {len(rows) - mismatches} identical, {mismatches} different")
    backup_only = sorted(set(list_keys(s3, BACKUP)) - source)
    print(f"   {len(backup_only)} objects deleted from the source stay in the backup, tagged Deleted=True:")
    for key in backup_only:
        tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=BACKUP, Key=key)["TagSet"]}
        print(f"     {key}  Deleted={tags.get('Deleted')} DeletedAt={tags.get('DeletedAt')}")
    return mismatches == 0


if __name__ == "__main__":
    raise SystemExit(main())
