"""The Backups view on a real ``airflow api-server``, after a whole ``s3_backup`` run.

The api-server runs on a free port with the session's SQLite home and loads the plugin as any
installation does: from the provider info, with ``[core] lazy_discover_providers = False``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3br_provider.core.backups_view import DRILL_DAG_ID
from s3br_provider.core.manifest import run_folder, split_s3_uri
from tests.support.dag_runs import run_dag
from tests.support.moto_server import free_port
from tests.support.s3 import Obj, seed

pytestmark = pytest.mark.slow
SOURCE_OBJECTS = {
    "a/one.csv": Obj(b"1,2\n" * 10, "text/csv"),
    "a/two.csv": Obj(b"3,4\n" * 20, "text/csv"),
    "b/three.bin": Obj(b"\x00" * 1000),
    "c/empty": Obj(b""),
}
GONE = "b/gone-from-the-source.txt"  # only in the backup: vanished, tagged Deleted


class Api:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(f"{self.url}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def healthy(self) -> bool:
        try:
            return self.get("/api/v2/monitor/health")[0] == 200
        except OSError:  # not listening yet
            return False

    def token(self, home: str) -> str:
        passwords = json.loads(Path(home, "simple_auth_manager_passwords.json.generated").read_text())
        body = json.dumps({"username": "admin", "password": passwords["admin"]}).encode()
        request = urllib.request.Request(
            f"{self.url}/auth/token", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["access_token"]


@pytest.fixture(scope="module")
def backed_up(s3: Any, bucket_names: Any, airflow_db: str) -> tuple[str, str, str]:
    """A pair after one s3_backup run: 4 objects copied, 1 backup object whose source is gone."""
    source, backup = bucket_names("src"), bucket_names("bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    seed(s3, source, SOURCE_OBJECTS)
    s3.put_object(Bucket=backup, Key=GONE, Body=b"old")
    run = run_dag("s3_backup", {"source_bucket": source, "backup_bucket": backup})
    assert run.state == "success", run.failed_tasks()
    return source, backup, run.run_id


@pytest.fixture(scope="module")
def bucket_names() -> Any:
    token = os.urandom(4).hex()
    return lambda role: f"{role}-view-{token}"


@pytest.fixture(scope="module")
def api(backed_up: tuple[str, str, str], airflow_db: str) -> Iterator[Api]:
    """``airflow api-server`` on a free port, stopped by PID at the end."""
    port = free_port()
    # Airflow loads a provider's plugins only when it discovers providers eagerly.
    env = {**os.environ, "AIRFLOW__API__PORT": str(port), "AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS": "False"}
    log = tempfile.TemporaryFile()
    argv = [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen([*argv, "-w", "1"], env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Api(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 180
        while not server.healthy():
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"api-server did not come up:\n{log.read().decode(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_unauthenticated_requests_are_refused(api: Api) -> None:
    for path in ("/s3br/api/backups", "/s3br/"):
        status, _ = api.get(path)
        assert status in (401, 403), (path, status)
    assert api.get("/s3br/api/backups", token="not-a-jwt")[0] in (401, 403)


def test_api_lists_the_pair_with_the_runs_counts(api: Api, backed_up: tuple[str, str, str]) -> None:
    source, backup, run_id = backed_up
    status, body = api.get("/s3br/api/backups", token=api.token(os.environ["AIRFLOW_HOME"]))
    assert status == 200, body
    entries = {(e["source_bucket"], e["backup_bucket"]): e for e in json.loads(body)}
    entry = entries[(source, backup)]
    source_bytes = sum(len(obj.body) for obj in SOURCE_OBJECTS.values())
    assert (entry["objects"], entry["bytes"], entry["deleted_objects"]) == (4, source_bytes, 1)
    assert entry["dag_id"] == "s3_backup" and entry["last_success"] is not None
    assert 0 <= entry["age_seconds"] < 3600 and entry["late"] is False
    assert entry["schedule_seconds"] == 86400  # s3_backup is @daily
    last = entry["last_run"]
    assert (last["run_id"], last["state"], last["failures"]) == (run_id, "success", [])
    counts = last["counts"]
    assert (counts["source_objects"], counts["copied"], counts["vanished"], counts["tagged_deleted"]) == (
        4,
        4,
        1,
        1,
    )
    assert counts["bytes_copied"] == source_bytes and counts["failed"] == 0
    assert entry["last_drill"] is None  # no s3_restore_drill has run
    assert [(p["run_id"], p["copied"]) for p in entry["runs"]] == [(run_id, 4)]


def test_page_shows_the_pair_and_its_chart(api: Api, backed_up: tuple[str, str, str]) -> None:
    source, backup, _ = backed_up
    status, body = api.get("/s3br/", token=api.token(os.environ["AIRFLOW_HOME"]))
    assert status == 200
    html = body.decode()
    assert f"s3://{source} &rarr; s3://{backup}" in html
    assert '<svg class="chart"' in html and '<rect class="copied"' in html


DRILL_FIGURES = {"sampled": 3, "verified": 3, "mismatched": 0, "seconds": 1.5, "bytes_per_second": 800.0}


STAND_IN_DRILL = f"""
from airflow.sdk import DAG, task

