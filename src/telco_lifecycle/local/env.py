"""The local environment for `make demo`, `make airflow` and the tests: one PostgreSQL
server (LIFECYCLE_DATABASE_URL, or the embedded one) with the telecom database and the
Airflow metadata database side by side."""

from __future__ import annotations

import os

from telco_lifecycle.settings import project_dir, sqlalchemy_url, with_database

TELCO_DATABASE = "telco"
AIRFLOW_DATABASE = "airflow"


def server_url() -> str:
    explicit = os.environ.get("LIFECYCLE_DATABASE_URL")
    if explicit:
        return explicit
    from telco_lifecycle.local.embedded import ensure_embedded_server

    return ensure_embedded_server(project_dir() / ".lifecycle")


def ensure_database(server: str, name: str) -> str:
    """Create database `name` on the server if missing; return its URL."""
    import psycopg2

    conn = psycopg2.connect(with_database(server, "postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return with_database(server, name)


def drop_database(server: str, name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(with_database(server, "postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def airflow_environment(telco_url: str, airflow_url: str, airflow_home: str) -> dict[str, str]:
    """Settings that make Airflow use this checkout's DAGs and these two databases."""
    root = project_dir()
    return {
        "AIRFLOW_HOME": airflow_home,
        "AIRFLOW_CONN_TELCO_DB": telco_url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlalchemy_url(airflow_url),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Europe/Copenhagen",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "LIFECYCLE_REPORTS_DIR": os.environ.get("LIFECYCLE_REPORTS_DIR") or str(root / "reports"),
    }


def telco_database_name() -> str:
    return os.environ.get("LIFECYCLE_TELCO_DATABASE", TELCO_DATABASE)


def local_environment() -> dict[str, str]:
    server = server_url()
    telco = ensure_database(server, telco_database_name())
    airflow = ensure_database(server, os.environ.get("LIFECYCLE_AIRFLOW_DATABASE", AIRFLOW_DATABASE))
    return airflow_environment(telco, airflow, str(project_dir() / ".lifecycle" / "airflow"))
