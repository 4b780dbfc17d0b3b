"""Offboarding: end the relationship and delete the PBX/SIP configuration at once.

The relationship end date is set and the configuration deleted in one transaction
together with their audit rows; the legal hold is checked under the customer's row
lock and again in every statement, so a hold placed meanwhile still wins. Under a
legal hold in force the end is recorded all the same (the 118 export and the status
see an ended customer) and the deletion is deferred, with an audit row saying so;
`complete_deferred` deletes it once no hold is in force any more: the release of the
last hold does it, and at the latest the next daily run (crm_retention).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from telco_lifecycle.customers import hold_ids_in_force, holds_in_force, require_customer, row_counts
from telco_lifecycle.database import transaction
from telco_lifecycle.errors import Refused
from telco_lifecycle.evidence import audit
from telco_lifecycle.policy import load_policy
from telco_lifecycle.reasons import REASONS

RULE = "pbx_sip_config"


class OffboardingRefused(Refused):
    """The request cannot be carried out as asked; nothing was changed."""


BACKDATE_SETTING = "LIFECYCLE_BACKDATE_APPROVAL_DAYS"


def backdate_limit_days() -> int:
    """How many days before the run's date an end may lie without a second person's approval."""
    import os

    return int(os.environ.get(BACKDATE_SETTING) or 31)


def needs_backdate_approval(relationship_end: dt.date | None, run_date: dt.date) -> bool:
    """A back-dated end starts the retention clocks early (a typo, 2016 for 2026, is an
    unapproved erasure): more than the limit before the run's date needs approval."""
    return relationship_end is not None and (run_date - relationship_end).days > backdate_limit_days()


def backdate_body(customer_id: int, relationship_end: dt.date, run_date: dt.date) -> str:
    """What the approver is shown: the rules whose deadline the back-dated end reaches by the run's
    date (the next purges remove that data), against recording the run's date."""
    rules = [r for r in load_policy().rules if r.clock == "relationship_end" and r.trigger == "schedule"]
    due = [f"- **{r.id}** ({r.category.en}): due {r.deadline(relationship_end)}" for r in rules
           if r.deadline(relationship_end) <= run_date]
    return "\n".join([
        f"Customer {customer_id}: record the relationship end as **{relationship_end}**, "
        f"{(run_date - relationship_end).days} days before the run's date {run_date}?",
        "The PBX/SIP configuration has been deleted already (it is due either way).",
        "With this end date the next purges remove:" if due else "With this end date nothing is due yet.", *due,
        f"**Reject** keeps the run's date {run_date} as the end (the clocks start later, never earlier)."])


def offboard_unless_backdated(conn, request: OffboardingRequest, run: audit.RunContext, approvals_on: bool
                              ) -> dict:
    """`offboard`, but a back-dated end (needs_backdate_approval) with approvals on records the
    run's date and returns `backdate` (the end asked for, the approver's text) for approval;
    with approvals off it is recorded as given and `backdated_without_approval` says so."""
    end = request.relationship_end
    backdated = not request.dry_run and needs_backdate_approval(end, request.run_date)
    if end is None or not (backdated and approvals_on):
        return {**offboard(conn, request, run), "backdated_without_approval": backdated}
    with conn.cursor() as cur:
        ended = require_customer(cur, request.customer_id)["relationship_ended_on"]
    conn.rollback()
    if ended is not None and not _ended_by(conn, request.customer_id, run):  # offboarded by another run
        return {**offboard(conn, request, run), "backdated_without_approval": False}
    # not ended yet, or ended by an earlier try of this run (it died after its commit): the
    # run's date is (or stays) recorded, and the back-dated end is put to the approver
    result = {**offboard(conn, dataclasses.replace(request, relationship_end=None), run),
              "backdated_without_approval": False}
    result["backdate"] = {"requested": end.isoformat(),
                          "body": backdate_body(request.customer_id, end, request.run_date)}
    return result


