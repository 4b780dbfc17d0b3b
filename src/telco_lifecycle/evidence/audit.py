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
from collections.abc import Sequence

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
    ledger: dict = dataclasses.field(default_factory=dict)  # the ledger's only, never the trail (ledger_line_sql)


# A version-2 record's canonical text: the JSON array of a version tag and these columns.
CANONICAL_FIELDS = ("audit_id", "recorded_at", "action", "rule", "customer_id", "table_name", "row_count", "as_of",
                    "dry_run", "dag_id", "run_id", "task_id", "try_number", "details", "link_id")
# The fields all records of one statement share, with their types: WRITE takes them as
# parameters (`audit_` + the field) and renders them once (`shared`), not per record.
SHARED_TYPES = {"action": "text", "rule": "text", "table_name": "text", "as_of": "date", "dry_run": "boolean",
                "dag_id": "text", "run_id": "text", "task_id": "text", "try_number": "integer"}
SHARED_FIELDS = tuple(SHARED_TYPES)
NUMBERS = frozenset({"audit_id", "customer_id", "row_count", "try_number", "link_id"})
JSONB = frozenset({"details", "tables", "partition"})


def json_text(value: str, field: str = "") -> str:
    """The JSON text of `value` (a SQL expression; `field`: the column it is) as the
    json_build_* functions render it: integers and jsonb by their own text (the same),
    anything else through to_json; NULL as null."""
    if field in NUMBERS or field in JSONB:
        return f"coalesce(({value})::text, 'null')"
    return f"coalesce(to_json({value})::text, 'null')"


def _joined(parts: list[tuple[str, str]], end: str) -> str:
    """SQL that joins, as text, each (literal, expression) of `parts` in turn, then `end`."""
    return "(" + " || ".join(f"'{literal}' || {expression}" for literal, expression in parts) + f" || '{end}')"


def canonical_sql(r: str, shared: str | None = None) -> str:
    """The text a version-2 record's hash covers, from the columns of `r` (a row alias;
    `shared`: the alias of the statement's SHARED_FIELDS already rendered): built-ins
    only, so that `lifecycle audit verify` can recompute it from any row and a
    certificate can carry it (a JSON array a verifier parses back). Joined as text, the
    very text json_build_array gives (and jsonb_build_array before it, which wrote the
    older records: tests/test_audit_trail.py proves both), at two thirds of the cost."""
    time = f"to_char({r}.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    parts = [f"'\"' || {time} || '\"'" if field == "recorded_at"
             else f"{shared}.{field}" if shared and field in SHARED_FIELDS
             else json_text(f"{r}.{field}", field) for field in CANONICAL_FIELDS]
    return _joined([('["lifecycle_audit/2", ' if number == 0 else ", ", part) for number, part in enumerate(parts)],
                   "]")


def leaf_sql(r: str, shared: str | None = None) -> str:
    return f"encode(sha256(convert_to({canonical_sql(r, shared)}, 'UTF8')), 'hex')"


COLUMNS = ("audit_id, recorded_at, action, rule, customer_id, table_name, row_count, as_of, dry_run,"
           " dag_id, run_id, task_id, try_number, details, link_id, hash_version, prev_hash, row_hash")

# The actions that remove rows (what reports count as removed).
REMOVING_ACTIONS = ("purge", "delete", "anonymise", "drop_partition")
# Committed actions that remove or reduce data, or change what may be removed: these
# also go to the evidence store's ledger, outside the database (restore-safe deletions).
LEDGER_ACTIONS = frozenset({*REMOVING_ACTIONS, "erase_on_request", "end_relationship",
                            "backdate_relationship_end", "place_legal_hold", "release_legal_hold", "file_remove"})
# What a restore's reconciliation needs to do the action again (rules/restore.py): the
# end date an offboarding set (and the one an approved back-dating replaced), the hold's id
# (from the record); the case a hold belongs to is free text, so it reaches the ledger
# only (`Action.ledger`), never the trail.
REPLAY_DETAILS = ("relationship_ended_on", "provisional_end", "legal_hold_id")


