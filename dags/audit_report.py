"""
# Audit report

Monthly (on the 1st at 06:00 Copenhagen time) for the **previous month**, and by hand
for any period (`period_start`, `period_end`; empty: the month before the run's date).

- `audit_report`: collects the audit events of all lifecycle DAG runs in the period from the
  **task logs** (Airflow REST API when `LIFECYCLE_AIRFLOW_API_URL` is set, else the log folder),
  reconciles them with `lifecycle_audit` (every event has its row, every row its event, the hash
  chain is intact) and writes an HTML report, a CSV of every action and a JSON summary under
  `LIFECYCLE_REPORTS_DIR/audit/`

Per rule the report shows customers and rows removed, runs, failed runs, skips for
legal hold and verification results, with a chart of rows removed per rule over time.
**Any mismatch or chain break is listed at the top of the report and fails the run.**
The same report outside Airflow: `lifecycle audit-report --from DATE --to DATE`.
"""

from airflow.sdk import CronTriggerTimetable, Param, get_current_context, task

from telco_lifecycle.errors import Refused
from telco_lifecycle.settings import TIMEZONE
from telco_lifecycle.workflows.audit_chain import verify_audit_chain_task
from telco_lifecycle.workflows.common import lifecycle_dag, lifecycle_task, run_date, telco_url


@lifecycle_dag(
    "audit_report", __doc__, ["audit"],
    schedule=CronTriggerTimetable("0 6 1 * *", timezone=TIMEZONE),
    max_active_runs=1,
    params={
        "period_start": Param(
            None, type=["null", "string"], format="date", title="Period start",
            description="First day of the period (YYYY-MM-DD, Copenhagen). Empty: the first day of the month "
                        "before the run's date.",
        ),
        "period_end": Param(
            None, type=["null", "string"], format="date", title="Period end",
            description="Last day of the period, inclusive (YYYY-MM-DD). Empty: the last day of the month "
                        "before the run's date.",
        ),
    },
)
def audit_report():
    @task(retries=0)
    def audit_report() -> dict:
        """Reconcile the task logs of the period with the audit trail and write the report."""
        import contextlib
        import datetime as dt

        from telco_lifecycle.database import connect
        from telco_lifecycle.evidence import audit_report as report

        context = get_current_context()
        params = context["params"]
        default_start, default_end = report.previous_month(run_date(context))
        start = dt.date.fromisoformat(params["period_start"]) if params.get("period_start") else default_start
        end = dt.date.fromisoformat(params["period_end"]) if params.get("period_end") else default_end
        with lifecycle_task(context):
            if end < start:
                raise Refused(f"period_end {end} is before period_start {start}; nothing was written")
            # psycopg2 rather than the hook's psycopg 3: the report streams its CSV with COPY.
            with contextlib.closing(connect(telco_url())) as conn:
                summary = report.build_report(conn, start, end)
            print(f"audit report {start}..{end}: {summary['html']}")
            report.require_ok(summary)
        return {key: summary[key] for key in ("period_start", "period_end", "ok", "log_source", "audit_rows",
                                              "customers_removed", "rows_removed", "html", "csv", "json")}

    audit_report()
    verify_audit_chain_task()


audit_report()
