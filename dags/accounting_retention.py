"""
# Accounting retention (rule `accounting`)

Daily at 02:00 Copenhagen time, but it **acts only when something is due**: the
Bookkeeping Act keeps invoices, payments and the CDRs behind phone invoices until
five years after the end of the fiscal year they belong to (the fiscal-year end is
set in the policy, default 31 December); they go on the first run after that.
Invoices and payments are dated by `invoices.fiscal_year`, CDRs by the fiscal year
of their Copenhagen date.

| step | what it does |
| --- | --- |
| `plan_purge` | exact counts of what is due; stops the run (short-circuit) when nothing is |
| `purge_due` | first each **wholly expired CDR month partition** is detached, the rows of customers under legal hold are moved into `cdrs_default`, and the month is dropped (one transaction with its audit row); then the remaining due CDRs, payments and invoices in batches of customers (one transaction per batch with one audit row per customer and table); held customers are skipped ("skipped: legal hold" with the case reference) |
| `verify_retention` | Great Expectations: nothing past its deadline remains, nothing not yet due is gone, held customers' data intact |

`as_of` defaults to the run's logical date and may not be after it; `dry_run`
only counts. A re-run of the same date changes nothing; `max_active_runs=1` and
an advisory lock keep two runs from purging at once. The Airflow DAG is built by
`telco_lifecycle.workflows.purge_dag.purge_dag`, shared by the three retention DAGs.
"""

from telco_lifecycle.workflows.purge_dag import purge_dag

accounting_retention = purge_dag("accounting_retention", "accounting", __doc__, acts_only_when_due=True)
