"""The factory of the three purge DAGs (crm_retention, contract_archive_retention,
accounting_retention). Imported at DAG-parse time, so it imports only what the DAG
definition needs; the purge itself (`rules.retention`) loads inside the tasks."""

from __future__ import annotations

import datetime as dt
import logging

from airflow.sdk import CronTriggerTimetable, get_current_context, task

from telco_lifecycle.settings import TIMEZONE
from telco_lifecycle.workflows.alerts import purge_deadline
from telco_lifecycle.workflows.common import (
    as_of_date,
    as_of_param,
    dry_run_param,
    lifecycle_dag,
    lifecycle_task,
    run_context,
    run_date,
    telco_task,
    telco_url,
)

log = logging.getLogger("telco_lifecycle.rules.retention")

SCHEDULE = "0 2 * * *"  # daily, 02:00 Copenhagen time
# The steps, in every purge DAG's doc_md after the DAG file's own description of its rule.
STEPS = """{deferred}
- `plan_purge`: exact counts of what is due per table, customers under legal hold, a before
  snapshot{stops}
- `purge_due`: in batches of customers, one transaction per batch with one audit row per
  customer and table ("batch k of n, rows so far" in the log); customers under a **legal hold**
  in force are skipped ("skipped: legal hold" with the case reference)
- `verify_retention`: Great Expectations: nothing past its deadline remains, nothing not yet due
  is gone, held customers' data intact, no ended customer has PBX/SIP configuration

`as_of` defaults to the run's logical date and may not be after it; `dry_run` only counts.
A re-run of the same date changes nothing; `max_active_runs=1` and an advisory lock keep two
runs from purging at once.
"""
DEFERRED_STEP = """
- `complete_deferred_offboarding`: first deletes the PBX/SIP configuration of ended customers
  whose offboarding deferred it for a legal hold released by now (the release run normally does
  it at once); skipped in a dry run"""


def purge_dag(dag_id: str, rule_id: str, doc_md: str, acts_only_when_due: bool = False,
              completes_deferred_offboarding: bool = False):
    """A daily DAG applying one scheduled rule: plan (exact counts, the before snapshot)
    -> purge (dry-run capable) -> verify (the retention_verification checks of the rule
    plus the before/after checks). `acts_only_when_due`: the plan short-circuits the
    run when nothing is due. `completes_deferred_offboarding`: first delete the PBX/SIP
    configuration whose deletion offboarding deferred for a hold released by now."""

    @lifecycle_dag(
        dag_id, doc_md + STEPS.format(stops="; stops the run (short-circuit) when nothing is due"
                                      if acts_only_when_due else "", deferred=DEFERRED_STEP
                                      if completes_deferred_offboarding else ""),
        ["retention", rule_id],
        {"as_of": as_of_param(), "dry_run": dry_run_param("what is due, per table")},
        schedule=CronTriggerTimetable(SCHEDULE, timezone=TIMEZONE),
        max_active_runs=1,
        deadline=purge_deadline(rule_id, SCHEDULE),
    )
    def retention_dag():
        @(task.short_circuit if acts_only_when_due else task)(retries=0)
        def plan_purge():
            """Exact counts of what is due, and the before snapshot for verification (read only)."""
            from telco_lifecycle.evidence.retention_checks import snapshot
            from telco_lifecycle.rules.retention import check_as_of, describe_counts, plan

            context = get_current_context()
            as_of = as_of_date(context, context["params"])
            with telco_task(context) as conn:
                check_as_of(as_of, run_date(context))
                planned = plan(conn, rule_id, as_of)
                before = snapshot(conn, rule_id, as_of)
            log.info("rule %s as of %s: due %s; %d customer(s) under legal hold have due data",
                     rule_id, as_of, describe_counts(planned["due"]), planned["held_customers"])
            if acts_only_when_due and not planned["anything_due"]:
                log.info("rule %s: nothing is due as of %s; the run stops here", rule_id, as_of)
                return False
            return {**planned, "before": before}

        @task
        def purge_due(planned: dict) -> dict:
            """Remove what is due, batch by batch of customers (and CDR month by month), with audit rows."""
            from telco_lifecycle.rules.retention import purge

            context = get_current_context()
            with telco_task(context) as conn:
                result = purge(conn, rule_id, dt.date.fromisoformat(planned["as_of"]), run_context(context),
                               dry_run=bool(context["params"]["dry_run"]))
            print(result["message"])
            return result

        @task
        def verify_retention(planned: dict, result: dict) -> dict:
            """Great Expectations: nothing due remains, nothing else is gone, held data intact."""
            from telco_lifecycle.evidence.retention_checks import verify

            context = get_current_context()
            as_of = dt.date.fromisoformat(result["as_of"])
            # What was due when the before snapshot was taken (a retried purge task
            # removes only the rest, so its own counts would not match the snapshot).
            due = {t: 0 if result["dry_run"] else n for t, n in planned["due"].items()}
            with lifecycle_task(context):
                checks = verify(telco_url(), as_of, f"{dag_id}_{context['run_id']}",
                                rule_ids=[] if result["dry_run"] else [rule_id],
                                expected={"rule": rule_id, "before": planned["before"], "due": due})
            return {key: result[key] for key in ("rule", "as_of", "dry_run", "removed", "message")} | {
                "due": planned["due"],
                "skipped_legal_hold": len(result.get("skipped_legal_hold", [])),
                "partitions_dropped": [p["partition"] for p in result.get("partitions_dropped", [])],
                "verification": "passed", "checks": len(checks)}

        planned = plan_purge()
        # XComArgs resolve to the dicts at run time; mypy sees only XComArg (apache/airflow#39514).
        verify_retention(planned, purge_due(planned))  # type: ignore[arg-type]
        if completes_deferred_offboarding:
            @task(retries=0)
            def complete_deferred_offboarding() -> dict:
                """Deferred PBX/SIP deletions of ended customers under no hold any more (offboarding)."""
                from telco_lifecycle.rules.offboarding import complete_deferred

                context = get_current_context()
                if context["params"]["dry_run"]:
                    return {"dry_run": True, "deleted": {}}
                with telco_task(context) as conn:
                    return complete_deferred(conn, run_date(context), run_context(context))

            complete_deferred_offboarding() >> planned

    return retention_dag()
