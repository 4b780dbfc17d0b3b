"""Legal holds: placing and releasing them, with their audit rows.

A hold in force (`released_on IS NULL`) stops every deletion of the customer's data:
each purge statement filters with `lifecycle_on_hold(customer_id)`. Releasing a hold
sets `released_on` to the run's date; the next purge run deletes whatever is due by then,
and the release of a customer's last hold deletes at once the PBX/SIP configuration whose
deletion its offboarding deferred.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from telco_lifecycle.customers import require_customer
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


def apply(conn, request: HoldRequest, run: audit.RunContext) -> dict:
    """Place or release the hold in one transaction with its audit row; a repeat is a no-op."""
    if request.action not in ("place", "release"):
        raise LegalHoldRefused(f"action must be 'place' or 'release', not {request.action!r}")
    params = dataclasses.asdict(request)
    events = []
    with transaction(conn) as cur:
        require_customer(cur, request.customer_id, lock=True)
        cur.execute(read_sql("retention/legal_hold_in_force.sql"), params)
        row = cur.fetchone()
        if request.action == "place":
            if row:
                return _outcome(request, row[0], True, f"case {request.case_reference} already holds customer "
                                f"{request.customer_id} (since {row[1]}); nothing to do")
            cur.execute(read_sql("retention/place_legal_hold.sql"), params)
        else:
            if not row:
                raise LegalHoldRefused(f"no hold in force for customer {request.customer_id} under case "
                                       f"{request.case_reference!r}; nothing was changed")
            if row[1] > request.run_date:
                raise LegalHoldRefused(f"the hold was placed on {row[1]}, after the run's date {request.run_date};"
                                       " nothing was changed")
            cur.execute(read_sql("retention/release_legal_hold.sql"), params)
        hold_id = cur.fetchone()[0]
        events.append(audit.record(cur, audit.Action(
            f"{request.action}_legal_hold", "legal_hold", request.customer_id, "legal_holds", 1, request.run_date,
            False, {"legal_hold_id": hold_id}), run))  # the case reference and who asked: in legal_holds
        events[-1]["ledger"] = {"case_reference": request.case_reference}  # for a restore to place it again
    audit.emit(events)
    verb = "placed" if request.action == "place" else "released"
    message = f"legal hold {request.case_reference} {verb} for customer {request.customer_id} on {request.run_date}"
    if request.action == "release":  # the last hold gone: the PBX/SIP deletion offboarding deferred
        completed = offboarding.complete_deferred(conn, request.run_date, run, request.customer_id)
        if completed["customers"]:
            message += "; deferred PBX/SIP deletion done: " + ", ".join(
                f"{n} {t}" for t, n in completed["deleted"].items())
    return _outcome(request, hold_id, False, message)


def _outcome(request: HoldRequest, hold_id: int, no_op: bool, message: str) -> dict:
    return {"customer_id": request.customer_id, "action": request.action, "case_reference": request.case_reference,
            "legal_hold_id": hold_id, "run_date": request.run_date.isoformat(), "no_op": no_op, "message": message}
