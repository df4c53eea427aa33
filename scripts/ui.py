"""Serve the demo's Airflow: ``make ui`` after ``make demo``.

Starts a moto S3 server holding the buckets as the demo left them (``.demo/s3/``), then the
api-server, scheduler, dag-processor and triggerer on the demo's SQLite home, and waits for
Ctrl-C. The UI shows the demo's runs, their task logs and mapped partitions, the Backups view,
and ``s3_restore`` can be triggered from its form. Everything started is stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.moto_server import free_port  # noqa: E402
from tests.support.s3 import env_for_airflow, moto_child, s3_client, set_restore_transition  # noqa: E402

DEMO = ROOT / ".demo"
HOME = DEMO / "airflow"
SNAPSHOT = DEMO / "s3"
AIRFLOW = str(Path(sys.executable).parent / "airflow")
LOGIN = ("admin", "admin")
RESTORE_SECONDS = 4  # how long moto takes to restore an archived object
COMPONENTS = {
    "api-server": ["api-server", "--host", "127.0.0.1", "--port", "{port}", "-w", "1"],
    "scheduler": ["scheduler"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--port", type=int, default=8080, help="api-server port (default 8080, else a free one)"
    )
    args = parser.parse_args()
    if not (HOME / "airflow.db").exists() or not (SNAPSHOT / "buckets.json").exists():
        print("No demo to show: run `make demo` first.", file=sys.stderr)
        return 1
    port = args.port if port_free(args.port) else free_port()
    signal.signal(signal.SIGTERM, _raise_interrupt)
    with ExitStack() as stack:
        endpoint, _ = stack.enter_context(moto_child(log=open(DEMO / "ui-moto.log", "ab")))  # noqa: SIM115
        s3 = s3_client(endpoint)
        count = load_buckets(s3, SNAPSHOT)
        set_restore_transition(endpoint, {"progression": "time", "seconds": RESTORE_SECONDS})
        env = ui_env(endpoint, port)
        write_shell_env(env)
        print(f"moto S3 at {endpoint}: {count} objects of the demo's buckets loaded", flush=True)
        for name, argv in COMPONENTS.items():
            stack.enter_context(component(name, [a.format(port=port) for a in argv], env))
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url)
        print_how_to_look(url)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nStopping the demo's Airflow and moto ...", flush=True)
    return 0


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def ui_env(endpoint: str, port: int) -> dict[str, str]:
    """The demo's environment (``scripts/demo.py``), with the endpoint of this moto server and
    what the long-running components need: the Execution API URL, a stable login."""
    env = {**os.environ, **env_for_airflow(str(HOME), endpoint)}
    env.update(
        {
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret(),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # Only the runs the demo made and the ones triggered here: no scheduled s3_backup
            # (its Variables are not set in the demo).
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "false",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__S3BR__TARGET_KEYS_PER_PARTITION": "50",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
    )
    return env


def jwt_secret() -> str:
    """One secret per demo home, so that a login survives a restart of ``make ui``."""
    path = HOME / "jwt_secret"
    if not path.exists():
        import secrets

        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def write_shell_env(env: dict[str, str]) -> None:
    """``.demo/ui.env``: source it to use the ``airflow`` CLI on the demo while ``make ui`` runs."""
    keep = ("AIRFLOW_HOME", "AIRFLOW_CONN_AWS_DEFAULT", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL")
    lines = [f"export {name}='{env[name]}'" for name in keep]
    (DEMO / "ui.env").write_text("\n".join([*lines, f"export PATH='{Path(AIRFLOW).parent}':$PATH", ""]))


@contextmanager
def component(name: str, argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``airflow <argv>`` in its own process group (logs: ``.demo/ui-<name>.log``); stop it by PID."""
    with open(DEMO / f"ui-{name}.log", "ab") as log:
        proc = subprocess.Popen(
            [AIRFLOW, *argv], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    print(f"started {name} (pid {proc.pid}), log .demo/ui-{name}.log", flush=True)
    try:
        yield proc
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)  # the group start_new_session made, named by its leader's PID
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            if sig == signal.SIGTERM:
                os.killpg(proc.pid, signal.SIGKILL)  # children left behind (task processes)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def wait_until_up(url: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(
        f"the api-server did not answer at {url} in {timeout:.0f} s: see .demo/ui-api-server.log"
    )


