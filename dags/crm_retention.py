"""
# CRM retention (rule `crm_master_data`)

Daily at 02:00 Copenhagen time. For every customer whose relationship ended **at
least one year** before `as_of` (29 February + 1 year = 28 February), removes the
CRM personal data as the policy lists it: correspondence, contact persons and
phone numbers are deleted; the customer row is reduced to a **tombstone** (name,
CVR, address, e-mail and phone set to NULL, `crm_purged_on` stamped), because
invoices with their billing snapshot and archived contracts still refer to it
until their own deadlines.

| step | what it does |
| --- | --- |
| `plan_purge` | exact counts of what is due per table, customers under legal hold, a before snapshot |
| `purge_due` | in batches of customers, one transaction per batch with one audit row per customer and table ("batch k of n, rows so far" in the log); customers under a **legal hold** in force are skipped ("skipped: legal hold" with the case reference) |
| `verify_retention` | Great Expectations: nothing past its deadline remains, nothing not yet due is gone, held customers' data intact, no ended customer has PBX/SIP configuration |

`as_of` defaults to the run's logical date and may not be after it; `dry_run`
only counts. A re-run of the same date changes nothing; `max_active_runs=1` and
an advisory lock keep two runs from purging at once. The Airflow DAG is built by
`telco_lifecycle.workflows.purge_dag.purge_dag`, shared by the three retention DAGs.
"""

from telco_lifecycle.workflows.purge_dag import purge_dag

crm_retention = purge_dag("crm_retention", "crm_master_data", __doc__)
