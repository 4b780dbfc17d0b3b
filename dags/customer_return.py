"""
# Customer return

A customer whose relationship ended **signs again** before its CRM data was purged:
trigger this by hand (*Trigger DAG* in the UI, or `POST /api/v2/dags/customer_return/dagRuns`).

- `return_customer`: one transaction: refuses, changing nothing, an unknown customer, one
  whose relationship has not ended, one whose **CRM data was purged** (the customer is new: a
  new customer record), and a `returned_on` after the run's date or before the earlier end;
  clears `relationship_ended_on` and records the earlier end on the contracts signed by then
  (`archived_contracts.relationship_ended_on`), so their **five-year clock** keeps running;
  writes the audit row
- `verify_return`: Great Expectations: the customer is active, no contract of the earlier
  relationship lost its end

`returned_on` defaults to the run's date. `dry_run` counts the contracts and changes
nothing. CRM data stays (the relationship lasts again); the PBX/SIP configuration, deleted
at the earlier offboarding, is set up anew by provisioning.
"""

from airflow.sdk import Param, get_current_context, task

from telco_lifecycle.workflows.common import (
    customer_id_param,
    dry_run_param,
    lifecycle_dag,
    lifecycle_task,
    requested_by_param,
    run_context,
    run_date,
    telco_task,
    telco_url,
)


@lifecycle_dag(
    "customer_return", __doc__, ["offboarding", "archived_contracts"],
    params={
        "customer_id": customer_id_param("of the customer who signs again"),
        "returned_on": Param(
            None, type=["null", "string"], format="date", title="Returned on",
            description="The day the customer signed again (YYYY-MM-DD). Empty: the run's date. Not in the future.",
        ),
        "requested_by": requested_by_param("the audit row"),
        "dry_run": dry_run_param("the contracts that keep their clock"),
    },
)
def customer_return():
    @task(retries=0)
    def return_customer() -> dict:
        """Clear the relationship end; the earlier contracts keep theirs (one transaction)."""
        import datetime as dt

        from telco_lifecycle.rules import customer_return as returns

        context = get_current_context()
        params = context["params"]
        request = returns.ReturnRequest(
            int(params["customer_id"]), run_date(context), params["requested_by"],
            dt.date.fromisoformat(params["returned_on"]) if params.get("returned_on") else None,
            bool(params.get("dry_run")))
        with telco_task(context) as conn:
            result = returns.return_customer(conn, request, run_context(context))
        print(result["message"])
        return result

    @task
    def verify_return(result: dict) -> dict:
        """Great Expectations: active again, the earlier contracts keep their end."""
        from telco_lifecycle.evidence.verification import run_checks
        from telco_lifecycle.rules.customer_return import verification_checks

        context = get_current_context()
        checks = [] if result["dry_run"] else verification_checks(result)
        if checks:
            with lifecycle_task(context):
                run_checks(telco_url(), f"customer_return_{result['customer_id']}_{context['run_id']}", checks)
        return {**result, "verification": "passed", "checks": len(checks)}

    verify_return(return_customer())


customer_return()
