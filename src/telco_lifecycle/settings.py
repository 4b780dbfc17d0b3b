"""Where things are: the include/ folder, the reports folder, the telecom database."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

TIMEZONE = "Europe/Copenhagen"
TELCO_CONN_ID = "telco_db"
# Logger names the audit report reads task logs by: fixed, older task logs carry them.
AUDIT_LOGGER = "telco_lifecycle.audit"
VERIFICATION_LOGGER = "telco_lifecycle.verification"


def project_dir() -> Path:
    """The checkout (or image folder) holding dags/, include/ and plugins/."""
    return Path(os.environ.get("LIFECYCLE_PROJECT_DIR") or Path(__file__).resolve().parents[2])


def include_dir() -> Path:
    return Path(os.environ.get("LIFECYCLE_INCLUDE_DIR") or project_dir() / "include")


def sql_dir() -> Path:
    return include_dir() / "sql"


def policy_path() -> Path:
    """The retention policy file (LIFECYCLE_POLICY_FILE, default include/policy/retention.yaml)."""
    override = os.environ.get("LIFECYCLE_POLICY_FILE")
    return Path(override) if override else include_dir() / "policy" / "retention.yaml"


def cache_dir() -> Path:
    """What the lifecycle remembers between runs on this host and may lose at any time
    (LIFECYCLE_CACHE_DIR, default ~/.cache/telco_lifecycle): never evidence."""
    return Path(os.environ.get("LIFECYCLE_CACHE_DIR") or Path.home() / ".cache" / "telco_lifecycle")


def reports_dir() -> Path:
    path = Path(os.environ.get("LIFECYCLE_REPORTS_DIR") or "reports").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_sql(name: str) -> str:
    """A statement from include/sql/ (the same files the DAGs template from)."""
    return (sql_dir() / name).read_text(encoding="utf-8")


def telco_database_url(explicit: str | None = None) -> str:
    """libpq URL of the telecom database: `--database-url`, else the `telco_db` connection."""
    if explicit:
        return explicit
    conn = os.environ.get("AIRFLOW_CONN_TELCO_DB")
    if not conn:
        raise SystemExit(
            "no database: pass --database-url or set AIRFLOW_CONN_TELCO_DB "
            "(`eval \"$(lifecycle env)\"` sets it for the local server)"
        )
    return connection_to_url(conn)


def connection_to_url(conn: str) -> str:
    """Turn an Airflow connection (URI or JSON form) into a libpq URL."""
    if conn.lstrip().startswith("{"):
        data = json.loads(conn)
        auth = quote(data.get("login") or "", safe="")
        if data.get("password"):
            auth += ":" + quote(data["password"], safe="")
        host = data.get("host") or "127.0.0.1"
        port = data.get("port") or 5432
        return f"postgresql://{auth}@{host}:{port}/{data.get('schema') or 'postgres'}"
    parts = urlsplit(conn)
    # the postgres hook's get_uri() names its driver (postgresql+psycopg://): libpq wants none
    scheme = "postgresql" if parts.scheme.split("+")[0] in ("postgres", "postgresql") else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, "", ""))


# No JIT on any lifecycle connection: the policy's statements reach every CDR month
# partition, so their estimated cost passes jit_above_cost and PostgreSQL compiles
# thousands of functions (one set per partition) for a query that then runs in
# milliseconds: the accounting status counts took 64 s with JIT and 0.2 s without, at 300
# customers. Set by database.apply_session_settings, and for GX by sqlalchemy_url.
SESSION_JIT = "off"


def sqlalchemy_url(database_url: str) -> str:
    """The same database for SQLAlchemy (Great Expectations), with the psycopg2 driver and
    the lifecycle's JIT setting."""
    parts = urlsplit(database_url)
    query = "&".join(filter(None, [parts.query, urlencode({"options": f"-c jit={SESSION_JIT}"}, quote_via=quote)]))
    return urlunsplit(("postgresql+psycopg2", parts.netloc, parts.path, query, ""))


def with_database(server_url: str, database: str) -> str:
    """`server_url` pointed at another database on the same server."""
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def alert_setting(name: str) -> str:
    """An alert or deadline setting (workflows.alerts), from the environment or its default."""
    defaults = {
        "LIFECYCLE_ALERT_SMTP_CONN_ID": "smtp_default",
        "LIFECYCLE_ALERT_TO": "data-team@localhost",
        "LIFECYCLE_ALERT_FROM": "airflow-lifecycle@localhost",
        "LIFECYCLE_OFFBOARDING_DEADLINE_MINUTES": "30",
        "LIFECYCLE_PURGE_DEADLINE": "06:00",
    }
    return os.environ.get(name) or defaults[name]