def _ended_by(conn, customer_id: int, run: audit.RunContext) -> bool:
    """Whether this run (an earlier try of it) recorded the customer's relationship end."""
    with conn.cursor() as cur:
        cur.execute("SELECT EXISTS (SELECT 1 FROM lifecycle_audit WHERE action = 'end_relationship' AND NOT dry_run"
                    " AND customer_id = %s AND dag_id = %s AND run_id = %s)", (customer_id, run.dag_id, run.run_id))
        ended = cur.fetchone()[0]
    conn.rollback()
    return ended


def backdate(conn, customer_id: int, provisional: dt.date, relationship_end: dt.date, approval: dict,
             run: audit.RunContext) -> dict:
    """Move an approved back-dated end into place: the offboarding recorded the run's date
    (`provisional`) until a second person approved. One transaction with its audit row; done
    already (a retry, a restore's reconciliation that re-runs), it is a no-op."""
    done = {"customer_id": customer_id, "relationship_ended_on": relationship_end.isoformat()}
    with transaction(conn) as cur:
        current = require_customer(cur, customer_id, lock=True)["relationship_ended_on"]
        if current == relationship_end:
            return {**done, "message": f"customer {customer_id}: relationship end already {relationship_end}"}
        if current != provisional:
            raise OffboardingRefused(f"customer {customer_id}'s relationship end is no longer {provisional};"
                                     " the back-dated end was not recorded")
        cur.execute("UPDATE customers SET relationship_ended_on = %s WHERE customer_id = %s",
                    (relationship_end, customer_id))
        event = audit.record(cur, audit.Action(
            "backdate_relationship_end", RULE, customer_id, "customers", 1, provisional, False,
            {"relationship_ended_on": relationship_end.isoformat(), "provisional_end": provisional.isoformat(),
             **audit.approval_details(approval)}), run)
    audit.emit([event])
    return {**done, "message": f"customer {customer_id}: relationship end back-dated to {relationship_end}"
                               f" (approved by {approval.get('by') or 'no one: approval switched off'})"}


def keep_run_date(conn, customer_id: int, provisional: dt.date, relationship_end: dt.date,
                  run: audit.RunContext) -> dict:
    """The approver rejected the back-dated end: the run's date stays the end; recorded."""
    with transaction(conn) as cur:
        event = audit.record(cur, audit.Action(
            "backdate_rejected", RULE, customer_id, "customers", 0, provisional, False,
            {"relationship_ended_on": provisional.isoformat(), "rejected_end": relationship_end.isoformat()}), run)
    audit.emit([event])
    return {"customer_id": customer_id, "relationship_ended_on": provisional.isoformat(),
            "message": f"customer {customer_id}: back-dated end {relationship_end} rejected; the relationship"
                       f" end stays the run's date {provisional}"}


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
        cases = holds_in_force(cur, request.customer_id)
        rows_before = row_counts(cur, policy, request.customer_id)
        already_ended = state["relationship_ended_on"]
        end_date = already_ended or request.end_date
        removed = {}
        for item in rule.data if not cases else ():
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
                    " AND relationship_ended_on IS NULL",
                    {"end": end_date, "customer_id": request.customer_id},
                )
            events.append(audit.record(cur, audit.Action(
                "end_relationship", "offboarding", request.customer_id, "customers", 1, request.run_date,
                request.dry_run, {"relationship_ended_on": end_date.isoformat()}), run))
        kept = {item.table: rows_before[item.table] for item in rule.data}
        if cases and any(kept.values()) and already_ended is None:  # recorded once, by the offboarding
            events.append(audit.record(cur, audit.Action(
                "defer_deletion", RULE, request.customer_id, None, sum(kept.values()), request.run_date,
                request.dry_run, {"legal_hold_ids": hold_ids_in_force(cur, request.customer_id), "kept": kept}), run))
        for table, count in removed.items():
            if already_ended is None or count:
                events.append(audit.record(cur, audit.Action(
                    "delete", RULE, request.customer_id, table, count, request.run_date, request.dry_run), run))
    audit.emit(events)
    deferred = bool(cases) and any(kept.values())
    no_op = already_ended is not None and not any(removed.values())
    return {
        "customer_id": request.customer_id,
        "relationship_ended_on": end_date.isoformat(),
        "dry_run": request.dry_run,
        "no_op": no_op,
        "deferred": deferred,
        "case_references": cases,
        "message": (
            f"customer {request.customer_id} was already offboarded (relationship ended {already_ended}); nothing to do"
            if no_op else
            f"customer {request.customer_id}: relationship ended {end_date}; under legal hold (case"
            f" {', '.join(cases)}): the deletion of " + ", ".join(f"{n} {t}" for t, n in kept.items())
            + " is deferred until the last hold is released" if deferred else
            f"customer {request.customer_id}: {'would delete' if request.dry_run else 'deleted'} "
            + ", ".join(f"{n} {t}" for t, n in removed.items())
        ),
        "deleted": {item.table: removed.get(item.table, 0) for item in rule.data},
        "rows_before": rows_before,
        "audit_ids": [e["audit_id"] for e in events],
    }