def print_how_to_look(url: str) -> None:
    user, password = LOGIN
    print(
        f"""
The demo's Airflow is up: {url}  (login {user} / {password})
  - DAG runs and task logs:  {url}/dags/s3_backup/runs  (the report task's log has the table)
  - mapped partitions:       a run's partition.copy_batch task, named by key range
  - the Backups view:        "Backups" in the navigation, or {url}/s3br/  (JSON: {url}/s3br/api/backups)
  - restore from the form:   {url}/dags/s3_restore -> Trigger, backup_bucket demo-backup,
                             target_bucket a new name (e.g. demo-restored-2); poll_interval_seconds 5
                             (moto restores the 2 archived objects in {RESTORE_SECONDS} s; default 300)
  - the CLI on this home:    . .demo/ui.env && airflow dags list
Ctrl-C stops everything.""",
        flush=True,
    )


# --------------------------------------------------------------------------------------------
# The demo's buckets, kept on disk between `make demo` and `make ui` (moto keeps them in memory)


def save_buckets(s3: Any, buckets: list[str], folder: Path) -> int:
    """Write every current object of ``buckets`` (bytes, type, metadata, tags, storage class)."""
    folder.mkdir(parents=True, exist_ok=True)
    listing, count = [], 0
    with ThreadPoolExecutor(8) as pool:
        for bucket in buckets:
            versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status", "")
            found = [
                o
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for o in page.get("Contents", [])
            ]
            files = [folder / f"{count + i}.bin" for i in range(len(found))]
            objects = list(pool.map(lambda o, f, b=bucket: _save_object(s3, b, o, f), found, files))
            count += len(found)
            listing.append({"bucket": bucket, "versioning": versioning, "objects": objects})
    (folder / "buckets.json").write_text(json.dumps(listing, ensure_ascii=False, indent=1))
    return count


def _save_object(s3: Any, bucket: str, obj: dict[str, Any], path: Path) -> dict[str, Any]:
    key = obj["Key"]
    # An archived object is readable here: the demo's restore has restored it.
    got = s3.get_object(Bucket=bucket, Key=key)
    path.write_bytes(got["Body"].read())
    tags = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    return {
        "key": key,
        "file": path.name,
        "content_type": got.get("ContentType", ""),
        "metadata": got.get("Metadata", {}),
        "tags": {t["Key"]: t["Value"] for t in tags},
        "storage_class": obj.get("StorageClass", "STANDARD"),
    }


def load_buckets(s3: Any, folder: Path) -> int:
    """Recreate the saved buckets, in the order saved (a source before its backup, so that the
    backup's copies are not older than their sources)."""
    count = 0
    for bucket in json.loads((folder / "buckets.json").read_text()):
        s3.create_bucket(Bucket=bucket["bucket"])
        if bucket["versioning"]:
            s3.put_bucket_versioning(
                Bucket=bucket["bucket"], VersioningConfiguration={"Status": bucket["versioning"]}
            )
        for obj in bucket["objects"]:
            extra = {"Tagging": urllib.parse.urlencode(obj["tags"])} if obj["tags"] else {}
            if obj["storage_class"] != "STANDARD":
                extra["StorageClass"] = obj["storage_class"]
            s3.put_object(
                Bucket=bucket["bucket"],
                Key=obj["key"],
                Body=(folder / obj["file"]).read_bytes(),
                ContentType=obj["content_type"] or "binary/octet-stream",
                Metadata=obj["metadata"],
                **extra,
            )
            count += 1
    return count


if __name__ == "__main__":
    raise SystemExit(main())
