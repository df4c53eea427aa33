"""The Backups view's data: backup runs and drills shaped into one entry per source/backup pair.

Plain Python: the plugin (``s3br_provider.ui``) reads the rows from Airflow and hands them here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

SUMMARY_XCOM_KEY = "s3br_backup_summary"
"""XCom key under which a backup report task pushes :func:`run_summary` (also on failure)."""
DRILL_DAG_ID = "s3_restore_drill"
CHART_RUNS = 30
MAX_FAILURES = 10
COUNTS = (
    "partitions",
    "copy_chunks",
    "source_objects",
    "to_copy",
    "copied",
    "bytes_copied",
    "unchanged",
    "vanished",
    "tagged_deleted",
    "skipped_archived",
    "failed",
)
DRILL_FIELDS = ("sampled", "verified", "mismatched", "seconds", "bytes_per_second")
"""Figures of a drill's report (``report.json``) and of its last task's XCom."""


def run_summary(
    settings: dict[str, Any], totals: dict[str, int], incomplete: Sequence[str], failures: Sequence[dict]
) -> dict[str, Any]:
    """What a backup report keeps for the view: the pair, the run's totals, the first failures."""
    return {
        "source_bucket": settings["source_bucket"],
        "backup_bucket": settings["backup_bucket"],
        "prefix": settings.get("prefix", ""),
        "dry_run": bool(settings.get("dry_run")),
        "totals": dict(totals),
        "incomplete": list(incomplete),
        "failures": [{"key": f.get("key"), "error": f.get("error")} for f in failures[:MAX_FAILURES]],
    }


@dataclass(frozen=True)
class BackupRun:
    """One report of one backup run (a DAG with several ``backup_group`` s has one per pair)."""

    dag_id: str
    run_id: str
    state: str
    """State of the report task: the pair's outcome, whatever other groups of the DAG did."""
    started: datetime | None
    ended: datetime | None
    summary: dict[str, Any]

    @property
    def pair(self) -> tuple[str, str]:
        return self.summary["source_bucket"], self.summary["backup_bucket"]

    @property
    def totals(self) -> dict[str, Any]:
        return self.summary.get("totals") or {}

    @property
    def duration_seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return round((self.ended - self.started).total_seconds(), 1)


@dataclass(frozen=True)
class DrillRun:
    """One run of ``s3_restore_drill`` with its report (``None`` while it has none)."""

    run_id: str
    state: str
    started: datetime | None
    ended: datetime | None
    backup_bucket: str
    source_bucket: str = ""
    report: dict[str, Any] | None = field(default=None)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def is_late(age_seconds: float | None, period_seconds: float | None, margin_seconds: float) -> bool:
    """Late: the pair is scheduled and its last success (or, never succeeded, none) is older
    than one schedule period plus the margin."""
    if period_seconds is None:
        return False
    return age_seconds is None or age_seconds > period_seconds + margin_seconds


def schedule_period_seconds(summary: str | None, *, probes: int = 8) -> float | None:
    """The longest gap between runs of a DAG's schedule (Airflow's ``timetable_summary``: a cron
    expression or preset, or a ``timedelta`` as text); ``None`` when not time-scheduled."""
    if not summary or summary in ("None", "Never, external triggers only"):
        return None
    delta = _parse_timedelta(summary)
    if delta is not None:
        return delta.total_seconds()
    from croniter import CroniterError, croniter

    try:
        schedule = croniter(summary, datetime(2026, 1, 1))
    except (CroniterError, ValueError, KeyError):
        return None  # asset-triggered, or a timetable described in words
    fires = [schedule.get_next(datetime) for _ in range(probes + 1)]
    return max((later - earlier).total_seconds() for earlier, later in zip(fires, fires[1:], strict=False))


def _parse_timedelta(text: str) -> timedelta | None:
    """``str(timedelta)``: ``"1 day, 0:00:00"``, ``"2 days, 6:00:00"``, ``"0:30:00"``."""
    days, _, clock = text.rpartition(", ") if ", " in text else ("", "", text)
    parts = clock.split(":")
    if len(parts) != 3:
        return None
    try:
        hours, minutes, seconds = int(parts[0]), int(parts[1]), float(parts[2])
        day_count = int(days.split()[0]) if days else 0
    except (ValueError, IndexError):
        return None
    return timedelta(days=day_count, hours=hours, minutes=minutes, seconds=seconds)


