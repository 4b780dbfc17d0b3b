"""Audit evidence: one `lifecycle_audit` record per action (a retention purge: one per
customer and rule, its rows per table in `details.tables`), in the caller's transaction,
chained set-based (migration 0015); after commit, the ledger, one log event per
transaction and the signed checkpoint.

Each statement that writes records computes their hashes in the same INSERT ... SELECT
(LEAF: SHA-256 of the record's canonical JSON text) and appends one link to the chain
through `lifecycle_audit_seal`: the Merkle root of the statement's records, chained to
the head, which it locks until commit. No trigger runs per row.

Nothing personal: the internal customer id, table names, counts, run ids and hashes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections import Counter

from telco_lifecycle.database import int_array
from telco_lifecycle.evidence import checkpoints
from telco_lifecycle.evidence.store import evidence_store
from telco_lifecycle.settings import AUDIT_LOGGER

EVENT_PREFIX = "AUDIT "
audit_log = logging.getLogger(AUDIT_LOGGER)
human_log = logging.getLogger("telco_lifecycle")
HASH_VERSION = 2


@dataclasses.dataclass(frozen=True)
class RunContext:
    """Which run did it: the Airflow ids, or `cli` for the command line."""

    dag_id: str = "cli"
    run_id: str = "manual"
    task_id: str = "cli"
    try_number: int = 1


@dataclasses.dataclass(frozen=True)
class Action:
    action: str
    rule: str | None = None
    customer_id: int | None = None
    table_name: str | None = None
    row_count: int = 0
    as_of: dt.date | None = None
    dry_run: bool = False
    details: dict = dataclasses.field(default_factory=dict)


def canonical_sql(r: str) -> str:
    """The text a version-2 record's hash covers, from the columns of `r` (a row alias or
    a subquery): built-ins only, so that `lifecycle audit verify` can recompute it from
    any row and a certificate can carry it (a JSON array a verifier parses back)."""
    return (f"jsonb_build_array('lifecycle_audit/2', {r}.audit_id,"
            f" to_char({r}.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
            f" {r}.action, {r}.rule, {r}.customer_id, {r}.table_name, {r}.row_count, {r}.as_of, {r}.dry_run,"
            f" {r}.dag_id, {r}.run_id, {r}.task_id, {r}.try_number, {r}.details, {r}.link_id)::text")


def leaf_sql(r: str) -> str:
    return f"encode(sha256(convert_to({canonical_sql(r)}, 'UTF8')), 'hex')"


COLUMNS = ("audit_id, recorded_at, action, rule, customer_id, table_name, row_count, as_of, dry_run,"
           " dag_id, run_id, task_id, try_number, details, link_id, hash_version, prev_hash, row_hash")

# `{rows}` yields (customer_id, row_count, details) for every record to write (from the
# CTEs `{before}`, if any; a record's details are added to those all records share); the
# fields all records share are parameters prefixed `audit_`, so they cannot collide with
# the change's own. One statement: the records, their hashes and the chain link.
WRITE = f"""
WITH {{before}} link AS (SELECT nextval('public.lifecycle_audit_link_id_seq') AS link_id),
numbered AS (
    SELECT nextval('public.lifecycle_audit_id_seq') AS audit_id, clock_timestamp() AS recorded_at,
           %(audit_action)s::text AS action, %(audit_rule)s::text AS rule, r.customer_id::bigint AS customer_id,
           %(audit_table_name)s::text AS table_name, r.row_count::bigint AS row_count, %(audit_as_of)s::date AS as_of,
           %(audit_dry_run)s::boolean AS dry_run, %(audit_dag_id)s::text AS dag_id, %(audit_run_id)s::text AS run_id,
           %(audit_task_id)s::text AS task_id, %(audit_try_number)s::integer AS try_number,
           %(audit_details)s::jsonb || r.details AS details, link.link_id
    FROM ({{rows}}) r, link
), written AS (
    INSERT INTO public.lifecycle_audit ({COLUMNS})
    SELECT n.*, {HASH_VERSION}, '', {leaf_sql('n')} FROM numbered n
    RETURNING audit_id, recorded_at, customer_id, row_count, row_hash, link_id
), sealed AS (
    SELECT (SELECT link_id FROM link) AS link_id, s.*
    FROM public.lifecycle_audit_seal((SELECT link_id FROM link),
                                     (SELECT array_agg(row_hash ORDER BY audit_id) FROM written),
                                     (SELECT min(audit_id) FROM written), (SELECT max(audit_id) FROM written)) s
)
SELECT w.audit_id, w.recorded_at, w.row_hash, w.customer_id, w.row_count,
       s.link_id, s.seq, s.link_hash, s.total_records, s.merkle_root, s.sealed_at
