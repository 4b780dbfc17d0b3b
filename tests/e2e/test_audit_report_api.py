"""The audit report on a running Airflow: the task logs of real runs, read through the
REST API (LIFECYCLE_AIRFLOW_API_URL, as docker-compose.yml sets it), reconcile with the
audit trail."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from e2e.harness import active_customer, requires_dag
from telco_lifecycle.settings import TIMEZONE

pytestmark = pytest.mark.e2e


@requires_dag("audit_report")
def test_audit_report_reads_the_task_logs_through_the_api_and_reconciles(e2e):
    customer = active_customer(e2e.telco)
    offboarding, state = e2e.run("customer_offboarding", {"customer_id": customer, "requested_by": "e2e-audit"})
    assert state == "success"
    audit_ids = {row[0] for row in e2e.telco.rows(
        "SELECT audit_id FROM lifecycle_audit WHERE run_id = %s", (offboarding,))}
    assert audit_ids

    today = dt.datetime.now(ZoneInfo(TIMEZONE)).date()
    period = {"period_start": str(today - dt.timedelta(days=1)), "period_end": str(today)}
    report_run, state = e2e.run("audit_report", period)

    summary = e2e.xcom("audit_report", report_run, "audit_report")
    assert state == "success", e2e.task_states("audit_report", report_run)
    assert summary["ok"] is True and summary["log_source"] == f"Airflow REST API {e2e.url}"
    report = json.loads(Path(summary["json"]).read_text(encoding="utf-8"))
    assert report["mismatches"] == [] and report["chain_breaks"] == []
    found = {row["audit_id"] for row in _csv_rows(Path(summary["csv"])) if row["in_task_log"] == "t"}
    assert audit_ids <= found  # every row of the offboarding run has its event, read through the API


def _csv_rows(path: Path) -> list[dict]:
    import csv

    with path.open(encoding="utf-8", newline="") as handle:
        return [{**row, "audit_id": int(row["audit_id"])} for row in csv.DictReader(handle)]
