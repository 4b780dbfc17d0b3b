"""
# Customer offboarding

Ends a customer's relationship and **deletes its hosted-PBX and SIP-trunk
configuration immediately**, as the privacy policy promises (rule `pbx_sip_config`).

Trigger it by hand (*Trigger DAG* in the UI, or `POST /api/v2/dags/customer_offboarding/dagRuns`)
with the customer's internal id and your name.

- `offboard_customer`: the first task, so the deletion follows the trigger at once; one
  transaction: refuses, changing nothing, an unknown customer, an end date in the future or
  different from one already recorded; counts the customer's rows; sets
  `relationship_ended_on`, deletes `pbx_configs` and `sip_peers` (under a **legal hold** in
  force: records the end and defers the deletion until the last hold is released), writes the
  audit rows
- `backdate_gate`, `approve_backdate`, `apply_backdate`: a `relationship_end` more than
  `LIFECYCLE_BACKDATE_APPROVAL_DAYS` (default 31) before the run's date starts the retention
  clocks early, so it needs a second person: the offboarding records the run's date, deletes
  the PBX/SIP configuration as always, and the approval (HITL, shown what the back-dated end
  makes due at the next purges) moves the end back. **Reject** keeps the run's date and says so.
  With approvals switched off by the deployment the end is recorded as given, with an alert
- `verify_offboarding`: Great Expectations re-queries the database: no PBX/SIP rows remain,
  nothing else of the customer was removed
- `summarise`: the counts per table (the run's XCom); no personal data; records a rejected
  back-dated end

A customer under **legal hold** is offboarded all the same (the relationship end is
recorded, so the 118 export and the status page see an ended customer) but its PBX/SIP
deletion is **deferred** (an audit row `defer_deletion` naming the holds by id; the
status page counts them): the release of the last hold deletes it, and at the latest
the next daily `crm_retention` run.

`dry_run` counts what would be deleted and changes nothing. Offboarding a customer
that has already ended is a no-op that says so. CRM data, contracts and accounting
material are kept: the daily retention DAGs remove them when their time comes.
"""

# Named here so that the dag processor imports the approval operator and `task.branch`'s
# decorator once, before it forks each parse (parsing_pre_import_modules), not in every parse.
import airflow.providers.standard.decorators.branch_python  # noqa: F401
import airflow.providers.standard.operators.hitl  # noqa: F401
from airflow.sdk import Param, TriggerRule, get_current_context, task

from telco_lifecycle.reasons import REASONS
from telco_lifecycle.workflows.alerts import offboarding_deadline
from telco_lifecycle.workflows.approvals import (
    RecordedApproval,
    announce_without_approval,
    approval_given,
    approval_required,
    recorded_answer,
)
from telco_lifecycle.workflows.common import (
    customer_id_param,
    dry_run_param,
    lifecycle_dag,
    requested_by_param,
    run_context,
    run_date,
    telco_task,
    telco_url,
)


