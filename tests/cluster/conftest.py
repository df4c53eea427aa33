"""A headless Chromium (Debian's, not a downloaded one) on the UI that ``scripts/e2e-cluster`` runs.

The tests here need a live cluster: ``S3BR_UI_URL`` (the api-server), ``S3BR_BACKUP_RUN_ID`` and
``S3BR_RESTORE_RUN_ID``. Without ``S3BR_UI_URL`` they are skipped, so ``make test`` leaves them
out; playwright is imported only when a browser is needed.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000  # the UI shares two cores with a whole cluster


class UI:
    """The cluster's UI and REST API, and where screenshots go."""

    def __init__(self, url: str, screenshots: Path) -> None:
        self.url = url.rstrip("/")
        self.screenshots = screenshots

    def api(self, path: str) -> Any:
        """GET ``/api/v2/<path>`` as JSON (the run is local, every user is admin)."""
        request = urllib.request.Request(f"{self.url}/api/v2/{path}", headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def run_url(self, dag_id: str, run_id: str, suffix: str = "") -> str:
        return f"{self.url}/dags/{dag_id}/runs/{urllib.parse.quote(run_id, safe='')}{suffix}"

    def shot(self, page: Any, name: str) -> Path:
        self.screenshots.mkdir(parents=True, exist_ok=True)
        path = self.screenshots / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="session")
def ui() -> UI:
    url = os.environ.get("S3BR_UI_URL")
    if not url:
        pytest.skip("S3BR_UI_URL not set: run scripts/e2e-cluster")
    screenshots = Path(os.environ.get("S3BR_UI_SCREENSHOTS", ROOT / "artifacts" / "ui"))
    return UI(url, screenshots)


@pytest.fixture(scope="session")
def run_ids() -> dict[str, str]:
    ids = {"s3_backup": "S3BR_BACKUP_RUN_ID", "s3_restore": "S3BR_RESTORE_RUN_ID"}
    missing = [var for var in ids.values() if not os.environ.get(var)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not set: scripts/e2e-cluster passes the run ids")
    return {dag_id: os.environ[var] for dag_id, var in ids.items()}


@pytest.fixture(scope="session")
def browser(ui: UI) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("S3BR_CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, ui: UI, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            ui.shot(page, "FAILED-" + re.sub(r"[^\w.-]+", "_", request.node.name))
        context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]  # read by the page fixture
    return report
