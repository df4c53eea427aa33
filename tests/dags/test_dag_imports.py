"""Parsing a DAG file stays cheap: every task process parses it before it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.dag_runs import DAGS_FOLDER

HEAVY = ("boto3", "airflow.providers.amazon.aws.hooks.base_aws", "aiobotocore")


@pytest.mark.parametrize(
    "dag_file", ["s3_backup.py", "s3_restore.py", "s3_continuous_backup.py", "s3_restore_drill.py"]
)
def test_parsing_a_dag_file_loads_no_aws_sdk(dag_file: str, tmp_path) -> None:
    """boto3 alone costs about 0.3 s to import; a task with nothing to do (copy_batch of an
    unchanged partition, tag_deleted with nothing vanished) must not pay it. Hooks load it
    when a task first talks to S3."""
    script = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('dag', {os.path.join(DAGS_FOLDER, dag_file)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        f"print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=True
    )

    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
