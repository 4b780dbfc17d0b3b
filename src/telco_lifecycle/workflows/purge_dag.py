"""The factory of the three purge DAGs (crm_retention, contract_archive_retention,
accounting_retention). Imported at DAG-parse time, so it imports only what the DAG
definition needs; the purge itself (`retention`) loads inside the tasks."""

from __future__ import annotations

import datetime as dt
import logging

from airflow.sdk import CronTriggerTimetable, get_current_context, task

from telco_lifecycle.settings import TIMEZONE
from telco_lifecycle.workflows.alerts import deadline_dag, purge_deadline
from telco_lifecycle.workflows.common import (
    DEFAULT_ARGS,
    START_DATE,
    TAGS,
    TEMPLATE_SEARCHPATH,
    as_of_param,
    dry_run_param,
)

log = logging.getLogger("telco_lifecycle.rules.retention")

SCHEDULE = "0 2 * * *"  # daily, 02:00 Copenhagen time


def purge_dag(dag_id: str, rule_id: str, doc_md: str, acts_only_when_due: bool = False):
    """A daily DAG applying one scheduled rule: plan (exact counts, the before snapshot)
    -> purge (dry-run capable) -> verify (the retention_verification checks of the rule
    plus the before/after checks). `acts_only_when_due`: the plan short-circuits the
    run when nothing is due."""

    @deadline_dag(
        dag_id=dag_id,
        schedule=CronTriggerTimetable(SCHEDULE, timezone=TIMEZONE),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        doc_md=doc_md,
        tags=TAGS + ["retention", rule_id],
        default_args=DEFAULT_ARGS,
        deadline=purge_deadline(rule_id, SCHEDULE),
        template_searchpath=TEMPLATE_SEARCHPATH,
        params={
            "as_of": as_of_param(),
            "dry_run": dry_run_param("what is due, per table"),
        },
    )
    def retention_dag():
        @(task.short_circuit if acts_only_when_due else task)(retries=0)
        def plan_purge():
            """Exact counts of what is due, and the before snapshot for verification (read only)."""
            from airflow.sdk.exceptions import AirflowFailException

            from telco_lifecycle.evidence.restore_detection import RestoredDatabase
            from telco_lifecycle.evidence.retention_checks import snapshot
            from telco_lifecycle.rules.retention import RetentionRefused, check_as_of, describe_counts, plan
            from telco_lifecycle.workflows.common import as_of_date, run_date, telco_connection
            from telco_lifecycle.workflows.refusals import refuse

            context = get_current_context()
            as_of = as_of_date(context, context["params"])
            try:
                check_as_of(as_of, run_date(context))
            except RetentionRefused as refused:
                refuse(context, refused)
            conn = telco_connection()
            try:
                planned = plan(conn, rule_id, as_of)
                before = snapshot(conn, rule_id, as_of)
            except RestoredDatabase as restored:
                raise AirflowFailException(str(restored)) from restored
            finally:
                conn.close()
            log.info("rule %s as of %s: due %s; %d customer(s) under legal hold have due data",
                     rule_id, as_of, describe_counts(planned["due"]), planned["held_customers"])
            if acts_only_when_due and not planned["anything_due"]:
                log.info("rule %s: nothing is due as of %s; the run stops here", rule_id, as_of)
                return False
            return {**planned, "before": before}

        @task
        def purge_due(planned: dict) -> dict:
            """Remove what is due, batch by batch of customers (and CDR month by month), with audit rows."""
            from airflow.sdk.exceptions import AirflowFailException

            from telco_lifecycle.evidence.restore_detection import RestoredDatabase
            from telco_lifecycle.rules.retention import purge
            from telco_lifecycle.workflows.common import run_context, telco_connection

            context = get_current_context()
            conn = telco_connection()
            try:
                result = purge(conn, rule_id, dt.date.fromisoformat(planned["as_of"]), run_context(context),
                               dry_run=bool(context["params"]["dry_run"]))
            except RestoredDatabase as restored:  # restored since the plan: no retry helps
                raise AirflowFailException(str(restored)) from restored
            finally:
                conn.close()
            print(result["message"])
            return result

        @task
        def verify_retention(planned: dict, result: dict) -> dict:
            """Great Expectations: nothing due remains, nothing else is gone, held data intact."""
            from telco_lifecycle.evidence.retention_checks import verify
            from telco_lifecycle.workflows.common import telco_url

            context = get_current_context()
            as_of = dt.date.fromisoformat(result["as_of"])
            # What was due when the before snapshot was taken (a retried purge task
            # removes only the rest, so its own counts would not match the snapshot).
            due = {t: 0 if result["dry_run"] else n for t, n in planned["due"].items()}
            checks = verify(telco_url(), as_of, f"{dag_id}_{context['run_id']}",
                            rule_ids=[] if result["dry_run"] else [rule_id],
                            expected={"rule": rule_id, "before": planned["before"], "due": due})
            return {key: result[key] for key in ("rule", "as_of", "dry_run", "removed", "message")} | {
                "due": planned["due"],
                "skipped_legal_hold": len(result.get("skipped_legal_hold", [])),
                "partitions_dropped": [p["partition"] for p in result.get("partitions_dropped", [])],
                "verification": "passed", "checks": len(checks)}

        planned = plan_purge()
        verify_retention(planned, purge_due(planned))

    return retention_dag()
