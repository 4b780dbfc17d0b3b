"""A real Airflow for the end-to-end tests, driven only from the outside.

One Airflow per session (api-server, scheduler, dag-processor, triggerer; LocalExecutor) on a
temporary AIRFLOW_HOME, its own metadata database and its own copy of the seeded telecom
database. The Celery variant (test_celery.py) adds Redis and a worker. Every process is
stopped when the session (or module) ends, also after a failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import USER_REPORTS_DIR

from e2e.harness import running_airflow
from telco_lifecycle.local.components import free_port
from telco_lifecycle.policy import load_policy


@pytest.fixture(scope="session")
def e2e(tmp_path_factory, seeded_template):
    """The session's Airflow (LocalExecutor)."""
    with running_airflow(tmp_path_factory, seeded_template, "local") as airflow:
        yield airflow


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A private redis-server on a free port when installed, else the machine's on 6379."""
    binary = shutil.which("redis-server")
    if not binary:
        yield "redis://127.0.0.1:6379/7"
        return
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(folder)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_redis(port, server)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)


def _wait_for_redis(port: int, server: subprocess.Popen, timeout: float = 20) -> None:
    import redis

    deadline = time.monotonic() + timeout
    while True:
        try:
            redis.Redis(port=port).ping()
            return
        except redis.ConnectionError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="session")
def screenshots_dir() -> Path:
    """Where the browser test leaves its screenshots for people: LIFECYCLE_REPORTS_DIR/screenshots."""
    from telco_lifecycle.report_files import private_dir

    load_policy().report_folder("screenshots")  # governed: removed by reports_retention
    return private_dir(Path(USER_REPORTS_DIR) / "screenshots")


CHROMIUM = shutil.which("chromium")
NO_CHROMIUM = ("no chromium on PATH: the browser tests need Debian's chromium"
               " (enable them with `apt-get install chromium`)")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def chromium() -> str:
    """The system chromium; skipped where there is none, except in CI, where it must exist."""
    if CHROMIUM:
        return CHROMIUM
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"CI=true but {NO_CHROMIUM}")
    pytest.skip(reason=NO_CHROMIUM)


@pytest.fixture
def page(chromium, e2e):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100}, timezone_id="UTC")
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()
