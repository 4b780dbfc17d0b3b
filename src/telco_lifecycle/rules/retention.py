"""Scheduled retention: remove what a rule of the policy says is due at `as_of`.

Everything is derived from the policy's rule: which customers are due (the clock:
relationship end + period, or the fiscal year + period), and per data item the
statement (`delete` removes rows, `anonymise` clears the listed columns and stamps
the kept `*_purged_on` column). Work goes in batches of BATCH_SIZE due customers,
walked by id with progress in the log, one transaction per batch: one statement
removes the batch's due rows (a set-based change per table) and writes one audit
record per customer and rule (its rows per table), so a customer's rows for a rule go
with their audit record or not at all.
Every statement itself re-checks each customer's clock and that no hold is in force;
customers under a hold in force are skipped and the skip is recorded. Wholly expired
CDR months are dropped as partitions (`lifecycle_drop_cdr_partition`) before the customers' deletes.

The three purge DAGs are built by `workflows.purge_dag.purge_dag`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from zoneinfo import ZoneInfo

from telco_lifecycle.customers import on_hold_sql
from telco_lifecycle.database import int_array, run_lock, transaction
from telco_lifecycle.errors import Refused
from telco_lifecycle.evidence import audit
from telco_lifecycle.evidence.restore_detection import refuse_if_restored
from telco_lifecycle.guards import refuse_future_dates
from telco_lifecycle.policy import MONTH_UNIT_DATES, UNIT_DATES, DataItem, Policy, Rule, add_years, load_policy
from telco_lifecycle.settings import TIMEZONE, read_sql

log = logging.getLogger("telco_lifecycle.rules.retention")

# Customers per batch, and per transaction: each commit waits for its WAL to reach disk
# (12 ms a batch of crm at 10M CDRs), and each batch pays a few statements and their plans;
# a batch holds its customers' row locks for its second or two.
BATCH_SIZE = 10_000
MONTHS_PER_TRANSACTION = 12  # CDR months dropped per transaction
BATCH_WORK_MEM = "64MB"  # a purge batch's sorts' memory (per sort), see _purge_batch
RELEASABLE = "releasable"  # the CTE of a batch's releasable customers (Scope.releasable_cte)


class RetentionRefused(Refused):
    """The run cannot be carried out as asked; nothing was changed."""


@dataclasses.dataclass(frozen=True)
class Scope:
    """One rule at one `as_of`: the SQL that finds what is due, and its parameters."""

    rule: Rule
    as_of: dt.date
    policy: Policy

    @property
    def params(self) -> dict:
        params = {"as_of": self.as_of, "period_years": self.rule.period_years, "rule": self.rule.id,
                  # Relationship ends on or before this day may be due (see customer_clock).
                  "ended_by": add_years(self.as_of, -self.rule.period_years) + dt.timedelta(days=1)}
        if self.rule.clock == "fiscal_year_end":
            # The last fiscal-year end whose material is due (Rule.deadline of it <= as_of;
            # a year end is never 29 February), the first instant after it, the latest
            # fiscal-year name that is due: a row is due when its own date is on or
            # before due_end (and a stored fiscal year is at most due_fiscal_year).
            due_end = self.policy.latest_year_end(add_years(self.as_of - dt.timedelta(days=1),
                                                            -self.rule.period_years))
            if due_end is None:  # before the policy's first fiscal-year end: nothing is due
                raise ValueError(f"no fiscal year has ended by {self.as_of}")
            next_day = due_end + dt.timedelta(days=1)
            params.update(due_end=due_end, due_fiscal_year=self.due_fiscal_year(),
                          fiscal_cutoff=dt.datetime.combine(next_day, dt.time(), ZoneInfo(TIMEZONE)))
        return params

    def due_fiscal_year(self) -> int:
        """The latest fiscal year whose material is due at `as_of` (by `Rule.deadline`)."""
        year = self.as_of.year - self.rule.period_years + 1
        while self.rule.deadline(self.policy.fiscal_year_end_date(year)) > self.as_of:
            year -= 1
        return year

    def customer_clock(self, customer: str = "c") -> str:
        """Condition on a customer row (alias `customer`) that its clock for this rule has run out."""
        if self.rule.clock == "relationship_end":
            # The first condition is the rule's bound made searchable, so that the index on
            # relationship_ended_on finds the candidates and the planner knows how many
            # there are (a day of slack: 29 February + 1 year = 28 February); the second
            # is the rule itself.
            clock = self.ended(f"{customer}.relationship_ended_on")
            # rows on their own clock (few): one uncorrelated, hashed lookup through their index
            own = [f"{customer}.customer_id IN (SELECT o.{item.subject.column} FROM {item.table} o"
                   f" WHERE {self.ended(f'o.{item.own_clock}')})" for item in self.rule.data if item.own_clock]
            return f"({' OR '.join([clock, *own])})" if own else clock
        return "TRUE"  # fiscal-year clocks date each row, see due_rows

    def ended(self, end: str) -> str:
        """The relationship end `end` (a date expression) is past the rule's period."""
        return f"({end} <= %(ended_by)s AND {end} + make_interval(years => %(period_years)s) <= %(as_of)s)"

    def row_clock(self, item: DataItem, owner: str, customer: str | None = None, row: str = "t") -> str:
        """In a rule with rows on their own clock (`own_clock`, a returned customer's earlier
        contracts), each row's clock (the row's alias `row`): its own end, else its
        customer's (`owner`; or the customer row `customer` itself, an alias, where the
        statement already has it)."""
        if customer:
            ended = self.ended(f"{customer}.relationship_ended_on")
        else:
            ended = (f"EXISTS (SELECT 1 FROM customers w WHERE w.customer_id = {owner}"
                     f" AND {self.ended('w.relationship_ended_on')})")
        if not item.own_clock:
            return ended
        own = f"{row}.{item.own_clock}"
        return f"(CASE WHEN {own} IS NOT NULL THEN {self.ended(own)} ELSE {ended} END)"

    def rows(self, item: DataItem, owners: str, customer: str | None = None, units_joined: bool = False,
             row: str = "t") -> tuple[str, str, str]:
        """The due rows of `item.table` (alias `row`) whose customer satisfies `<owner>
        <owners>` (for example `= c.customer_id` or `IN (SELECT ...)`; `customer`: the
        alias of that customer's row, where the statement has it), as (the table it
        reaches its customer through or "", the condition, the owner expression). The
        customer's own clock (customer_clock) is checked by the caller. `units_joined`:
        the statement joins each row's unit dates as `u` (`selected`) instead of probing them."""
        column = item.subject.column
        if item.subject.via:  # reaches its customer through another table (alias `v`)
            joined, owner = f"{item.subject.via} v", "v.customer_id"
            condition = f"{row}.{column} = v.{column} AND {owner} {owners}"
            member = self.unit_member_via(item)
            if member:  # implied (see unit_member_via), said so that only those rows are joined
                condition += "".join(f" AND {due}" for due in _own_dates_due(member, "v"))
        else:
            joined, owner = "", f"{row}.{column}"
            condition = f"{owner} {owners}"
        condition += "".join(f" AND {due}" for due in _own_dates_due(item, row))
        if item.unit_key and units_joined:
            condition += (f" AND ({row}.{item.unit_key} IS NULL OR (u.{item.unit_key} IS NOT NULL"
                          f" AND NOT {self.unit_not_due('u')}))")
        elif item.unit_key:
            condition += f" AND NOT {self.unit_open(f'{row}.{item.unit_key}')}"
        if any(i.own_clock for i in self.rule.data):
            condition += f" AND {self.row_clock(item, owner, customer, row)}"
        if item.action == "anonymise":
            remaining = [*(f"{row}.{c} IS NOT NULL" for c in item.columns),
                         *(f"{row}.{c} IS NULL" for c in item.purged_marks)]
            condition += f" AND ({' OR '.join(remaining)})"
        return joined, condition, owner

    def unit_member_via(self, item: DataItem) -> DataItem | None:
        """The rule's item that `item` reaches its customer through, when it is a member of
        the same accounting unit (joined on the unit's key: a payment's invoice). A unit is
        due only when all of it is, so a due row's joined row is itself due by its own
        dates, and its customer has that due row too."""
        via = item.subject.via
        if not via or not item.unit_key or item.subject.column != item.unit_key:
            return None
        return next((member for member in self.rule.data if member.table == via and not member.subject.via
                     and member.unit_key == item.unit_key), None)

    def unit_open(self, key: str) -> str:
        """The accounting unit `key` (an invoice id; NULL: no unit) has a row not yet due:
        then none of its rows is. One primary-key lookup of the unit's latest dates
        (UNIT_DATES, kept by migration 0026's triggers); a unit without them (its rows
        came round the triggers) counts as open: kept, never let go early."""
        unit_key = next((item.unit_key for item in self.rule.data if item.unit_key), None)
        if unit_key is None:
            return "FALSE"
        return (f"({key} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {UNIT_DATES} u"
                f" WHERE u.{unit_key} = {key} AND NOT {self.unit_not_due('u')}))")

    def unit_not_due(self, latest: str) -> str:
        """Condition on a row of latest unit dates (alias `latest`: UNIT_DATES or
        MONTH_UNIT_DATES) that a member is not yet due (never NULL: a member table
        without a date has no row in the unit)."""
        members = []
        for item in self.rule.data:
            if item.unit_key:
                members.append(f"NOT {_date_due(item, f'{latest}.latest_{item.table}')}")
                if item.fiscal_year_label:
                    members.append(f"{latest}.latest_{item.fiscal_year_label} > %(due_fiscal_year)s")
        return "coalesce(" + " OR ".join(members) + ", FALSE)"

    def exists_due(self, item: DataItem, customer: str = "c") -> str:
        """Has the customer row `customer` (an alias) a due row of `item`? The customer row
        itself (the `customers` item) is checked on that row, without a probe."""
        if _is_customer_row(item):
            return f"({self.rows(item, 'IS NOT NULL', customer, row=customer)[1]})"
        joined, condition, _ = self.rows(item, f"= {customer}.customer_id", customer)
        return f"EXISTS (SELECT 1 FROM {item.table} t{', ' + joined if joined else ''} WHERE {condition})"

    def due_customers_sql(self) -> str:
        """Customers with something due under this rule, held or not. A relationship clock
        finds its candidates through the index on the relationship's end and probes their
        rows; a fiscal-year rule dates every row, so every customer is a candidate: the
        due rows' owners are found table by table, set-based, each row's unit dates joined
        (the planner hashes them, where a probe per row cost 3 us: 4 of 5 s at 10M CDRs)."""
        if self.rule.clock == "fiscal_year_end":
            # An item reached through a member of its unit has no owners of its own (see
            # unit_member_via): not looked for (at 10M CDRs, 1.8 of the 4.2 s).
            owners = " UNION ".join(self.due_owners_sql(item) for item in self.rule.data
                                    if not self.unit_member_via(item))
            return (f"SELECT c.customer_id, {on_hold_sql('c.customer_id')} FROM customers c"
                    f" WHERE c.customer_id IN ({owners})")
        # The customer row's own check first: an OR stops at the first true term, and most
        # due customers still have master data (crm at 10M CDRs: 38 ms, where probing the
        # three other tables first cost 190).
        items = sorted(self.rule.data, key=lambda item: not _is_customer_row(item))
        anything = " OR ".join(self.exists_due(item) for item in items)
        return (f"SELECT c.customer_id, {on_hold_sql('c.customer_id')} FROM customers c"
                f" WHERE {self.customer_clock()} AND ({anything})")

    def due_owners_sql(self, item: DataItem) -> str:
        """The owners of `item`'s due rows (any customer)."""
        tables, condition, owner = self.selected(item, "IS NOT NULL")
        return f"SELECT {owner} FROM {tables} WHERE {condition}"

    def selected(self, item: DataItem, owners: str) -> tuple[str, str, str]:
        """For a SELECT, the due rows of `item` as `rows` gives them (its FROM list, the
        condition, the owner expression), each row's unit dates joined (LEFT JOIN: the
        planner hashes them, where the probe per row of `unit_open` costs 3 us)."""
        joined, condition, owner = self.rows(item, owners, units_joined=True)
        units = f" LEFT JOIN {UNIT_DATES} u ON u.{item.unit_key} = t.{item.unit_key}" if item.unit_key else ""
        return f"{item.table} t{units}{', ' + joined if joined else ''}", condition, owner

    def releasable(self, batch: bool = True) -> str:
        """The customers (of the batch, or all) whose clock has run out and who are under no
        hold in force: checked in every purge statement itself. A batch's are the array
        of the CTE RELEASABLE (`releasable_cte`), found once per statement, which every
        change looks its owners up by in their own index: joined instead, the planner,
        which multiplies the batch's and the clock's selectivities (the same customers)
        and expects a handful, chose full scans of a table reached through another
        (payments through invoices) or probed an index with the whole batch once per
        customer."""
        if not batch:
            return (f"IN (SELECT c.customer_id FROM customers c WHERE {self.customer_clock()}"
                    f" AND NOT {on_hold_sql('c.customer_id')})")
        return f"= ANY ((SELECT r.ids FROM {RELEASABLE} r)::bigint[])"

    def releasable_cte(self) -> str:
        """The CTE RELEASABLE: the batch's (%(batch)s) releasable customers, one array. One
        CTE for all the batch's changes: an array in each change (an InitPlan each) found
        them once per table (crm at 10M CDRs: 13 ms a table and batch). The batch's id
        range bounds the scan: without it the planner read every customer whose clock had
        run out (the index on the relationship's end) and kept the batch's, in every batch."""
        return (f"{RELEASABLE} AS (SELECT ARRAY(SELECT c.customer_id FROM customers c"
                f" WHERE c.customer_id BETWEEN %(batch_first)s AND %(batch_last)s"
                f" AND c.customer_id = ANY (%(batch)s::bigint[]) AND {self.customer_clock()}"
                f" AND NOT {on_hold_sql('c.customer_id')}) AS ids)")

    def changes(self) -> dict[str, str]:
        """Per table, the set-based statement removing the due rows of the batch's
        releasable customers (they read the CTE RELEASABLE), returning each changed row's
        customer: in `audit.record_changes`'s order, a unit's member that goes with the
        rows of another after that one's (see `change`)."""
        followed = {member.table for item in self.rule.data if (member := self.goes_with(item))}
        changes = {}
        for item in sorted(self.rule.data, key=lambda item: self.goes_with(item) is not None):
            change, owner = self.change(item)
            unit = f", t.{item.unit_key}" if item.table in followed else ""
            changes[item.table] = f"{change} RETURNING {owner} AS customer_id{unit}"
        return changes

    def goes_with(self, item: DataItem) -> DataItem | None:
        """The deleted rows' item whose rows `item`'s due rows go with: the unit member it
        reaches its customer through (`unit_member_via`), when both are deleted."""
        member = self.unit_member_via(item)
        return member if member and item.action == member.action == "delete" else None

    def change(self, item: DataItem) -> tuple[str, str]:
        """The set-based statement changing `item`'s due rows of the batch's releasable
        customers, and the owner expression it can return. A row of an item that goes with
        another's rows (a payment with its invoice) is due exactly when that row is (their
        unit is due, its customer releasable: checked there) and it is due by its own
        dates: so it is found through the rows the same statement deleted there (at 10M
        CDRs a batch's 72,000 payments, where joining the batch's invoices read 84,000
        invoices and probed each payment's unit)."""
        head = self.goes_with(item)
        if head:
            own = "".join(f" AND {due}" for due in _own_dates_due(item, "t"))
            return (f"DELETE FROM {item.table} t USING {audit.changed_cte(head.table)} v"
                    f" WHERE t.{item.subject.column} = v.{item.unit_key}{own}", "v.customer_id")
        joined, condition, owner = self.rows(item, self.releasable())
        if item.action == "delete":
            return f"DELETE FROM {item.table} t{' USING ' + joined if joined else ''} WHERE {condition}", owner
        marks = [f"{c} = coalesce(t.{c}, %(as_of)s)" for c in item.purged_marks]
        cleared = [f"{c} = NULL" for c in item.columns] + marks
        return (f"UPDATE {item.table} t SET {', '.join(cleared)}{' FROM ' + joined if joined else ''}"
                f" WHERE {condition}"), owner