@lifecycle_dag(
    "customer_offboarding", __doc__,
    ["offboarding", "pbx_sip_config"],  # the rule it applies (the status page)
    deadline=offboarding_deadline(),
    params={
        "customer_id": customer_id_param("of the customer whose relationship ends"),
        "relationship_end": Param(
            None, type=["null", "string"], format="date", title="Relationship end date",
            description="The day the relationship ended (YYYY-MM-DD). Empty: the run's date. Not in the future.",
        ),
        "reason": Param(
            None, type=["null", "string"], enum=[None, *REASONS], values_display=REASONS, title="Reason",
            description="Why the relationship ends: a choice from the list (`other` when none fits), never free text.",
        ),
        "requested_by": requested_by_param("the run's record"),
        "dry_run": dry_run_param("what would be deleted"),
    },
)
def customer_offboarding():
    @task
    def offboard_customer() -> dict:
        """End the relationship and delete the PBX/SIP configuration in one transaction."""
        from telco_lifecycle.rules import offboarding

        context = get_current_context()
        request = _request(context)
        with telco_task(context) as conn:
            result = offboarding.offboard_unless_backdated(conn, request, run_context(context), approval_required())
        if result["backdated_without_approval"]:
            announce_without_approval(context, "offboard_customer", "back-dated relationship end",
                                      {"relationship_end": result["relationship_ended_on"]})
        print(result["message"])
        return result

    @task.branch(multiple_outputs=False)
    def backdate_gate(result: dict) -> list[str]:
        """A back-dated end waits for approval; any other offboarding is done."""
        return ["approve_backdate"] if result.get("backdate") else []

    approve = RecordedApproval(
        task_id="approve_backdate",
        subject="Back-date the relationship end of customer {{ params.customer_id }}?",
        body="{{ ti.xcom_pull(task_ids='offboard_customer')['backdate']['body'] }}",
        retries=0,
    )

    @task
    def apply_backdate(result: dict) -> dict:
        """Move the approved back-dated end into place (one transaction with its audit row)."""
        import datetime as dt

        from telco_lifecycle.rules import offboarding

        context = get_current_context()
        with telco_task(context) as conn:
            approval = approval_given(conn, context, True, "a back-dated relationship end")
            done = offboarding.backdate(conn, result["customer_id"], dt.date.fromisoformat(
                result["relationship_ended_on"]), dt.date.fromisoformat(result["backdate"]["requested"]), approval,
                run_context(context))
        print(done["message"])
        return done

    @task(multiple_outputs=False)
    def verify_offboarding(result: dict) -> list[dict]:
        """Great Expectations: PBX/SIP rows gone, nothing else of the customer removed."""
        import dataclasses

        from telco_lifecycle.evidence.verification import run_checks
        from telco_lifecycle.rules.offboarding import verification_checks

        context = get_current_context()
        checks = verification_checks(result["customer_id"], result["rows_before"],
                                     result["dry_run"] or result["deferred"])
        results = run_checks(telco_url(), f"offboarding_{result['customer_id']}_{context['run_id']}", checks)
        return [dataclasses.asdict(r) for r in results]

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def summarise(result: dict, verification: list[dict]) -> dict:
        """The run's outcome, counts only; a rejected back-dated end recorded."""
        import datetime as dt

        from telco_lifecycle.rules import offboarding

        context = get_current_context()
        ended, message = result["relationship_ended_on"], result["message"]
        if result.get("backdate"):
            done = context["ti"].xcom_pull(task_ids="apply_backdate")
            if done is None:  # rejected: the run's date stays
                with telco_task(context) as conn:
                    answer = recorded_answer(conn, context["run_id"])
                    done = offboarding.keep_run_date(conn, result["customer_id"], dt.date.fromisoformat(ended),
                                                     dt.date.fromisoformat(result["backdate"]["requested"]),
                                                     run_context(context))
                done["rejected_by"] = answer and answer["responded_by"]
            ended, message = done["relationship_ended_on"], f"{message}; {done['message']}"
        return {
            "customer_id": result["customer_id"],
            "relationship_ended_on": ended,
            "dry_run": result["dry_run"],
            "no_op": result["no_op"],
            "deferred": result["deferred"],
            "rows_before": result["rows_before"],
            "deleted": result["deleted"],
            "verification": "passed" if all(v["success"] for v in verification) else "failed",
            "checks": len(verification),
            "message": message,
        }

    result = offboard_customer()
    applied = apply_backdate(result)
    backdate_gate(result) >> approve >> applied
    applied >> summarise(result, verify_offboarding(result))


def _request(context):
    import datetime as dt

    from telco_lifecycle.rules.offboarding import OffboardingRequest

    params = context["params"]
    return OffboardingRequest(
        customer_id=int(params["customer_id"]),
        run_date=run_date(context),
        requested_by=params["requested_by"],
        relationship_end=dt.date.fromisoformat(params["relationship_end"]) if params.get("relationship_end") else None,
        reason=params.get("reason") or "",
        dry_run=bool(params.get("dry_run")),
    )


customer_offboarding()