with DAG("{DRILL_DAG_ID}", schedule=None):

    @task
    def report():
        return {DRILL_FIGURES!r}

    report()
"""


def test_last_drill_comes_from_its_report(
    api: Api, backed_up: tuple[str, str, str], tmp_path: Path, s3: Any
) -> None:
    """A stand-in ``s3_restore_drill`` whose last task returns the figures, as the drill's
    does; then its ``report.json``, as the drill writes it."""
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    source, backup, _ = backed_up
    (tmp_path / "drill.py").write_text(STAND_IN_DRILL)
    bag = DagBag(dag_folder=str(tmp_path))
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, "dags-folder", None)  # dag.test() runs serialized DAGs of a bundle only
    run = bag.get_dag(DRILL_DAG_ID).test(run_conf={"backup_bucket": backup})
    assert str(run.state) == "success"
    token = api.token(os.environ["AIRFLOW_HOME"])

    def last_drill() -> dict[str, Any]:
        status, body = api.get("/s3br/api/backups", token=token)
        assert status == 200, body
        (entry,) = [
            e for e in json.loads(body) if (e["source_bucket"], e["backup_bucket"]) == (source, backup)
        ]
        return entry["last_drill"]

    drill = last_drill()
    assert (drill["run_id"], drill["state"]) == (run.run_id, "success")
    assert {k: drill[k] for k in DRILL_FIGURES} == DRILL_FIGURES  # from the XCom: no report file
    assert drill["estimated_full_restore_seconds"] is None
    # The report file in the backup's run folder has the whole report, and wins.
    report = {**DRILL_FIGURES, "verified": 2, "mismatched": 1, "estimate": {"full_restore_seconds": 42.0}}
    report["mismatches"] = [{"key": "a/one.csv", "problems": ["bytes differ"]}]
    _, key = split_s3_uri(f"{run_folder(backup, DRILL_DAG_ID, run.run_id)}/report.json")
    s3.put_object(Bucket=backup, Key=key, Body=json.dumps(report).encode())
    drill = last_drill()
    assert (drill["verified"], drill["mismatched"], drill["mismatched_keys"]) == (2, 1, ["a/one.csv"])
    assert drill["estimated_full_restore_seconds"] == 42.0


def test_navigation_has_the_backups_entry(api: Api) -> None:
    status, body = api.get("/api/v2/plugins", token=api.token(os.environ["AIRFLOW_HOME"]))
    assert status == 200, body
    (plugin,) = [p for p in json.loads(body)["plugins"] if p["name"] == "s3br"]
    assert [(v["name"], v["href"], v["destination"]) for v in plugin["external_views"]] == [
        ("Backups", "/s3br/", "nav")
    ]
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/s3br"]
