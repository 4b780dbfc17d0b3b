"""Legal holds: placing and releasing them, with their audit rows.

A hold in force (`released_on IS NULL`) stops every deletion of the customer's data:
each purge statement filters with `lifecycle_on_hold(customer_id)`. Releasing a hold
sets `released_on` to the run's date; the next purge run deletes whatever is due by then,
and the release of a customer's last hold deletes at once the PBX/SIP configuration whose
deletion its offboarding deferred. Because a release re-enables deletion, the legal_hold DAG
has it approved by a second person first (`workflows.approvals`); `check` is what that person
is shown, and `apply` records who approved.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from telco_lifecycle.customers import hold_ids_in_force, require_customer
from telco_lifecycle.database import transaction
from telco_lifecycle.errors import Refused
from telco_lifecycle.evidence import audit
from telco_lifecycle.rules import offboarding
from telco_lifecycle.settings import read_sql


class LegalHoldRefused(Refused):
    """The request cannot be carried out as asked; nothing was changed."""


@dataclasses.dataclass(frozen=True)
class HoldRequest:
    customer_id: int
    action: str  # place | release
    case_reference: str
    requested_by: str
    run_date: dt.date


def check(conn, request: HoldRequest) -> dict:
    """What the request would do, changing nothing; refuses what `apply` would refuse."""
    with transaction(conn) as cur:
        row = _hold_in_force(cur, request, lock=False)
        remaining = len(hold_ids_in_force(cur, request.customer_id)) - (1 if row else 0)
    if request.action == "place":
        return {"no_op": bool(row), "approval_body": None}
    assert row is not None  # _hold_in_force refuses the release of a case that holds nothing
    body = (f"Release legal hold **{request.case_reference}** of customer {request.customer_id}, placed on "
            f"{row[1]}, as of {request.run_date}.\n\n"
            + (f"{remaining} other hold(s) stay in force: nothing becomes deletable yet." if remaining else
               "It is the customer's last hold: the next purge runs delete whatever the policy has made due "
               "meanwhile, and a PBX/SIP deletion its offboarding deferred happens at once.")
            + f"\n\nAsked by {request.requested_by}.")
    return {"no_op": False, "approval_body": body}


def apply(conn, request: HoldRequest, run: audit.RunContext, approval: dict | None = None) -> dict:
    """Place or release the hold in one transaction with its audit row (a release's row says
    who approved it); a repeat is a no-op."""
    params = dataclasses.asdict(request)
    events = []
    with transaction(conn) as cur:
        row = _hold_in_force(cur, request, lock=True)
        if request.action == "place":
            if row:
                return _outcome(request, row[0], True, f"case {request.case_reference} already holds customer "
                                f"{request.customer_id} (since {row[1]}); nothing to do")
            cur.execute(read_sql("retention/place_legal_hold.sql"), params)
        else:
            cur.execute(read_sql("retention/release_legal_hold.sql"), params)
        hold_id = cur.fetchone()[0]
        details: dict = {"legal_hold_id": hold_id}  # the case reference and who asked: in legal_holds
        if approval is not None:
            details.update(audit.approval_details(approval))
        events.append(audit.record(cur, audit.Action(
            f"{request.action}_legal_hold", "legal_hold", request.customer_id, "legal_holds", 1, request.run_date,
            False, details,
            ledger={"case_reference": request.case_reference}), run))  # for a restore to place it again
    audit.emit(events)
    verb = "placed" if request.action == "place" else "released"
    message = f"legal hold {request.case_reference} {verb} for customer {request.customer_id} on {request.run_date}"
    if request.action == "release":  # the last hold gone: the PBX/SIP deletion offboarding deferred
        completed = offboarding.complete_deferred(conn, request.run_date, run, request.customer_id)
        if completed["customers"]:
            message += "; deferred PBX/SIP deletion done: " + ", ".join(
                f"{n} {t}" for t, n in completed["deleted"].items())
    return _outcome(request, hold_id, False, message)


def _hold_in_force(cur, request: HoldRequest, lock: bool) -> tuple | None:
    """The case's hold in force (id, placed on), after refusing what cannot be done as asked."""
    if request.action not in ("place", "release"):
        raise LegalHoldRefused(f"action must be 'place' or 'release', not {request.action!r}")
    require_customer(cur, request.customer_id, lock=lock)
    cur.execute(read_sql("retention/legal_hold_in_force.sql"), dataclasses.asdict(request))
    row = cur.fetchone()
    if request.action == "release":
        if not row:
            raise LegalHoldRefused(f"no hold in force for customer {request.customer_id} under the case reference"
                                   " given (the run's params); nothing was changed")
        if row[1] > request.run_date:
            raise LegalHoldRefused(f"the hold was placed on {row[1]}, after the run's date {request.run_date};"
                                   " nothing was changed")
    return row


def _outcome(request: HoldRequest, hold_id: int, no_op: bool, message: str) -> dict:
    return {"customer_id": request.customer_id, "action": request.action, "case_reference": request.case_reference,
            "legal_hold_id": hold_id, "run_date": request.run_date.isoformat(), "no_op": no_op, "message": message}
