"""
# CRM retention (rule `crm_master_data`)

Daily at 02:00 Copenhagen time. For every customer whose relationship ended **at
least one year** before `as_of` (29 February + 1 year = 28 February), removes the
CRM personal data as the policy lists it: correspondence, contact persons and
phone numbers are deleted; the customer row is reduced to a **tombstone** (name,
CVR, address, e-mail and phone set to NULL, `crm_purged_on` stamped), because
invoices with their billing snapshot and archived contracts still refer to it
until their own deadlines.

The Airflow DAG and its steps are built by `telco_lifecycle.workflows.purge_dag`, shared by
the three retention DAGs:
"""

from telco_lifecycle.workflows.purge_dag import purge_dag

crm_retention = purge_dag("crm_retention", "crm_master_data", __doc__, completes_deferred_offboarding=True)
