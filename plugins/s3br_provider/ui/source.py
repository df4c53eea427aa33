"""Read the Backups view's rows from Airflow's metadata database (and a drill's report file)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from airflow.configuration import conf
from airflow.models.dag import DagModel
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from s3br_provider.core.backups_view import (
    DRILL_DAG_ID,
    SUMMARY_XCOM_KEY,
    BackupRun,
    DrillRun,
    backup_entries,
    schedule_period_seconds,
)
from s3br_provider.core.manifest import run_folder, split_s3_uri

log = logging.getLogger(__name__)
MAX_REPORTS = 2000
"""Newest backup reports read per request: 30 per pair for the chart, many pairs."""
MAX_DRILLS = 50


def collect_entries(session: Session, now: datetime, dag_ids: set[str]) -> list[dict[str, Any]]:
    """Every pair's entry from the runs of ``dag_ids``, as ``GET /s3br/api/backups`` returns it."""
    runs = load_backup_runs(session, dag_ids)
    return backup_entries(
        runs,
        now=now,
        periods=load_periods(session, {run.dag_id for run in runs}),
        margin_seconds=conf.getint("s3br", "late_margin_minutes", fallback=60) * 60,
        drills=load_drills(session) if DRILL_DAG_ID in dag_ids else [],
    )


def load_backup_runs(session: Session, dag_ids: set[str], limit: int = MAX_REPORTS) -> list[BackupRun]:
    """The summaries that backup report tasks pushed, with their report task's state and the
    run's start (a run's duration is the backup's, from its start to its report)."""
    query = (
        select(XComModel, TaskInstance.state, TaskInstance.end_date, DagRun.start_date)
        .join(DagRun, DagRun.id == XComModel.dag_run_id)
        .join(
            TaskInstance,
            and_(
                TaskInstance.dag_id == XComModel.dag_id,
                TaskInstance.run_id == XComModel.run_id,
                TaskInstance.task_id == XComModel.task_id,
                TaskInstance.map_index == XComModel.map_index,
            ),
        )
        .where(XComModel.key == SUMMARY_XCOM_KEY, XComModel.dag_id.in_(sorted(dag_ids)))
        .order_by(XComModel.timestamp.desc())
        .limit(limit)
    )
    runs = []
    for xcom, state, ended, started in session.execute(query):
        summary = XComModel.deserialize_value(xcom)
        if not isinstance(summary, dict) or "backup_bucket" not in summary:
            continue
        runs.append(BackupRun(xcom.dag_id, xcom.run_id, str(state or "none"), started, ended, summary))
    return runs


def load_periods(session: Session, dag_ids: Iterable[str]) -> dict[str, float | None]:
    """Each DAG's schedule period in seconds (``None``: not time-scheduled). A paused DAG keeps
    its period: its backups stop, and the view should say so."""
    query = select(DagModel.dag_id, DagModel.timetable_summary).where(DagModel.dag_id.in_(list(dag_ids)))
    return {dag_id: schedule_period_seconds(summary) for dag_id, summary in session.execute(query)}


def load_drills(session: Session, limit: int = MAX_DRILLS) -> list[DrillRun]:
    """Runs of ``s3_restore_drill``, the newest of each backup bucket with its report:
    ``report.json`` in the backup's run folder, else its last task's figures (XCom)."""
    query = (
        select(DagRun.id, DagRun.run_id, DagRun.state, DagRun.start_date, DagRun.end_date, DagRun.conf)
        .where(DagRun.dag_id == DRILL_DAG_ID)
        .order_by(DagRun.run_after.desc())
        .limit(limit)
    )
    drills, seen = [], set()
    for row_id, run_id, state, started, ended, run_conf in session.execute(query):
        values = _xcom_values(session, row_id)
        # The buckets: the run's conf, else what its validate task returned (the settings).
        settings = {**next((v for v in values if "backup_bucket" in v), {}), **(run_conf or {})}
        backup = settings.get("backup_bucket") or ""
        report = None
        if backup and backup not in seen:
            seen.add(backup)
            report = _drill_report_file(backup, run_id, settings) or next(
                (v for v in reversed(values) if "verified" in v), None
            )
        drills.append(
            DrillRun(run_id, str(state), started, ended, backup, settings.get("source_bucket") or "", report)
        )
    return drills


def _xcom_values(session: Session, dag_run_row_id: int) -> list[dict[str, Any]]:
    """A run's dict XCom values, oldest first."""
    query = select(XComModel).where(XComModel.dag_run_id == dag_run_row_id).order_by(XComModel.timestamp)
    values = (XComModel.deserialize_value(xcom) for xcom in session.scalars(query))
    return [value for value in values if isinstance(value, dict)]


def _drill_report_file(backup: str, run_id: str, settings: dict[str, Any]) -> dict[str, Any] | None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    bucket, key = split_s3_uri(f"{run_folder(backup, DRILL_DAG_ID, run_id)}/report.json")
    try:
        hook = S3Hook(aws_conn_id=settings.get("backup_aws_conn_id") or "aws_default")
        if not hook.check_for_key(key, bucket):
            return None
        return json.loads(hook.read_key(key, bucket))
    except Exception:
        log.warning("Backups view: cannot read the drill report s3://%s/%s", bucket, key, exc_info=True)
        return None
