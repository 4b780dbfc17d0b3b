"""Task log files for runs without a worker: `dag.test()` (the demo, the tests) logs only
to stdout, so these write the files a worker writes, where the audit report reads them."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

from telco_lifecycle.evidence.audit_report import TaskTry, log_folder


class TaskLogFiles(logging.Handler):
    """`dag.test()` runs tasks in-process and logs only to stdout. This handler writes each
    record logged inside a task to that task try's file in the log folder, as JSON lines
    like a worker's (timestamp, level, logger, event), so the demo's and the tests' runs
    leave the task logs a real deployment leaves."""

    def __init__(self, base: Path):
        super().__init__(logging.INFO)
        self.base = base

    def path(self, task_try: TaskTry) -> Path:
        return (self.base / f"dag_id={task_try.dag_id}" / f"run_id={task_try.run_id}"
                / f"task_id={task_try.task_id}" / f"attempt={task_try.try_number}.log")

    def write(self, task_try: TaskTry, level: str, logger: str, message: str, moment: dt.datetime) -> None:
        path = self.path(task_try)
        path.parent.mkdir(parents=True, exist_ok=True)
        line = {"timestamp": moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
                "level": level, "logger": logger, "event": message}
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")

    def emit(self, record: logging.LogRecord) -> None:
        from airflow.sdk import get_current_context

        try:
            ti = get_current_context()["ti"]
        except RuntimeError:  # not inside a task
            return
        self.write(TaskTry(ti.dag_id, ti.run_id, ti.task_id, int(ti.try_number or 1)), record.levelname.lower(),
                   record.name, record.getMessage(), dt.datetime.fromtimestamp(record.created, dt.UTC))


def test_dag_with_task_logs(dag, **kwargs):
    """`dag.test(**kwargs)` leaving a task log file per task try in the log folder. A failed
    try ends with the record a worker writes for it (`Task failed with exception`, logger
    `task`), which `dag.test()` prints to stdout only."""
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session

    handler = TaskLogFiles(log_folder())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        dag_run = dag.test(**kwargs)
    finally:
        root.removeHandler(handler)
    with create_session() as session:
        tries = [*dag_run.get_task_instances(session=session),
                 *session.query(TaskInstanceHistory).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id)]
        for ti in tries:
            if ti.state in ("failed", "up_for_retry"):
                handler.write(TaskTry(ti.dag_id, ti.run_id, ti.task_id, ti.try_number), "error", "task",
                              "Task failed with exception", ti.end_date or dt.datetime.now(dt.UTC))
    return dag_run
