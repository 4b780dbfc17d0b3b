"""The UI's default time zone: Airflow's own API server app (with this project's plugins)
serves its UI page with the line that stores Europe/Copenhagen unless the user chose a zone;
nothing else it serves changes. The browser side: tests/e2e/test_ui_browser.py."""

from __future__ import annotations

from telco_lifecycle.workflows.ui_timezone import SCRIPT


def test_the_ui_page_defaults_to_copenhagen_and_nothing_else_changes(airflow_db):
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    client = TestClient(create_app())
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    script = SCRIPT.decode()
    assert page.text.count(script) == 1
    assert page.text.index(script) < page.text.index('<script type="module"')  # before the UI starts
    assert page.text.rstrip().endswith("</html>")
    assert r'setItem("timezone","\"Europe/Copenhagen\"")' in script and "if(!localStorage.getItem" in script

    version = client.get("/api/v2/version")
    assert version.headers["content-type"].startswith("application/json") and script not in version.text
