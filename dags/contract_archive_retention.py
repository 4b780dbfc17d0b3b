"""
# Contract archive retention (rule `archived_contracts`)

Daily at 02:00 Copenhagen time. Deletes the archived written agreements of every
customer whose relationship ended **at least five years** before `as_of`
(calendar years: 29 February + 5 years = 28 February).

| step | what it does |
| --- | --- |
| `plan_purge` | exact counts of what is due, customers under legal hold, a before snapshot |
| `purge_due` | in batches of customers, one transaction per batch with one audit row per customer and table ("batch k of n, rows so far" in the log); customers under a **legal hold** in force are skipped ("skipped: legal hold" with the case reference) |
| `verify_retention` | Great Expectations: nothing past its deadline remains, nothing not yet due is gone, held customers' data intact, no ended customer has PBX/SIP configuration |

`as_of` defaults to the run's logical date and may not be after it; `dry_run`
only counts. A re-run of the same date changes nothing; `max_active_runs=1` and
an advisory lock keep two runs from purging at once. The Airflow DAG is built by
`telco_lifecycle.workflows.purge_dag.purge_dag`, shared by the three retention DAGs.
"""

from telco_lifecycle.workflows.purge_dag import purge_dag

contract_archive_retention = purge_dag("contract_archive_retention", "archived_contracts", __doc__)