def _is_customer_row(item: DataItem) -> bool:
    """The item is the customer's own row (`customers`, the table every clock starts from)."""
    return item.table == "customers" and not item.subject.via


def _own_dates_due(item: DataItem, row: str) -> list[str]:
    """The conditions that the row (alias `row`) is due by its own date and fiscal year."""
    return [*([_date_due(item, f"{row}.{item.date_column}")] if item.dated_by else []),
            *([f"{row}.{item.fiscal_year_label} <= %(due_fiscal_year)s"] if item.fiscal_year_label else [])]


def _date_due(item: DataItem, date: str) -> str:
    """`date`, of the kind of `item`'s date column, is due: a date on or before the last
    due fiscal-year end, a timestamp (`*_at`) before the first instant after it (Copenhagen)."""
    if item.date_column.endswith("_at"):
        return f"({date} < %(fiscal_cutoff)s)"
    return f"({date} <= %(due_end)s)"


def scope(rule_id: str, as_of: dt.date, policy: Policy | None = None) -> Scope:
    policy = policy or load_policy()
    rule = policy.rule(rule_id)
    if rule.trigger != "schedule":
        raise RetentionRefused(f"rule {rule_id!r} is not a scheduled rule (trigger {rule.trigger!r})")
    return Scope(rule, as_of, policy)


