"""A refused request ends the task as an outcome (evidence.refusals): the audit row `refused`
with the rule and the one-line reason, the DPO's statement for a data-subject request, the
reason in the task log and as the task's failure message in the UI (no traceback of ours:
AirflowFailException, not retried)."""

from __future__ import annotations

from typing import NoReturn


def refuse(context, refused: Exception, rule: str | None = None) -> NoReturn:
    """Record `refused` as the run's outcome, then fail the task with its one-line reason.
    `rule`: the rule the request concerned; default the policy rule among the DAG's tags."""
    from airflow.sdk.exceptions import AirflowFailException

    from telco_lifecycle.evidence.refusals import one_line, record_refusal
    from telco_lifecycle.policy import load_policy
    from telco_lifecycle.workflows.common import run_context, run_date, telco_connection

    params = context.get("params") or {}
    dag = context.get("dag")
    rule = rule or next((tag for tag in (dag.tags if dag else ()) if tag in {r.id for r in load_policy().rules}), None)
    details = {"refusal": type(refused).__name__}
    if params.get("requested_by"):
        details["requested_by"] = params["requested_by"]
    conn = telco_connection()
    try:
        event = record_refusal(conn, run_context(context), str(refused), rule,
                               int(params["customer_id"]) if params.get("customer_id") is not None else None,
                               run_date(context), details)
    finally:
        conn.close()
    statement = f" (statement for the DPO: {event['statement']})" if "statement" in event else ""
    raise AirflowFailException(f"refused: {one_line(str(refused))}{statement}") from refused
