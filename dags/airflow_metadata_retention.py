"""
# Airflow metadata retention

Airflow's own records obey the policy (`airflow_metadata` in `include/policy/retention.yaml`):
runs and their conf, task instances, XCom, HITL records and the action log older than the
period, and the task-log files last written before it, are removed.

- `clean_records`: `airflow db clean` before the run's date minus the period,
  `--skip-archive`, in batches, `--error-on-cleanup-failure`: a table it could not clean fails
  the run; the rows found per table are the run's XCom
- `clean_task_logs`: removes the task-log files last written before the same moment (and
  folders left empty); one audit row `airflow_metadata_cleaned` with the counts
- `verify_cleanup`: `airflow db clean --dry-run` again: no row older than the moment remains;
  no task-log file either

`dry_run` counts what would go and removes nothing. The latest scheduled run of each DAG is
kept by `airflow db clean` whatever its age (the scheduler needs it).
"""

from airflow.sdk import CronTriggerTimetable, get_current_context, task

from telco_lifecycle.settings import TIMEZONE
from telco_lifecycle.workflows.common import dry_run_param, lifecycle_dag, run_context, telco_task


def _log_folder():
    from pathlib import Path

    from airflow.configuration import conf

    return Path(conf.get("logging", "base_log_folder"))


@lifecycle_dag(
    "airflow_metadata_retention", __doc__, ["retention", "airflow_metadata"],
    {"dry_run": dry_run_param("the records and log files older than the period")},
    schedule=CronTriggerTimetable("45 3 * * *", timezone=TIMEZONE),
    max_active_runs=1,
)
def airflow_metadata_retention():
    @task(retries=0)
    def clean_records() -> dict:
        """`airflow db clean`: fails the run when a table could not be cleaned."""
        from telco_lifecycle.workflows import airflow_metadata
        from telco_lifecycle.workflows.common import run_date

        context = get_current_context()
        day, dry_run = run_date(context), bool(context["params"]["dry_run"])
        before = airflow_metadata.cutoff(day)
        tables = airflow_metadata.clean_database(before, dry_run, airflow_metadata.metadata_url())
        print(f"airflow db clean before {before.isoformat()}{' (dry run)' if dry_run else ''}: {tables}")
        return {"run_date": day.isoformat(), "before": before.isoformat(), "dry_run": dry_run, "tables": tables}

    @task(retries=0)
    def clean_task_logs(cleaned: dict) -> dict:
        """Task-log files by the same period; the audit row of the whole cleanup."""
        import datetime as dt

        from telco_lifecycle.workflows import airflow_metadata

        context = get_current_context()
        before = dt.datetime.fromisoformat(cleaned["before"])
        logs = airflow_metadata.clean_task_logs(_log_folder(), before, cleaned["dry_run"])
        with telco_task(context) as conn:
            event = airflow_metadata.record(conn, dt.date.fromisoformat(cleaned["run_date"]), before, cleaned["tables"],
                                            logs, cleaned["dry_run"], run_context(context))
        return {**cleaned, "log_files": logs["files"], "log_bytes": logs["bytes"], "audit_id": event["audit_id"]}

    @task(retries=0)
    def verify_cleanup(result: dict) -> dict:
        """Nothing older than the moment remains (a dry run: skipped, nothing was removed)."""
        import datetime as dt

        from telco_lifecycle.workflows import airflow_metadata

        if result["dry_run"]:
            return {**result, "verification": "skipped (dry run)"}
        before = dt.datetime.fromisoformat(result["before"])
        left = {t: n for t, n in airflow_metadata.clean_database(before, True, airflow_metadata.metadata_url()).items()
                if n}
        logs_left = airflow_metadata.clean_task_logs(_log_folder(), before, dry_run=True)["files"]
        if left or logs_left:
            raise AssertionError(f"after the cleanup, records {left} and {logs_left} task-log file(s) older than"
                                 f" {before.isoformat()} remain")
        return {**result, "verification": "passed"}

    verify_cleanup(clean_task_logs(clean_records()))


airflow_metadata_retention()
