"""`make demo`: the lifecycle headless, on a freshly seeded demo database.

Runs the real DAGs through Airflow's `dag.test()` on the local PostgreSQL (the
embedded one unless LIFECYCLE_DATABASE_URL is set). The terminal gets a short
narrative (each step, what it changed, its verification, where each report is);
everything Airflow and Great Expectations print goes to `.lifecycle/demo.log`.
A failure is one line naming the step and the log, and exit status 1.
No run acts for a date after today: the data is seeded as of six years ago, the
offboarding happens then, and the retention runs walk forward from it up to today.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

DEMO_CUSTOMERS = int(os.environ.get("LIFECYCLE_DEMO_CUSTOMERS", "2000"))
WALK_YEARS = (0, 1, 5, 6)  # the retention runs, in years after the data's anchor; the last is today
TERMINAL = sys.stdout  # replaced by the real terminal once stdout and stderr go to the log


class DemoFailed(Exception):
    """A step that did not end as it should: its one-line reason."""


def say(line: str) -> None:
    """One line of the narrative: on the terminal and in the log, where it frames the detail."""
    print(line, file=TERMINAL, flush=True)
    if TERMINAL is not sys.stdout:
        print(line, flush=True)


def log_everything_to(path: Path):
    """Point file descriptors 1 and 2 (Python, Airflow, GX and subprocesses alike) at `path`;
    return a stream on the original terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    terminal = os.fdopen(os.dup(1), "w", buffering=1)
    log = path.open("w", encoding="utf-8")
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    return terminal


def anchor_date():
    """The "today" of the demo data: WALK_YEARS[-1] years before today (Copenhagen)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from telco_lifecycle.policy import add_years
    from telco_lifecycle.settings import TIMEZONE

    return add_years(dt.datetime.now(ZoneInfo(TIMEZONE)).date(), -WALK_YEARS[-1])


def moment(day, hour: int = 2):
    """A logical date on `day` at `hour`, Copenhagen time."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from telco_lifecycle.settings import TIMEZONE

    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(TIMEZONE))


def prepare(anchor) -> str:
    """Fresh demo database, migrated and seeded as of `anchor`; Airflow's metadata database migrated."""
    from telco_lifecycle.local import env as localenv

    server = localenv.server_url()
    localenv.drop_database(server, localenv.telco_database_name())
    env = localenv.local_environment()
    os.environ.update(env)
    from telco_lifecycle.evidence.audit_report import log_folder
    from telco_lifecycle.evidence.store import evidence_dir

    shutil.rmtree(log_folder(), ignore_errors=True)  # task logs of the dropped database's runs
    shutil.rmtree(evidence_dir(), ignore_errors=True)  # its ledger and checkpoints
    from telco_lifecycle.database import connect
    from telco_lifecycle.local.seed import seed
    from telco_lifecycle.migrations import migrate

    conn = connect(env["AIRFLOW_CONN_TELCO_DB"])
    migrate(conn)
    counts = seed(conn, DEMO_CUSTOMERS, seed=1, anchor=anchor)
    conn.close()
    say(f"1. Seeded {DEMO_CUSTOMERS} demo customers as of {anchor} (six years ago): "
        + ", ".join(f"{n} {table}" for table, n in counts.items()))
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
        raise DemoFailed(f"{dag_id} ended {dag_run.state} (run {dag_run.run_id})")
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
    global TERMINAL
    from telco_lifecycle.settings import project_dir

    log_path = project_dir() / ".lifecycle" / "demo.log"
    TERMINAL = log_everything_to(log_path)
    say(f"make demo: the data lifecycle headless on real Airflow DAGs; full Airflow/GX log: {log_path}")
    try:
        anchor = anchor_date()
        url = prepare(anchor)
        customer = demo_customer(url)
        summary = run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "make demo",
                                                   "reason": "customer_terminated"},
                          logical_date=moment(anchor, 12))["summarise"]
        say(f"2. Offboarded customer {customer} on {anchor}: {summary['message']}")
        say(f"   verification {summary['verification']} ({summary['checks']} Great Expectations checks)")
        subject_requests(customer, anchor)
        walk_retention(anchor)
        print_audit_report()
        certificate(url, customer)
        restore_drill(url)
    except Exception as error:  # noqa: BLE001 - every failure becomes one line and exit status 1
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        import traceback

        traceback.print_exc()  # into the log
        say(f"make demo FAILED: {reason}  (details: {log_path})")
        raise SystemExit(1) from None
    say(f"Done. Reports in {os.environ['LIFECYCLE_REPORTS_DIR']}; `make airflow` opens the same database in the UI.")


