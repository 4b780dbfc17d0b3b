"""
# Accounting retention (rule `accounting`)

Daily at 02:00 Copenhagen time, but it **acts only when something is due**: the
Bookkeeping Act keeps invoices, payments and the CDRs behind phone invoices until
five years after the end of the fiscal year they belong to (the fiscal-year end is
set in the policy, default 31 December); they go on the first run after that.
Invoices and payments are dated by `invoices.fiscal_year`, CDRs by the fiscal year
of their Copenhagen date. Before the batches, each **wholly expired CDR month
partition** is detached, the rows of customers under legal hold are moved into
`cdrs_default`, and the month is dropped (one transaction with its audit row).

The Airflow DAG and its steps are built by `telco_lifecycle.workflows.purge_dag`, shared by
the three retention DAGs:
"""

# Named here so that the dag processor imports `task.short_circuit`'s decorator (the plan
# task of a DAG that acts only when due) once, before it forks each parse, not in every parse.
import airflow.providers.standard.decorators.short_circuit  # noqa: F401

from telco_lifecycle.workflows.purge_dag import purge_dag

accounting_retention = purge_dag("accounting_retention", "accounting", __doc__, acts_only_when_due=True)
