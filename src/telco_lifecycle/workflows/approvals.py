"""A person's approval in the Airflow UI (*Required actions*), given by someone other than the
user who triggered the run, and kept in the audit trail as Airflow recorded it.

Separation of duties: `LIFECYCLE_APPROVERS` (comma-separated Airflow user ids) lists who may
answer; the user who triggered the run is taken off that list, so Airflow itself refuses
their answer (the HITL request's assigned users). Without the setting anyone may answer but
the triggering user: such an answer is refused when it arrives, and nothing is changed.

The answer is written to the audit trail (action `approval_answered`) by the approval task
itself, from the response Airflow hands it: the responder and the triggering user are the
authenticated identities of Airflow's records, never an XCom that a user could write. The
tasks that act on an approval read it back from the audit trail (`approval_given`)."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Context
from airflow.sdk.execution_time.hitl import HITLUser

from telco_lifecycle.errors import Refused
from telco_lifecycle.workflows.common import lifecycle_task, run_context, run_date, telco_task

APPROVERS_SETTING = "LIFECYCLE_APPROVERS"
# The deployment's switch for every HITL approval (erasure, back-dated offboarding ends).
APPROVAL_SETTING = "LIFECYCLE_REQUIRE_ERASURE_APPROVAL"
ANSWERED = "approval_answered"


class ApprovalRefused(Refused):
    """An approval that does not count: no approver but the requester, or answered by the user
    who triggered the run, or missing; nothing was changed."""


def approval_required() -> bool:
    """Deployment configuration only (never a trigger param): approval is on unless switched off."""
    value = os.environ.get(APPROVAL_SETTING, "true").strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ApprovalRefused(f"{APPROVAL_SETTING}={value!r} is neither true nor false; nothing was changed")


def announce_without_approval(context: Context, task_id: str, what: str, facts: dict[str, str]) -> None:
    """The deployment switched the second person off: the team is told on every such run."""
    from telco_lifecycle.workflows.alert_delivery import Alert, deliver

    deliver(Alert(f"{what} without approval (switched off by the deployment)", context["dag"].dag_id,
                  context["run_id"], task_id, facts={**facts, "setting": f"{APPROVAL_SETTING}=false"}))


def approval_needed(context: Context, what: str, dry_run: bool = False) -> bool:
    """An approval gate's decision: a second person is needed unless the deployment switched
    approvals off (then alerted) or it is a dry run; the run's log says which and why."""
    with lifecycle_task(context):
        required = approval_required()
    needed = required and not dry_run
    print(f"{what} approval {'required' if needed else 'not required'} ({APPROVAL_SETTING}="
          f"{'true' if required else 'false'})")
    if not required:
        announce_without_approval(context, context["ti"].task_id, what, {})
    return needed


def approvers() -> list[str]:
    """The Airflow user ids allowed to approve (empty: anyone but the triggering user)."""
    return [user.strip() for user in os.environ.get(APPROVERS_SETTING, "").split(",") if user.strip()]


def assignees(allowed: list[str], requester: str | None) -> list[HITLUser] | None:
    """The HITL request's assigned users: the approvers but the requester (None: anyone)."""
    if not allowed:
        return None
    others = [user for user in allowed if user != requester]
    if not others:
        raise ApprovalRefused(f"no approver other than {requester}, who triggered the run ({APPROVERS_SETTING}"
                              f" lists only them): a second person must approve; nothing was changed")
    return [HITLUser(id=user, name=user) for user in others]


def check_responder(responder: dict | None, requester: str | None) -> None:
    """Refuse an answer given by the user who triggered the run."""
    if requester and responder and requester in (responder.get("id"), responder.get("name")):
        raise ApprovalRefused(f"the approval was answered by {requester}, who triggered the run: a second person"
                              " must approve; nothing was changed")


def requester(context: Context) -> str | None:
    """The authenticated user who triggered the run, as Airflow recorded it."""
    return getattr(context["dag_run"], "triggering_user_name", None)


class RecordedApproval(ApprovalOperator):
    """The ApprovalOperator, answered by someone other than the triggering user, its answer
    written to the audit trail. On Reject the operator itself skips what follows."""

    def execute(self, context: Context) -> Any:
        with lifecycle_task(context):
            self.assigned_users = assignees(approvers(), requester(context))
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        if "error" not in event:  # a timeout is the operator's own failure
            with lifecycle_task(context):
                check_responder(event.get("responded_by_user"), requester(context))
            with telco_task(context) as conn:
                record_answer(conn, run_context(context), context["params"].get("customer_id"), run_date(context),
                              event, requester(context))
        return super().execute_complete(context, event)


def record_answer(conn, run, customer_id: int | None, day: dt.date, event: dict[str, Any],
                  triggered_by: str | None) -> None:
    """The answer as one audit row: chosen options, responder, time, the triggering user."""
    from telco_lifecycle.database import transaction
    from telco_lifecycle.evidence import audit

    responder = event.get("responded_by_user") or {}
    details = {"chosen_options": list(event.get("chosen_options") or []),
               "responded_by": responder.get("id") or responder.get("name"),
               "responded_at": str(event.get("responded_at")), "triggered_by": triggered_by}
    with transaction(conn) as cur:
        recorded = audit.record(cur, audit.Action(ANSWERED, None, int(customer_id) if customer_id else None, None, 0,
                                                  day, False, details), run)
    audit.emit([recorded])


def recorded_answer(conn, run_id: str) -> dict | None:
    """The run's last approval answer from the audit trail (None: none was given)."""
    with conn.cursor() as cur:
        cur.execute("SELECT details FROM lifecycle_audit WHERE run_id = %s AND action = %s"
                    " ORDER BY audit_id DESC LIMIT 1", (run_id, ANSWERED))
        row = cur.fetchone()
    conn.rollback()
    return row[0] if row else None


def approval_given(conn, context: Context, required: bool, what: str) -> dict[str, Any]:
    """Whether approval was required and who gave it when, for the audit rows (from the
    audit trail); refuses when it was required and no Approve was recorded."""
    if not required:
        return {"required": False, "by": None, "at": None}
    answer = recorded_answer(conn, context["run_id"])
    if not answer or answer["chosen_options"] != [ApprovalOperator.APPROVE]:
        raise ApprovalRefused(f"{what} requires an approval and none was given; nothing was changed")
    return {"required": True, "by": answer["responded_by"], "at": answer["responded_at"],
            "triggered_by": answer["triggered_by"]}
