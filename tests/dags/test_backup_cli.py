"""The acceptance path: ``airflow dags test s3_backup -c CONF`` in a subprocess, then the buckets
compared byte for byte."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from tests.dags.conftest import Obj, assert_copies, assert_source, odd_objects, seed
from tests.support.s3 import list_keys, snapshot_bucket

pytestmark = pytest.mark.slow

AIRFLOW = os.path.join(os.path.dirname(sys.executable), "airflow")
MiB = 1024 * 1024
BIG_KEY = "big/twenty MiB+parts.bin"


def airflow_dags_test(conf: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Run ``airflow dags test s3_backup`` with ``conf``; the environment points at moto."""
    return subprocess.run(
        [AIRFLOW, "dags", "test", "s3_backup", "-c", json.dumps(conf)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=600,
    )


def run_state(output: str) -> str | None:
    """The state in the ``DagRun Finished`` line that ``airflow dags test`` logs."""
    found = re.findall(r"DagRun Finished: .*?\bstate=(\w+)", output)
    return found[-1] if found else None


def test_cli_backup_copies_everything_byte_for_byte(s3: Any, buckets: tuple[str, str]) -> None:
    source, backup = buckets
    big = Obj(
        os.urandom(20 * MiB),
        "application/x-tar",
        {"purpose": "multipart", "size": "20MiB"},
        {"kind": "big", "odd value": "a+b=c/d e:f@g_h.i"},
    )
    model = odd_objects() | {BIG_KEY: big}
    seed(s3, source, model)
    assert_source(s3, source, model)

    done = airflow_dags_test({"source_bucket": source, "backup_bucket": backup, "multipart_threshold_mb": 8})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert run_state(output) == "success", output[-5000:]

    src, dst = snapshot_bucket(s3, source), snapshot_bucket(s3, backup)
    assert sorted(dst) == sorted(src)
    assert_copies(src, dst, src)  # bytes, Content-Type, user metadata and tags, key by key
    # 20 MiB over an 8 MiB threshold: copied with UploadPartCopy in 3 parts.
    assert s3.head_object(Bucket=backup, Key=BIG_KEY)["ETag"].strip('"').endswith("-3")
    assert_source(s3, source, model)  # the source is left alone


def test_cli_missing_bucket_fails_naming_it(s3: Any, buckets: tuple[str, str]) -> None:
    source, backup = buckets
    seed(s3, backup, {"kept.txt": Obj(b"kept", "text/plain", {}, {"t": "1"})})
    before = list_keys(s3, backup, include_reserved=True), snapshot_bucket(s3, backup)
    missing = f"missing-{source}"

    done = airflow_dags_test({"source_bucket": missing, "backup_bucket": backup})
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-5000:]
    assert run_state(output) == "failed", output[-5000:]
    assert f"source_bucket '{missing}' does not exist" in output, output[-5000:]
    assert (list_keys(s3, backup, include_reserved=True), snapshot_bucket(s3, backup)) == before
