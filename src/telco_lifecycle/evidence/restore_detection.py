"""Restore detection: is the telecom database behind the deletion ledger?

Every committed removal is in the ledger of the evidence store, outside the database,
with the id and hash of its audit row. A database restored from an earlier backup lacks
the audit rows of everything done after the backup, and holds the data those actions
removed. The gap is the ledger entries whose audit row the database has neither in its
chain nor linked by a `reapplied_after_restore` row (rules/restore.py writes those).
Purges and `retention_verification` refuse to run on a database with a gap.
"""

from __future__ import annotations

import dataclasses

from telco_lifecycle.database import int_array
from telco_lifecycle.errors import Refused
from telco_lifecycle.evidence.store import EvidenceStore, evidence_store
from telco_lifecycle.settings import read_sql

REAPPLIED = "reapplied_after_restore"  # one per ledger entry re-applied; links it to the chain
RECONCILED = "restore_reconciled"  # one per reconciliation that re-applied anything
CHUNK = 10_000  # ledger entries looked up per query
NEXT_STEP = ("Next step: trigger the DAG restore_reconciliation (or run `lifecycle restore-reconcile`;"
             " `--dry-run` lists what it would re-apply), which deletes that data again.")


@dataclasses.dataclass(frozen=True)
class Gap:
    """The ledger entries the database lacks (in ledger order), and its last audit row."""

    entries: list[dict]
    head: dict | None

    def describe(self) -> str:
        if not self.entries:
            return "the database's audit trail holds every action of the deletion ledger"
        ids = [e["audit_id"] for e in self.entries]
        days = sorted(str(e["recorded_at"])[:10] for e in self.entries)
        dags = ", ".join(sorted({str(e["dag_id"]) for e in self.entries}))
        head = (f"#{self.head['audit_id']}, recorded {self.head['recorded_at']:%Y-%m-%d %H:%M %Z}" if self.head
                else "no row at all")
        return (f"the telecom database is behind the deletion ledger: {len(ids)} recorded action(s) are missing"
                f" from its audit trail (ledger audit ids {min(ids)}-{max(ids)}, recorded {days[0]} to {days[-1]},"
                f" by {dags}); its audit trail ends at {head}. It was restored from an earlier backup, so the data"
                " those actions removed is back")


class RestoredDatabase(Refused):
    """The database is behind the ledger; `what` was stopped before changing anything."""

    recorded = False  # no audit row into a database that is behind its ledger

    def __init__(self, gap: Gap, what: str):
        self.gap = gap
        super().__init__(f"{gap.describe()}. {what} stopped before changing anything. {NEXT_STEP}")


def find_gap(conn, store: EvidenceStore | None = None) -> Gap:
    """Compare the whole ledger with the database (read only)."""
    store = store or evidence_store()
    missing: list[dict] = []
    with conn.cursor() as cur:
        chunk: list[dict] = []
        for entry in store.ledger():
            chunk.append(entry)
            if len(chunk) == CHUNK:
                missing += _missing(cur, chunk)
                chunk = []
        missing += _missing(cur, chunk)
        cur.execute("SELECT audit_id, recorded_at FROM lifecycle_audit ORDER BY audit_id DESC LIMIT 1")
        row = cur.fetchone()
    conn.rollback()
    return Gap(missing, {"audit_id": row[0], "recorded_at": row[1]} if row else None)


def _missing(cur, entries: list[dict]) -> list[dict]:
    if not entries:
        return []
    cur.execute(read_sql("audit/ledger_missing.sql"),
                {"ids": int_array(e["audit_id"] for e in entries), "hashes": [e["row_hash"] for e in entries]})
    return [entries[i - 1] for (i,) in cur.fetchall()]


def refuse_if_restored(conn, what: str) -> None:
    """Raise RestoredDatabase (naming the gap and the next step) when the database is behind the ledger."""
    gap = find_gap(conn)
    if gap.entries:
        raise RestoredDatabase(gap, what)