def check_as_of(as_of: dt.date, run_date: dt.date) -> None:
    if as_of > run_date:
        raise RetentionRefused(
            f"as_of {as_of} is after the run's date {run_date}: purging as of a future day would delete "
            "data before it is due; nothing was changed (give the run a logical date instead)")


def check_year_ends(cur, s: Scope) -> None:
    """Refuse a fiscal-year end that changed since the rule's last removal unless the policy
    records the old one (`earlier_fiscal_year_ends`): both must be honoured."""
    if s.rule.clock != "fiscal_year_end":
        return
    # The statements' (their links', migration 0031) before the records written until then.
    cur.execute("SELECT coalesce((SELECT details->'fiscal_year_ends' FROM lifecycle_audit_link WHERE rule = %(rule)s"
                " AND details ? 'fiscal_year_ends' ORDER BY seq DESC LIMIT 1),"
                " (SELECT details->'fiscal_year_ends' FROM lifecycle_audit_before_v3 WHERE rule = %(rule)s"
                " AND details ? 'fiscal_year_ends' ORDER BY audit_id DESC LIMIT 1))", s.params)
    recorded, now = cur.fetchone()[0], s.policy.year_ends_record()
    if recorded and (recorded[:-1] != now[:len(recorded) - 1] or len(now) < len(recorded)
                     or now[len(recorded) - 1][0] != recorded[-1][0]):
        raise RetentionRefused(
            f"the policy's fiscal-year ends {now} do not continue those of the last {s.rule.id} run {recorded}:"
            " a changed year end must keep the old one in earlier_fiscal_year_ends (with the last day a year"
            " ended on it); nothing was changed")


