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

from telco_lifecycle.evidence import audit
from telco_lifecycle.evidence.verification import Check, run_checks
from telco_lifecycle.policy import DataItem, Policy, Rule, load_policy

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
        end = f"coalesce(t.{item.own_clock}, c.relationship_ended_on)" if item.own_clock else "c.relationship_ended_on"
        return (f"EXISTS (SELECT 1 FROM customers c WHERE c.customer_id = {owner(item)}"
                f" AND ({end} + interval '{years} years')::date <= {day})")
    return f"({unit_year_end(policy, rule, item)} + interval '{years} years')::date + 1 <= {day}"


def unit_year_end(policy: Policy, rule: Rule, item: DataItem) -> str:
    """The last day of the fiscal year the row `t` is kept for: its own, or for a member
    of an accounting unit the latest of the unit's rows (`ue`, joined by `source`; an
    invoice's stored fiscal year counting where it names a later year)."""
    own = row_year_end(policy, item, "t")
    return f"greatest({own}, ue.year_end)" if item.unit_key and rule.clock == "fiscal_year_end" else own


def unit_ends(policy: Policy, rule: Rule, units: str | None = None) -> str:
    """SQL: per accounting unit (`unit`) the last fiscal-year end of its rows (`year_end`),
    every table of the rule aggregated once (or only the units in the SQL set `units`)."""
    among = f" IN ({units})" if units else " IS NOT NULL"
    members = [f"SELECT u.{i.unit_key} AS unit, {row_year_end(policy, i, 'u')} AS year_end FROM {i.table} u"
               f" WHERE u.{i.unit_key}{among}" for i in rule.data if i.unit_key]
    return f"(SELECT unit, max(year_end) AS year_end FROM ({' UNION ALL '.join(members)}) m GROUP BY unit)"


def source(policy: Policy, rule: Rule, item: DataItem, rows: str | None = None) -> str:
    """The rows `t` to check (`rows`, default the GX batch), with their accounting unit's
    last year end (`ue`) where they have one. (GX leaves the aliasing of `{batch}` to a
    query with a JOIN, and aliases it as `subselect` in any other.)"""
    if item.unit_key and rule.clock == "fiscal_year_end":
        return f"{rows or '{batch} t'} LEFT JOIN {unit_ends(policy, rule)} ue ON ue.unit = t.{item.unit_key}"
    return rows or ROWS


def row_year_end(policy: Policy, item: DataItem, row: str) -> str:
    """The last day of the fiscal year of the row's own date (and stored fiscal year)."""
    value = f"{row}.{item.date_column}"
    local = f"({value} AT TIME ZONE '{policy.timezone}')::date" if item.date_column.endswith("_at") else value
    end = year_end_of(policy, local)
    if item.fiscal_year_label:
        end = f"greatest({end}, {named_year_end(policy, f'{row}.{item.fiscal_year_label}')})"
    return end


def year_end_of(policy: Policy, day: str) -> str:
    """SQL: the last day of the fiscal year the date `day` belongs to, under each period
    of the policy's fiscal-year ends."""
    branches = []
    for month_day, _, last in policy.year_end_periods():
        month, dom = (int(part) for part in month_day.split("-"))
        end = (f"make_date(extract(year FROM {day})::int + (to_char({day}, 'MM-DD') > '{month_day}')::int,"
               f" {month}, {dom})")
        branches.append(f"WHEN {day} <= DATE '{last}' THEN {end}" if last else f"ELSE {end}")
    return f"(CASE {' '.join(branches)} END)" if len(branches) > 1 else branches[0][5:]


def named_year_end(policy: Policy, year: str) -> str:
    """SQL: the last day of the fiscal year named `year` (the later where two end in one
    calendar year)."""
    candidates = []
    for month_day, after, last in policy.year_end_periods():
        month, dom = (int(part) for part in month_day.split("-"))
        end = f"make_date({year}, {month}, {dom})"
        bounds = [f"{end} > DATE '{after}'"] * bool(after) + [f"{end} <= DATE '{last}'"] * bool(last)
        candidates.append(f"CASE WHEN {' AND '.join(bounds)} THEN {end} END" if bounds else end)
    return f"greatest({', '.join(candidates)})" if len(candidates) > 1 else candidates[0]


def fiscal_year_findings(policy: Policy) -> list[Check]:
    """Data quality (reported, never failing a purge): a stored fiscal year that is not the
    one the row's own date belongs to."""
    result = []
    for rule in policy.rules:
        for item in rule.data:
            if item.fiscal_year_label:
                derived = f"extract(year FROM {year_end_of(policy, f't.{item.dated_by}')})::int"
                result.append(Check(f"the stored {item.fiscal_year_label} of every {item.table} row is the fiscal"
                                    f" year of its {item.dated_by}", rule.id, item.table,
                                    f"SELECT {owner(item)} AS customer_id FROM {ROWS}"
                                    f" WHERE t.{item.fiscal_year_label} <> {derived}", finding=True))
    return result


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
                        f" FROM {source(policy, rule, item, f'{item.table} t')} WHERE {remaining(item)}")
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
                                f"SELECT {owner(item)} AS customer_id FROM {source(policy, rule, item)}"
                                f" WHERE {remaining(item)} AND {overdue(policy, rule, item, as_of)}"
                                f" AND NOT lifecycle_on_hold({owner(item)})"))
    result += fiscal_year_findings(policy)
    result.append(Check(
        "no data of a customer under a hold in force was removed after the hold was placed", "legal_hold",
        "lifecycle_audit",
        "SELECT a.audit_id FROM {batch} a JOIN legal_holds h ON h.customer_id = a.customer_id"
        " AND h.released_on IS NULL"
        f" WHERE a.action IN {audit.REMOVING_ACTIONS!r} AND NOT a.dry_run"
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
                                    f"{remaining(item)} AND NOT {overdue(policy, rule, item, as_of)}",
                                    source(policy, rule, item)))
            result.append(_at_least(f"the {before['held_rows']} {item.table} rows of customers under legal hold remain",
                                    "legal_hold", item, before["held_rows"],
                                    f"{remaining(item)} AND lifecycle_on_hold({owner(item)})"))
    return result


def _at_least(name: str, rule_id: str, item: DataItem, minimum: int, condition: str, rows: str = ROWS) -> Check:
    """Fewer than `minimum` rows match `condition`: one offending row per missing row."""
    return Check(name, rule_id, item.table,
                 f"SELECT generate_series(1, {int(minimum)} - n) AS missing FROM"
                 f" (SELECT count(*) AS n FROM {rows} WHERE {condition}) c")


def verify(database_url: str, as_of: dt.date, suite_name: str, rule_ids: list[str] | None = None,
           expected: dict | None = None) -> list[dict]:
    """Run the checks through GX (Data Docs under the reports folder); raise
    VerificationFailed naming rule, table and offending row count of every failure."""
    results = run_checks(database_url, suite_name, checks(as_of, rule_ids, expected))
    return [dataclasses.asdict(r) for r in results]
