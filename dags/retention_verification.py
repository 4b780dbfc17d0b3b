"""
# Retention verification

Daily at 05:00 Copenhagen time, after the retention DAGs (02:00), and on demand
with any `as_of`. Runs the Great Expectations suites derived from the policy as SQL
in PostgreSQL (no table is pulled into pandas):

- for every rule, nothing past its deadline remains at `as_of` (customers under a
  legal hold in force excepted);
- no ended customer has PBX/SIP configuration;
- no data of a customer under a hold in force was removed after the hold was placed;
- the audit chain verifies against every signed checkpoint, after a checkpoint of its
  head is written (`verify_audit_chain`, as `lifecycle audit verify`).

First it compares the database's audit trail with the deletion ledger outside it: a
database restored from a backup (behind the ledger) fails the run, with an alert naming
the gap; run `restore_reconciliation` then.

A failing check fails the run and names the rule, the table and the number of
offending rows (never their content). The HTML Data Docs of each run are written
under `LIFECYCLE_REPORTS_DIR/data_docs`. The same checks, plus before/after counts
of the purge, are the last task of every retention DAG.
"""

from airflow.sdk import CronTriggerTimetable, get_current_context, task

from telco_lifecycle.settings import TIMEZONE
from telco_lifecycle.workflows.audit_chain import verify_audit_chain_task
from telco_lifecycle.workflows.common import (
    as_of_date,
    as_of_param,
    lifecycle_dag,
    telco_task,
    telco_url,
)


@lifecycle_dag(
    "retention_verification", __doc__, ["retention", "verification"], {"as_of": as_of_param()},
    schedule=CronTriggerTimetable("0 5 * * *", timezone=TIMEZONE),
    max_active_runs=1,
)
def retention_verification():
    @task(retries=0)
    def verify_all_rules() -> dict:
        """Every rule's checks at `as_of`; fails naming rule, table and count. First: a
        database restored from a backup (behind the deletion ledger) fails the run."""
        from telco_lifecycle.evidence.restore_detection import refuse_if_restored
        from telco_lifecycle.evidence.retention_checks import verify

        context = get_current_context()
        as_of = as_of_date(context, context["params"])
        with telco_task(context) as conn:
            refuse_if_restored(conn, "retention_verification")
            results = verify(telco_url(), as_of, f"retention_verification_{context['run_id']}")
        return {"as_of": as_of.isoformat(), "verification": "passed", "checks": len(results)}

    verify_all_rules()
    verify_audit_chain_task()


retention_verification()
