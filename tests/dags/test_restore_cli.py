"""Acceptance: ``airflow dags test s3_restore -c CONF`` in a subprocess, the way a user runs it.

The subprocess sees the session's SQLite Airflow, our DAGs folder and the moto endpoint through
the environment that ``tests/conftest.py`` sets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.dags.conftest import Obj, put
from tests.dags.test_restore_dag import (
    RESTORE_SECONDS,
    TEXT,
    assert_restored,
    bucket_exists,
    build_backup,
    let_age,
    run_files,
    set_restore_transition,
)
from tests.support.s3 import list_keys, snapshot_bucket

pytestmark = pytest.mark.slow

AIRFLOW = os.path.join(os.path.dirname(sys.executable), "airflow")
DAG_ID = "s3_restore"


def airflow_dags_test(conf: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AIRFLOW, "dags", "test", DAG_ID, "-c", json.dumps(conf)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=600,
    )


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


@pytest.fixture
def cli_buckets(s3: Any, bucket_names: Any, airflow_db: str) -> tuple[str, str]:
    """Names of a (backup, target) pair; neither exists yet. The metadata DB is migrated."""
    return bucket_names("clibak"), bucket_names("clirestored")


@pytest.fixture
def slow_cli_restores(endpoint: str) -> Iterator[int]:
    set_restore_transition(endpoint, {"progression": "time", "seconds": RESTORE_SECONDS})
    try:
        yield RESTORE_SECONDS
    finally:
        set_restore_transition(endpoint, {"progression": "immediate"})


def test_cli_restore_brings_back_the_backup_byte_for_byte(
    s3: Any, cli_buckets: tuple[str, str], slow_cli_restores: int
) -> None:
    backup_name, target = cli_buckets
    backup = build_backup(s3, backup_name)
    assert {"GLACIER", "DEEP_ARCHIVE"} <= {item.storage_class for item in backup.items.values()}
    let_age(backup.created, slow_cli_restores)

    result = airflow_dags_test(
        {"backup_bucket": backup_name, "target_bucket": target, "poll_interval_seconds": 1}
    )

    assert result.returncode == 0, output_of(result)[-5000:]
    assert_restored(s3, backup, target, backup.keys())
    reports = [k for k in run_files(s3, backup_name) if k.endswith("/report.json")]
    assert len(reports) == 1, reports


def test_cli_refuses_a_non_empty_target_and_names_it(s3: Any, cli_buckets: tuple[str, str]) -> None:
    backup_name, target = cli_buckets
    build_backup(s3, backup_name)
    s3.create_bucket(Bucket=target)
    put(s3, target, "precious.txt", Obj(b"do not touch", TEXT, {"mine": "yes"}, {"keep": "me"}))
    before = snapshot_bucket(s3, target)

    result = airflow_dags_test(
        {"backup_bucket": backup_name, "target_bucket": target, "poll_interval_seconds": 1}
    )

    output = output_of(result)
    assert result.returncode != 0, output[-5000:]
    assert target in output and "not empty" in output, output[-5000:]
    assert snapshot_bucket(s3, target) == before
    assert list_keys(s3, target, include_reserved=True) == ["precious.txt"]
    assert run_files(s3, backup_name) == []
    assert bucket_exists(s3, backup_name)
