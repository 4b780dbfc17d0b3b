"""Idempotency and backfill: a month of daily runs of every scheduled rule, in order,
shuffled, and each run twice, ends in one and the same database.

One column differs by design: a `*_purged_on` mark records the day the rule was
actually applied, which in a backfill is the first run that found the row due. The
comparison takes the marks as set or not set."""

from __future__ import annotations

import datetime as dt
import os
import random
from unittest import mock

from conftest import ANCHOR, AUDIT_TRAIL
from retention_helpers import cdr_partitions

from telco_lifecycle.database import connect
from telco_lifecycle.evidence import audit
from telco_lifecycle.policy import load_policy
from telco_lifecycle.rules import retention

POLICY = load_policy()
RULES = [rule.id for rule in POLICY.rules if rule.trigger == "schedule"]
MARKS = {item.table: item.purged_marks
         for rule in POLICY.rules for item in rule.data if item.action == "anonymise"}
MONTH = [ANCHOR - dt.timedelta(days=n) for n in range(30, -1, -1)]  # the month up to the anchor


def run_days(db, days) -> list[int]:
    """The daily runs of every scheduled rule for `days` (what the DAGs' purge tasks call);
    how many rows each day removed."""
    conn = connect(db.url)
    removed = []
    with mock.patch.dict(os.environ, db.evidence_env()):
        for day in days:
            run = audit.RunContext("backfill", f"scheduled__{day.isoformat()}", "purge_due")
            removed.append(sum(sum(retention.purge(conn, rule, day, run)["removed"].values()) for rule in RULES))
    conn.close()
    return removed


def outcome(db) -> tuple:
    """The data (marks: set or not), the CDR months, and per customer, rule, table and
    action the rows removed."""
    marked = {table: db.scalar("SELECT md5(string_agg((to_jsonb(t) || jsonb_build_object("
                               + ", ".join(f"'{mark}', {mark} IS NOT NULL" for mark in marks)
                               + f"))::text, '|' ORDER BY t::text)) FROM {table} t")
              for table, marks in MARKS.items()}
    return (db.fingerprint(exclude=(*AUDIT_TRAIL, *MARKS)), marked,
            cdr_partitions(db),
            db.rows("SELECT action, rule, customer_id, table_name, sum(row_count) FROM lifecycle_audit"
                    " WHERE action <> 'skipped_legal_hold' GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"))


def test_a_month_backfilled_out_of_order_and_twice_equals_in_order(copies):
    in_order, shuffled = copies(), copies()
    removed = run_days(in_order, MONTH)
    assert sum(1 for n in removed if n) >= 3, "the month should have several days with something due"
    reference = outcome(in_order)

    days = list(MONTH)
    random.Random(7).shuffle(days)
    run_days(shuffled, days)
    assert outcome(shuffled) == reference

    audit_rows = shuffled.scalar("SELECT count(*) FROM lifecycle_audit")
    assert sum(run_days(shuffled, days)) == 0  # every day again: nothing more to do
    assert outcome(shuffled) == reference
    assert shuffled.scalar("SELECT count(*) FROM lifecycle_audit") == audit_rows  # held skips: once a day
    assert shuffled.scalar("SELECT count(*) FROM lifecycle_audit_chain_breaks") == 0
