"""Test helpers: a moto server in its own process, clients, and bucket snapshots."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from tests.support.moto_aws import server_argv
from tests.support.moto_server import free_port

DUMMY_KEY = "testing"  # moto accepts any credentials; these are not real ones
REGION = "us-east-1"


@contextmanager
def moto_child(
    port: int | None = None, env: dict[str, str] | None = None, log: Any = subprocess.DEVNULL
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run moto's server (as AWS answers: ``moto_aws``) in a child process on a free loopback
    port; yield its URL and the process. ``env`` is added to the child's environment."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        server_argv(port), env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on {url}") from None
                time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def moto_process(port: int | None = None, env: dict[str, str] | None = None) -> Iterator[str]:
    """``moto_child``, yielding only the URL."""
    with moto_child(port, env) as (url, _):
        yield url


def local_client(service: str, endpoint_url: str, *, pool: int = 10, region_name: str = REGION) -> Any:
    """A boto3 client of a local endpoint with the dummy credentials it accepts."""
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        aws_access_key_id=DUMMY_KEY,
        aws_secret_access_key=DUMMY_KEY,
        region_name=region_name,
        config=Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=pool),
    )


def s3_client(endpoint_url: str) -> Any:
    return local_client("s3", endpoint_url)


def aws_conn_env(endpoint_url: str, login: str = DUMMY_KEY, password: str = DUMMY_KEY) -> str:
    """The ``AIRFLOW_CONN_AWS_DEFAULT`` value for a local endpoint (dummy credentials)."""

    return json.dumps(
        {
            "conn_type": "aws",
            "login": login,
            "password": password,
            "extra": {"endpoint_url": endpoint_url, "region_name": REGION},
        }
    )


@dataclass(frozen=True)
class Obj:
    """What a test puts into a bucket. ``content_type`` None leaves it to the server."""

    body: bytes
    content_type: str | None = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def put(s3: Any, bucket: str, key: str, obj: Obj, **extra: Any) -> None:
    """Put one object (``extra``: more PutObject parameters, such as its encryption); tags go
    through PutObjectTagging (XML, no URL-encoding ambiguity)."""
    kwargs: dict[str, Any] = {
        "Bucket": bucket,
        "Key": key,
        "Body": obj.body,
        "Metadata": obj.metadata,
        **extra,
    }
    if obj.content_type is not None:
        kwargs["ContentType"] = obj.content_type
    s3.put_object(**kwargs)
    if obj.tags:
        tag_set = [{"Key": k, "Value": v} for k, v in obj.tags.items()]
        s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tag_set})


def seed(s3: Any, bucket: str, objects: dict[str, Obj]) -> None:
    for key, obj in objects.items():
        put(s3, bucket, key, obj)


def set_restore_transition(endpoint: str, transition: dict[str, Any]) -> None:
    """Configure how moto's archive restores progress (global to the moto server)."""
    body = json.dumps({"model_name": "s3::keyrestore", "transition": transition}).encode()
    request = urllib.request.Request(
        f"{endpoint}/moto-api/state-manager/set-transition",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).read()


@dataclass(frozen=True)
class Snapshot:
    """Everything a backup promises to keep of one object."""

    body: bytes
    content_type: str
    metadata: dict[str, str]
    tags: dict[str, str]
    last_modified: Any
    storage_class: str


def list_keys(s3: Any, bucket: str, *, include_reserved: bool = False) -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys if include_reserved else [k for k in keys if not k.startswith("_s3br/")]


def snapshot(s3: Any, bucket: str, key: str, *, body: bool = True) -> Snapshot:
    head = s3.head_object(Bucket=bucket, Key=key)
    tags = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read() if body else b""
    return Snapshot(
        body=data,
        content_type=head.get("ContentType", ""),
        metadata=head.get("Metadata", {}),
        tags={t["Key"]: t["Value"] for t in tags},
        last_modified=head["LastModified"],
        storage_class=head.get("StorageClass", "STANDARD"),
    )


def snapshot_bucket(s3: Any, bucket: str) -> dict[str, Snapshot]:
    return {key: snapshot(s3, bucket, key) for key in list_keys(s3, bucket)}


def env_for_airflow(home: str, endpoint_url: str) -> dict[str, str]:
    """Environment for an isolated SQLite-backed Airflow that sees our DAGs and endpoint."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return {
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__DAGS_FOLDER": os.path.join(root, "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "false",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_AWS_DEFAULT": aws_conn_env(endpoint_url),
    }
