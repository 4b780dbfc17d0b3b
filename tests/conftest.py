"""Test infrastructure: a real PostgreSQL (LIFECYCLE_DATABASE_URL, else the embedded
server), fresh databases per session and per test, and a migrated Airflow metadata
database so DAGs run for real through `dag.test()`.

The environment is set at import time, before anything imports Airflow."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from telco_lifecycle.local.env import airflow_environment, drop_database, ensure_database, server_url
from telco_lifecycle.settings import project_dir, with_database

ANCHOR = dt.date(2026, 6, 15)  # the "today" of the seeded test data
# The latest date a test acts for. No run may act for a date after today (the date guard),
# so tests seed data in the past and never simulate future dates.
LATEST = dt.date(2026, 12, 1)
TEST_CUSTOMERS = 300
# The tables the audit trail writes to: they grow by design, also with a refusal.
AUDIT_TRAIL = ("lifecycle_audit_record", "lifecycle_audit_link", "lifecycle_audit_head")
TEST_CDRS_PER_CUSTOMER = 20

SERVER = server_url()
RUN_TAG = uuid.uuid4().hex[:8]
AIRFLOW_DB = f"lifecycle_test_airflow_{RUN_TAG}"
TEMPLATE_DB = f"lifecycle_test_seeded_{RUN_TAG}"
# The `telco_db` connection points at one database name for the whole session; each
# test gets it re-created from the seeded template (Airflow may cache connections).
TELCO_DB = f"lifecycle_test_telco_{RUN_TAG}"
_tmp = Path(tempfile.mkdtemp(prefix="lifecycle-tests-"))
os.environ.update(airflow_environment(
    telco_url=with_database(SERVER, TELCO_DB),
    airflow_url=ensure_database(SERVER, AIRFLOW_DB),
    airflow_home=str(_tmp / "airflow"),
))
# Where artifacts for people go (e2e screenshots): the reports folder the user chose.
USER_REPORTS_DIR = os.environ.get("LIFECYCLE_REPORTS_DIR") or str(project_dir() / "reports")
os.environ["LIFECYCLE_REPORTS_DIR"] = str(_tmp / "reports")
os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = str(_tmp / "airflow" / "logs")
# A signing key of this session (never the checkout's .lifecycle/ key); each test has its
# own evidence store (evidence_dir), as it has its own database.
os.environ["AIRFLOW_CONN_LIFECYCLE_SIGNING_KEY"] = json.dumps(
    {"conn_type": "generic", "password": base64.b64encode(os.urandom(32)).decode()})
os.environ["LIFECYCLE_EVIDENCE_DIR"] = str(_tmp / "evidence")
os.environ["LIFECYCLE_CACHE_DIR"] = str(_tmp / "cache")  # not the user's ~/.cache


def _airflow(*args: str) -> None:
    subprocess.run([str(Path(sys.executable).parent / "airflow"), *args], check=True,
                   stdout=subprocess.DEVNULL, env=os.environ)


@pytest.fixture(autouse=True)
def evidence_dir(tmp_path, monkeypatch) -> Path:
    """This test's own evidence store (ledger and checkpoints), outside the database."""
    path = tmp_path / "evidence"
    monkeypatch.setenv("LIFECYCLE_EVIDENCE_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated Airflow metadata database for this test session."""
    _airflow("db", "migrate")


def pytest_sessionfinish(session):
    """The session's Airflow metadata database goes at the end, also when no test used it:
    it is created when this file is imported."""
    drop_database(SERVER, AIRFLOW_DB)


@pytest.fixture(scope="session")
def seeded_template():
    """A migrated and seeded database that each test copies (CREATE DATABASE ... TEMPLATE)."""
    from telco_lifecycle.database import connect
    from telco_lifecycle.local.seed import seed
    from telco_lifecycle.migrations import migrate

    url = ensure_database(SERVER, TEMPLATE_DB)
    conn = connect(url)
    migrate(conn)
    seed(conn, TEST_CUSTOMERS, seed=7, anchor=ANCHOR, cdrs_per_customer=TEST_CDRS_PER_CUSTOMER)
    conn.close()
    yield TEMPLATE_DB
    drop_database(SERVER, TEMPLATE_DB)


class TelcoDatabase:
    """One test's own copy of the seeded database, reachable as the `telco_db` connection."""

    def __init__(self, name: str, evidence_dir: Path | None = None):
        self.name = name
        self.url = with_database(SERVER, name)
        self.evidence_dir = evidence_dir  # its own evidence store, when it is not this test's telco_db
        from telco_lifecycle.database import connect

        self.conn = connect(self.url)
        self.conn.autocommit = True

    def scalar(self, sql: str, params=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchone()[0]

    def rows(self, sql: str, params=None) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def evidence_env(self) -> dict[str, str]:
        """The environment of runs on this database: its own ledger, when it has one (two
        databases sharing a ledger would each look restored: behind the other's deletions)."""
        return {"LIFECYCLE_EVIDENCE_DIR": str(self.evidence_dir)} if self.evidence_dir else {}

    def execute(self, sql: str, params=None) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)

    def refusal(self, run_id: str) -> tuple[str | None, str]:
        """A refused run's only audit row: (rule, reason); it must be its only row."""
        [(action, rule, reason)] = self.rows("SELECT action, rule, details->>'reason' FROM lifecycle_audit"
                                             " WHERE run_id = %s", (run_id,))
        assert action == "refused" and reason, (action, reason)
        return rule, reason

    def fingerprint(self, exclude: tuple[str, ...] = AUDIT_TRAIL) -> dict[str, str]:
        """md5 of every table's full content but the audit trail's (a refusal is recorded):
        proves that nothing changed."""
        tables = [r[0] for r in self.rows(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        result = {}
        for table in tables:
            if table in exclude or table.startswith("cdrs_"):
                continue
            result[table] = self.scalar(
                f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t")
        return result


@pytest.fixture
def telco(seeded_template):
    """A fresh copy of the seeded database as the `telco_db` connection."""
    db = copy_of(seeded_template, TELCO_DB)
    yield db
    db.conn.close()
    drop_database(SERVER, TELCO_DB)


def copy_of(template: str, name: str) -> TelcoDatabase:
    """Database `name` (re-)created as a copy of `template`."""
    import psycopg2

    drop_database(SERVER, name)
    admin = psycopg2.connect(with_database(SERVER, "postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    admin.close()
    return TelcoDatabase(name)


@pytest.fixture
def copies(seeded_template, tmp_path):
    """More fresh copies of the seeded database, made on demand (not `telco_db`), each with
    its own evidence store (`evidence_env()`)."""
    made = []

    def copy() -> TelcoDatabase:
        made.append(copy_of(seeded_template, f"{TELCO_DB}_copy{len(made)}"))
        made[-1].evidence_dir = tmp_path / f"evidence_copy{len(made)}"
        return made[-1]

    yield copy
    for db in made:
        db.conn.close()
        drop_database(SERVER, db.name)


def load_dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(project_dir() / "dags"))


@pytest.fixture
def run_dag(airflow_db):
    """Run a DAG for real with dag.test(); returns (dag_run, return value of each task).

    Each run parses the DAG afresh: dag.test() keeps a run's conf in the DAG's params."""

    def run(dag_id: str, conf: dict | None = None, logical_date: dt.datetime | None = None):
        from telco_lifecycle.local.task_logs import test_dag_with_task_logs

        dag = load_dagbag().get_dag(dag_id)
        # dag.test() logs to stdout only: also write each task's log file, as a worker does
        dag_run = test_dag_with_task_logs(dag, run_conf=conf or {}, logical_date=logical_date)
        return dag_run, _return_values(dag_run)

    return run


def _return_values(dag_run) -> dict:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter(
            XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id,
            XComModel.key == "return_value").all()
        return {row.task_id: row.value for row in rows}


def respond_to_approval(dag_id: str, task_id: str, option: str, user: str = "dpo", timeout: float = 180
                        ) -> threading.Thread:
    """Answer the next approval request of `dag_id`.`task_id` as the Required Actions page does: through
    the HITL endpoint of Airflow's REST API, called in-process on the shared metadata database."""

    # Imported here, not in the thread: two threads importing Airflow at once can deadlock.
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    def respond():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with create_session() as session:
                ti = session.scalar(select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id, TaskInstance.task_id == task_id,
                    TaskInstance.state == "awaiting_input"))
                if ti is not None:
                    update_hitl_detail(dag_id=dag_id, dag_run_id=ti.run_id, task_id=ti.task_id,
                                       update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[option]),
                                       user=SimpleAuthManagerUser(username=user, role="admin"),
                                       session=session, map_index=-1)
                    return
            time.sleep(0.5)

    thread = threading.Thread(target=respond, daemon=True)
    thread.start()
    return thread
