"""
# Reports retention

The lifecycle's own files obey the policy (`report_files` in `include/policy/retention.yaml`):
subject-access exports, erasure statements, 118 listings and GX Data Docs under
`LIFECYCLE_REPORTS_DIR` are removed when their period has passed; audit reports and
deletion certificates are exempt (evidence).

- `plan_removal`: refuses an `as_of` after the run's date, and a reports directory holding a
  folder the policy neither governs nor exempts; counts the due files per folder (read only)
- `remove_due`: removes each due file with one audit row (folder, customer id when there is
  one, size, SHA-256; never a file name)
- `verify_removal`: re-scans the reports directory: nothing due remains, every other file is
  still there

`dry_run` records what would go and removes nothing. A re-run removes nothing more.
"""

from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from telco_lifecycle.settings import TIMEZONE
from telco_lifecycle.workflows.common import DEFAULT_ARGS, START_DATE, TAGS, as_of_param, dry_run_param


@dag(
    dag_id="reports_retention",
    schedule=CronTriggerTimetable("30 3 * * *", timezone=TIMEZONE),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=TAGS + ["retention", "report_files"],
    default_args=DEFAULT_ARGS,
    params={
        "as_of": as_of_param("The day the file rules are applied for"),
        "dry_run": dry_run_param("the due files, per folder"),
    },
)
def reports_retention():
    @task(retries=0)
    def plan_removal() -> dict:
        """Which files are due (counts and path digests only)."""
        from telco_lifecycle.rules.retention import RetentionRefused, check_as_of
        from telco_lifecycle.subjects import report_retention
        from telco_lifecycle.workflows.common import as_of_date, run_date

        context = get_current_context()
        as_of = as_of_date(context, context["params"])
        try:
            check_as_of(as_of, run_date(context))
            planned = report_retention.plan(as_of)
        except (RetentionRefused, report_retention.ReportsRefused) as refused:
            raise AirflowFailException(str(refused)) from refused
        print(f"report files as of {as_of}: due {planned['due'] or 'none'} ({planned['due_bytes']} bytes)")
        return planned

    @task
    def remove_due(planned: dict) -> dict:
        """Remove the due files, one audit row each."""
        import datetime as dt

        from telco_lifecycle.subjects import report_retention
        from telco_lifecycle.workflows.common import run_context, telco_connection

        context = get_current_context()
        conn = telco_connection()
        try:
            return report_retention.remove_due(conn, dt.date.fromisoformat(planned["as_of"]), run_context(context),
                                               dry_run=bool(context["params"]["dry_run"]))
        finally:
            conn.close()

    @task
    def verify_removal(planned: dict, result: dict) -> dict:
        """Re-scan: nothing due remains, nothing else went."""
        from telco_lifecycle.subjects import report_retention

        checked = report_retention.verify(planned, dry_run=result["dry_run"])
        return {**result, "due": planned["due"], **checked}

    planned = plan_removal()
    verify_removal(planned, remove_due(planned))


reports_retention()
