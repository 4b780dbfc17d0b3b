"""Audit evidence: one `lifecycle_audit` record per action (a retention purge: one per
customer and rule, its rows per table), in the caller's transaction, chained set-based;
after commit, the ledger, one log event per transaction and the signed checkpoint.

Each statement that writes records stores what they share once, on their chain link (the
statement: action, rule, dates, run, shared details), and per record only its own
fields (migration 0031). Hashes are computed in the same INSERT ... SELECT: the
statement's over its canonical JSON text, each record's over its own fields and the
statement's hash; `lifecycle_audit_seal` appends the link, with the Merkle root of the
statement's records, chained to the head, which it locks until commit. No trigger runs
per row. `lifecycle_audit`, a view, gives every record with every field.

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
from telco_lifecycle.evidence.store import REPLAY_DETAILS, evidence_store
from telco_lifecycle.settings import AUDIT_LOGGER

EVENT_PREFIX = "AUDIT "
audit_log = logging.getLogger(AUDIT_LOGGER)
human_log = logging.getLogger("telco_lifecycle")


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
    ledger: dict = dataclasses.field(default_factory=dict)  # the ledger's only, never the trail (its `shared`)


# Hash version 3 (migration 0031): a statement's records share their chain link, which
# holds the fields they share (the statement) and the hash of its canonical text; a
# record holds its own fields, and its text ends with the statement's hash.
STATEMENT_TYPES = {"action": "text", "rule": "text", "table_name": "text", "tables": "text[]", "as_of": "date",
                   "dry_run": "boolean", "dag_id": "text", "run_id": "text", "task_id": "text",
                   "try_number": "integer", "details": "jsonb"}
STATEMENT_FIELDS = ("link_id", *STATEMENT_TYPES)
RECORD_FIELDS = ("audit_id", "customer_id", "row_count", "counts", "details")


def statement_text_sql(s: str) -> str:
    """The text a statement's hash covers, from the columns of `s` (a link, or the
    statement being written): the JSON array of a version tag and STATEMENT_FIELDS, by
    built-ins only, so that `lifecycle audit verify` recomputes it from any link and a
    certificate carries it."""
    return f"json_build_array('lifecycle_audit_statement/3', {', '.join(f'{s}.{f}' for f in STATEMENT_FIELDS)})::text"


def record_text_sql(r: str, statement_hash: str) -> str:
    """The text a version-3 record's hash covers: the JSON array of a version tag,
    RECORD_FIELDS of `r` (a row alias) and `statement_hash` (an expression): joined as
    text, json_build_array's very text (tests/test_audit_trail.py) at a fraction of its
    cost, paid once per record of every purge."""
    return (f"('[\"lifecycle_audit/3\", ' || {r}.audit_id || ', ' || coalesce({r}.customer_id::text, 'null')"
            f" || ', ' || {r}.row_count || ', ' || coalesce(array_to_json({r}.counts)::text, 'null')"
            f" || ', ' || coalesce({r}.details::text, 'null') || ', \"' || {statement_hash} || '\"]')")


def sha256_sql(text: str) -> str:
    return f"encode(sha256(convert_to({text}, 'UTF8')), 'hex')"


def v2_text_sql(r: str) -> str:
    """The text a version-2 record's hash covers (written until migration 0031), from the
    columns of `r`: the JSON array of a version tag and every field of the record."""
    fields = ("audit_id", "recorded_at", "action", "rule", "customer_id", "table_name", "row_count", "as_of",
              "dry_run", "dag_id", "run_id", "task_id", "try_number", "details", "link_id")
    values = [f"to_char({r}.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
              if field == "recorded_at" else f"{r}.{field}" for field in fields]
    return f"json_build_array('lifecycle_audit/2', {', '.join(values)})::text"


# The actions that remove rows (what reports count as removed).
REMOVING_ACTIONS = ("purge", "delete", "anonymise", "drop_partition")
# Committed actions that remove or reduce data, or change what may be removed: these
# also go to the evidence store's ledger, outside the database (restore-safe deletions).
LEDGER_ACTIONS = frozenset({*REMOVING_ACTIONS, "erase_on_request", "end_relationship",
                            "backdate_relationship_end", "place_legal_hold", "release_legal_hold", "file_remove"})
LEDGER_ACTION_LIST = ", ".join(f"'{action}'" for action in sorted(LEDGER_ACTIONS))


def replay_sql(details: str) -> str:
    """The replay details (REPLAY_DETAILS) of `details` (a jsonb expression), as jsonb."""
    pairs = ", ".join(f"'{key}', {details}->'{key}'" for key in REPLAY_DETAILS)
    return f"jsonb_strip_nulls(jsonb_build_object({pairs}))"


def ledger_line_sql(r: str, extra: str = "'{}'::jsonb") -> str:
    """One record's ledger line (the format of the records written before migration
    0031, which the ledger still holds and `store.ledger` reads; a retry writes its
    earlier tries' lines so), NULL for a record the ledger does not take (LEDGER_ACTIONS,
    not dry runs), from the columns of `r` (a row of the `lifecycle_audit` view): its ids,
    counts per table, run, time and what a replay needs, plus `extra` (jsonb).
    No personal data: ids, counts, names of tables and rules, hashes."""
    tables = (f"coalesce({r}.details->'tables', CASE WHEN {r}.table_name IS NOT NULL"
              f" THEN jsonb_build_object({r}.table_name, {r}.row_count) ELSE '{{}}'::jsonb END)")
    return (f"CASE WHEN {r}.action IN ({LEDGER_ACTION_LIST}) AND NOT {r}.dry_run THEN"
            f" (jsonb_build_object('audit_id', {r}.audit_id, 'row_hash', {r}.row_hash, 'action', {r}.action,"
            f" 'rule', {r}.rule, 'customer_id', {r}.customer_id, 'tables', {tables}, 'as_of', {r}.as_of,"
            f" 'dag_id', {r}.dag_id, 'run_id', {r}.run_id, 'partition', {r}.details->'partition',"
            f" 'recorded_at', {r}.recorded_at) || {replay_sql(f'{r}.details')} || {extra})::text END")


# A statement's ledger line (one for all its records; `store.ledger` reads it back as one
# entry per record), from the CTEs `statement` (k), `sealed` (s) and `aggregated` (w):
# what they share once (`shared`: what a replay needs, and Action.ledger), per record its
# id, hash, customer, count and rows per table. json, not jsonb: text built once.
STATEMENT_LEDGER_LINE = f"""CASE WHEN k.action IN ({LEDGER_ACTION_LIST}) AND NOT k.dry_run THEN
    json_build_object('link_id', k.link_id, 'action', k.action, 'rule', k.rule, 'table_name', k.table_name,
                      'tables', k.tables, 'as_of', k.as_of, 'dag_id', k.dag_id, 'run_id', k.run_id,
                      'recorded_at', s.sealed_at, 'audit_ids', w.audit_ids, 'row_hashes', w.row_hashes,
                      'customer_ids', w.customer_ids, 'row_counts', w.row_counts, 'counts', w.counts,
                      'details', w.details, 'shared', {replay_sql('k.details')} || %(audit_ledger)s::jsonb)::text
