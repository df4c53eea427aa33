"""The Backups view's shaping: runs to pair entries, lateness, chart series, drills, the page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from s3br_provider.core.backups_view import (
    BackupRun,
    DrillRun,
    backup_entries,
    chart_series,
    is_late,
    run_summary,
    schedule_period_seconds,
)
from s3br_provider.ui.page import render_page

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = 86400.0


def run(
    n: int,
    state: str = "success",
    *,
    pair: tuple[str, str] = ("src", "bak"),
    dag_id: str = "s3_backup",
    **totals,
) -> BackupRun:
    """Run ``n`` hours before NOW, lasting 60 s."""
    started = NOW - timedelta(hours=n)
    base = {
        "source_objects": 100,
        "copied": 10 * n,
        "vanished": 3,
        "skipped_archived": 2,
        "source_bytes": 5000,
    }
    settings = {"source_bucket": pair[0], "backup_bucket": pair[1], "prefix": "", "dry_run": False}
    failures = [{"key": "k1", "error": "AccessDenied", "extra": 1}] if state == "failed" else []
    summary = run_summary(settings, {**base, **totals}, [], failures)
    return BackupRun(dag_id, f"run-{n}", state, started, started + timedelta(seconds=60), summary)


def test_one_entry_per_pair_from_its_last_success_and_last_run() -> None:
    runs = [run(30), run(5), run(2, "failed", failed=1), run(1, pair=("other", "bak2"))]
    entries = backup_entries(runs, now=NOW, periods={"s3_backup": DAY}, margin_seconds=3600)
    assert [(e["source_bucket"], e["backup_bucket"]) for e in entries] == [("other", "bak2"), ("src", "bak")]
    entry = entries[1]
    assert entry["last_success"] == (NOW - timedelta(hours=5, seconds=-60)).isoformat()
    assert entry["age_seconds"] == 5 * 3600 - 60
    assert (entry["objects"], entry["bytes"], entry["deleted_objects"]) == (98, 5000, 3)
    last = entry["last_run"]
    assert (last["run_id"], last["state"], last["duration_seconds"]) == ("run-2", "failed", 60.0)
    assert last["counts"]["copied"] == 20 and last["counts"]["failed"] == 1
    assert last["failures"] == [{"key": "k1", "error": "AccessDenied"}]
    assert entry["late"] is False and entry["last_drill"] is None
    assert [p["run_id"] for p in entry["runs"]] == ["run-30", "run-5", "run-2"]


def test_dry_runs_are_left_out() -> None:
    dry = run(1)
    dry.summary["dry_run"] = True
    entries = backup_entries([run(3), dry], now=NOW, periods={}, margin_seconds=0)
    assert entries[0]["last_run"]["run_id"] == "run-3"


def test_late_when_last_success_is_older_than_period_plus_margin() -> None:
    entries = backup_entries([run(26)], now=NOW, periods={"s3_backup": DAY}, margin_seconds=3600)
    assert entries[0]["late"] is True
    entries = backup_entries([run(24)], now=NOW, periods={"s3_backup": DAY}, margin_seconds=3600)
    assert entries[0]["late"] is False
    never = backup_entries([run(1, "failed")], now=NOW, periods={"s3_backup": DAY}, margin_seconds=0)
    assert never[0]["late"] is True and never[0]["last_success"] is None and never[0]["objects"] is None
    unscheduled = backup_entries([run(999)], now=NOW, periods={"s3_backup": None}, margin_seconds=0)
    assert unscheduled[0]["late"] is False


@pytest.mark.parametrize(
    ("age", "period", "margin", "late"),
    [
        (None, None, 0, False),
        (None, 60, 0, True),
        (61, 60, 0, True),
        (61, 60, 1, False),
        (10, None, 0, False),
    ],
)
def test_is_late(age: float | None, period: float | None, margin: float, late: bool) -> None:
    assert is_late(age, period, margin) is late


@pytest.mark.parametrize(
    ("summary", "seconds"),
    [
        ("@daily", DAY),
        ("@hourly", 3600.0),
        ("0 9 * * 1-5", 3 * DAY),  # Friday to Monday is the longest gap
        ("1 day, 0:00:00", DAY),
        ("0:30:00", 1800.0),
        (None, None),
        ("None", None),
        ("Asset", None),
    ],
)
def test_schedule_period_seconds(summary: str | None, seconds: float | None) -> None:
    assert schedule_period_seconds(summary) == seconds


def test_chart_series_keeps_the_last_30_runs_oldest_first() -> None:
    series = chart_series([run(n) for n in range(40, 0, -1)][::-1])
    assert len(series) == 30
    assert series[0]["run_id"] == "run-30" and series[-1]["run_id"] == "run-1"
    assert series[-1] == {
        "run_id": "run-1",
        "started": (NOW - timedelta(hours=1)).isoformat(),
        "state": "success",
        "copied": 10,
        "duration_seconds": 60.0,
    }


def test_last_drill_is_the_newest_of_the_pairs_backup() -> None:
    def drill(hours: int, backup: str, source: str = "", report: dict | None = None) -> DrillRun:
        return DrillRun(f"d{hours}", "success", NOW - timedelta(hours=hours), NOW, backup, source, report)

    report = {
        "sampled": 100,
        "verified": 99,
        "mismatched": 1,
        "mismatches": [{"key": "k/1", "problems": ["bytes differ"]}],
        "seconds": 12.5,
        "estimate": {"full_restore_seconds": 3600.0},
    }
    drills = [drill(5, "bak", report=report), drill(9, "bak"), drill(1, "bak2"), drill(2, "bak", "elsewhere")]
    drill_without = drill(1, "bak")  # running: no report yet
    shown = backup_entries([run(3)], now=NOW, periods={}, margin_seconds=0, drills=drills)[0]["last_drill"]
    assert shown["run_id"] == "d5"
    figures = (shown["sampled"], shown["verified"], shown["mismatched"], shown["mismatched_keys"])
    assert figures == (100, 99, 1, ["k/1"])
    assert shown["estimated_full_restore_seconds"] == 3600.0 and shown["bytes_per_second"] is None
    pending = backup_entries([run(3)], now=NOW, periods={}, margin_seconds=0, drills=[drill_without])
    assert pending[0]["last_drill"]["sampled"] is None


def test_page_shows_every_pair_its_counts_and_a_chart() -> None:
    entries = backup_entries(
        [run(30), run(26), run(2, "failed", failed=1)], now=NOW, periods={"s3_backup": DAY}, margin_seconds=0
    )
    html = render_page(entries)
    assert "s3://src &rarr; s3://bak" in html and 'class="late"' in html
    assert html.count('<rect class="copied"') == 3 and 'class="duration"' in html
    assert "k1: AccessDenied" in html
    assert "No backup has run yet" in render_page([])
    evil = backup_entries([run(1, pair=("<script>", "x"))], now=NOW, periods={}, margin_seconds=0)
    assert "<script>" not in render_page(evil) and "&lt;script&gt;" in render_page(evil)


def test_the_last_run_shows_its_partitions_and_copy_chunks() -> None:
    entries = backup_entries([run(1, partitions=4, copy_chunks=11)], now=NOW, periods={}, margin_seconds=0)
    counts = entries[0]["last_run"]["counts"]
    assert (counts["partitions"], counts["copy_chunks"]) == (4, 11)
    html = render_page(entries)
    assert '<th>Partitions</th><td><span class="num">4</span>' in html
    assert '<th>Copy chunks</th><td><span class="num">11</span>' in html