def complete_deferred(conn, run_date: dt.date, run: audit.RunContext, customer_id: int | None = None) -> dict:
    """Delete the PBX/SIP configuration of every ended customer (or of `customer_id`) under
    no hold in force any more: the deletions offboarding deferred. One transaction, one
    set-based statement per table, one audit row per customer and table."""
    rule = load_policy().rule(RULE)
    among = "c.customer_id = %(customer_id)s AND " if customer_id is not None else ""
    owners = (f"IN (SELECT c.customer_id FROM customers c WHERE {among}c.relationship_ended_on <= %(run_date)s"
              " AND NOT lifecycle_on_hold(c.customer_id))")
    params = {"customer_id": customer_id, "run_date": run_date}
    removed, events = {}, []
    with transaction(conn) as cur:
        for item in rule.data:
            written = audit.record_per_customer(
                cur, f"DELETE FROM {item.table} t WHERE t.{item.subject.column} {owners}", f"t.{item.subject.column}",
                params, audit.Action("delete", RULE, None, item.table, 0, run_date, False,
                                     {"deferred": True}), run)
            removed[item.table] = sum(event["row_count"] for event in written)
            events += written
    audit.emit(events)
    return {"deleted": removed, "customers": len({event["customer_id"] for event in events})}


def _configuration_left() -> str:
    """SQL: customer `c` still has PBX/SIP configuration (any table of the rule)."""
    return " OR ".join(f"EXISTS (SELECT 1 FROM {item.table} t WHERE t.{item.subject.column} = c.customer_id)"
                       for item in load_policy().rule(RULE).data)


def deferred_offboardings(conn, limit: int = 100) -> list[dict]:
    """Ended customers whose PBX/SIP deletion waits for a legal hold, oldest end first (ids,
    dates and hold ids only: the status page's Requests)."""
    held = _configuration_left()
    with conn.cursor() as cur:
        cur.execute(f"""SELECT c.customer_id, c.relationship_ended_on,
                               array_agg(h.legal_hold_id ORDER BY h.placed_on, h.legal_hold_id)
                        FROM customers c JOIN legal_holds h ON h.customer_id = c.customer_id AND h.released_on IS NULL
                        WHERE c.relationship_ended_on IS NOT NULL AND ({held})
                        GROUP BY c.customer_id, c.relationship_ended_on
                        ORDER BY c.relationship_ended_on, c.customer_id LIMIT %s""", (limit,))
        rows = cur.fetchall()
    conn.rollback()
    return [{"customer_id": customer, "ended_on": ended.isoformat(), "hold_ids": holds}
            for customer, ended, holds in rows]


def deferred_count(conn) -> int:
    """How many ended customers' PBX/SIP deletion waits for a legal hold."""
    held = _configuration_left()
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM customers c WHERE c.relationship_ended_on IS NOT NULL"
                    f" AND lifecycle_on_hold(c.customer_id) AND ({held})")
        count = cur.fetchone()[0]
    conn.rollback()
    return count


def verification_checks(customer_id: int, rows_before: dict[str, int], dry_run: bool):
    """GX checks: the configuration is gone (unless a dry run or deferred under a legal hold,
    `dry_run` then) and nothing else was touched."""
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
