"""Credentials never leak: the shared scenario ran both DAGs on connection ``s3br_marked``
(from its own ``AIRFLOW_CONN_S3BR_MARKED`` environment variable), whose access key and secret
are recognisable markers. Neither may appear in the task logs, in any file under
``$AIRFLOW_HOME`` (log files, the metadata database), in an XCom, in report.json or in any run
file s3br wrote."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from tests.reliability.conftest import (
    MARKED_CONN_ID,
    MARKER_ACCESS_KEY,
    MARKER_SECRET,
    Scenario,
    airflow_home_files,
    run_folder_key,
    run_xcoms,
)
from tests.support.s3 import list_keys

pytestmark = pytest.mark.slow

MARKERS = (MARKER_ACCESS_KEY, MARKER_SECRET, MARKER_SECRET.split("/")[0])


def leaks(text: str) -> list[str]:
    return [marker for marker in MARKERS if marker in text]


def test_the_runs_used_the_marked_connection(scenario: Scenario) -> None:
    for name, recorded in scenario.runs.items():
        settings = recorded.report["settings"] if recorded.report else {}
        assert MARKED_CONN_ID in settings.values(), (name, settings)
        assert recorded.records, name  # and its requests went through the proxy


def test_no_credential_in_task_logs(scenario: Scenario) -> None:
    if scenario.output is None:
        pytest.skip("pytest ran with -s: the runs' output was not captured")
    output = scenario.output
    assert f"s3://{scenario.source}" in output and "Restoring s3://" in output  # the logs are there
    assert leaks(output) == []


def test_no_credential_in_any_file_under_airflow_home(scenario: Scenario) -> None:
    files = airflow_home_files()
    assert files
    leaked = {path: found for path, body in files.items() if (found := leaks(body.decode("latin-1")))}
    assert leaked == {}


def test_no_credential_in_xcoms(scenario: Scenario) -> None:
    for name, recorded in scenario.runs.items():
        xcoms = run_xcoms(recorded.dag_id, recorded.result.run_id)
        assert xcoms, name
        text = json.dumps([list(x) for x in xcoms], default=str, ensure_ascii=False)
        assert leaks(text) == [], name


def test_no_credential_in_reports_or_run_files(scenario: Scenario, s3: Any) -> None:
    checked = 0
    for name, recorded in scenario.runs.items():
        assert recorded.report is not None, name
        assert leaks(json.dumps(recorded.report, ensure_ascii=False)) == [], name
        folder = run_folder_key(recorded.dag_id, recorded.result.run_id)
        for key in list_keys(s3, scenario.backup, include_reserved=True):
            if key.startswith(folder) or key.startswith("_s3br/stats/"):
                assert leaks(_text(s3.get_object(Bucket=scenario.backup, Key=key)["Body"].read())) == [], key
                checked += 1
    assert checked >= 6


def _text(body: bytes) -> str:
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return body.decode("utf-8", "replace")
