"""The Airflow UI of a live cluster, in a real (headless) Chromium, after ``scripts/e2e-cluster``'s runs.

Airflow 3's UI is a React app: every check waits for text to appear rather than for selectors
that change between releases. Screenshots go to ``artifacts/ui/``.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from typing import Any
from urllib.parse import quote

import pytest

from tests.cluster.conftest import UI

pytestmark = pytest.mark.skipif(
    not os.environ.get("S3BR_UI_URL"), reason="needs a live cluster: run scripts/e2e-cluster"
)

DAG_IDS = ("s3_backup", "s3_restore")
# The s3_restore Params of the public contract (DESIGN.md); the form may show more.
RESTORE_PARAMS = (
    "backup_bucket",
    "target_bucket",
    "prefix",
    "include_deleted",
    "restore_tier",
    "restore_days",
    "as_of",
    "dry_run",
    "cloudwatch_namespace",
    "backup_aws_conn_id",
    "target_aws_conn_id",
)
TIERS = ["Expedited", "Standard", "Bulk"]
# A mapped partition's name in the UI: "p0 (-inf, 'b/']", "p3 ('logs/', +inf]".
PARTITION_LABEL = re.compile(r"^p(\d+)( chunk \d+(-\d+)?/\d+)? \((-inf|'.*'), ('.*'|\+inf)\]$")
"""``p3 ('a', 'b']``; a partition copied in chunks labels its copy_batch ``p3 chunk 1/4 ('a', 'b']``."""


def test_dags_page_lists_both_dags_with_descriptions(page: Any, ui: UI) -> None:
    page.goto(f"{ui.url}/dags")
    for dag_id in DAG_IDS:
        page.get_by_role("link", name=dag_id, exact=True).first.wait_for()
    ui.shot(page, "01-dags")
    for dag_id in DAG_IDS:
        description = ui.api(f"dags/{dag_id}")["description"]
        assert description, f"{dag_id} has no description"
        # The DAG card shows its description as the tooltip of the DAG's name.
        page.get_by_role("link", name=dag_id, exact=True).first.hover()
        page.get_by_text(description, exact=True).wait_for()
        ui.shot(page, f"02-dags-{dag_id}-description")
        page.mouse.move(0, 0)


def test_restore_trigger_form_shows_every_param_described(page: Any, ui: UI) -> None:
    params = ui.api("dags/s3_restore/details")["params"]
    assert set(RESTORE_PARAMS) <= set(params), f"Params missing: {set(RESTORE_PARAMS) - set(params)}"
    page.goto(f"{ui.url}/dags/s3_restore")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Run Parameters").wait_for()
    dialog.get_by_text(params["target_aws_conn_id"]["description"], exact=True).wait_for()
    ui.shot(page, "03-restore-trigger-form")
    text = dialog.inner_text()
    for name, param in params.items():
        label = param["schema"].get("title") or name
        assert label in text, f"Param {name!r}: label {label!r} not in the trigger form"
        assert param["description"], f"Param {name!r} has no description"
        assert param["description"] in text, f"Param {name!r}: description not in the trigger form"

    # The tier is a drop-down of exactly the three retrieval tiers.
    row = (
        dialog.locator("div")
        .filter(has=page.get_by_text(params["restore_tier"]["description"], exact=True))
        .filter(has=page.get_by_role("combobox"))
        .last
    )
    row.get_by_role("combobox").click()
    page.get_by_role("option", name="Bulk", exact=True).wait_for()
    ui.shot(page, "04-restore-trigger-tier")
    assert [o.inner_text() for o in page.get_by_role("option").all()] == TIERS
    page.keyboard.press("Escape")


@pytest.mark.parametrize(
    ("dag_id", "task_id"),
    [("s3_backup", "partition.copy_batch"), ("s3_restore", "partition.wait_for_restore")],
)
def test_mapped_tasks_are_named_by_key_range(
    page: Any, ui: UI, run_ids: dict[str, str], dag_id: str, task_id: str
) -> None:
    run_id = run_ids[dag_id]
    tis = ui.api(f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances?limit=100")
    mapped = [ti for ti in tis["task_instances"] if ti["task_id"] == task_id and ti["map_index"] >= 0]
    # A step its partition's first task skipped (a restore partition without archived objects:
    # select skips wait_for_restore) never started, so it never rendered its name.
    started = [ti for ti in mapped if ti["state"] != "skipped"]
    assert len(started) >= 2, f"{dag_id}: expected several mapped {task_id} that ran, got {len(started)}"
    labels = sorted((ti["rendered_map_index"] for ti in started), key=lambda s: int(s.split()[0][1:]))
    for label in labels:
        assert PARTITION_LABEL.match(label), f"{task_id} map index name {label!r} is not a key range"

    page.goto(ui.run_url(dag_id, run_id, f"/tasks/{task_id}/mapped"))
    page.get_by_text(labels[0], exact=True).wait_for()
    ui.shot(page, f"05-{dag_id}-{task_id}-mapped")
    text = page.inner_text("body")
    shown = [label for label in labels if label in text]
    assert shown == labels, f"not shown in the UI: {sorted(set(labels) - set(shown))}"
    assert f"{len(mapped)} Task Instances" in text


def test_backup_report_is_readable_in_the_task_log(page: Any, ui: UI, run_ids: dict[str, str]) -> None:
    page.goto(ui.run_url("s3_backup", run_ids["s3_backup"], "/tasks/report"))
    page.get_by_text(re.compile(r"Totals: \d+ source objects")).first.wait_for()
    ui.shot(page, "06-s3_backup-report-log")
    text = page.inner_text("body")
    columns = r"part\s+range\s+source\s+new\s+changed\s+unchanged\s+vanished\s+chunks\s+copied"
    header = re.search(columns, text)
    assert header, "the report table's header is not in the report task's log"
    rows = re.findall(r"^p\d+\s+\(", text, flags=re.MULTILINE)
    assert len(rows) >= 2, f"expected a report row per partition, found {len(rows)}"
    totals = re.search(r"Totals: (\d+) source objects.*?(\d+) copied.*?(\d+) failed", text)
    assert totals, "no 'Totals:' line"
    assert int(totals.group(1)) > 0
    assert totals.group(3) == "0", f"the report shows failures: {totals.group(0)}"


def test_backups_view_lists_the_cluster_pair_with_its_counts_and_chart(
    page: Any, ui: UI, run_ids: dict[str, str]
) -> None:
    run_id = run_ids["s3_backup"]
    with urllib.request.urlopen(f"{ui.url}/s3br/api/backups", timeout=30) as response:
        entries = json.loads(response.read())
    (entry,) = [e for e in entries if run_id in [r["run_id"] for r in e["runs"]]]
    counts = entry["last_run"]["counts"]
    assert entry["last_run"]["state"] == "success" and counts["copied"] > 0 and counts["failed"] == 0
    assert entry["objects"] == counts["source_objects"] - counts["skipped_archived"]

    # From the navigation entry to the view, which the UI shows in a frame.
    page.goto(f"{ui.url}/dags")
    page.get_by_role("link", name="Backups").first.click()
    view = page.frame_locator("iframe")
    title = f"s3://{entry['source_bucket']} → s3://{entry['backup_bucket']}"
    pair = view.locator("section.pair").filter(has=view.get_by_text(title))
    pair.wait_for()
    view.locator("svg.chart rect.copied").first.wait_for()
    ui.shot(page, "07-backups-view")
    text = pair.inner_text()
    for label, value in (
        ("Objects", entry["objects"]),
        ("Deleted objects", entry["deleted_objects"]),
        ("Source objects", counts["source_objects"]),
        ("Copied", counts["copied"]),
        ("Failed", counts["failed"]),
    ):
        assert re.search(rf"^{label}\s+{value:,}$", text, flags=re.MULTILINE), f"{label} {value:,} not shown"
    assert pair.locator("svg.chart rect.copied").count() == len(entry["runs"])
    assert "success" in text