def ledger_line_sql(r: str, extra: str = "'{}'::jsonb", shared: str | None = None) -> str:
    """The ledger's line for the record `r` (a row alias; `shared` as in canonical_sql),
    NULL for a record the ledger does not take (LEDGER_ACTIONS, not dry runs): its ids,
    counts per table, run, time and what a replay needs, plus `extra` (a jsonb
    expression). Built by the database, in the statement that writes the record, so that
    a purge batch's lines reach Python as one text; joined as text (json_build_object's
    text, at under half its cost) unless there is something to add.
    No personal data: ids, counts, names of tables and rules, hashes."""
    actions = ", ".join(f"'{action}'" for action in sorted(LEDGER_ACTIONS))
    replay = [f"'{key}'" for key in REPLAY_DETAILS]
    values = {"audit_id": f"{r}.audit_id", "row_hash": f"{r}.row_hash", "action": f"{r}.action", "rule": f"{r}.rule",
              "customer_id": f"{r}.customer_id",
              "tables": f"coalesce({r}.details->'tables', CASE WHEN {r}.table_name IS NOT NULL"
                        f" THEN jsonb_build_object({r}.table_name, {r}.row_count) ELSE '{{}}'::jsonb END)",
              "as_of": f"{r}.as_of", "dag_id": f"{r}.dag_id", "run_id": f"{r}.run_id",
              "partition": f"{r}.details->'partition'", "recorded_at": f"{r}.recorded_at"}
    fields = ", ".join(f"'{key}', {value}" for key, value in values.items())
    added = (f"jsonb_strip_nulls(jsonb_build_object({', '.join(f'{key}, {r}.details->{key}' for key in replay)}))"
             f" || {extra}")
    joined = _joined([(("{" if number == 0 else ", ") + f'"{key}" : ',
                       f"{shared}.{key}" if shared and key in SHARED_FIELDS else json_text(value, key))
                      for number, (key, value) in enumerate(values.items())], "}")
    return (f"CASE WHEN NOT ({r}.action IN ({actions}) AND NOT {r}.dry_run) THEN NULL"
            f" WHEN {r}.details ?| ARRAY[{', '.join(replay)}] OR {extra} <> '{{}}'::jsonb"
            f" THEN (jsonb_build_object({fields}) || {added})::text ELSE {joined} END")


SHARED = {field: f"%(audit_{field})s::{kind}" for field, kind in SHARED_TYPES.items()}