def run_entry(run: BackupRun) -> dict[str, Any]:
    """A run as the view shows it: when, how it ended, its counts and first failures."""
    totals = run.totals
    return {
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "state": run.state,
        "started": iso(run.started),
        "ended": iso(run.ended),
        "duration_seconds": run.duration_seconds,
        "dry_run": bool(run.summary.get("dry_run")),
        "prefix": run.summary.get("prefix", ""),
        "counts": {name: int(totals.get(name, 0)) for name in COUNTS},
        "failures": list(run.summary.get("failures") or []),
        "incomplete": list(run.summary.get("incomplete") or []),
    }


def chart_series(runs: Sequence[BackupRun], limit: int = CHART_RUNS) -> list[dict[str, Any]]:
    """The last ``limit`` runs, oldest first: objects copied and duration, for the chart."""
    ordered = sorted(runs, key=_started)[-limit:]
    return [
        {
            "run_id": run.run_id,
            "started": iso(run.started),
            "state": run.state,
            "copied": int(run.totals.get("copied", 0)),
            "duration_seconds": run.duration_seconds,
        }
        for run in ordered
    ]


def drill_entry(drill: DrillRun | None) -> dict[str, Any] | None:
    """The last drill's state and its report's figures (``None`` where the report lacks one)."""
    if drill is None:
        return None
    report = drill.report or {}
    entry: dict[str, Any] = {
        "run_id": drill.run_id,
        "state": drill.state,
        "started": iso(drill.started),
        "ended": iso(drill.ended),
    }
    entry |= {name: report.get(name) for name in DRILL_FIELDS}
    entry["estimated_full_restore_seconds"] = (report.get("estimate") or {}).get("full_restore_seconds")
    entry["mismatched_keys"] = [m.get("key") for m in report.get("mismatches") or []][:MAX_FAILURES]
    return entry


def last_drill_for(pair: tuple[str, str], drills: Iterable[DrillRun]) -> DrillRun | None:
    """The newest drill of the pair's backup (against its source, or against the backup only)."""
    source, backup = pair
    mine = [d for d in drills if d.backup_bucket == backup and d.source_bucket in ("", source)]
    return max(mine, key=lambda d: _sort_key(d.started), default=None)


def backup_entries(
    runs: Iterable[BackupRun],
    *,
    now: datetime,
    periods: dict[str, float | None],
    margin_seconds: float,
    drills: Iterable[DrillRun] = (),
) -> list[dict[str, Any]]:
    """One entry per source/backup pair, sorted by pair. Dry runs are left out: they back up
    nothing. ``periods`` maps a DAG id to its schedule period (``None``: not scheduled)."""
    by_pair: dict[tuple[str, str], list[BackupRun]] = {}
    for run in runs:
        if not run.summary.get("dry_run"):
            by_pair.setdefault(run.pair, []).append(run)
    drills = list(drills)
    return [
        pair_entry(pair, pair_runs, now, periods, margin_seconds, last_drill_for(pair, drills))
        for pair, pair_runs in sorted(by_pair.items())
    ]


def pair_entry(
    pair: tuple[str, str],
    runs: Sequence[BackupRun],
    now: datetime,
    periods: dict[str, float | None],
    margin_seconds: float,
    drill: DrillRun | None,
) -> dict[str, Any]:
    ordered = sorted(runs, key=_started)
    last = ordered[-1]
    success = next((r for r in reversed(ordered) if r.state == "success"), None)
    success_at = (success.ended or success.started) if success else None
    age = round((now - success_at).total_seconds()) if success_at else None
    totals = success.totals if success else {}
    period = periods.get(last.dag_id)
    return {
        "source_bucket": pair[0],
        "backup_bucket": pair[1],
        "dag_id": last.dag_id,
        "last_success": iso(success_at),
        "age_seconds": age,
        # After a successful run the backup holds every source object but the archived ones it
        # skipped, and every vanished one (tagged Deleted); bytes count the source's objects.
        "objects": totals["source_objects"] - totals.get("skipped_archived", 0) if success else None,
        "bytes": totals.get("source_bytes") if success else None,
        "deleted_objects": totals.get("vanished") if success else None,
        "last_run": run_entry(last),
        "last_drill": drill_entry(drill),
        "schedule_seconds": period,
        "late": is_late(age, period, margin_seconds),
        "runs": chart_series(ordered),
    }


def _started(run: BackupRun) -> tuple[bool, datetime]:
    return _sort_key(run.started or run.ended)


def _sort_key(moment: datetime | None) -> tuple[bool, datetime]:
    """Unknown times first; never compares a naive ``datetime.min`` with an aware time."""
    return (moment is not None, moment or datetime.min)
