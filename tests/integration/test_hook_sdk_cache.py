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


FORK_AND_REPORT = """
import json, os, sys
import airflow  # airflow.settings imports the airflow.policy entry points: s3br's fork_preload
PRELOADED = ("boto3", "s3br_provider.hooks.s3_bucket", "s3br_provider.task_groups")
before = [m for m in PRELOADED if m in sys.modules]
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    from s3br_provider.hooks import sdk_cache
    loader = sdk_cache._loader
    loaded = [] if loader is None else [k[1] for k in loader._cache if k[0] == "load_service_model"]
    modules = [m for m in PRELOADED if m in sys.modules]
    from s3br_provider.hooks.s3_bucket import S3BucketHook
    client = S3BucketHook().client
    client.list_buckets()
    shared = client._loader is sdk_cache._loader
    os.write(write, json.dumps({"loaded": sorted(loaded), "modules": modules, "shared": shared}).encode())
    os._exit(0)
_, status = os.waitpid(pid, 0)
os.close(write)
print(json.dumps({"before": before, "status": status, "child": json.loads(os.read(read, 65536))}))
"""


def _fork_under_airflow(tmp_path: Path, **settings: str) -> dict:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), **settings}
    done = subprocess.run(
        [sys.executable, "-c", FORK_AND_REPORT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_airflow_process_preloads_the_sdk_before_it_first_forks(tmp_path, endpoint) -> None:
    """What a task forked by a scheduler, worker or dag-processor finds, with no deployment
    setting: boto3 and s3br imported, S3's model parsed, and its first client built on them.
    Importing Airflow loads none of it: only the fork does."""
    found = _fork_under_airflow(tmp_path)

    assert found["before"] == []
    assert found["status"] == 0
    assert {"s3", "cloudwatch"} <= set(found["child"]["loaded"])
    assert found["child"]["modules"] == [
        "boto3",
        "s3br_provider.hooks.s3_bucket",
        "s3br_provider.task_groups",
    ]
    assert found["child"]["shared"] is True


def test_the_preload_is_off_with_its_option(tmp_path, endpoint) -> None:
    found = _fork_under_airflow(tmp_path, AIRFLOW__S3BR__PRELOAD_SDK="False")

    assert found["status"] == 0
    assert found["child"]["loaded"] == []
    assert found["child"]["modules"] == []
    assert found["child"]["shared"] is True  # the task's own first client fills the loader


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
