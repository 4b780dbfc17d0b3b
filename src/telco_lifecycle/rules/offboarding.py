"""Offboarding: end the relationship and delete the PBX/SIP configuration at once.

The relationship end date is set and the configuration deleted in one transaction
together with their audit rows; the legal hold is checked under the customer's row
lock and again in every statement, so a hold placed meanwhile still wins.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from telco_lifecycle.customers import holds_in_force, require_customer, row_counts
from telco_lifecycle.database import transaction
from telco_lifecycle.errors import Refused
from telco_lifecycle.evidence import audit
from telco_lifecycle.policy import load_policy

RULE = "pbx_sip_config"
# Why a relationship ends: a fixed choice with the trigger form's titles, never free text,
# so that no name or story ends up in Airflow's records of the run (dag_run.conf, the log).
REASONS = {
    "customer_terminated": "Terminated by the customer",
    "company_terminated": "Terminated by us",
    "dissolved": "The company was dissolved",
    "ported_out": "The numbers were ported to another operator",
    "other": "Other",
}


class OffboardingRefused(Refused):
    """The request cannot be carried out as asked; nothing was changed."""


class LegalHoldInForce(OffboardingRefused):
    pass


@dataclasses.dataclass(frozen=True)
class OffboardingRequest:
    customer_id: int
    run_date: dt.date
    requested_by: str
    relationship_end: dt.date | None = None
    reason: str = ""
    dry_run: bool = False

    @property
    def end_date(self) -> dt.date:
        return self.relationship_end or self.run_date


def check_request(cur, request: OffboardingRequest) -> dict:
    """Refuse a request that cannot be carried out; return the customer's state."""
    if request.reason and request.reason not in REASONS:
        raise OffboardingRefused(f"reason must be one of {sorted(REASONS)}; nothing was changed")
    state = require_customer(cur, request.customer_id, lock=True)
    cases = holds_in_force(cur, request.customer_id)
    if cases:
        raise LegalHoldInForce(
            f"customer {request.customer_id} is under legal hold (case {', '.join(cases)}): "
            "offboarding deletes data, so nothing was changed; release the hold first"
        )
    if request.end_date > request.run_date:
        raise OffboardingRefused(
            f"relationship_end {request.end_date} is after the run's date {request.run_date}: "
            "the configuration is deleted when the relationship has ended, not before"
        )
    ended = state["relationship_ended_on"]
    if ended is not None and request.relationship_end is not None and ended != request.relationship_end:
        raise OffboardingRefused(
            f"customer {request.customer_id} already ended on {ended}, not {request.relationship_end}: "
            "correcting an end date is not an offboarding; nothing was changed"
        )
    return state


def offboard(conn, request: OffboardingRequest, run: audit.RunContext) -> dict:
    """End the relationship and delete the PBX/SIP configuration in one transaction,
    refusing (changing nothing) a request that cannot be carried out. The customer's
    rows per table are counted in the same transaction first, for verification."""
    policy = load_policy()
    rule = policy.rule(RULE)
    events = []
    with transaction(conn) as cur:
        state = check_request(cur, request)
        rows_before = row_counts(cur, policy, request.customer_id)
        already_ended = state["relationship_ended_on"]
        end_date = already_ended or request.end_date
        removed = {}
        for item in rule.data:
            where = f"{item.subject_filter()} AND NOT lifecycle_on_hold(%(customer_id)s)"
            if request.dry_run:
                cur.execute(f"SELECT count(*) FROM {item.table} WHERE {where}", {"customer_id": request.customer_id})
                removed[item.table] = cur.fetchone()[0]
            else:
                cur.execute(f"DELETE FROM {item.table} WHERE {where}", {"customer_id": request.customer_id})
                removed[item.table] = cur.rowcount
        if already_ended is None:
            if not request.dry_run:
                cur.execute(
                    "UPDATE customers SET relationship_ended_on = %(end)s WHERE customer_id = %(customer_id)s"
                    " AND relationship_ended_on IS NULL AND NOT lifecycle_on_hold(%(customer_id)s)",
                    {"end": end_date, "customer_id": request.customer_id},
                )
            events.append(audit.record(cur, audit.Action(
                "end_relationship", "offboarding", request.customer_id, "customers", 1, request.run_date,
                request.dry_run, {"relationship_ended_on": end_date.isoformat()}), run))
        for table, count in removed.items():
            if already_ended is None or count:
                events.append(audit.record(cur, audit.Action(
                    "delete", RULE, request.customer_id, table, count, request.run_date, request.dry_run), run))
    audit.emit(events)
    no_op = already_ended is not None and not any(removed.values())
    return {
        "customer_id": request.customer_id,
        "relationship_ended_on": end_date.isoformat(),
        "dry_run": request.dry_run,
        "no_op": no_op,
        "message": (
            f"customer {request.customer_id} was already offboarded (relationship ended {already_ended}); nothing to do"
            if no_op else
            f"customer {request.customer_id}: {'would delete' if request.dry_run else 'deleted'} "
            + ", ".join(f"{n} {t}" for t, n in removed.items())
        ),
        "deleted": removed,
        "rows_before": rows_before,
        "audit_ids": [e["audit_id"] for e in events],
    }


def verification_checks(customer_id: int, rows_before: dict[str, int], dry_run: bool):
    """GX checks: the configuration is gone (unless a dry run) and nothing else was touched."""
    from telco_lifecycle.evidence.verification import Check

    policy = load_policy()
    rule = policy.rule(RULE)
    customer = int(customer_id)
    checks = []
    for item in rule.data:
        if dry_run:
            continue
        checks.append(Check(f"no {item.table} rows remain for customer {customer}", RULE, item.table,
                            f"SELECT {item.subject.column} FROM {{batch}} WHERE {item.subject_filter(str(customer))}"))
    for other in policy.rules:
        for item in other.data:
            if item.table in rule.tables and not dry_run:
                continue
            before = int(rows_before[item.table])
            checks.append(Check(
                f"customer {customer} keeps its {before} {item.table} row(s)", other.id, item.table,
                f"SELECT n FROM (SELECT count(*) AS n FROM {{batch}} WHERE {item.subject_filter(str(customer))}) c"
                f" WHERE n < {before}"))
    return checks
