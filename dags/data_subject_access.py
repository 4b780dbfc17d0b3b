"""
# Data subject access

The privacy policy promises that a customer may at any time learn which data is stored
about it. This DAG exports **everything the telecom database holds about one customer**,
category by category as the retention policy defines them, into

* a machine-readable **JSON** file (every record, call detail records included), and
* a readable **HTML** report, in Danish (param `language`: `en` for English): per category
  the data with labels, its legal basis, whether it will be deleted and when, or was;
  call detail records summarised (count and period per kind),
* the documents (signed contracts) as files in `<report>_files/`, listed in both by name,
  size and SHA-256,

all under `LIFECYCLE_REPORTS_DIR/subject_access/`. Send them to the customer.

- `export_customer_data`: one consistent snapshot; rows streamed to the files in chunks
  (server-side cursor); one audit row with the files' SHA-256

The files are the only place personal data appears: the log, the XCom and the audit row
carry the customer id, row counts per table and the checksums. An unknown customer fails
the run with that message and nothing is written. A legal hold does not block access.
"""

from airflow.sdk import Param, get_current_context, task

from telco_lifecycle.workflows.alerts import request_deadline
from telco_lifecycle.workflows.common import (
    customer_id_param,
    lifecycle_dag,
    requested_by_param,
    run_context,
    run_date,
    telco_task,
)


@lifecycle_dag(
    "data_subject_access", __doc__, ["data-subject-request"],
    deadline=request_deadline("access"),
    params={
        "customer_id": customer_id_param("of the customer asking for its data"),
        "requested_by": requested_by_param("the audit trail"),
        "language": Param("da", type="string", enum=["da", "en"], title="Language",
                          description="Language of the report for the customer: da (Danish) or en (English)."),
    },
)
def data_subject_access():
    @task(retries=0)
    def export_customer_data() -> dict:
        """Write the JSON and HTML access report; return counts and checksums only."""
        from telco_lifecycle.subjects import access as subject_access

        context = get_current_context()
        params = context["params"]
        with telco_task(context) as conn:
            result = subject_access.export(conn, int(params["customer_id"]), params["requested_by"],
                                           run_date(context), run_context(context), params.get("language") or "da")
        print(f"customer {result['customer_id']}: {sum(result['rows'].values())} row(s) exported,"
              f" JSON sha256 {result['sha256']}")
        return result

    export_customer_data()


data_subject_access()
