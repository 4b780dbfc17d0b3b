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
transaction; placing the same case again is a no-op. Releasing sets `released_on`
to the run's date: the next run of each retention DAG deletes whatever has become
due meanwhile. Releasing a case that holds nothing is refused and changes nothing.
"""

from airflow.sdk import Param, get_current_context, task

from telco_lifecycle.workflows.common import (
    customer_id_param,
    lifecycle_dag,
    requested_by_param,
    run_context,
    run_date,
    telco_task,
)


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
    def apply_legal_hold() -> dict:
        """Place or release the hold in one transaction with its audit row."""
        from telco_lifecycle.rules import legal_holds

        context = get_current_context()
        params = context["params"]
        request = legal_holds.HoldRequest(int(params["customer_id"]), params["action"], params["case_reference"],
                                          params["requested_by"], run_date(context))
        with telco_task(context) as conn:
            result = legal_holds.apply(conn, request, run_context(context))
        print(result["message"])
        return result

    apply_legal_hold()


legal_hold()