# `{rows}` yields (customer_id, row_count, details) for every record to write (from the
# CTEs `{before}`, if any; a record's details are added to those all records share); the
# fields all records share are parameters prefixed `audit_`, so they cannot collide with
# the change's own. One statement: the records, their hashes and the chain link; then
# `{returned}`: each record (RECORDS) or the statement's records summed (SUMMED).
WRITE = f"""
WITH {{before}} link AS (SELECT nextval('public.lifecycle_audit_link_id_seq') AS link_id),
shared AS (SELECT {", ".join(f"{json_text(value)} AS {field}" for field, value in SHARED.items())}),
numbered AS (
    SELECT nextval('public.lifecycle_audit_id_seq') AS audit_id, clock_timestamp() AS recorded_at,
           {SHARED["action"]} AS action, {SHARED["rule"]} AS rule, r.customer_id::bigint AS customer_id,
           {SHARED["table_name"]} AS table_name, r.row_count::bigint AS row_count,
           {", ".join(f"{SHARED[field]} AS {field}" for field in SHARED_FIELDS[3:])},
           %(audit_details)s::jsonb || r.details AS details, link.link_id
    FROM ({{rows}}) r, link
), written AS (
    INSERT INTO public.lifecycle_audit AS a ({COLUMNS})
    SELECT n.*, {HASH_VERSION}, '', {leaf_sql('n', 'k')} FROM numbered n, shared k
    RETURNING a.*
), sealed AS (
    SELECT (SELECT link_id FROM link) AS link_id, s.*
    FROM public.lifecycle_audit_seal((SELECT link_id FROM link),
                                     (SELECT array_agg(row_hash ORDER BY audit_id) FROM written),
                                     (SELECT min(audit_id) FROM written), (SELECT max(audit_id) FROM written)) s
)
{{returned}}
"""
LINK = ("link_id", "seq", "link_hash", "total_records", "merkle_root", "sealed_at")
LEDGER_LINE = ledger_line_sql("w", "%(audit_ledger)s::jsonb", "k")
RECORDS = f"""SELECT w.audit_id, w.recorded_at, w.row_hash, w.customer_id, w.row_count, {LEDGER_LINE},
       {", ".join(f"s.{c}" for c in LINK)}
FROM written w CROSS JOIN sealed s CROSS JOIN shared k
ORDER BY w.audit_id"""
RETURNED = ("audit_id", "recorded_at", "row_hash", "customer_id", "row_count", "ledger_line", *LINK)
SUMMED = f"""SELECT {", ".join(f"s.{c}" for c in LINK)}, count(*), min(w.audit_id), max(w.audit_id), min(w.recorded_at),
       coalesce(string_agg({LEDGER_LINE} || E'\\n', '' ORDER BY w.audit_id), '')
FROM written w CROSS JOIN sealed s CROSS JOIN shared k
GROUP BY {", ".join(f"s.{c}" for c in LINK)}"""

ONE = ("SELECT %(audit_customer_id)s::bigint AS customer_id, %(audit_row_count)s::bigint AS row_count,"
       " '{}'::jsonb AS details")
# A set-based change and its records in one statement: one record per customer with the
# number of that customer's rows the change touched.
PER_CUSTOMER = "changed AS ({change} RETURNING {owner} AS customer_id),"
PER_CUSTOMER_ROWS = ("SELECT customer_id, count(*) AS row_count, '{}'::jsonb AS details FROM changed"
                     " GROUP BY customer_id")
# Records given by the caller, in its order (the ids are drawn in it): each its customer
# (or none), its count and its own details.
GIVEN = ("SELECT r.customer_id, r.row_count, r.details FROM unnest(%(audit_customers)s::bigint[],"
         " %(audit_counts)s::bigint[], %(audit_each)s::text[]::jsonb[]) WITH ORDINALITY"
         " r(customer_id, row_count, details, n) ORDER BY r.n")
# A purge's records from its rows per customer and table (flat arrays): one per customer,
# its rows in all and per table.
PER_TABLE_COUNTS = ("SELECT r.customer_id, sum(r.n) AS row_count, jsonb_build_object('tables', jsonb_object_agg("
                    "(%(audit_tables)s::text[])[r.t], r.n)) AS details FROM unnest(%(audit_customers)s::bigint[],"
                    " %(audit_table_numbers)s::int[], %(audit_counts)s::bigint[]) r(customer_id, t, n)"
                    " GROUP BY r.customer_id")


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
    values["ledger"] = json.dumps(action.ledger, sort_keys=True)
    return {f"audit_{key}": value for key, value in values.items()}


def _write(cur, before: str, rows: str, returned: str, params: dict) -> None:
    cur.execute(WRITE.replace("{before}", before).replace("{rows}", rows).replace("{returned}", returned), params)


def _events(cur, action: Action, run: RunContext) -> list[dict]:
    common = {**_fields(action), **_fields(run), "as_of": action.as_of.isoformat() if action.as_of else None}
    return [{**common, **dict(zip(RETURNED, row, strict=True))} for row in cur.fetchall()]


def record(cur, action: Action, run: RunContext) -> dict:
    """Write the record (and its link) in the current transaction; return the event to emit after commit."""
    _write(cur, "", ONE, RECORDS, _values(action, run))
    return _events(cur, action, run)[0]


