"""The audit report: task logs of real lifecycle runs reconciled with lifecycle_audit."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_offboarding_dag import active_customer_with_config

from telco_lifecycle import cli
from telco_lifecycle.database import connect, transaction
from telco_lifecycle.evidence import audit, audit_report
from telco_lifecycle.evidence.certificate import build_certificate
from telco_lifecycle.settings import project_dir

# Retention DAGs of the policy's scheduled rules, run once they exist in dags/.
RETENTION_DAGS = ["crm_retention", "contract_archive_retention", "accounting_retention", "retention_verification"]
PERSONAL = """
    SELECT v FROM (
        SELECT unnest(ARRAY[company_name, cvr, address, email, phone]) FROM customers
        UNION ALL SELECT unnest(ARRAY[full_name, email, phone]) FROM contacts
        UNION ALL SELECT number FROM phone_numbers
        UNION ALL SELECT unnest(ARRAY[billing_name, billing_address]) FROM invoices) p(v)
    WHERE v IS NOT NULL AND length(v) >= 5"""


@pytest.fixture
def task_logs(tmp_path, monkeypatch) -> Path:
    """This test's own log folder: the databases (and audit ids) are fresh per test."""
    folder = tmp_path / "logs"
    monkeypatch.setenv("AIRFLOW__LOGGING__BASE_LOG_FOLDER", str(folder))
    return folder


def today_period() -> dict:
    """Yesterday and today in Copenhagen: the period of the runs the test makes now (never
    after today: the date guard refuses that)."""
    today = dt.datetime.now(ZoneInfo("Europe/Copenhagen")).date()
    return {"period_start": (today - dt.timedelta(days=1)).isoformat(), "period_end": today.isoformat()}


def build(telco, period: dict) -> dict:
    conn = connect(telco.url)
    try:
        return audit_report.build_report(conn, dt.date.fromisoformat(period["period_start"]),
                                         dt.date.fromisoformat(period["period_end"]))
    finally:
        conn.close()


def test_full_lifecycle_reconciles_and_leaks_nothing(telco, run_dag, task_logs):
    personal = {row[0] for row in telco.rows(PERSONAL)}
    customer = active_customer_with_config(telco)
    unknown = telco.scalar("SELECT max(customer_id) + 1 FROM customers")
    assert run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "test"})[0].state == "success"
    refused, _ = run_dag("customer_offboarding", {"customer_id": unknown, "requested_by": "test"})
    assert refused.state == "failed"
    for dag_id in RETENTION_DAGS:
        if (project_dir() / "dags" / f"{dag_id}.py").exists():
            run_dag(dag_id, {"as_of": "2026-06-15"}, logical_date=dt.datetime(2026, 6, 16, tzinfo=dt.UTC))
    period = today_period()

    dag_run, xcom = run_dag("audit_report", period)

    assert dag_run.state == "success"
    summary = json.loads(Path(xcom["audit_report"]["json"]).read_text())
    assert summary["ok"] and summary["mismatches"] == [] and summary["chain_breaks"] == []
    assert summary["audit_rows"] == telco.scalar("SELECT count(*) FROM lifecycle_audit") > 0
    assert summary["rows_removed"] == telco.scalar(
        "SELECT sum(row_count) FROM lifecycle_audit WHERE NOT dry_run AND action = ANY (%s)",
        (list(audit.REMOVING_ACTIONS),))
    pbx = next(r for r in summary["rules"] if r["rule"] == "pbx_sip_config")
    # two runs of the rule: the offboarding, and the refused one (its refusal is an outcome)
    assert pbx["customers"] == 1 and pbx["runs"] == 2 and pbx["failed_runs"] == 1
    assert pbx["verification_passed"] > 0
    [failed] = [f for f in summary["failed_runs"] if f["run_id"] == refused.run_id]
    assert failed["dag_id"] == "customer_offboarding" and failed["reason"].startswith("offboard_customer: ")
    html = Path(summary["html"]).read_text()
    assert "<svg" in html and "<script" not in html and "Reconciled" in html
    assert Path(summary["csv"]).read_text().count("\n") == summary["audit_rows"] + 1

    certificate = build_certificate(connect(telco.url), customer)
    assert "pbx_sip_config" in certificate["rules_applied"] and certificate["backed_by_audit_trail"]
    assert all(a["verification"].startswith("passed") for a in certificate["actions"] if a["rule"] == "pbx_sip_config")
    assert cli.main(["audit-report", "--from", period["period_start"], "--to", period["period_end"],
                     "--database-url", telco.url]) == 0

    written = [*task_logs.rglob("*.log"), *Path(summary["html"]).parent.iterdir(), Path(certificate["html"]),
               Path(certificate["json"])]
    assert len(list(task_logs.rglob("*.log"))) >= 3  # offboarding: offboard, verify; the refusal
    # A value counts where it stands on its own: an 8-digit CVR or phone number also turns up
    # inside the 64-hex-digit hashes of a report, by chance (a few per cent of runs).
    texts = {path: path.read_text() for path in written}
    leaks = {(path.name, value) for path, text in texts.items() for value in personal
             if re.search(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])", text)}
    assert not leaks, f"personal data in logs or reports: {sorted(leaks)[:5]}"


