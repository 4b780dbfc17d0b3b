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

from airflow.sdk import Param, dag, get_current_context, task

from telco_lifecycle.workflows.common import (
    DEFAULT_ARGS,
    START_DATE,
    TAGS,
    TEMPLATE_SEARCHPATH,
    customer_id_param,
    requested_by_param,
)
from telco_lifecycle.workflows.refusals import refuse


@dag(
    dag_id="legal_hold",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    doc_md=__doc__,
    tags=TAGS + ["legal-hold"],
    default_args=DEFAULT_ARGS,
    template_searchpath=TEMPLATE_SEARCHPATH,
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
        from telco_lifecycle.customers import UnknownCustomer
        from telco_lifecycle.rules import legal_holds
        from telco_lifecycle.workflows.common import run_context, run_date, telco_connection

        context = get_current_context()
        params = context["params"]
        request = legal_holds.HoldRequest(int(params["customer_id"]), params["action"], params["case_reference"],
                                          params["requested_by"], run_date(context))
        conn = telco_connection()
        try:
            result = legal_holds.apply(conn, request, run_context(context))
        except (UnknownCustomer, legal_holds.LegalHoldRefused) as refused:
            refuse(context, refused)
        finally:
            conn.close()
        print(result["message"])
        return result

    apply_legal_hold()


legal_hold()
