"""
# 118 directory export

Daily file for the 118 directory service, as the privacy policy promises: by default the
company's **main numbers** are passed on, **mobile numbers never**, and a customer that
opted out (`phone_numbers.directory_opt_out`) or whose relationship has ended is never listed.

- `verify_export`: Great Expectations validates the export query's result set (a GX query asset)
  against the source tables: only main numbers, none opted out, no ended customer, each number
  once
- `write_export`: only after that: streams the listing (number, company name, address) to
  `LIFECYCLE_REPORTS_DIR/directory_118/directory_118_<as_of>.csv`; one audit row with the count
  and SHA-256

`as_of` (default: the run's date) is the day the listing describes; it may not be in the future.
"""

from airflow.sdk import get_current_context, task

from telco_lifecycle.errors import Refused
from telco_lifecycle.workflows.common import (
    as_of_date,
    as_of_param,
    lifecycle_dag,
    lifecycle_task,
    run_context,
    run_date,
    telco_task,
    telco_url,
)


@lifecycle_dag(
    "directory_118_export", __doc__, ["disclosure"],
    {"as_of": as_of_param("The day the listing describes")},
    schedule="@daily",
)
def directory_118_export():
    @task(retries=0)
    def verify_export() -> dict:
        """GX checks on the export query's result set, before anything is written."""
        import dataclasses

        from telco_lifecycle.evidence.verification import run_checks
        from telco_lifecycle.subjects import directory_118 as directory_export

        context = get_current_context()
        as_of = as_of_date(context, context["params"])
        with lifecycle_task(context):
            if as_of > run_date(context):
                raise Refused(f"as_of {as_of} is after the run's date {run_date(context)}; nothing written")
            checks = directory_export.verification_checks(directory_export.export_query(as_of), as_of)
            results = run_checks(telco_url(), f"directory_118_{as_of}_{context['run_id']}", checks)
        return {"as_of": as_of.isoformat(), "checks": [dataclasses.asdict(r) for r in results]}

    @task
    def write_export(verified: dict) -> dict:
        """Write the CSV; return its row count, path and checksum."""
        import datetime as dt

        from telco_lifecycle.subjects import directory_118 as directory_export

        context = get_current_context()
        with telco_task(context) as conn:
            result = directory_export.write(conn, dt.date.fromisoformat(verified["as_of"]), run_context(context))
        print(f"118 export as of {result['as_of']}: {result['rows']} number(s), sha256 {result['sha256']}")
        return {**result, "verification": "passed", "checks": len(verified["checks"])}

    write_export(verify_export())


directory_118_export()
