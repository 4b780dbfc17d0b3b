"""`make demo`: the lifecycle headless, on a freshly seeded demo database.

Runs the real DAGs through Airflow's `dag.test()` on the local PostgreSQL (the
embedded one unless LIFECYCLE_DATABASE_URL is set) and prints what each step did.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

DEMO_CUSTOMERS = int(os.environ.get("LIFECYCLE_DEMO_CUSTOMERS", "2000"))


def prepare() -> str:
    """Fresh demo database, migrated and seeded; Airflow's metadata database migrated."""
    from telco_lifecycle.local import env as localenv

    server = localenv.server_url()
    localenv.drop_database(server, localenv.telco_database_name())
    env = localenv.local_environment()
    os.environ.update(env)
    from telco_lifecycle.evidence.audit_report import log_folder

    shutil.rmtree(log_folder(), ignore_errors=True)  # task logs of the dropped database's runs
    from telco_lifecycle.database import connect
    from telco_lifecycle.local.seed import seed
    from telco_lifecycle.migrations import migrate

    conn = connect(env["AIRFLOW_CONN_TELCO_DB"])
    migrate(conn)
    counts = seed(conn, DEMO_CUSTOMERS, seed=1)
    conn.close()
    print(f"== demo database seeded: {json.dumps(counts)}")
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                   stdout=subprocess.DEVNULL, env=os.environ)
    return env["AIRFLOW_CONN_TELCO_DB"]


def run_dag(dag_id: str, conf: dict, logical_date=None) -> dict:
    """Run one DAG for real and return its tasks' return values."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from telco_lifecycle.local.task_logs import test_dag_with_task_logs
    from telco_lifecycle.settings import project_dir

    dag = DagBag(dag_folder=str(project_dir() / "dags")).get_dag(dag_id)
    dag_run = test_dag_with_task_logs(dag, run_conf=conf, logical_date=logical_date)  # task logs in the log folder
    if dag_run.state != "success":
        raise SystemExit(f"!! {dag_id} ended {dag_run.state}; see the log above")
    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == dag_run.run_id,
                                               XComModel.key == "return_value").all()
        return {row.task_id: row.value for row in rows}


def demo_customer(url: str) -> int:
    from telco_lifecycle.database import connect

    conn = connect(url)
    with conn.cursor() as cur:
        cur.execute("""SELECT c.customer_id FROM customers c
                       WHERE c.relationship_ended_on IS NULL AND NOT lifecycle_on_hold(c.customer_id)
                         AND EXISTS (SELECT 1 FROM pbx_configs p WHERE p.customer_id = c.customer_id)
                       ORDER BY c.customer_id LIMIT 1""")
        customer = cur.fetchone()[0]
    conn.close()
    return customer


def main() -> None:
    url = prepare()
    customer = demo_customer(url)
    print(f"== offboarding demo customer {customer}")
    summary = run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "make demo",
                                               "reason": "demo"})["summarise"]
    print(f"== offboarding: {summary['message']}; verification {summary['verification']}"
          f" ({summary['checks']} Great Expectations checks)")
    print(json.dumps(summary, indent=2))
    subject_requests(customer)
    walk_retention()
    print_audit_report()


def subject_requests(customer: int) -> None:
    """The offboarded customer asks for its data, then for erasure (approval switched off by
    the deployment setting that `make demo` passes; a real deployment leaves it on)."""
    access = run_dag("data_subject_access", {"customer_id": customer, "requested_by": "make demo"})
    access = access["export_customer_data"]
    print(f"== access request: {sum(access['rows'].values())} row(s) exported to {access['html_file']}"
          f" and {access['json_file']} (sha256 {access['sha256']})")
    setting = os.environ.get("LIFECYCLE_REQUIRE_ERASURE_APPROVAL", "true")
    print(f"== erasure request; LIFECYCLE_REQUIRE_ERASURE_APPROVAL={setting}"
          + (" (approval step switched off by configuration for this headless demo)" if setting == "false" else ""))
    erased = run_dag("data_subject_erasure", {"customer_id": customer, "requested_by": "make demo"})["summarise"]
    print(f"== erasure: {erased['message']}; kept {json.dumps(erased['kept'])}; verification"
          f" {erased['verification']}; statement {erased['statement']}")


RETENTION_DAGS = ("crm_retention", "contract_archive_retention", "accounting_retention")


def walk_retention() -> None:
    """The daily retention DAGs at simulated dates (each run's logical date is its `as_of`)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from telco_lifecycle.policy import add_years
    from telco_lifecycle.settings import TIMEZONE

    today = dt.datetime.now(ZoneInfo(TIMEZONE)).date()
    for years in (0, 1, 5, 6):
        day = add_years(today, years)
        moment = dt.datetime(day.year, day.month, day.day, 2, tzinfo=ZoneInfo(TIMEZONE))
        print(f"== retention as of {day} (today + {years} year(s))")
        for dag_id in RETENTION_DAGS:
            summary = run_dag(dag_id, {"as_of": day.isoformat()}, logical_date=moment).get("verify_retention")
            print(f"   {dag_id}: " + ("nothing due" if summary is None else
                  f"removed {json.dumps(summary['removed'])}, {summary['skipped_legal_hold']} customer(s) skipped"
                  f" for legal hold, {len(summary['partitions_dropped'])} CDR partition(s) dropped;"
                  f" verification {summary['verification']} ({summary['checks']} checks)"))
        checked = run_dag("retention_verification", {"as_of": day.isoformat()}, logical_date=moment)
        print(f"   retention_verification: {checked['verify_all_rules']['verification']}"
              f" ({checked['verify_all_rules']['checks']} Great Expectations checks over every rule)")


def print_audit_report() -> None:
    """The audit report of today's runs (the demo database is fresh): path and headline figures."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from telco_lifecycle.settings import TIMEZONE

    today = dt.datetime.now(ZoneInfo(TIMEZONE)).date().isoformat()
    report = run_dag("audit_report", {"period_start": today, "period_end": today})["audit_report"]
    print(f"== audit report: {report['html']}\n   {report['audit_rows']} audit row(s) reconciled with the task logs"
          f" ({'no mismatch, hash chain intact' if report['ok'] else 'MISMATCHES'}); {report['customers_removed']}"
          f" customer(s) and {report['rows_removed']} row(s) removed; CSV {report['csv']}")


if __name__ == "__main__":
    main()
