"""Due and overdue counts per rule of the policy at `as_of`: what the purges act on,
`retention.Scope.due_customers_sql()` evaluated for the day before `as_of`, `as_of` and
`as_of` + window in one statement per rule (include/sql/status/rule_counts.sql). Counts
only; no personal data. The page that shows them is `workflows.status_page`."""

import datetime as dt
import re

from telco_lifecycle.policy import Policy, Rule
from telco_lifecycle.rules.offboarding import deferred_count
from telco_lifecycle.rules.retention import Scope
from telco_lifecycle.settings import read_sql

WINDOW_DAYS = 30


def rule_counts(conn, rule: Rule, as_of: dt.date, policy: Policy, window_days: int = WINDOW_DAYS) -> dict[str, int]:
    """The four counts of one rule at `as_of`, in one query."""
    days = {"before": as_of - dt.timedelta(days=1), "due": as_of, "ahead": as_of + dt.timedelta(days=window_days)}
    subqueries, params = {}, {}
    for name, day in days.items():  # each day's Scope, its parameters renamed apart
        scope = Scope(rule, day, policy)
        subqueries[name] = re.sub(r"%\((\w+)\)s", rf"%({name}_\1)s", scope.due_customers_sql())
        params.update({f"{name}_{key}": value for key, value in scope.params.items()})
    with conn.cursor() as cur:
        cur.execute(read_sql("status/rule_counts.sql").format(**subqueries), params)
        counts = dict(zip([column.name for column in cur.description], cur.fetchone(), strict=True))
    conn.rollback()
    return counts


def holds_in_force(conn) -> dict[str, int]:
    """Holds in force, the customers they protect, and the ended ones among them whose
    PBX/SIP deletion waits for the release (offboarding deferred it)."""
    with conn.cursor() as cur:
        cur.execute(read_sql("status/holds_in_force.sql"))
        holds, customers = cur.fetchone()
    conn.rollback()
    return {"holds": holds, "customers": customers, "deferred_offboarding": deferred_count(conn)}
