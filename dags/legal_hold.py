"""
# Legal hold

Places or releases a **legal hold** on a customer, by hand (*Trigger DAG* in the UI,
or `POST /api/v2/dags/legal_hold/dagRuns`). While a hold is in force nothing of the
customer is deleted by any rule or request: every purge skips the customer and logs
"skipped: legal hold" with the case reference.

| param | meaning |
| --- | --- |
| `customer_id` | internal customer id |
| `action` | `place` or `release` |
| `case_reference` | the case (e.g. the police or court reference), required |
| `requested_by` | who asks, required |

Placing writes the hold (placed on the run's date) and its audit row in one
transaction; placing the same case again is a no-op.

Releasing re-enables deletion, so it needs a second person:

- `check_request`: refuses, changing nothing, an unknown customer, a case that holds
  nothing, or a hold placed after the run's date; says what the release makes deletable
- `approval_gate`: a release waits for approval unless the deployment switched approvals off
  (`LIFECYCLE_REQUIRE_ERASURE_APPROVAL=false`: then every release says so, with an alert)
- `approve_release`: human in the loop (*Required actions*), answered by an approver
  (`LIFECYCLE_APPROVERS`) who is not the user who triggered the run; the answer goes to the
  audit trail with both identities as Airflow recorded them
- `apply_legal_hold`: places, or (approved) sets `released_on` to the run's date, with its
  audit row; the next run of each retention DAG deletes whatever has become due meanwhile
- `summarise`: the outcome; after a rejection the hold stays in force and the run says who
  rejected it
"""

# Named here so that the dag processor imports the approval operator and `task.branch`'s
# decorator once, before it forks each parse (parsing_pre_import_modules), not in every parse.
import airflow.providers.standard.decorators.branch_python  # noqa: F401
import airflow.providers.standard.operators.hitl  # noqa: F401
from airflow.sdk import Param, TriggerRule, get_current_context, task

from telco_lifecycle.workflows.approvals import (
    RecordedApproval,
    approval_given,
    approval_needed,
    approval_required,
    recorded_answer,
)
from telco_lifecycle.workflows.common import (
    customer_id_param,
    lifecycle_dag,
    requested_by_param,
    run_context,
    run_date,
    telco_task,
)


def _request(context):
    from telco_lifecycle.rules import legal_holds

    params = context["params"]
    return legal_holds.HoldRequest(int(params["customer_id"]), params["action"], params["case_reference"],
                                   params["requested_by"], run_date(context))


@lifecycle_dag(
    "legal_hold", __doc__, ["legal-hold"],
    params={
        "customer_id": customer_id_param("the hold applies to"),
        "action": Param(
            type="string", enum=["place", "release"], title="Action",
            values_display={"place": "Place a hold", "release": "Release the hold"},
            description="`place` a new hold or `release` the hold of this case.",
        ),
        "case_reference": Param(
            type="string", minLength=1, maxLength=200, pattern=r"^\S.*$", title="Case reference",
            description="The case the hold belongs to (e.g. police or court reference). No personal data.",
        ),
        "requested_by": requested_by_param("the hold and the audit row"),
    },
)
def legal_hold():
    @task(retries=0)
    def check_request() -> dict:
        """Refuse what cannot be done as asked; what a release would make deletable."""
        from telco_lifecycle.rules import legal_holds

        context = get_current_context()
        with telco_task(context) as conn:
            return legal_holds.check(conn, _request(context))

    @task.branch(retries=0, multiple_outputs=False)
    def approval_gate() -> str:
        """A release waits for a second person unless the deployment switched approvals off."""
        context = get_current_context()
        if context["params"]["action"] == "place":
            return "apply_legal_hold"
        return "approve_release" if approval_needed(context, "legal hold release") else "apply_legal_hold"

    approve = RecordedApproval(
        task_id="approve_release",
        subject="Release legal hold {{ params.case_reference }} of customer {{ params.customer_id }}?",
        body="{{ ti.xcom_pull(task_ids='check_request')['approval_body'] }}",
        retries=0,
    )

    @task(retries=0, trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def apply_legal_hold() -> dict:
        """Place or (approved) release the hold in one transaction with its audit row."""
        from telco_lifecycle.rules import legal_holds

        context = get_current_context()
        request = _request(context)
        with telco_task(context) as conn:
            approval = None
            if request.action == "release":
                approval = approval_given(conn, context, approval_required(), "releasing a legal hold")
            result = legal_holds.apply(conn, request, run_context(context), approval)
        print(result["message"])
        return result

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def summarise() -> dict:
        """The run's outcome; a rejected release leaves the hold in force."""
        context = get_current_context()
        result = context["ti"].xcom_pull(task_ids="apply_legal_hold")
        if result is None:
            with telco_task(context) as conn:
                answer = recorded_answer(conn, context["run_id"]) or {}
            result = {"action": "release", "released": False, "rejected_by": answer.get("responded_by"),
                      "message": f"release of hold {context['params']['case_reference']} rejected by "
                                 f"{answer.get('responded_by')}: the hold stays in force"}
        print(result["message"])
        return result

    gate = approval_gate()
    applied = apply_legal_hold()
    check_request() >> gate >> [approve, applied]
    approve >> applied >> summarise()


legal_hold()