FROM written w CROSS JOIN sealed s
ORDER BY w.audit_id
"""

ONE = ("SELECT %(audit_customer_id)s::bigint AS customer_id, %(audit_row_count)s::bigint AS row_count,"
       " '{}'::jsonb AS details")
# A set-based change and its records in one statement: one record per customer with the
# number of that customer's rows the change touched.
PER_CUSTOMER = "changed AS ({change} RETURNING {owner} AS customer_id),"
PER_CUSTOMER_ROWS = ("SELECT customer_id, count(*) AS row_count, '{}'::jsonb AS details FROM changed"
                     " GROUP BY customer_id")
# Records given by the caller: per customer its count and its own details.
GIVEN = ("SELECT * FROM unnest(%(audit_customers)s::bigint[], %(audit_counts)s::bigint[],"
         " %(audit_each)s::text[]::jsonb[]) r(customer_id, row_count, details)")
# A purge's records from its rows per customer and table (flat arrays): one per customer,
# its rows in all and per table.
PER_TABLE_COUNTS = ("SELECT r.customer_id, sum(r.n) AS row_count, jsonb_build_object('tables', jsonb_object_agg("
                    "(%(audit_tables)s::text[])[r.t], r.n)) AS details FROM unnest(%(audit_customers)s::bigint[],"
                    " %(audit_table_numbers)s::int[], %(audit_counts)s::bigint[]) r(customer_id, t, n)"
                    " GROUP BY r.customer_id")
RETURNED = ("audit_id", "recorded_at", "row_hash", "customer_id", "row_count",
            "link_id", "seq", "link_hash", "total_records", "merkle_root", "sealed_at")


def approval_details(approval: dict) -> dict:
    """How an audit row records the approval an action needed (`workflows.approvals.approval_given`)."""
    return {"approval_required": approval["required"], "approved_by": approval.get("by"),
            "approved_at": approval.get("at")}


def _fields(record) -> dict:
    """A dataclass's fields as a flat dict (shallow: cheap, called once per record)."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def _values(action: Action, run: RunContext) -> dict:
    values = {**_fields(action), **_fields(run)}
    values["details"] = json.dumps(action.details, sort_keys=True)
    return {f"audit_{key}": value for key, value in values.items()}


def _events(cur, action: Action, run: RunContext) -> list[dict]:
    common = {**_fields(action), **_fields(run), "as_of": action.as_of.isoformat() if action.as_of else None}
    return [{**common, **dict(zip(RETURNED, row, strict=True))} for row in cur.fetchall()]


def record(cur, action: Action, run: RunContext) -> dict:
    """Write the record (and its link) in the current transaction; return the event to emit after commit."""
    cur.execute(WRITE.replace("{before}", "").replace("{rows}", ONE), _values(action, run))
    return _events(cur, action, run)[0]


def record_per_customer(cur, change: str, owner: str, params: dict, action: Action, run: RunContext) -> list[dict]:
    """Run the data-modifying statement `change` (whose rows' customer id is the SQL
    expression `owner`) and write one record per customer it touched, with that
    customer's row count, and their link, in the same statement; return the events to
    emit after commit. `action` gives the fields every record shares (its customer id
    and count are ignored)."""
    before = PER_CUSTOMER.format(change=change, owner=owner)
    cur.execute(WRITE.replace("{before}", before).replace("{rows}", PER_CUSTOMER_ROWS),
                {**params, **_values(action, run)})
    return _events(cur, action, run)