def year_ends_details(s: Scope) -> dict:
    """What a fiscal-year rule's audit rows record of the year ends they applied."""
    return {"fiscal_year_ends": s.policy.year_ends_record()} if s.rule.clock == "fiscal_year_end" else {}


def plan(conn, rule_id: str, as_of: dt.date, policy: Policy | None = None) -> dict:
    """What the rule would remove at `as_of` (exact counts per table; read only). Refused
    on a database restored from a backup (behind the deletion ledger)."""
    s = scope(rule_id, as_of, policy)
    refuse_if_restored(conn, f"rule {s.rule.id}")
    params = s.params
    due = {}
    with transaction(conn) as cur:
        check_year_ends(cur, s)
        every_customer = s.releasable(batch=False)
        for item in s.rule.data:
            tables, condition, _ = s.selected(item, every_customer)
            cur.execute(f"SELECT count(*) FROM {tables} WHERE {condition}", params)
            due[item.table] = cur.fetchone()[0]
        cur.execute(f"SELECT count(*), count(*) FILTER (WHERE on_hold) FROM ({s.due_customers_sql()}) d(id, on_hold)",
                    params)
        customers, held = cur.fetchone()
        partitions = [month[0] for month in _expired_partitions(cur, s, params)]
    conn.rollback()
    return {"rule": s.rule.id, "as_of": as_of.isoformat(), "due": due, "customers": customers - held,
            "held_customers": held, "partitions": partitions,
            "anything_due": bool(sum(due.values()) or partitions)}


