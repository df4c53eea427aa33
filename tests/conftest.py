"""Shared fixtures: one moto S3 server per session and an isolated SQLite Airflow.

The Airflow environment is set before anything imports Airflow, so every test (and every
``airflow`` subprocess) uses a throw-away home, our DAGs folder and the moto endpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.s3 import env_for_airflow, moto_process, s3_client

_MOTO = moto_process()
ENDPOINT = _MOTO.__enter__()
AIRFLOW_HOME = tempfile.mkdtemp(prefix="s3br-airflow-")
os.environ.update(env_for_airflow(AIRFLOW_HOME, ENDPOINT))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _MOTO.__exit__(None, None, None)


@pytest.fixture(scope="session")
def endpoint() -> str:
    return ENDPOINT


@pytest.fixture(scope="session")
def s3(endpoint: str) -> Any:
    return s3_client(endpoint)


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """Migrate the session's SQLite metadata database once."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return AIRFLOW_HOME


@pytest.fixture
def bucket_names() -> Iterator[Any]:
    """Unique bucket names per test, so tests share one server without seeing each other."""
    token = uuid.uuid4().hex[:8]

    def name(role: str) -> str:
        return f"{role}-{token}"

    yield name


# Small partitions, so that the small data sets of the tests still spread over several mapped
# tasks (production default: 5,000 keys per partition).
os.environ.setdefault("AIRFLOW__S3BR__TARGET_KEYS_PER_PARTITION", "10")
