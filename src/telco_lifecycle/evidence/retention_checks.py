"""Great Expectations checks of the retention rules, derived from the policy.

They are written independently of the purge code (each row's own deadline is
computed in SQL from its date; the purge works with cut-off values), so a purge
pointed at the wrong date is caught:

(a) nothing past its deadline remains for any rule (customers under a hold in force excepted);
(d) is (a) for the offboarding rule: no ended customer has PBX/SIP configuration;
(c) held customers' data is intact: no deleting audit row after their hold was placed,
    and, after a purge, no fewer held rows than before it;
(b) after a purge, nothing not yet due is gone: every row that was not due (by the
    per-row deadline) is still there, and no table lost more rows than the dry run
    said were due (with (a) this makes the difference exact in a quiet database;
    rows inserted meanwhile by the CRM or billing do not count against it).
Offending rows are reported by count, never by content.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from telco_lifecycle.evidence.verification import Check, run_checks
from telco_lifecycle.policy import DataItem, Policy, Rule, load_policy

DESTRUCTIVE_ACTIONS = ("delete", "anonymise", "drop_partition")
# GX substitutes `{batch}` with an already aliased subquery: wrap it to call the rows `t`.
ROWS = "(SELECT * FROM {batch}) t"


def owner(item: DataItem, row: str = "t") -> str:
    """The customer id of a row of `item.table` (alias `row`)."""
    if item.subject.via:
        column = item.subject.column
        return f"(SELECT v.customer_id FROM {item.subject.via} v WHERE v.{column} = {row}.{column})"
    return f"{row}.{item.subject.column}"


def remaining(item: DataItem, row: str = "t") -> str:
    """A row the item's action has not yet been applied to."""
    if item.action == "delete":
        return "TRUE"
    marks = [f"{row}.{c} IS NULL" for c in item.kept_columns if c.endswith("_purged_on")]
    return "(" + " OR ".join([f"{row}.{c} IS NOT NULL" for c in item.columns] + marks) + ")"


def overdue(policy: Policy, rule: Rule, item: DataItem, as_of: dt.date) -> str:
    """The row's deadline under `rule` is on or before `as_of` (computed per row)."""
    day = f"DATE '{as_of.isoformat()}'"
    years = int(rule.period_years)
    if rule.clock == "relationship_end":
        return (f"EXISTS (SELECT 1 FROM customers c WHERE c.customer_id = {owner(item)}"
                f" AND (c.relationship_ended_on + interval '{years} years')::date <= {day})")
    column = item.date_column
    if item.dated_via_subject:
        via, key = item.subject.via, item.subject.column
        fiscal_year = f"(SELECT v.{column} FROM {via} v WHERE v.{key} = t.{key})"
    elif column == "fiscal_year":
        fiscal_year = f"t.{column}"
    else:
        local = f"(t.{column} AT TIME ZONE '{policy.timezone}')::date"
        fiscal_year = (f"(extract(year FROM {local})::int"
                       f" + (to_char({local}, 'MM-DD') > '{policy.fiscal_year_end}')::int)")
    month, day_of_month = (int(p) for p in policy.fiscal_year_end.split("-"))
    return (f"(make_date({fiscal_year}, {month}, {day_of_month}) + interval '{years} years')::date"
            f" + 1 <= {day}")


def snapshot(conn, rule_id: str, as_of: dt.date, policy: Policy | None = None) -> dict[str, dict[str, int]]:
    """Per table of the rule, before a purge: rows not yet purged, how many of them are
    not yet due at `as_of`, and how many belong to customers under a hold in force."""
    policy = policy or load_policy()
    rule = policy.rule(rule_id)
    counts = {}
    with conn.cursor() as cur:
        for item in rule.data:
            cur.execute(f"SELECT count(*), count(*) FILTER (WHERE NOT {overdue(policy, rule, item, as_of)}),"
                        f" count(*) FILTER (WHERE lifecycle_on_hold({owner(item)}))"
                        f" FROM {item.table} t WHERE {remaining(item)}")
            rows, not_due, held = cur.fetchone()
            counts[item.table] = {"rows": rows, "not_due": not_due, "held_rows": held}
    conn.rollback()
    return counts


def checks(as_of: dt.date, rule_ids: list[str] | None = None, expected: dict | None = None,
           policy: Policy | None = None) -> list[Check]:
    """The checks for `as_of`: every rule (or the scheduled ones in `rule_ids`, plus the
    offboarding rule), and with `expected` = {"rule", "before" (a snapshot), "due"} the
    before/after checks of one purge."""
    policy = policy or load_policy()
    result = []
    for rule in policy.rules:
        if rule_ids is not None and rule.trigger == "schedule" and rule.id not in rule_ids:
            continue
        for item in rule.data:
            name = (f"no ended customer has {item.table} rows" if rule.trigger == "offboarding"
                    else f"no {item.table} row past its deadline remains at {as_of}")
            result.append(Check(name, rule.id, item.table,
                                f"SELECT {owner(item)} AS customer_id FROM {ROWS}"
                                f" WHERE {remaining(item)} AND {overdue(policy, rule, item, as_of)}"
                                f" AND NOT lifecycle_on_hold({owner(item)})"))
    result.append(Check(
        "no data of a customer under a hold in force was removed after the hold was placed", "legal_hold",
        "lifecycle_audit",
        "SELECT a.audit_id FROM {batch} a JOIN legal_holds h ON h.customer_id = a.customer_id"
        " AND h.released_on IS NULL"
        f" WHERE a.action IN {DESTRUCTIVE_ACTIONS!r} AND NOT a.dry_run"
        " AND a.recorded_at >= coalesce((SELECT min(p.recorded_at) FROM lifecycle_audit p"
        "   WHERE p.action = 'place_legal_hold' AND (p.details->>'legal_hold_id')::bigint = h.legal_hold_id),"
        "   h.placed_on::timestamptz)"))
    if expected:
        rule = policy.rule(expected["rule"])
        for item in rule.data:
            before = expected["before"][item.table]
            keep = int(before["rows"]) - int(expected["due"][item.table])
            result.append(_at_least(f"at least {keep} of {before['rows']} {item.table} rows remain (all but the due)",
                                    rule.id, item, keep, remaining(item)))
            result.append(_at_least(f"the {before['not_due']} {item.table} rows not yet due at {as_of} remain",
                                    rule.id, item, before["not_due"],
                                    f"{remaining(item)} AND NOT {overdue(policy, rule, item, as_of)}"))
            result.append(_at_least(f"the {before['held_rows']} {item.table} rows of customers under legal hold remain",
                                    "legal_hold", item, before["held_rows"],
                                    f"{remaining(item)} AND lifecycle_on_hold({owner(item)})"))
    return result


def _at_least(name: str, rule_id: str, item: DataItem, minimum: int, condition: str) -> Check:
    """Fewer than `minimum` rows match `condition`: one offending row per missing row."""
    return Check(name, rule_id, item.table,
                 f"SELECT generate_series(1, {int(minimum)} - n) AS missing FROM"
                 f" (SELECT count(*) AS n FROM {ROWS} WHERE {condition}) c")


def verify(database_url: str, as_of: dt.date, suite_name: str, rule_ids: list[str] | None = None,
           expected: dict | None = None) -> list[dict]:
    """Run the checks through GX (Data Docs under the reports folder); raise
    VerificationFailed naming rule, table and offending row count of every failure."""
    results = run_checks(database_url, suite_name, checks(as_of, rule_ids, expected))
    return [dataclasses.asdict(r) for r in results]