def _expired_partitions(cur, s: Scope, params: dict) -> list[tuple]:
    """The CDR months (name, first day) wholly expired at `as_of`: every row due by its own date, and none
    billed on an invoice whose unit is kept (such a month waits for it; its due rows go
    with their customers meanwhile)."""
    months = _months_before_cutoff(cur, s, params)
    kept = _billed_on_kept_units(cur, s, params, [first for _, first in months])
    return [month for month in months if month[1] not in kept]


def _months_before_cutoff(cur, s: Scope, params: dict) -> list[tuple]:
    """The CDR months (name, first day) whose rows are all due by their own date."""
    if "cdrs" not in s.rule.tables or "fiscal_cutoff" not in params:
        return []
    cur.execute(read_sql("retention/expired_cdr_partitions.sql"), params)
    return cur.fetchall()


def _billed_on_kept_units(cur, s: Scope, params: dict, months: list[dt.date]) -> set[dt.date]:
    """Which of `months` (their first days) hold a CDR of an accounting unit not yet due?
    Each month's latest unit dates (MONTH_UNIT_DATES: one row a month, not its invoices),
    read for all of them in one statement. A month without that row holds no billed CDR,
    unless its rows came round the triggers (migration 0028 refuses that): then a probe
    of that month's billed-CDR index finds one, and the month is kept, as a unit without
    dates is: never let go early. The months without the row are probed in one statement
    (one plan of cdrs's partitions: 17 ms, where a statement a month cost 7 ms each at 10M
    CDRs), its live rows only: the held ones are aside, not dropped with the month."""
    if not months or not any(item.unit_key for item in s.rule.data):
        return set()
    cur.execute(f"SELECT m.month, u.month IS NOT NULL, {s.unit_not_due('u')} FROM unnest(%(months)s::date[]) m(month)"
                f" LEFT JOIN {MONTH_UNIT_DATES} u ON u.month = m.month", {**params, "months": months})
    kept, undated = set(), []
    for month, dated, not_due in cur.fetchall():
        if not_due:
            kept.add(month)
        elif not dated:
            undated.append(month)
    if undated:
        cur.execute("SELECT m.month FROM unnest(%(months)s::date[]) m(month) WHERE EXISTS (SELECT 1 FROM cdrs r"
                    " WHERE NOT r.held AND r.invoice_id IS NOT NULL AND r.started_at >= lifecycle_month_start(m.month)"
                    " AND r.started_at < lifecycle_month_start((m.month + interval '1 month')::date))",
                    {"months": undated})
        kept.update(month for (month,) in cur.fetchall())
    return kept