def subject_requests(customer: int, day) -> None:
    """The offboarded customer asks for its data on `day`, then for erasure (approval switched
    off by the deployment setting that `make demo` passes; a real deployment leaves it on)."""
    access = run_dag("data_subject_access", {"customer_id": customer, "requested_by": "make demo"},
                     logical_date=moment(day, 13))
    access = access["export_customer_data"]
    say(f"3. Access request answered: {sum(access['rows'].values())} row(s) of customer {customer}")
    say(f"   report {access['html_file']}")
    say(f"   data   {access['json_file']} (sha256 {access['sha256'][:16]}...)")
    setting = os.environ.get("LIFECYCLE_REQUIRE_ERASURE_APPROVAL", "true")
    erased = run_dag("data_subject_erasure", {"customer_id": customer, "requested_by": "make demo"},
                     logical_date=moment(day, 14))["summarise"]
    kept = ", ".join(f"{n} {table}" for table, n in erased["kept"].items() if n) or "nothing"
    say(f"4. Erasure request: {erased['message']}"
        + (" (approval switched off for this headless demo)" if setting == "false" else ""))
    say(f"   kept by law: {kept}; verification {erased['verification']}")
    say(f"   statement {erased['statement']}")


RETENTION_DAGS = ("crm_retention", "contract_archive_retention", "accounting_retention")


def walk_retention(anchor) -> None:
    """The daily retention DAGs on past days, as backfills (each run's logical date is its
    `as_of`): the anchor, then 1, 5 and 6 years after it, the last being today."""
    from telco_lifecycle.policy import add_years

    for step, years in enumerate(WALK_YEARS, start=5):
        day = add_years(anchor, years)
        say(f"{step}. Daily retention as of {day} (offboarding day + {years} year(s)):")
        for dag_id in RETENTION_DAGS:
            summary = run_dag(dag_id, {"as_of": day.isoformat()}, logical_date=moment(day)).get("verify_retention")
            if summary is None:
                say(f"   {dag_id}: nothing due")
                continue
            removed = ", ".join(f"{n} {table}" for table, n in summary["removed"].items() if n) or "no rows"
            if summary["skipped_legal_hold"]:
                removed += f"; {summary['skipped_legal_hold']} customer(s) kept for a legal hold"
            if summary["partitions_dropped"]:
                removed += f"; {len(summary['partitions_dropped'])} CDR month(s) dropped"
            say(f"   {dag_id}: removed {removed}"
                + f"; verification {summary['verification']} ({summary['checks']} checks)")
        checked = run_dag("retention_verification", {"as_of": day.isoformat()}, logical_date=moment(day))
        say(f"   retention_verification: {checked['verify_all_rules']['verification']}"
            f" ({checked['verify_all_rules']['checks']} checks over every rule: nothing past its deadline remains)")


def print_audit_report() -> None:
    """The audit report of today's runs (the demo database is fresh): path and headline figures."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from telco_lifecycle.settings import TIMEZONE

    today = dt.datetime.now(ZoneInfo(TIMEZONE)).date().isoformat()
    report = run_dag("audit_report", {"period_start": today, "period_end": today})["audit_report"]
    say(f"{5 + len(WALK_YEARS)}. Audit report of today's runs: {report['audit_rows']} audit row(s) reconciled with the"
        f" task logs ({'no mismatch, hash chain intact' if report['ok'] else 'MISMATCHES'});"
        f" {report['customers_removed']} customer(s) and {report['rows_removed']} row(s) removed")
    say(f"   report {report['html']}")
    say(f"   rows   {report['csv']}")


def certificate(url: str, customer: int) -> None:
    """The offboarded customer's deletion certificate, as `lifecycle certificate` writes it."""
    from telco_lifecycle.database import connect
    from telco_lifecycle.evidence.certificate import build_certificate

    conn = connect(url)
    try:
        issued = build_certificate(conn, customer)
    finally:
        conn.close()
    say(f"{6 + len(WALK_YEARS)}. Deletion certificate of customer {customer} (rules applied:"
        f" {', '.join(issued['rules_applied'])}): {issued['html']}")
    verify_evidence(url, issued["json"])


