"""Airflow's own records obey the policy: runs and their conf, task instances, XCom, HITL
records and the action log are removed by `airflow db clean` when they are older than the
policy's `airflow_metadata.period_days`, and task-log files by the same period.

Airflow 3 tasks do not reach the metadata database through the ORM, so the task runs
the `airflow db clean` command (the supported interface) in a subprocess: with
`--skip-archive`, in batches, and `--error-on-cleanup-failure`, so a table it could not
clean fails the run instead of being logged and skipped. The subprocess uses the
connection `airflow_metadata_db` when one is defined, else the worker's own Airflow
configuration. What went is counted per table from the command's own report, and
recorded in one audit row; file names (which hold run ids) are never recorded.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

from telco_lifecycle.evidence.audit_report import METADATA_CLEANED
from telco_lifecycle.policy import load_policy
from telco_lifecycle.settings import TIMEZONE, connection_to_url, sqlalchemy_url

RULE = "airflow_metadata"
METADATA_CONN_ID = "airflow_metadata_db"
# dag_run cascades to task_instance (and so to hitl_detail, rendered fields, task_reschedule),
# task_instance to task_instance_history and xcom. `dag` and `dag_version` are not records of
# runs and stay.
TABLES = ("dag_run", "task_instance", "task_instance_history", "task_reschedule", "xcom", "log", "job",
          "callback", "deadline", "trigger", "asset_event")
BATCH_SIZE = 5000
FOUND = re.compile(r"^Checking table (\w+)\s*\nFound (\d+) rows meeting deletion criteria", re.MULTILINE)


class CleanupFailed(RuntimeError):
    """`airflow db clean` reported a failure; the message carries its output's tail."""


def cutoff(run_date: dt.date) -> dt.datetime:
    """Records and logs from before this moment (Copenhagen midnight) are removed."""
    from zoneinfo import ZoneInfo

    day = run_date - dt.timedelta(days=load_policy().airflow_metadata.period_days)
    return dt.datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(TIMEZONE))


def metadata_url() -> str | None:
    """The metadata database of the connection `airflow_metadata_db`, if one is defined."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return sqlalchemy_url(connection_to_url(Connection.get(METADATA_CONN_ID).get_uri()))
    except AirflowNotFoundException:
        return None


def clean_command(before: dt.datetime, dry_run: bool) -> list[str]:
    airflow = str(Path(sys.executable).with_name("airflow"))
    command = [airflow, "db", "clean", "--clean-before-timestamp", before.isoformat(),
               "--tables", ",".join(TABLES), "--skip-archive", "--batch-size", str(BATCH_SIZE),
               "--error-on-cleanup-failure", "--yes"]
    return command + (["--dry-run"] if dry_run else [])


def clean_database(before: dt.datetime, dry_run: bool, metadata_url: str | None = None) -> dict[str, int]:
    """Run `airflow db clean`; the rows it found per table back. CleanupFailed on any failure."""
    env = dict(os.environ)
    if metadata_url:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = metadata_url
    done = subprocess.run(clean_command(before, dry_run), capture_output=True, text=True, env=env, timeout=3600)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise CleanupFailed(f"airflow db clean failed (exit {done.returncode}); nothing is reported as removed:\n"
                            + "\n".join(output.splitlines()[-25:]))
    return {table: int(count) for table, count in FOUND.findall(done.stdout)}


def clean_task_logs(folder: Path, before: dt.datetime, dry_run: bool) -> dict[str, int]:
    """Task-log files last written before `before` removed (a dry run counts them), then the
    folders left empty; counts and bytes back."""
    limit, files, size = before.timestamp(), 0, 0
    if not folder.exists():
        return {"files": 0, "bytes": 0}
    for path in [p for p in folder.rglob("*") if p.is_file()]:
        stat = path.stat()
        if stat.st_mtime < limit:
            files, size = files + 1, size + stat.st_size
            if not dry_run:
                path.unlink()
    if not dry_run:
        for directory in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                                reverse=True):
            if not any(directory.iterdir()):
                directory.rmdir()
    return {"files": files, "bytes": size}


def record(conn, run_date: dt.date, before: dt.datetime, tables: dict[str, int], logs: dict[str, int],
           dry_run: bool, run) -> dict:
    """The audit row of the cleanup (counts only)."""
    from telco_lifecycle.database import transaction
    from telco_lifecycle.evidence import audit

    details = {"logs_removed_before": before.isoformat(), "tables": tables, "log_files": logs["files"],
               "log_bytes": logs["bytes"], "period_days": load_policy().airflow_metadata.period_days}
    with transaction(conn) as cur:
        event = audit.record(cur, audit.Action(METADATA_CLEANED, RULE, None, None, sum(tables.values()), run_date,
                                               dry_run, details), run)
    audit.emit([event])
    return event
