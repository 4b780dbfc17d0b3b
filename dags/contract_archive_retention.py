"""
# Contract archive retention (rule `archived_contracts`)

Daily at 02:00 Copenhagen time. Deletes the archived written agreements of every
customer whose relationship ended **at least five years** before `as_of`
(calendar years: 29 February + 5 years = 28 February).

The Airflow DAG and its steps are built by `telco_lifecycle.workflows.purge_dag`, shared by
the three retention DAGs:
"""

from telco_lifecycle.workflows.purge_dag import purge_dag

contract_archive_retention = purge_dag("contract_archive_retention", "archived_contracts", __doc__)
