"""The Airflow plugin that the provider registers: the Backups app and its navigation entry."""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/s3br"


class LazyApp:
    """An ASGI app that builds the FastAPI app on its first request.

    Every Airflow process loads plugins (the scheduler, workers, task runners); only the
    api-server serves this app, so only there is FastAPI and the database layer imported.
    """

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from s3br_provider.ui.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return "s3br_provider.ui.app:create_app"


class S3brPlugin(AirflowPlugin):
    """``GET /s3br/api/backups`` (JSON) and ``GET /s3br/`` (the page, "Backups" in the navigation).

    Registered by the provider info (``plugins``), which Airflow reads with ``[core]
    lazy_discover_providers = False``; found too when ``plugins/`` is Airflow's plugins folder.
    """

    name = "s3br"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "s3br Backups"}]
    external_views = [
        {
            "name": "Backups",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "backups",
        }
    ]
