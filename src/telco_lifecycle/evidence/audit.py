"""Audit evidence: one `lifecycle_audit` row per action, in the caller's transaction,
and the same record as a structured event in the task log.

Neither carries personal data: the internal customer id, table names, counts and
run ids only. The database computes the hash chain (migration 0002).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging

from telco_lifecycle.evidence.store import evidence_store
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


COLUMNS = ("action, rule, customer_id, table_name, row_count, as_of, dry_run,"
           " dag_id, run_id, task_id, try_number, details, prev_hash, row_hash")
RETURNED = "audit_id, recorded_at, prev_hash, row_hash"

INSERT = f"""
INSERT INTO lifecycle_audit ({COLUMNS})
VALUES (%(action)s, %(rule)s, %(customer_id)s, %(table_name)s, %(row_count)s, %(as_of)s, %(dry_run)s,
        %(dag_id)s, %(run_id)s, %(task_id)s, %(try_number)s, %(details)s, '', '')
RETURNING {RETURNED}
"""

# A set-based change and its audit rows in one statement: one row per customer with the
# number of that customer's rows the change touched. The audit values are prefixed so
# that they cannot collide with the change's own parameters.
INSERT_PER_CUSTOMER = f"""
WITH changed AS ({{change}} RETURNING {{owner}} AS customer_id)
INSERT INTO lifecycle_audit ({COLUMNS})
SELECT %(audit_action)s, %(audit_rule)s, customer_id, %(audit_table_name)s, count(*), %(audit_as_of)s,
       %(audit_dry_run)s, %(audit_dag_id)s, %(audit_run_id)s, %(audit_task_id)s, %(audit_try_number)s,
       %(audit_details)s, '', ''
FROM changed GROUP BY customer_id ORDER BY customer_id
RETURNING {RETURNED}, customer_id, row_count
"""


def _fields(record) -> dict:
    """A dataclass's fields as a flat dict (shallow: cheap, called once per audit row)."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def _values(action: Action, run: RunContext) -> dict:
    values = {**_fields(action), **_fields(run)}
    values["details"] = json.dumps(action.details, sort_keys=True)
    return values


def _event(common: dict, audit_id, recorded_at, prev_hash, row_hash, **fields) -> dict:
    """The log event of one written row: the action and run fields (`common`, with the
    row's own `fields`) and what the database wrote."""
    return {**common, **fields, "audit_id": audit_id, "recorded_at": recorded_at.isoformat(),
            "prev_hash": prev_hash, "row_hash": row_hash}


def _common(action: Action, run: RunContext) -> dict:
    return {**_fields(action), **_fields(run), "as_of": action.as_of.isoformat() if action.as_of else None}


def record(cur, action: Action, run: RunContext) -> dict:
    """Write the audit row in the current transaction; return the event to log after commit."""
    cur.execute(INSERT, _values(action, run))
    return _event(_common(action, run), *cur.fetchone())


def record_per_customer(cur, change: str, owner: str, params: dict, action: Action, run: RunContext) -> list[dict]:
    """Run the data-modifying statement `change` (whose rows' customer id is the SQL
    expression `owner`) and write one audit row per customer it touched, with that
    customer's row count, in the same statement; return the events to log after commit.
    `action` gives the fields every row shares (its customer id and count are ignored)."""
    values = {f"audit_{key}": value for key, value in _values(action, run).items()}
    cur.execute(INSERT_PER_CUSTOMER.format(change=change, owner=owner), {**params, **values})
    common = _common(action, run)
    return [_event(common, *written, customer_id=customer_id, row_count=row_count)
            for *written, customer_id, row_count in cur.fetchall()]


# Committed actions that remove or reduce data, or change what may be removed: these
# also go to the evidence store's ledger, outside the database (restore-safe deletions).
LEDGER_ACTIONS = frozenset({"delete", "anonymise", "drop_partition", "erase_on_request", "end_relationship",
                            "place_legal_hold", "release_legal_hold", "file_remove"})


# What a restore's reconciliation needs to do the action again (rules/restore.py): the
# end date an offboarding set, the hold and its case.
REPLAY_DETAILS = ("relationship_ended_on", "case_reference", "legal_hold_id")


def ledger_entry(event: dict) -> dict:
    """The ledger's copy of a committed event (no personal data: ids, counts, hashes)."""
    return {"audit_id": event["audit_id"], "row_hash": event["row_hash"], "action": event["action"],
            "rule": event["rule"], "customer_id": event["customer_id"],
            "tables": {event["table_name"]: event["row_count"]} if event["table_name"] else {},
            "as_of": event["as_of"], "dag_id": event["dag_id"], "run_id": event["run_id"],
            "partition": event["details"].get("partition"), "recorded_at": event["recorded_at"]} | {
                key: event["details"][key] for key in REPLAY_DETAILS if key in event["details"]}


def emit(events: list[dict]) -> None:
    """After commit: append the removing actions to the ledger (first: it is the durable
    witness), then log every event, one sentence for people, one JSON record for machines.
    The events are logged even when the ledger cannot be written (the error is raised after)."""
    try:
        evidence_store().append_ledger([ledger_entry(e) for e in events
                                        if e["action"] in LEDGER_ACTIONS and not e["dry_run"]])
    finally:
        for event in events:
            human_log.info("%s (audit #%s)", sentence(event), event["audit_id"])
            audit_log.info("%s%s", EVENT_PREFIX, json.dumps(event, sort_keys=True, default=str))


def sentence(event: dict) -> str:
    """The audit event as one line a person reads in the task log."""
    who = f"customer {event['customer_id']}" if event["customer_id"] is not None else "all customers"
    what = f"{event['row_count']} row(s) of {event['table_name']}" if event["table_name"] else ""
    mode = "DRY RUN, would " if event["dry_run"] else ""
    rule = f"rule {event['rule']}" if event["rule"] else "lifecycle"
    extra = "".join(f", {k}={v}" for k, v in event["details"].items())
    return f"{rule}: {mode}{event['action']} {what} for {who}{extra}".replace("  ", " ")


def parse_event(message: str) -> dict | None:
    """The audit event in a log message, or None when the message is something else."""
    start = message.find(EVENT_PREFIX + "{")
    if start < 0:
        return None
    return json.loads(message[start + len(EVENT_PREFIX):])