def record_each(cur, records: dict[int, tuple[int, dict]], action: Action, run: RunContext) -> list[dict]:
    """Write one record per customer of `records` (customer id -> (row count, the record's
    own details, added to `action.details`)) and their link, in one statement; return the
    events to emit after commit."""
    if not records:
        return []
    each = {"audit_customers": int_array(records), "audit_counts": int_array(count for count, _ in records.values()),
            "audit_each": [json.dumps(details, sort_keys=True) for _, details in records.values()]}
    cur.execute(WRITE.replace("{before}", "").replace("{rows}", GIVEN), {**each, **_values(action, run)})
    events = _events(cur, action, run)
    for event in events:
        event["details"] = {**action.details, **records[event["customer_id"]][1]}
    return events


def record_tables(cur, tables: dict[int, dict[str, int]], action: Action, run: RunContext) -> list[dict]:
    """Write one record per customer of `tables` (customer id -> rows per table), its rows
    in all as the count and per table in `details.tables`, and their link, in one
    statement (the details built in SQL); return the events to emit after commit."""
    if not tables:
        return []
    names = sorted({table for counts in tables.values() for table in counts})
    number = {table: i for i, table in enumerate(names, start=1)}
    pairs = [(customer_id, number[table], n) for customer_id, counts in tables.items() for table, n in counts.items()]
    customers, numbers, counts = zip(*pairs, strict=True)
    cur.execute(WRITE.replace("{before}", "").replace("{rows}", PER_TABLE_COUNTS),
                {"audit_customers": int_array(customers), "audit_table_numbers": int_array(numbers),
                 "audit_counts": int_array(counts), "audit_tables": names, **_values(action, run)})
    events = _events(cur, action, run)
    for event in events:
        event["details"] = {**action.details, "tables": tables[event["customer_id"]]}
    return events


# The actions that remove rows (what reports count as removed).
REMOVING_ACTIONS = ("purge", "delete", "anonymise", "drop_partition")
# Committed actions that remove or reduce data, or change what may be removed: these
# also go to the evidence store's ledger, outside the database (restore-safe deletions).
LEDGER_ACTIONS = frozenset({*REMOVING_ACTIONS, "erase_on_request", "end_relationship",
                            "backdate_relationship_end", "place_legal_hold", "release_legal_hold", "file_remove"})


# What a restore's reconciliation needs to do the action again (rules/restore.py): the
# end date an offboarding set (and the one an approved back-dating replaced), the hold's id
# (from the record); the case a hold belongs
# to is free text, so it reaches the ledger only (an event's `ledger`), never the trail.
REPLAY_DETAILS = ("relationship_ended_on", "provisional_end", "legal_hold_id")


def ledger_entry(event: dict) -> dict:
    """The ledger's copy of a committed event (no personal data: ids, counts, hashes)."""
    return {"audit_id": event["audit_id"], "row_hash": event["row_hash"], "action": event["action"],
            "rule": event["rule"], "customer_id": event["customer_id"],
            "tables": tables_of(event),
            "as_of": event["as_of"], "dag_id": event["dag_id"], "run_id": event["run_id"],
            "partition": event["details"].get("partition"), "recorded_at": _iso(event["recorded_at"])} | {
                key: event["details"][key] for key in REPLAY_DETAILS if key in event["details"]} | event.get(
                "ledger", {})


def tables_of(record: dict) -> dict[str, int]:
    """The rows per table a record (an event or a row of `lifecycle_audit`) says it touched."""
    if "tables" in record["details"]:  # a purge's (one per customer and rule), Airflow metadata's cleanup
        return record["details"]["tables"]
    return {record["table_name"]: record["row_count"]} if record["table_name"] else {}


def _iso(value) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


