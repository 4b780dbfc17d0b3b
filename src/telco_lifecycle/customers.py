"""What the database holds about one customer, table by table, as the policy defines it."""

from __future__ import annotations

from telco_lifecycle.errors import Refused
from telco_lifecycle.policy import Policy


class UnknownCustomer(Refused, LookupError):
    """No customer with this id; nothing was changed."""


def require_customer(cur, customer_id: int, lock: bool = False) -> dict:
    """The customer's lifecycle state (no personal data); UnknownCustomer if absent."""
    cur.execute(
        "SELECT relationship_ended_on, crm_purged_on FROM customers WHERE customer_id = %s"
        + (" FOR UPDATE" if lock else ""),
        (customer_id,),
    )
    row = cur.fetchone()
    if row is None:
        raise UnknownCustomer(f"customer {customer_id} does not exist; nothing was changed")
    return {"relationship_ended_on": row[0], "crm_purged_on": row[1]}


def on_hold_sql(customer: str) -> str:
    """SQL condition: the customer (id expression `customer`) is under a legal hold in force.
    It is lifecycle_on_hold() (migration 0015) written out for set-based statements: a
    function with a fixed search_path is never inlined, so the purge would call it once per
    customer and statement; written out, the planner joins the holds (an anti-join for NOT).
    tests/test_retention_crm_contracts.py proves the two agree."""
    return (f"EXISTS (SELECT 1 FROM public.legal_holds h WHERE h.customer_id = {customer}"
            " AND h.released_on IS NULL)")


def holds_in_force(cur, customer_id: int) -> list[str]:
    """Case references of the legal holds in force for the customer."""
    cur.execute(
        "SELECT case_reference FROM legal_holds WHERE customer_id = %s AND released_on IS NULL ORDER BY placed_on",
        (customer_id,),
    )
    return [row[0] for row in cur.fetchall()]


def hold_ids_in_force(cur, customer_id: int) -> list[int]:
    """Ids of the legal holds in force for the customer: how the audit trail names them (their
    case references are free text, kept in legal_holds only)."""
    cur.execute("SELECT legal_hold_id FROM legal_holds WHERE customer_id = %s AND released_on IS NULL"
                " ORDER BY placed_on, legal_hold_id", (customer_id,))
    return [row[0] for row in cur.fetchall()]


def row_counts(cur, policy: Policy, customer_id: int) -> dict[str, int]:
    """Rows per governed table that belong to the customer."""
    counts = {}
    for rule in policy.rules:
        for item in rule.data:
            cur.execute(f"SELECT count(*) FROM {item.table} WHERE {item.subject_filter()}",
                        {"customer_id": customer_id})
            counts[item.table] = cur.fetchone()[0]
    return counts