def purge(conn, rule_id: str, as_of: dt.date, run: audit.RunContext, dry_run: bool = False,
          policy: Policy | None = None, batch_size: int = BATCH_SIZE) -> dict:
    """Remove what the rule says is due at `as_of`; a dry run only counts (`plan`) and
    records that. The purge itself does not count first: it finds the due customers
    batch by batch, and what it removed is in the audit rows and the result. An `as_of`
    after today is refused here too, whoever calls (the DAGs refuse it before this)."""
    s = scope(rule_id, as_of, policy)
    refuse_future_dates(conn, {"as_of": as_of})
    with run_lock(conn, f"purge:{s.rule.id}"):
        if dry_run:
            planned = plan(conn, rule_id, as_of, policy)
            _record_dry_run(conn, s, planned, run)
            return {**planned, "dry_run": True, "removed": {t: 0 for t in planned["due"]},
                    "message": f"rule {s.rule.id} as of {as_of}: DRY RUN, would remove "
                               + describe_counts(planned["due"])}
        refuse_if_restored(conn, f"the purge of rule {s.rule.id}")
        removed = {item.table: 0 for item in s.rule.data}
        with transaction(conn) as cur:
            check_year_ends(cur, s)
            months = _months_before_cutoff(cur, s, s.params)
        # Each month's accounting units are checked once, in the transaction that drops it.
        dropped = _drop_partitions(conn, s, months, run)
        for result in dropped:
            removed["cdrs"] += result["rows"]
        with _objects_so_far_frozen():  # the batches make many short-lived objects
            skipped, purged = _purge_customers(conn, s, run, removed, batch_size)
    message = (f"rule {s.rule.id} as of {as_of}: removed {describe_counts(removed)} of {purged} customer(s)"
               + (f" and dropped {len(dropped)} CDR partition(s)" if dropped else "")
               + (f"; skipped {len(skipped)} customer(s) under legal hold" if skipped else ""))
    log.info(message)
    return {"rule": s.rule.id, "as_of": as_of.isoformat(), "dry_run": False, "removed": removed,
            "customers_purged": purged, "partitions_dropped": dropped, "skipped_legal_hold": skipped,
            "message": message}


