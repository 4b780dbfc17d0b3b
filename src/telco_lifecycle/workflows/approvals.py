"""A person's approval in the Airflow UI (*Required actions*), kept for the audit trail."""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Context

from telco_lifecycle.errors import Refused


class RecordedApproval(ApprovalOperator):
    """The ApprovalOperator, keeping the response (who, what, when) as XCom `response` for the
    audit trail: on Reject the operator itself returns nothing, it skips what follows."""

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        context["ti"].xcom_push(key="response", value={
            "chosen_options": event.get("chosen_options"), "responded_at": str(event.get("responded_at")),
            "responded_by": (event.get("responded_by_user") or {}).get("name")})
        return super().execute_complete(context, event)


def approval_given(context: Context, task_id: str, required: bool, what: str) -> dict[str, Any]:
    """Whether approval was required and who gave it when, for the audit rows; refuses when it
    was required and the task `task_id` did not record an Approve."""
    response = context["ti"].xcom_pull(task_ids=task_id, key="response") if required else None
    if required and (not response or response["chosen_options"] != [ApprovalOperator.APPROVE]):
        raise Refused(f"{what} requires an approval and none was given; nothing was changed")
    return {"required": required, "by": response and response["responded_by"],
            "at": response and response["responded_at"]}