def verify_evidence(url: str, certificate_file: str) -> None:
    """`lifecycle audit verify` and `lifecycle certificate verify FILE`, as an auditor runs them."""
    from telco_lifecycle.database import connect
    from telco_lifecycle.evidence.certificate import verify_file
    from telco_lifecycle.evidence.integrity import describe, verify

    conn = connect(url)
    try:
        chain = verify(conn)
    finally:
        conn.close()
    problems = verify_file(certificate_file)
    say(f"{7 + len(WALK_YEARS)}. lifecycle audit verify: {describe(chain)}")
    say("   lifecycle certificate verify: " + ("verified (record, inclusion proof, signed checkpoint)"
                                               if not problems else "DOES NOT VERIFY: " + "; ".join(problems)))
    if not chain["ok"] or problems:
        raise RuntimeError("the audit chain or the certificate does not verify")


def restore_drill(url: str) -> None:
    """What an operator does after restoring a backup: back up, offboard and erase a customer
    and run the purges, restore the backup, see the purge refuse, reconcile, compare."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from telco_lifecycle.database import connect
    from telco_lifecycle.evidence.restore_detection import find_gap
    from telco_lifecycle.local import env as localenv
    from telco_lifecycle.settings import TIMEZONE, with_database

    os.environ.setdefault("LIFECYCLE_ALERT_CHANNEL", "log")  # the refusal's alert, in the log
    server, name = localenv.server_url(), localenv.telco_database_name()
    today = dt.datetime.now(ZoneInfo(TIMEZONE)).date()
    _copy_database(server, name, f"{name}_backup")
    customer = demo_customer(url)
    run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "make demo"}, moment(today, 3))
    run_dag("data_subject_erasure", {"customer_id": customer, "requested_by": "make demo"}, moment(today, 3))
    for dag_id in RETENTION_DAGS:
        run_dag(dag_id, {}, moment(today, 3))
    before = _governed_tables(url)
    _copy_database(server, f"{name}_backup", name)
    localenv.drop_database(server, f"{name}_backup")
    say(f"{8 + len(WALK_YEARS)}. Restored a backup taken before customer {customer}'s offboarding and erasure:")
    try:
        run_dag("crm_retention", {}, moment(today, 4))
    except DemoFailed:
        conn = connect(with_database(server, name))
        say(f"   crm_retention refused: {find_gap(conn).describe()}")
        conn.close()
    planned = run_dag("restore_reconciliation", {"requested_by": "make demo", "dry_run": True})["reconcile"]
    say(f"   dry run: would re-apply {planned['ledger_entries']} ledger entries in {len(planned['steps'])} step(s)")
    report = run_dag("restore_reconciliation", {"requested_by": "make demo"})["write_report"]
    same = _governed_tables(url) == before
    say(f"   restore_reconciliation: {report['ledger_entries']} ledger entries re-applied, {report['checks']} Great"
        f" Expectations checks passed; governed tables {'identical to' if same else 'DIFFERENT FROM'} before the"
        f" restore; report {report['report']}")
    again = run_dag("restore_reconciliation", {"requested_by": "make demo"})["reconcile"]
    say(f"   again: {again['message'].split(':')[0]}")
    if not same or again["steps"]:
        raise DemoFailed("the reconciliation did not bring the database back to the ledger's state")


def _copy_database(server: str, source: str, target: str) -> None:
    """`target` re-created as a copy of `source` (a backup, or its restore)."""
    import psycopg2

    from telco_lifecycle.local import env as localenv
    from telco_lifecycle.settings import with_database

    localenv.drop_database(server, target)
    admin = psycopg2.connect(with_database(server, "postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (source,))
        cur.execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')
    admin.close()


def _governed_tables(url: str) -> dict[str, str]:
    """md5 of each governed table's whole content."""
    from telco_lifecycle.database import connect
    from telco_lifecycle.policy import load_policy

    conn = connect(url)
    with conn.cursor() as cur:
        result = {}
        for table in sorted({t for rule in load_policy().rules for t in rule.tables}):
            cur.execute(f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t")
            result[table] = cur.fetchone()[0]
    conn.close()
    return result


if __name__ == "__main__":
    main()
