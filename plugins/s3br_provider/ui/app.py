"""The FastAPI app mounted at ``/s3br`` on the api-server: the Backups JSON and page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from s3br_provider.ui.page import render_page
from s3br_provider.ui.source import collect_entries

# The same login as the rest of the API and UI (a JWT, as a bearer token or the UI's cookie),
# and read access to DAG runs: 401 without a login, 403 without the permission. Only runs of the
# DAGs the user may read are shown.
READ_RUNS = [Depends(requires_access_dag("GET", DagAccessEntity.RUN))]


def create_app() -> FastAPI:
    app = FastAPI(
        title="s3br Backups",
        description="Per source/backup pair: last success, size, last run, last drill.",
        docs_url=None,
        redoc_url=None,
    )

    @app.get("/api/backups", dependencies=READ_RUNS)
    def backups(session: SessionDep, user: GetUserDep) -> list[dict[str, Any]]:
        """One entry per source/backup pair that a backup has run for."""
        return _entries(session, user)

    @app.get("/", response_class=HTMLResponse, dependencies=READ_RUNS)
    def page(session: SessionDep, user: GetUserDep) -> HTMLResponse:
        """The Backups page (linked as "Backups" in the Airflow UI's navigation)."""
        return HTMLResponse(render_page(_entries(session, user)))

    return app


def _entries(session: Session, user: BaseUser) -> list[dict[str, Any]]:
    readable = get_auth_manager().get_authorized_dag_ids(user=user, method="GET", session=session)
    return collect_entries(session, datetime.now(UTC), readable)
