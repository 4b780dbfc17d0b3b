"""
# Restore reconciliation

Run by hand after the telecom database was restored from a backup (the purges and
`retention_verification` refuse to run on it, and alert, until then). The deletion
ledger outside the database (`LIFECYCLE_EVIDENCE_DIR`) records every removal; the
ones the restored database's audit trail lacks were done after the backup, and their
data is back.

- `reconcile` re-applies, in ledger order, every action the ledger records after the
  restored database's last audit row (purges, CDR months, offboardings, erasures, legal
  holds) through the code that did it first, restricted to the entry's customer, rule
  and `as_of`; a `reapplied_after_restore` audit row per ledger entry links it to the chain;
- `verify_reconciliation`: Great Expectations checks that for every replayed customer
  and rule the database matches the ledger;
- `write_report`: the reconciliation report under `LIFECYCLE_REPORTS_DIR/restore/`: what
  was deleted again per rule, and data deleted again although a hold was placed on the
  customer later (for the DPO); no personal data.

`dry_run` lists what would be re-applied and changes nothing. A second run finds
nothing to re-apply and changes nothing. Logic: `telco_lifecycle.rules.restore`.
"""

from airflow.sdk import get_current_context, task

from telco_lifecycle.workflows.common import (
    dry_run_param,
    lifecycle_dag,
    lifecycle_task,
    requested_by_param,
    run_context,
    telco_task,
    telco_url,
)


@lifecycle_dag(
    "restore_reconciliation", __doc__, ["restore"],
    max_active_runs=1,
    params={
        "requested_by": requested_by_param("the audit rows and the report"),
        "dry_run": dry_run_param("what the ledger says would be re-applied"),
    },
)
def restore_reconciliation():
    @task(retries=0)
    def reconcile() -> dict:
        """Re-apply the ledger's actions the restored database lacks, in ledger order."""
        from telco_lifecycle.rules import restore

        context = get_current_context()
        with telco_task(context) as conn:
            result = restore.reconcile(conn, run_context(context), context["params"]["requested_by"],
                                       dry_run=bool(context["params"]["dry_run"]))
        print(result["message"])
        return result

    @task(multiple_outputs=False)
    def verify_reconciliation(result: dict) -> list[dict]:
        """Great Expectations: every replayed customer and rule matches the ledger."""
        from telco_lifecycle.rules import restore

        context = get_current_context()
        with lifecycle_task(context):
            return restore.verify(telco_url(), result, context["run_id"])

    @task
    def write_report(result: dict, verification: list[dict]) -> dict:
        """The reconciliation report (no personal data)."""
        from telco_lifecycle.rules import restore

        context = get_current_context()
        with lifecycle_task(context):
            path = restore.write_report(result, verification, context["run_id"])
        print(f"{result['message']}\nreport: {path}")
        return {"message": result["message"], "report": path, "dry_run": result["dry_run"],
                "ledger_entries": result["ledger_entries"], "per_rule": result["per_rule"],
                "deleted_before_later_hold": result["deleted_before_later_hold"],
                "holds_without_case_reference": result["holds_without_case_reference"], "checks": len(verification)}

    result = reconcile()
    write_report(result, verify_reconciliation(result))


restore_reconciliation()