def purge_customers(conn, rule_id: str, as_of: dt.date, customer_ids: list[int], run: audit.RunContext
                    ) -> dict[str, int]:
    """The purge of `rule_id` at `as_of` restricted to one batch of customers (their clocks
    and holds checked in the statements as always): how a restore's reconciliation
    deletes again what one batch of a purge deleted."""
    s = scope(rule_id, as_of)
    removed = {item.table: 0 for item in s.rule.data}
    with run_lock(conn, f"purge:{s.rule.id}"):
        with transaction(conn) as cur:
            written = _purge_batch(cur, s, customer_ids, run, removed)
        audit.emit([written] if written else [])
    return removed


def drop_partition_again(conn, rule_id: str, as_of: dt.date, partition: str, run: audit.RunContext) -> int:
    """Drop the CDR month `partition` if it is (again) there and wholly expired at `as_of`: rows dropped."""
    s = scope(rule_id, as_of)
    with run_lock(conn, f"purge:{s.rule.id}"):
        with transaction(conn) as cur:
            months = [m for m in _expired_partitions(cur, s, s.params) if m[0] == partition]
        return sum(dropped["rows"] for dropped in _drop_partitions(conn, s, months, run))


def describe_counts(per_table: dict[str, int]) -> str:
    """`3 contacts, 1 customers`: counts per table for a log line."""
    return ", ".join(f"{n} {table}" for table, n in per_table.items())


def _record_dry_run(conn, s: Scope, planned: dict, run: audit.RunContext) -> None:
    events = []
    with transaction(conn) as cur:
        for item in s.rule.data:
            events.append(audit.record(cur, audit.Action(
                item.action, s.rule.id, None, item.table, planned["due"][item.table], s.as_of, True,
                {**year_ends_details(s), **({"partitions": planned["partitions"]}
                                            if item.table == "cdrs" and planned["partitions"] else {})}), run))
    audit.emit(events)


def _drop_partitions(conn, s: Scope, months: list[tuple], run: audit.RunContext) -> list[dict]:
    """Drop the wholly expired CDR months (held rows kept), up to MONTHS_PER_TRANSACTION
    in a transaction (each drop holds the lock on `cdrs` that CDR ingest waits for until
    commit): their units checked again (a payment or CDR may have arrived meanwhile: such
    a month is left), the months dropped, and one audit record each, in three statements."""
    dropped = []
    for first in range(0, len(months), MONTHS_PER_TRANSACTION):
        chunk = months[first:first + MONTHS_PER_TRANSACTION]
        with transaction(conn) as cur:
            kept_units = _billed_on_kept_units(cur, s, s.params, [month for _, month in chunk])
            names = [name for name, month in chunk if month not in kept_units]
            if not names:
                continue
            cur.execute(read_sql("retention/drop_cdr_partitions.sql"), {"partitions": names})
            months_dropped = [{"partition": name, "rows": total - kept, "kept_for_legal_hold": kept}
                              for name, total, kept in cur.fetchall()]
            events = audit.record_each(
                cur, [(None, month["rows"], {"partition": month["partition"],
                                             "kept_for_legal_hold": month["kept_for_legal_hold"]})
                      for month in months_dropped],
                audit.Action("drop_partition", s.rule.id, None, "cdrs", 0, s.as_of, False, year_ends_details(s)), run)
        audit.emit(events)
        dropped += months_dropped
    return dropped


