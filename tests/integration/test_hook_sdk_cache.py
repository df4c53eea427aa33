"""Hooks share one botocore loader per process, and ``preload`` fills it before a fork."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from s3br_provider.core.partitions import KeyRange
from s3br_provider.hooks import sdk_cache
from s3br_provider.hooks.metrics import BackupMetricsHook
from s3br_provider.hooks.s3_bucket import S3BucketHook

ROOT = Path(__file__).resolve().parents[2]
LOCAL_SETTINGS = ROOT / "config" / "airflow_local_settings.py"


def test_every_hook_client_uses_the_process_loader(s3, bucket_names) -> None:
    bucket = bucket_names("shared")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    first, second = S3BucketHook(), S3BucketHook()
    cloudwatch = BackupMetricsHook(namespace="")

    assert first.client._loader is second.client._loader is cloudwatch.conn._loader
    assert first.client._loader is sdk_cache._loader
    # Clients built on the shared loader still talk to the endpoint.
    assert [o["Key"] for o in second.client.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]


class MeasuringOperator:
    """Stands for an operator: the amazon provider names the class whose ``execute`` runs."""

    def execute(self) -> str:
        return S3BucketHook().client.meta.config.user_agent_extra


def test_the_user_agent_still_names_the_calling_operator() -> None:
    assert "Caller/MeasuringOperator" in MeasuringOperator().execute()


def test_the_local_settings_file_preloads_the_sdk_for_forked_tasks(tmp_path, endpoint) -> None:
    """What a task forked from a scheduler that imported ``airflow_local_settings`` finds:
    boto3 and the hooks imported, S3's model parsed, and its first client built on them."""
    script = (
        "import json, os, runpy, sys\n"
        f"runpy.run_path({str(LOCAL_SETTINGS)!r})\n"
        "from s3br_provider.hooks import sdk_cache\n"
        "loaded = {k[1] for k in sdk_cache._loader._cache if k[0] == 'load_service_model'}\n"
        "wanted = ('boto3', 's3br_provider.hooks.s3_bucket', 's3br_provider.task_groups')\n"
        "modules = [m for m in wanted if m in sys.modules]\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    from s3br_provider.hooks.s3_bucket import S3BucketHook\n"
        "    client = S3BucketHook().client\n"
        "    client.list_buckets()\n"
        "    os._exit(0 if client._loader is sdk_cache._loader else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(json.dumps({'loaded': sorted(loaded), 'modules': modules, 'child': status}))\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=True
    )

    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"s3", "cloudwatch"} <= set(found["loaded"])
    assert found["modules"] == ["boto3", "s3br_provider.hooks.s3_bucket", "s3br_provider.task_groups"]
    assert found["child"] == 0


class CountingHook(S3BucketHook):
    sessions = 0

    def get_session(self, region_name=None, deferrable=False):  # noqa: ANN001, ANN201
        type(self).sessions += 1
        return super().get_session(region_name=region_name, deferrable=deferrable)


def test_the_fast_path_reuses_the_clients_session_and_credentials(s3, bucket_names) -> None:
    """Credentials are resolved once per hook (for a role connection, one AssumeRole call)."""
    bucket = bucket_names("onesession")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    hook = CountingHook()

    assert hook.direct is not None
    assert CountingHook.sessions == 1
    assert [o.key for o in hook.iter_objects(bucket, "", KeyRange())] == ["k"]  # the direct path lists