def batch_event(events: list[dict]) -> dict:
    """The one log record of a committed transaction: its run, its links (what the audit
    report matches against the database) and what its records say, summed."""
    first = events[0]
    links = {}
    summary: Counter[tuple[str, str, str, bool]] = Counter()
    for e in events:
        if e["link_id"] not in links:  # one link per statement: many events share it
            links[e["link_id"]] = {"link_id": e["link_id"], "seq": e["seq"], "link_hash": e["link_hash"],
                                   "merkle_root": e["merkle_root"], "total_records": e["total_records"],
                                   "sealed_at": _iso(e["sealed_at"])}
        for table, count in (tables_of(e) or {"": e["row_count"]}).items():
            summary[(e["action"], e["rule"] or "", table, bool(e["dry_run"]))] += count
    return {"dag_id": first["dag_id"], "run_id": first["run_id"], "task_id": first["task_id"],
            "try_number": first["try_number"], "recorded_at": _iso(first["recorded_at"]), "records": len(events),
            "audit_ids": [min(e["audit_id"] for e in events), max(e["audit_id"] for e in events)],
            "customers": len({e["customer_id"] for e in events if e["customer_id"] is not None}),
            "links": list(links.values()),
            "actions": [{"action": a, "rule": r or None, "table_name": t or None, "dry_run": d, "row_count": n}
                        for (a, r, t, d), n in summary.items()]}


def emit(events: list[dict]) -> None:
    """After commit: the removing actions to the ledger (first: it is the durable witness
    outside the database), the chain head to the checkpoint writer, then one log record
    for the transaction (a sentence for people, one JSON record for machines). The log
    is written even when the evidence store cannot be (the error is raised after)."""
    if not events:
        return
    try:
        evidence_store().append_ledger([ledger_entry(e) for e in events
                                        if e["action"] in LEDGER_ACTIONS and not e["dry_run"]])
        checkpoints.committed(events)
    finally:
        batch = batch_event(events)
        human_log.info("%s (audit #%s-#%s)", sentence(batch), *batch["audit_ids"])
        audit_log.info("%s%s", EVENT_PREFIX, json.dumps(batch, sort_keys=True, default=str))


EARLIER_TRIES = f"""
SELECT a.action, a.rule, a.customer_id, a.table_name, a.row_count, a.as_of::text, a.dry_run, a.details,
       a.dag_id, a.run_id, a.task_id, a.try_number, {", ".join("a." + c if c in ("audit_id", "recorded_at", "row_hash",
       "customer_id", "row_count", "link_id") else "l." + c for c in RETURNED)}
FROM lifecycle_audit a JOIN lifecycle_audit_link l ON l.link_id = a.link_id
WHERE a.dag_id = %s AND a.run_id = %s AND a.task_id = %s AND a.try_number < %s
ORDER BY l.seq, a.audit_id
"""


def relog_earlier_tries(conn, run: RunContext) -> int:
    """A retry's first step: emit again what the task's earlier tries committed, so that a
    crash between a commit and its log leaves the event in this try's log ("logged by the
    retry"; the ledger entries repeat, the audit id tells them apart). The number of links."""
    with conn.cursor() as cur:
        cur.execute(EARLIER_TRIES, (run.dag_id, run.run_id, run.task_id, run.try_number))
        names = [*(f.name for f in dataclasses.fields(Action)), *_fields(RunContext()), *RETURNED]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    conn.rollback()
    by_link: dict[int, list[dict]] = {}
    for row in rows:
        by_link.setdefault(row["link_id"], []).append(row)
    for events in by_link.values():
        emit(events)
    return len(by_link)


def sentence(batch: dict) -> str:
    """The transaction's records as one line a person reads in the task log."""
    parts = []
    for a in batch["actions"]:
        rule = f"rule {a['rule']}" if a["rule"] else "lifecycle"
        what = f" {a['row_count']} row(s) of {a['table_name']}" if a["table_name"] else ""
        parts.append(f"{rule}: {'DRY RUN, would ' if a['dry_run'] else ''}{a['action']}{what}")
    return f"{'; '.join(parts)} ({batch['records']} record(s), {batch['customers']} customer(s))"


def parse_event(message: str) -> dict | None:
    """The audit event in a log message, or None when the message is something else."""
    start = message.find(EVENT_PREFIX + "{")
    if start < 0:
        return None
    return json.loads(message[start + len(EVENT_PREFIX):])