def _purge_customers(conn, s: Scope, run: audit.RunContext, removed: dict, batch_size: int):
    """Batch by batch of due customers: found once, set-based, into a cursor WITH HOLD
    (materialised at commit, so the role needs no TEMP privilege), read one batch at a
    time in id order (Python holds one batch at a time), each batch one transaction: its
    held customers' skips and the others' purge, with one log event."""
    name = f"lifecycle_due_{s.rule.id}"
    with transaction(conn) as cur:
        cur.execute(f'DECLARE "{name}" SCROLL CURSOR WITH HOLD FOR {s.due_customers_sql()} ORDER BY 1', s.params)
    skipped, purged = [], 0
    try:
        with transaction(conn) as cur:
            cur.execute(f'MOVE FORWARD ALL IN "{name}"')
            batches = math.ceil(cur.rowcount / batch_size)
            cur.execute(f'MOVE ABSOLUTE 0 IN "{name}"')
        for number in range(1, batches + 1):
            with transaction(conn) as cur:
                cur.execute(f'FETCH FORWARD {int(batch_size)} FROM "{name}"')
                batch = cur.fetchall()
                # The purge first: it takes its customers' row locks before anything takes the
                # chain head (the skips' records), the one lock order of every writer.
                written = _purge_batch(cur, s, [customer_id for customer_id, on_hold in batch if not on_hold], run,
                                       removed)
                held, skip_events = _skip(cur, s, [customer_id for customer_id, on_hold in batch if on_hold], run)
            audit.emit([*skip_events, *([written] if written else [])])
            skipped += held
            purged += written.records if written else 0
            log.info("rule %s: batch %d of %d done (%d customer(s), %d skipped: legal hold in force), rows so far: %s",
                     s.rule.id, number, batches, len(batch), len(held), describe_counts(removed))
    finally:
        if not conn.closed:
            with transaction(conn) as cur:
                cur.execute(f'CLOSE "{name}"')
    return skipped, purged


@contextmanager
def _objects_so_far_frozen() -> Iterator[None]:
    """Keep the collector's full passes off the objects already in the process (Airflow's,
    the package's: over 160,000 in a task process), which outlive the loop anyway: the
    batches' events would otherwise make it walk them again and again (8 % of the crm
    purge at 10M CDRs). Unfrozen afterwards, so that nothing escapes collection for good."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _purge_batch(cur, s: Scope, customer_ids: list[int], run: audit.RunContext, removed: dict
                 ) -> audit.Written | None:
    """In the caller's transaction, for a batch of customers, one statement: per table one
    set-based change removes the due rows of all of them, and their audit records are
    written (one per customer and rule, with its rows per table), so each customer's rows
    for the rule go, with their record, or none do. What to emit after commit."""
    if not customer_ids:
        return None
    params = {**s.params, "batch": int_array(customer_ids), "batch_first": min(customer_ids),
              "batch_last": max(customer_ids)}
    # The batch's changed rows are grouped per customer by a sort (crm at 10M CDRs:
    # 97,000 rows a batch), which spilled to disk at the default 4 MB.
    cur.execute("SELECT set_config('work_mem', %s, true)", (BATCH_WORK_MEM,))
    # The customers' row locks first, in id order, as offboarding and erasure take them:
    # one lock order for everything that changes a customer, so they queue, never deadlock
    # (counted in the server: the locked rows are not sent).
    cur.execute("SELECT count(*) FROM (SELECT FROM customers WHERE customer_id = ANY (%(batch)s::bigint[])"
                " ORDER BY customer_id FOR UPDATE) locked", params)
    written, changed = audit.record_changes(cur, s.changes(), params, audit.Action(
        "purge", s.rule.id, as_of=s.as_of, details=year_ends_details(s)), run, shared=s.releasable_cte())
    for table, rows in changed.items():
        removed[table] += rows
    return written


def _skip(cur, s: Scope, customer_ids: list[int], run: audit.RunContext) -> tuple[list[dict], list[dict]]:
    """In the caller's transaction, record (once per date) that the batch's held
    customers' due data was kept, in one statement; holds named by id. The skipped
    customers with their holds, and the events to emit after commit."""
    if not customer_ids:
        return [], []
    cur.execute(read_sql("retention/skips_to_record.sql"), {**s.params, "customers": int_array(customer_ids)})
    holds = {customer_id: (hold_ids, recorded) for customer_id, hold_ids, recorded in cur.fetchall()}
    events = audit.record_each(cur, [(customer_id, 0, {"legal_hold_ids": hold_ids})
                                     for customer_id, (hold_ids, recorded) in holds.items() if not recorded],
                               audit.Action("skipped_legal_hold", s.rule.id, as_of=s.as_of), run)
    skipped = [{"customer_id": customer_id, "legal_hold_ids": holds[customer_id][0]} for customer_id in customer_ids]
    return skipped, events