def record_per_customer(cur, change: str, owner: str, params: dict, action: Action, run: RunContext) -> list[dict]:
    """Run the data-modifying statement `change` (whose rows' customer id is the SQL
    expression `owner`) and write one record per customer it touched, with that
    customer's row count, and their link, in the same statement; return the events to
    emit after commit. `action` gives the fields every record shares (its customer id
    and count are ignored)."""
    _write(cur, PER_CUSTOMER.format(change=change, owner=owner), PER_CUSTOMER_ROWS, RECORDS,
           {**params, **_values(action, run)})
    return _events(cur, action, run)


def record_each(cur, records: list[tuple[int | None, int, dict]], action: Action, run: RunContext) -> list[dict]:
    """Write one record per item of `records` ((customer id or None, row count, the
    record's own details, added to `action.details`)) and their link, in one statement;
    return the events to emit after commit, in the order given."""
    if not records:
        return []
    each = {"audit_customers": int_array(customer_id for customer_id, _, _ in records),
            "audit_counts": int_array(count for _, count, _ in records),
            "audit_each": [json.dumps(details, sort_keys=True) for _, _, details in records]}
    _write(cur, "", GIVEN, RECORDS, {**each, **_values(action, run)})
    events = _events(cur, action, run)
    for event, (customer_id, count, details) in zip(events, records, strict=True):
        if (event["customer_id"], event["row_count"]) != (customer_id, count):
            raise RuntimeError(f"audit records written out of order: {event['audit_id']} is not {customer_id}, {count}")
        event["details"] = {**action.details, **details}
    return events


@dataclasses.dataclass(frozen=True)
class Written:
    """What one statement's records committed, as the ledger, the checkpoint and the log
    take it: its link and run, how many records, their ids and customers, their rows
    summed per (action, rule, table, dry run), and their ledger lines."""

    run: dict
    link: dict
    records: int
    audit_ids: tuple[int, int]
    recorded_at: dt.datetime
    customers: frozenset[int]
    actions: Counter[tuple[str, str, str, bool]]
    ledger: str


def record_tables(cur, tables: dict[str, tuple[list[int], list[int]]], action: Action, run: RunContext
                  ) -> Written | None:
    """Write one record per customer of `tables` (table -> (customer ids, their rows)), its
    rows in all as the count and per table in `details.tables`, and their link, in one
    statement (the details and the ledger's lines built in SQL); return what was written,
    summed: a purge batch's thousand records never become Python objects one by one."""
    tables = {table: ids_counts for table, ids_counts in tables.items() if ids_counts[0]}
    if not tables:
        return None
    names = sorted(tables)
    customers = [customer_id for name in names for customer_id in tables[name][0]]
    numbers = [number for number, name in enumerate(names, start=1) for _ in tables[name][0]]
    counts = [count for name in names for count in tables[name][1]]
    _write(cur, "", PER_TABLE_COUNTS, SUMMED,
           {"audit_customers": int_array(customers), "audit_table_numbers": int_array(numbers),
            "audit_counts": int_array(counts), "audit_tables": names, **_values(action, run)})
    *link, records, first_id, last_id, recorded_at, ledger = cur.fetchone()
    actions: Counter[tuple[str, str, str, bool]] = Counter(
        {(action.action, action.rule or "", name, action.dry_run): sum(tables[name][1]) for name in names})
    return Written(_fields(run), dict(zip(LINK, link, strict=True)), records, (first_id, last_id), recorded_at,
                   frozenset(customers), actions, ledger)


