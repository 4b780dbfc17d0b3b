"""Why a relationship ends: a fixed choice with the trigger form's titles, never free text,
so that no name or story ends up in Airflow's records of the run (dag_run.conf, the log).
Its own module, so that the offboarding DAG file gets it without importing the offboarding
rules (the policy's model classes, the evidence code) at parse time."""

REASONS = {
    "customer_terminated": "Terminated by the customer",
    "company_terminated": "Terminated by us",
    "dissolved": "The company was dissolved",
    "ported_out": "The numbers were ported to another operator",
    "other": "Other",
}
