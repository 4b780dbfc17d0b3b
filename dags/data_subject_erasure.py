"""
# Data subject erasure

The privacy policy lets a customer ask at any time for its data to be deleted, except
accounting material. This DAG erases what the retention policy allows, after a person
of the data team has **approved** it in the Airflow UI (*Required actions*).

- `check_request`: refuses, changing nothing, an unknown customer or one under **legal hold**;
  counts what would be erased and kept (the dry run shown to the approver)
- `approval_gate`: reads the deployment's `LIFECYCLE_REQUIRE_ERASURE_APPROVAL` (default `true`;
  no trigger param can switch it off); a dry run needs no approval
- `approve_erasure`: human in the loop (`ApprovalOperator`): **Approve** erases, **Reject**
  erases nothing. Answered by an approver (`LIFECYCLE_APPROVERS`) who is not the user who
  triggered the run; the answer goes to the audit trail with both identities as Airflow
  recorded them
- `erase`: one transaction per rule with its audit rows, each recording whether approval was
  required and who gave it
- `verify_erasure`: Great Expectations re-queries each table: erased sets gone, kept sets whole
- `write_statement`: the erasure statement for the customer (what was erased, what was kept and
  why, legal basis, when, verification) as JSON + HTML under `LIFECYCLE_REPORTS_DIR/erasure/`
- `summarise`: the outcome (counts only); after a rejection it records who rejected

What goes: after the relationship has ended, everything but accounting material (the
customers row is reduced to a tombstone of id and dates). While the relationship lasts,
only what is not needed to deliver and invoice the services (the policy's
`kept_while_active`: for example correspondence and contacts other than billing and
technical ones); the statement says what was kept and why. `dry_run` counts only.
"""

# Named here so that the dag processor imports the approval operator and `task.branch`'s
# decorator once, before it forks each parse (parsing_pre_import_modules), not in every parse.
import airflow.providers.standard.decorators.branch_python  # noqa: F401
import airflow.providers.standard.operators.hitl  # noqa: F401
from airflow.sdk import TriggerRule, get_current_context, task

from telco_lifecycle.workflows.alerts import request_deadline
from telco_lifecycle.workflows.approvals import (
    RecordedApproval,
    approval_given,
    approval_needed,
    approval_required,
    recorded_answer,
)
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
    "data_subject_erasure", __doc__, ["data-subject-request"],
    deadline=request_deadline("erasure"),
    params={
        "customer_id": customer_id_param("of the customer asking for erasure"),
        "requested_by": requested_by_param("the audit trail"),
        "dry_run": dry_run_param("what would be erased and kept"),
    },
)
def data_subject_erasure():
    @task(retries=0)
    def check_request() -> dict:
        """Refuse an unknown or held customer; count what would be erased and kept."""
        from telco_lifecycle.subjects import erasure

        context = get_current_context()
        with telco_task(context) as conn:
            planned = erasure.plan(conn, int(context["params"]["customer_id"]), run_date(context))
        return {**planned, "approval_body": erasure.approval_body(planned)}

    @task.branch(retries=0, multiple_outputs=False)
    def approval_gate(planned: dict) -> str:
        """Approval unless the deployment switched it off (or a dry run, which erases nothing)."""
        context = get_current_context()
        return "approve_erasure" if approval_needed(context, "erasure", context["params"]["dry_run"]) else "erase"

    approve = RecordedApproval(
        task_id="approve_erasure",
        subject="Erase the data of customer {{ params.customer_id }}?",
        body="{{ ti.xcom_pull(task_ids='check_request')['approval_body'] }}",
        retries=0,
    )

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def erase(planned: dict) -> dict:
        """Erase in one transaction per rule, after approval (or with approval switched off)."""
        from telco_lifecycle.subjects import erasure

        context = get_current_context()
        params = context["params"]
        dry_run = bool(params["dry_run"])
        with telco_task(context) as conn:
            approval = approval_given(conn, context, approval_required() and not dry_run, "erasure")
            result = erasure.erase(conn, planned, params["requested_by"], approval, dry_run, run_context(context))
        print(result["message"])
        return result

    @task(multiple_outputs=False)
    def verify_erasure(planned: dict, result: dict) -> list[dict]:
        """Great Expectations: erased sets gone, kept sets whole (a dry run: nothing changed)."""
        import dataclasses

        from telco_lifecycle.evidence.verification import run_checks
        from telco_lifecycle.subjects.erasure import verification_checks

        context = get_current_context()
        checks = verification_checks(planned, result["dry_run"])
        with lifecycle_task(context):
            results = run_checks(telco_url(), f"erasure_{planned['customer_id']}_{context['run_id']}", checks)
        return [dataclasses.asdict(r) for r in results]

    @task
    def write_statement(planned: dict, result: dict, verification: list[dict]) -> dict:
        """The erasure statement for the customer (JSON + HTML); its path and checksum."""
        from telco_lifecycle.subjects.erasure import write_statement as write

        context = get_current_context()
        with lifecycle_task(context):
            return write(planned, result, verification, context["params"]["requested_by"], context["run_id"])

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def summarise(planned: dict) -> dict:
        """The run's outcome, counts only; records a rejection."""
        from telco_lifecycle.subjects import erasure

        context = get_current_context()
        ti = context["ti"]
        result, statement = ti.xcom_pull(task_ids="erase"), ti.xcom_pull(task_ids="write_statement")
        if result is None:
            with telco_task(context) as conn:
                return erasure.record_rejection(conn, planned, context["params"]["requested_by"],
                                                recorded_answer(conn, context["run_id"]), run_context(context))
        return {"customer_id": planned["customer_id"], "active": planned["active"], "dry_run": result["dry_run"],
                "approval": result["approval"], "erased": result["erased"],
                "kept": {k["table"]: k["rows"] for k in planned["keep"]},
                "statement": statement["json_file"], "statement_sha256": statement["sha256"],
                "verification": "passed", "message": result["message"]}

    planned = check_request()
    gate = approval_gate(planned)
    result = erase(planned)
    gate >> [approve, result]
    approve >> result
    statement = write_statement(planned, result, verify_erasure(planned, result))
    statement >> summarise(planned)


data_subject_erasure()