END"""

# The link's lists are aggregated in one pass over the records sorted once by id (an
# ORDER BY in each aggregate sorted them six times, a third of the aggregation's cost): an
# aggregate takes a sorted subquery's rows in order when nothing stands between them, and
# the lists stay aligned with each other whatever the order, as one pass fills them all;
# `lifecycle audit verify` recomputes the Merkle root from the records in id order.
# `{rows}` yields (customer_id, row_count, counts, details) for every record to write, in
# the order their ids are drawn (from the CTEs `{before}`, if any); what they share is
# given as parameters prefixed `audit_`, which cannot collide with the change's own. One
# statement: the statement's hash, the records with theirs, and the chain link; then
# `{returned}`: each record (RECORDS) or the statement's records summed (SUMMED).
WRITE = f"""
WITH {{before}} statement AS (
    SELECT nextval('public.lifecycle_audit_link_id_seq') AS link_id,
           {", ".join(f"%(audit_{field})s::{kind} AS {field}" for field, kind in STATEMENT_TYPES.items())}
), hashed AS (
    SELECT k.*, {sha256_sql(statement_text_sql('k'))} AS statement_hash FROM statement k
), numbered AS (
    SELECT nextval('public.lifecycle_audit_id_seq') AS audit_id, r.customer_id::bigint AS customer_id,
           r.row_count::bigint AS row_count, r.counts::bigint[] AS counts, r.details::jsonb AS details
    FROM ({{rows}}) r(customer_id, row_count, counts, details)
), written AS (
    INSERT INTO public.lifecycle_audit_record AS a (audit_id, link_id, customer_id, row_count, counts, details,
                                                    row_hash)
    SELECT n.audit_id, h.link_id, n.customer_id, n.row_count, n.counts, n.details,
           {sha256_sql(record_text_sql('n', 'h.statement_hash'))}
    FROM numbered n, hashed h
    RETURNING a.audit_id, a.customer_id, a.row_count, a.counts, a.details, a.row_hash
), aggregated AS (
    SELECT count(*) AS records, min(audit_id) AS first_id, max(audit_id) AS last_id,
           array_agg(audit_id) AS audit_ids, array_agg(row_hash) AS row_hashes, array_agg(customer_id) AS customer_ids,
           array_agg(row_count) AS row_counts, array_agg(counts) FILTER (WHERE counts IS NOT NULL) AS counts,
           CASE WHEN bool_or(details IS NOT NULL) THEN array_agg(details) END AS details
    FROM (SELECT * FROM written ORDER BY audit_id) w
), sealed AS (
    SELECT s.* FROM hashed h, aggregated w, public.lifecycle_audit_seal(
        h.link_id, w.row_hashes, w.first_id, w.last_id, h.statement_hash,
        {", ".join(f"h.{field}" for field in STATEMENT_TYPES)}) s
), statement_line AS (
    SELECT k.link_id, s.seq, s.link_hash, s.total_records, s.merkle_root, s.sealed_at, w.records, w.first_id,
           w.last_id, {STATEMENT_LEDGER_LINE} AS ledger_line
    FROM hashed k, sealed s, aggregated w
)
{{returned}}
"""
LINK = ("link_id", "seq", "link_hash", "total_records", "merkle_root", "sealed_at")
RECORDS = f"""SELECT w.audit_id, k.sealed_at, w.row_hash, w.customer_id, w.row_count, k.ledger_line,
       {", ".join(f"k.{c}" for c in LINK)}
