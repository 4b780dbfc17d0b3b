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

from airflow.sdk import CronTriggerTimetable, get_current_context, task

from telco_lifecycle.settings import TIMEZONE
from telco_lifecycle.workflows.common import (
    as_of_date,
    as_of_param,
    dry_run_param,
    lifecycle_dag,
    lifecycle_task,
    run_context,
    run_date,
    telco_task,
)


@lifecycle_dag(
    "reports_retention", __doc__, ["retention", "report_files"],
    {"as_of": as_of_param("The day the file rules are applied for"),
     "dry_run": dry_run_param("the due files, per folder")},
    schedule=CronTriggerTimetable("30 3 * * *", timezone=TIMEZONE),
    max_active_runs=1,
)
def reports_retention():
    @task(retries=0)
    def plan_removal() -> dict:
        """Which files are due (counts and path digests only)."""
        from telco_lifecycle.rules.retention import check_as_of
        from telco_lifecycle.subjects import report_retention

        context = get_current_context()
        as_of = as_of_date(context, context["params"])
        with lifecycle_task(context):
            check_as_of(as_of, run_date(context))
            planned = report_retention.plan(as_of)
        print(f"report files as of {as_of}: due {planned['due'] or 'none'} ({planned['due_bytes']} bytes)")
        return planned

    @task
    def remove_due(planned: dict) -> dict:
        """Remove the due files, one audit row each."""
        import datetime as dt

        from telco_lifecycle.subjects import report_retention

        context = get_current_context()
        with telco_task(context) as conn:
            return report_retention.remove_due(conn, dt.date.fromisoformat(planned["as_of"]), run_context(context),
                                               dry_run=bool(context["params"]["dry_run"]))

    @task
    def verify_removal(planned: dict, result: dict) -> dict:
        """Re-scan: nothing due remains, nothing else went."""
        from telco_lifecycle.subjects import report_retention

        checked = report_retention.verify(planned, dry_run=result["dry_run"])
        return {**result, "due": planned["due"], **checked}

    planned = plan_removal()
    verify_removal(planned, remove_due(planned))


reports_retention()
