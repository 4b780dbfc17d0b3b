"""A returning customer: an ended customer that signs again before its CRM data is purged.

The relationship starts again (`relationship_ended_on` cleared), and the contracts signed
on or before the earlier end keep that end in `archived_contracts.relationship_ended_on`
(the policy's `own_clock`), so their five-year clock runs on while the new relationship
lasts. After the CRM purge the customer is new (a new customer record), so a return is
refused. One transaction with its audit row; a dry run counts and changes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from telco_lifecycle.customers import require_customer
from telco_lifecycle.database import transaction
from telco_lifecycle.errors import Refused
from telco_lifecycle.evidence import audit
from telco_lifecycle.policy import load_policy

RULE = "archived_contracts"


class ReturnRefused(Refused):
    """The request cannot be carried out as asked; nothing was changed."""


@dataclasses.dataclass(frozen=True)
class ReturnRequest:
    customer_id: int
    run_date: dt.date
    requested_by: str
    returned_on: dt.date | None = None
    dry_run: bool = False

    @property
    def return_date(self) -> dt.date:
        return self.returned_on or self.run_date


def _contracts(rule_id: str = RULE):
    """The archived-contracts item and its own-clock column."""
    item = next(i for i in load_policy().rule(rule_id).data if i.own_clock)
    return item, item.own_clock


def return_customer(conn, request: ReturnRequest, run: audit.RunContext) -> dict:
    """Start the relationship again, keeping the earlier contracts' clock; refuse (changing
    nothing) an unknown, active or CRM-purged customer and a date in the future or before
    the earlier end."""
    item, own = _contracts()
    params = {"customer_id": request.customer_id}
    with transaction(conn) as cur:
        state = require_customer(cur, request.customer_id, lock=True)
        ended, purged = state["relationship_ended_on"], state["crm_purged_on"]
        if ended is None:
            raise ReturnRefused(f"customer {request.customer_id}'s relationship has not ended: there is nothing to"
                                " return from; nothing was changed")
        if purged is not None:
            raise ReturnRefused(f"customer {request.customer_id}'s CRM data was purged on {purged}: the customer is"
                                " new and gets a new customer record; nothing was changed")
        if request.return_date > request.run_date:
            raise ReturnRefused(f"returned_on {request.return_date} is after the run's date {request.run_date};"
                                " nothing was changed")
        if request.return_date < ended:
            raise ReturnRefused(f"returned_on {request.return_date} is before the relationship ended ({ended});"
                                " nothing was changed")
        earlier = (f"{item.subject_filter()} AND signed_on <= %(ended)s AND {own} IS NULL")
        params["ended"] = ended
        if request.dry_run:
            cur.execute(f"SELECT count(*) FROM {item.table} WHERE {earlier}", params)
            contracts = cur.fetchone()[0]
        else:
            cur.execute(f"UPDATE {item.table} SET {own} = %(ended)s WHERE {earlier}", params)
            contracts = cur.rowcount
            cur.execute("UPDATE customers SET relationship_ended_on = NULL WHERE customer_id = %(customer_id)s",
                        params)
        event = audit.record(cur, audit.Action(
            "customer_return", "offboarding", request.customer_id, "customers", 1, request.run_date,
            request.dry_run, {"earlier_relationship_ended_on": ended.isoformat(),
                              "returned_on": request.return_date.isoformat(),
                              "contracts_keeping_their_clock": contracts}), run)
    audit.emit([event])
    verb = "would return" if request.dry_run else "returned"
    return {"customer_id": request.customer_id, "dry_run": request.dry_run,
            "returned_on": request.return_date.isoformat(),
            "earlier_relationship_ended_on": ended.isoformat(), "contracts_keeping_their_clock": contracts,
            "audit_id": event["audit_id"],
            "message": f"customer {request.customer_id} {verb} on {request.return_date}; the earlier relationship"
                       f" ended {ended}, {contracts} contract(s) signed before then keep their clock"}


def verification_checks(result: dict):
    """GX: the customer is active again and every contract of the earlier relationship keeps
    its end (nothing to check after a dry run but that nothing changed: the caller's part)."""
    from telco_lifecycle.evidence.verification import Check

    item, own = _contracts()
    customer, ended = int(result["customer_id"]), dt.date.fromisoformat(result["earlier_relationship_ended_on"])
    return [
        Check(f"customer {customer} is active again", "offboarding", "customers",
              f"SELECT customer_id FROM {{batch}} WHERE customer_id = {customer}"
              " AND relationship_ended_on IS NOT NULL"),
        Check(f"customer {customer}'s contracts signed by {ended} keep an earlier relationship's end", RULE,
              item.table,
              f"SELECT contract_id FROM {{batch}} WHERE {item.subject_filter(str(customer))}"
              f" AND signed_on <= DATE '{ended}' AND {own} IS NULL"),
    ]