FROM written w CROSS JOIN statement_line k
ORDER BY w.audit_id"""
RETURNED = ("audit_id", "recorded_at", "row_hash", "customer_id", "row_count", "ledger_line", *LINK)
# A purge's statement, summed: its link, records, ids, time, ledger line, the customers and
# the rows changed per table (`audit_tables`, a `{totals}` of sums over `numbered`).
SUMMED = f"""SELECT {", ".join(f"k.{c}" for c in LINK)}, k.records, k.first_id, k.last_id, k.sealed_at,
       coalesce(k.ledger_line || E'\\n', ''), w.customer_ids, (SELECT ARRAY[{{totals}}]::bigint[] FROM numbered n)
FROM statement_line k CROSS JOIN aggregated w"""

ONE = "SELECT %(audit_customer_id)s::bigint, %(audit_row_count)s::bigint, NULL::bigint[], NULL::jsonb"
# A set-based change and its records in one statement: one record per customer with the
# number of that customer's rows the change touched.
PER_CUSTOMER = "changed AS ({change} RETURNING {owner} AS customer_id),"
PER_CUSTOMER_ROWS = "SELECT customer_id, count(*), NULL::bigint[], NULL::jsonb FROM changed GROUP BY customer_id"
# Records given by the caller, in its order (the ids are drawn in it): each its customer
# (or none), its count and its own details.
GIVEN = ("SELECT r.customer_id, r.row_count, NULL::bigint[], r.details FROM unnest(%(audit_customers)s::bigint[],"
         " %(audit_counts)s::bigint[], %(audit_each)s::text[]::jsonb[]) WITH ORDINALITY"
         " r(customer_id, row_count, details, n) ORDER BY r.n")


def per_table_counts(tables: list[str]) -> str:
    """A purge's records from the CTEs `changed_<table>` of `tables` (one row per row
    changed, its customer; `tables` in the order of `audit_tables`): one per customer,
    its rows in all and per table (0 where it had none), in customer order. One pass over
    the changed rows, grouped once."""
    each = ", ".join(f"count(*) FILTER (WHERE r.t = {number})" for number in range(1, len(tables) + 1))
    changed = " UNION ALL ".join(f"SELECT customer_id, {number} FROM {changed_cte(table)}"
                                 for number, table in enumerate(tables, start=1))
    return (f"SELECT r.customer_id, count(*), ARRAY[{each}], NULL::jsonb FROM ({changed}) r(customer_id, t)"
            " GROUP BY r.customer_id ORDER BY r.customer_id")


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
    return {"audit_tables": None, **{f"audit_{key}": value for key, value in values.items()}}


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


def changed_cte(table: str) -> str:
    """The CTE of `record_changes` that holds what the change of `table` returned."""
    return f"changed_{table}"


def record_changes(cur, changes: dict[str, str], params: dict, action: Action, run: RunContext, shared: str = ""
                   ) -> tuple[Written | None, dict[str, int]]:
    """Make the set-based changes (table -> a statement yielding the customer of every row
    it changed: a DELETE or UPDATE ... RETURNING) and write one record per customer they
    touched, its rows in all and per table (the link names the tables), and their link,
    all in one statement (one snapshot: a change may read another's table as it was, and
    the rows an earlier change of `changes` returned, as the CTE `changed_cte(table)`).
    The ledger's line is built in SQL, and the changed rows and records never become
    Python objects one by one. What was written, summed (None when nothing changed), and
    the rows changed per table. `shared`: CTEs the changes read (`name AS (...)`, comma
    separated), each computed once for all of them."""
    names = sorted(changes)
    before = (f"{shared}, " if shared else "") + "".join(
        f"{changed_cte(table)} AS ({change}), " for table, change in changes.items())
    totals = ", ".join(f"coalesce(sum(n.counts[{number}]), 0)" for number in range(1, len(names) + 1))
    _write(cur, before, per_table_counts(names), SUMMED.replace("{totals}", totals),
           {**params, **_values(action, run), "audit_tables": names})
    *link, records, first_id, last_id, recorded_at, ledger, customers, rows = cur.fetchone()
    changed = dict(zip(names, rows, strict=True))
    if not records:
        return None, changed
    actions: Counter[tuple[str, str, str, bool]] = Counter(
        {(action.action, action.rule or "", name, action.dry_run): n for name, n in changed.items() if n})
    return Written(_fields(run), dict(zip(LINK, link, strict=True)), records, (first_id, last_id), recorded_at,
                   frozenset(customers), actions, ledger), changed


def written(events: list[dict]) -> list[Written]:
    """Per-record events (what `record`, `record_each`, `record_per_customer` return),
    summed per statement (link); the ledger's lines once each (a statement's records
    share theirs)."""
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
            "".join(line + "\n" for line in dict.fromkeys(e["ledger_line"] for e in same) if line)))
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
    return f"{'; '.join(parts)}; in all {batch['records']} audit record(s) of {batch['customers']} customer(s)"


def parse_event(message: str) -> dict | None:
    """The audit event in a log message, or None when the message is something else."""
    start = message.find(EVENT_PREFIX + "{")
    if start < 0:
        return None
    return json.loads(message[start + len(EVENT_PREFIX):])
