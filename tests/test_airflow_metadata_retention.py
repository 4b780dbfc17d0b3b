"""airflow_metadata_retention: Airflow's records and task-log files older than the policy's
period go (rows and files dated in the past), a dry run changes nothing, a table that
cannot be cleaned fails the run, and the audit report says when logs are gone."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import pytest

from telco_lifecycle.policy import load_policy

RUN_DATE = dt.datetime(2026, 6, 15, 12, tzinfo=dt.UTC)
OLD = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)  # older than run date - period


def sql(statement: str, params: dict | None = None):
    from airflow.utils.session import create_session
    from sqlalchemy import text

    with create_session() as session:
        result = session.execute(text(statement), params or {})
        return result.fetchall() if result.returns_rows else None


def log_files(dag_run) -> list[Path]:
    folder = Path(os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"], f"dag_id={dag_run.dag_id}",
                  f"run_id={dag_run.run_id}")
    return [p for p in folder.rglob("*") if p.is_file()]


def make_old(dag_run) -> None:
    """Date a finished run, its task instances, XCom and task-log files in the past (a run
    that logged nothing gets the log file a worker would have left)."""
    keys = {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id, "old": OLD}
    sql("UPDATE dag_run SET start_date = :old, end_date = :old WHERE dag_id = :dag_id AND run_id = :run_id", keys)
    for table in ("task_instance", "task_instance_history"):
        sql(f"UPDATE {table} SET start_date = :old, end_date = :old WHERE dag_id = :dag_id AND run_id = :run_id", keys)
    sql("UPDATE xcom SET timestamp = :old WHERE dag_id = :dag_id AND run_id = :run_id", keys)
    if not log_files(dag_run):
        folder = Path(os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"], f"dag_id={dag_run.dag_id}",
                      f"run_id={dag_run.run_id}", "task_id=plan_removal")
        folder.mkdir(parents=True)
        (folder / "attempt=1.log").write_text('{"event": "old"}\n', encoding="utf-8")
    for path in log_files(dag_run):
        os.utime(path, (OLD.timestamp(), OLD.timestamp()))


def counts(dag_run) -> dict[str, int]:
    keys = {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id}
    return {table: sql(f"SELECT count(*) FROM {table} WHERE dag_id = :dag_id AND run_id = :run_id", keys)[0][0]
            for table in ("dag_run", "task_instance", "xcom")} | {"log files": len(log_files(dag_run))}


@pytest.fixture
def old_and_recent_runs(telco, run_dag, tmp_path, monkeypatch):
    """Two finished runs of a quick DAG: one dated in the past, one of the run's date; and
    action-log rows of both. (Distinct logical dates: dag.test() replaces a run of the same.)"""
    monkeypatch.setenv("LIFECYCLE_REPORTS_DIR", str(tmp_path / "reports"))
    old, _ = run_dag("reports_retention", {"dry_run": True}, OLD)
    recent, _ = run_dag("reports_retention", {"dry_run": True}, RUN_DATE)
    make_old(old)
    assert counts(old)["dag_run"] == 1 and counts(recent)["dag_run"] == 1
    marker = f"sweep-{uuid.uuid4().hex[:8]}"
    sql("INSERT INTO log (dttm, event, extra) VALUES (:old, :event, 'old'), (now(), :event, 'recent')",
        {"old": OLD, "event": marker})
    return old, recent, marker


def action_log(marker: str) -> list[str]:
    return sorted(r[0] for r in sql("SELECT extra FROM log WHERE event = :event", {"event": marker}))


def test_dry_run_changes_nothing(old_and_recent_runs, telco, run_dag):
    old, recent, marker = old_and_recent_runs
    before = (counts(old), counts(recent))
    dag_run, xcom = run_dag("airflow_metadata_retention", {"dry_run": True}, RUN_DATE)
    assert dag_run.state == "success"
    assert (counts(old), counts(recent)) == before and action_log(marker) == ["old", "recent"]
    assert xcom["clean_records"]["tables"]["dag_run"] >= 1 and xcom["clean_records"]["tables"]["log"] >= 1
    assert xcom["clean_task_logs"]["log_files"] >= before[0]["log files"] > 0
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit WHERE action = 'airflow_metadata_cleaned'"
                        " AND dry_run") == 1


def test_old_records_and_logs_go_recent_ones_stay(old_and_recent_runs, telco, run_dag):
    old, recent, marker = old_and_recent_runs
    kept = counts(recent)
    dag_run, xcom = run_dag("airflow_metadata_retention", {}, RUN_DATE)
    assert dag_run.state == "success"
    assert counts(old) == {"dag_run": 0, "task_instance": 0, "xcom": 0, "log files": 0}
    assert counts(recent) == kept and action_log(marker) == ["recent"]
    result = xcom["verify_cleanup"]
    assert result["verification"] == "passed" and result["tables"]["dag_run"] >= 1
    period = load_policy().airflow_metadata.period_days
    assert dt.datetime.fromisoformat(result["before"]).date() == RUN_DATE.date() - dt.timedelta(days=period)
    details = telco.scalar("SELECT details FROM lifecycle_audit WHERE action = 'airflow_metadata_cleaned'"
                           " AND NOT dry_run")
    assert details["tables"] == result["tables"] and details["log_files"] == result["log_files"] > 0
    assert "run_id" not in str(details)


def test_a_table_that_cannot_be_cleaned_fails_the_run(old_and_recent_runs, telco, run_dag):
    old, _, marker = old_and_recent_runs
    sql("CREATE FUNCTION pg_temp_refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$BEGIN RAISE EXCEPTION 'log rows are protected'; END$$")
    sql("CREATE TRIGGER refuse_delete BEFORE DELETE ON log FOR EACH ROW EXECUTE FUNCTION pg_temp_refuse()")
    try:
        dag_run, _ = run_dag("airflow_metadata_retention", {}, RUN_DATE)
    finally:
        sql("DROP TRIGGER refuse_delete ON log")
        sql("DROP FUNCTION pg_temp_refuse()")
    assert dag_run.state == "failed"
    assert "old" in action_log(marker), "the protected rows are still there"
    assert counts(old)["log files"] > 0, "no task log removed after the failed cleanup"
    assert not telco.scalar("SELECT count(*) FROM lifecycle_audit WHERE action = 'airflow_metadata_cleaned'")


def test_audit_report_says_when_task_logs_are_gone(telco, tmp_path, monkeypatch):
    from telco_lifecycle.database import connect

    # this test's own (empty) log folder: other tests' logs name other databases' links
    monkeypatch.setenv("AIRFLOW__LOGGING__BASE_LOG_FOLDER", str(tmp_path / "logs"))
    from telco_lifecycle.evidence import audit
    from telco_lifecycle.evidence.audit_report import LOCAL_TZ, METADATA_CLEANED, build_report

    conn = connect(telco.url)
    today = dt.datetime.now(LOCAL_TZ).date()
    try:
        with conn, conn.cursor() as cur:  # an action whose task log is gone
            gone = audit.record(cur, audit.Action("subject_access_export", None, 1, None, 0, today), audit.RunContext())
        moment = telco.scalar("SELECT clock_timestamp()")
        with conn, conn.cursor() as cur:
            cleaned = audit.record(cur, audit.Action(METADATA_CLEANED, "airflow_metadata", None, None, 0, today,
                                                     False, {"logs_removed_before": moment.isoformat()}),
                                   audit.RunContext())
        report = build_report(conn, today, today, out_dir=tmp_path)
    finally:
        conn.close()
    assert gone["audit_id"] and cleaned["audit_id"]
    assert report["task_logs_removed_before"] == moment.isoformat()
    # the action from before the removal is explained, not reported missing
    assert report["mismatches"] == [] and report["ok"]
    assert [e["explanation"] for e in report["explained"] if e["audit_id"] == gone["seq"]] == [
        "task log removed by the policy"]
    assert "have been removed" in Path(report["html"]).read_text(encoding="utf-8")