def written(events: list[dict]) -> list[Written]:
    """Per-record events (what `record`, `record_each`, `record_per_customer` return),
    summed per statement (link)."""
    by_link: dict[int, list[dict]] = {}
    for event in events:
        by_link.setdefault(event["link_id"], []).append(event)
    summed = []
    for same in by_link.values():
        actions: Counter[tuple[str, str, str, bool]] = Counter()
        for e in same:
            for table, count in (tables_of(e) or {"": e["row_count"]}).items():
                actions[(e["action"], e["rule"] or "", table, bool(e["dry_run"]))] += count
        first = same[0]
        summed.append(Written(
            {key: first[key] for key in _fields(RunContext())}, {key: first[key] for key in LINK}, len(same),
            (min(e["audit_id"] for e in same), max(e["audit_id"] for e in same)), first["recorded_at"],
            frozenset(e["customer_id"] for e in same if e["customer_id"] is not None), actions,
            "".join(e["ledger_line"] + "\n" for e in same if e["ledger_line"])))
    return summed


def tables_of(record: dict) -> dict[str, int]:
    """The rows per table a record (an event or a row of `lifecycle_audit`) says it touched."""
    if "tables" in record["details"]:  # a purge's (one per customer and rule), Airflow metadata's cleanup
        return record["details"]["tables"]
    return {record["table_name"]: record["row_count"]} if record["table_name"] else {}


def _iso(value) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


def batch_event(pieces: list[Written]) -> dict:
    """The one log record of a committed transaction: its run, its links (what the audit
    report matches against the database) and what its records say, summed."""
    first = pieces[0]
    summary: Counter[tuple[str, str, str, bool]] = Counter()
    for piece in pieces:
        summary.update(piece.actions)
    return {**first.run, "recorded_at": _iso(first.recorded_at), "records": sum(p.records for p in pieces),
            "audit_ids": [min(p.audit_ids[0] for p in pieces), max(p.audit_ids[1] for p in pieces)],
            "customers": len(frozenset().union(*(p.customers for p in pieces))),
            "links": [{**p.link, "sealed_at": _iso(p.link["sealed_at"])} for p in pieces],
            "actions": [{"action": a, "rule": r or None, "table_name": t or None, "dry_run": d, "row_count": n}
                        for (a, r, t, d), n in summary.items()]}


def emit(events: Sequence[dict | Written]) -> None:
    """After commit: the removing actions to the ledger (first: it is the durable witness
    outside the database), the chain head to the checkpoint writer, then one log record
    for the transaction (a sentence for people, one JSON record for machines). The log
    is written even when the evidence store cannot be (the error is raised after).
    `events`: per-record events and statements' records summed (`Written`)."""
    pieces = [e for e in events if isinstance(e, Written)] + written([e for e in events if isinstance(e, dict)])
    if not pieces:
        return
    pieces.sort(key=lambda piece: piece.link["seq"])
    try:
        evidence_store().append_ledger("".join(piece.ledger for piece in pieces))
        checkpoints.committed(pieces[-1].link, pieces[-1].audit_ids[1], pieces[-1].run)
    finally:
        batch = batch_event(pieces)
        human_log.info("%s (audit #%s-#%s)", sentence(batch), *batch["audit_ids"])
        audit_log.info("%s%s", EVENT_PREFIX, json.dumps(batch, sort_keys=True, default=str))


# A hold's ledger line carries its case reference (`Action.ledger`, never the trail): read
# again from the hold for a line written again.
CASE_REFERENCE = ("coalesce((SELECT jsonb_build_object('case_reference', h.case_reference) FROM legal_holds h"
                  " WHERE a.action IN ('place_legal_hold', 'release_legal_hold')"
                  " AND h.legal_hold_id = (a.details->>'legal_hold_id')::bigint), '{}'::jsonb)")
EARLIER_TRIES = f"""
SELECT a.action, a.rule, a.customer_id, a.table_name, a.row_count, a.as_of::text, a.dry_run, a.details, '{{}}'::jsonb,
       a.dag_id, a.run_id, a.task_id, a.try_number, a.audit_id, a.recorded_at, a.row_hash, a.customer_id, a.row_count,
       {ledger_line_sql('a', CASE_REFERENCE)}, {", ".join("l." + c for c in LINK)}
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
    pieces = written(rows)
    for piece in pieces:
        emit([piece])
    return len(pieces)


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
