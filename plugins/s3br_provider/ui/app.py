"""The FastAPI app mounted at ``/s3br`` on the api-server: the Backups JSON and page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse

from s3br_provider.ui.page import render_page
from s3br_provider.ui.source import collect_entries

# The same login as the rest of the API and UI (a JWT, as a bearer token or the UI's cookie),
# and read access to DAG runs: 401 without a login, 403 without the permission.
READ_RUNS = [Depends(requires_access_dag("GET", DagAccessEntity.RUN))]


def create_app() -> FastAPI:
    app = FastAPI(
        title="s3br Backups",
        description="Per source/backup pair: last success, size, last run, last drill.",
        docs_url=None,
        redoc_url=None,
    )

    @app.get("/api/backups", dependencies=READ_RUNS)
    def backups(session: SessionDep) -> list[dict[str, Any]]:
        """One entry per source/backup pair that a backup has run for."""
        return collect_entries(session, datetime.now(UTC))

    @app.get("/", response_class=HTMLResponse, dependencies=READ_RUNS)
    def page(session: SessionDep) -> HTMLResponse:
        """The Backups page (linked as "Backups" in the Airflow UI's navigation)."""
        return HTMLResponse(render_page(collect_entries(session, datetime.now(UTC))))

    return app