def test_missing_events_are_told_apart_from_retries_and_console_runs(telco, run_dag, task_logs):
    customer = active_customer_with_config(telco)
    run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "test"})
    period = today_period()
    assert build(telco, period)["ok"]
    # the event of the offboarding's transaction removed from its task log: its links are missing
    log = next(task_logs.rglob("task_id=offboard_customer/attempt=1.log"))
    lines = log.read_text().splitlines(keepends=True)
    events = [audit.parse_event(json.loads(line)["event"]) for line in lines]
    dropped = next(i for i, event in enumerate(events) if event)
    links = [link["seq"] for link in events[dropped]["links"]]
    log.write_text("".join(lines[:dropped] + lines[dropped + 1:]))
    # a record written and committed by a run that crashed before its log and its ledger entry
    conn = connect(telco.url)
    with transaction(conn) as cur:
        silent = audit.record(cur, audit.Action("delete", "pbx_sip_config", customer, "sip_peers", 1),
                              audit.RunContext())
    conn.close()

    summary = build(telco, period)

    assert not summary["ok"]
    missing = "chain link has no event in the task logs (missing)"
    assert [(m["audit_id"], m["problem"]) for m in summary["mismatches"]] == [
        *((seq, missing) for seq in links), (silent["seq"], missing)]
    html = Path(summary["html"]).read_text()
    assert html.index("Problems") < html.index("Per rule")
    with pytest.raises(audit_report.AuditReportFailed, match=f"{len(links) + 1} mismatch"):
        audit_report.require_ok(summary)
    dag_run, _ = run_dag("audit_report", period)
    assert dag_run.state == "failed"

    # The retry logged the first try's event; the console-only run reached the ledger.
    (log.parent / "attempt=2.log").write_text(lines[dropped])
    audit.emit([silent])
    summary = build(telco, period)
    assert summary["ok"] and summary["mismatches"] == []
    assert [(e["audit_id"], e["explanation"]) for e in summary["explained"]] == [
        *((seq, "logged by the retry") for seq in links), (silent["seq"], "console-only run")]


def test_altered_event_and_changed_row_are_reported(telco, run_dag, task_logs):
    customer = active_customer_with_config(telco)
    run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "test"})
    log = next(task_logs.rglob("task_id=offboard_customer/attempt=1.log"))
    text = log.read_text()
    assert '\\"link_hash\\": \\"' in text
    log.write_text(text.replace('\\"link_hash\\": \\"', '\\"link_hash\\": \\"0', 1))
    telco.execute("SET session_replication_role = replica")
    telco.execute("UPDATE lifecycle_audit_record SET row_count = row_count + 1 WHERE audit_id = 3")
    telco.execute("SET session_replication_role = origin")

    summary = build(telco, today_period())

    assert summary["chain_breaks"] == [{"audit_id": None,
                                        "problem": "audit row 3 was changed: its content does not give its hash"}]
    assert "event in the task log differs from its chain link" in {m["problem"] for m in summary["mismatches"]}
    assert not summary["ok"]


def test_an_unreachable_api_falls_back_to_the_log_folder(monkeypatch, tmp_path):
    """The REST API when it answers, else the log folder (and the report names which)."""
    from telco_lifecycle.evidence.audit_report import FolderLogs, log_source
    from telco_lifecycle.local.components import free_port

    monkeypatch.setenv("LIFECYCLE_AIRFLOW_API_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv("AIRFLOW__LOGGING__BASE_LOG_FOLDER", str(tmp_path))
    source = log_source()
    assert isinstance(source, FolderLogs) and source.describe() == f"log folder {tmp_path}"


def test_the_chart_shows_every_rule_with_its_values():
    """A rule that removed 3 rows beside one that removed 100,000: both visible, both labelled."""
    chart = audit_report.deletions_chart([("accounting", "2026-06-15", 100000), ("pbx_sip_config", "2026-06-15", 3),
                                          ("accounting", "2026-06-16", 5)])
    for text in (">accounting<", ">pbx_sip_config<", ">100,000<", ">3<", ">5<", ">2026-06-15<", ">2026-06-16<",
                 "rows removed", "day the rule was applied for (as_of)"):
        assert text in chart, text


def test_rows_without_a_rule_are_named_and_failures_give_their_reason():
    assert audit_report.rule_label({"rule": "-", "action_names": "subject_access_export"}) == (
        "no retention rule (subject_access_export)")
    assert audit_report.rule_label({"rule": "crm_master_data"}).startswith("crm_master_data: Customer master data")
    refusal = {"event": "Task failed with exception", "logger": "task", "level": "error",
               "error_detail": [{"exc_type": "AirflowFailException", "exc_value": "customer 7 is under a legal hold"}]}
    assert audit_report.failure_reason(refusal) == "AirflowFailException: customer 7 is under a legal hold"
    other = {**refusal, "error_detail": [{"exc_type": "UniqueViolation", "exc_value": "Key (email)=(a@b.dk)"}]}
    assert audit_report.failure_reason(other) == "UniqueViolation"  # another error's text may hold personal data
