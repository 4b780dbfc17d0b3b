"""Restore detection: is the telecom database behind the deletion ledger?

Every committed removal is in the ledger of the evidence store, outside the database,
with the id and hash of its audit row. A database restored from an earlier backup lacks
the audit rows of everything done after the backup, and holds the data those actions
removed. The gap is the ledger entries whose audit row the database has neither in its
chain nor linked by a `reapplied_after_restore` row (rules/restore.py writes those).
Purges and `retention_verification` refuse to run on a database with a gap.

The ledger grows with every removal for as long as the evidence is kept, and every purge
checks it, so a check that found no gap is remembered (in LIFECYCLE_CACHE_DIR, per
evidence store): the chain's last link when it started, and the moment. Every
transaction that writes audit rows seals them into a link under the chain head's row
lock, held until it commits, so links commit in chain order, and a database that still
holds that link, with its hash, holds every audit row committed before that check:
restored or not, it lacks nothing of the ledger entries appended before it, and only
the segments appended to since are compared. A database restored from a backup older
than that link, or a cache that is gone or unreadable, means the whole ledger is
compared again; a check that found a gap is not remembered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path

from telco_lifecycle.database import int_array
from telco_lifecycle.errors import Refused
from telco_lifecycle.evidence.store import EvidenceStore, evidence_store
from telco_lifecycle.settings import cache_dir, read_sql

log = logging.getLogger(__name__)

REAPPLIED = "reapplied_after_restore"  # one per ledger entry re-applied; links it to the chain
RECONCILED = "restore_reconciled"  # one per reconciliation that re-applied anything
CHUNK = 10_000  # ledger entries looked up per query
# How much earlier than the check's start a segment's last append must be to count as
# compared: file times come from a coarse clock.
MTIME_SLACK_S = 5.0
NEXT_STEP = ("Next step: trigger the DAG restore_reconciliation (or run `lifecycle restore-reconcile`;"
             " `--dry-run` lists what it would re-apply), which deletes that data again.")


@dataclasses.dataclass(frozen=True)
class Gap:
    """The ledger entries the database lacks (in ledger order), its last audit row, and
    how many ledger entries the check compared."""

    entries: list[dict]
    head: dict | None
    compared: int = 0

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
    """The ledger entries the database lacks (read only): those appended since the last
    check that found none, or the whole ledger when the database no longer holds that
    check's chain head (see the module's docstring)."""
    store = store or evidence_store()
    started = time.time() - MTIME_SLACK_S
    missing: list[dict] = []
    compared = 0
    with conn.cursor() as cur:
        cur.execute("SELECT seq, link_hash FROM lifecycle_audit_head WHERE seq > 0")
        link = cur.fetchone()
        remembered = _remembered(cur, store)
        since = remembered["since"] if remembered else None
        chunk: list[dict] = []
        for entry in store.ledger(appended_since=since):
            chunk.append(entry)
            if len(chunk) == CHUNK:
                missing, compared, chunk = missing + _missing(cur, chunk), compared + len(chunk), []
        missing, compared = missing + _missing(cur, chunk), compared + len(chunk)
        cur.execute("SELECT audit_id, recorded_at FROM lifecycle_audit ORDER BY audit_id DESC LIMIT 1")
        head = cur.fetchone()
    conn.rollback()
    log.info("restore check: %d ledger entr%s compared with the database%s; %d missing", compared,
             "y" if compared == 1 else "ies",
             f" (the earlier ones are confirmed by its chain link {remembered['seq']})" if remembered else "",
             len(missing))
    if link and not missing:
        _remember(store, {"since": started, "seq": link[0], "link_hash": link[1]})
    return Gap(missing, {"audit_id": head[0], "recorded_at": head[1]} if head else None, compared)


def _remembered(cur, store: EvidenceStore) -> dict | None:
    """The last check that found no gap, if the database still holds the chain link it saw."""
    try:
        remembered = json.loads(check_memory_path(store).read_text(encoding="utf-8"))
        seq, link_hash, since = int(remembered["seq"]), str(remembered["link_hash"]), float(remembered["since"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    cur.execute("SELECT EXISTS (SELECT 1 FROM lifecycle_audit_link WHERE seq = %s AND link_hash = %s)",
                (seq, link_hash))
    return {"seq": seq, "since": since} if cur.fetchone()[0] else None


def _remember(store: EvidenceStore, checked: dict) -> None:
    """Replace the memory of the last clean check (a cache: losing it costs one full check)."""
    path = check_memory_path(store)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        scratch.write_text(json.dumps(checked), encoding="utf-8")
        scratch.replace(path)
    except OSError:  # a read-only cache: every check compares the whole ledger, as before
        log.warning("could not remember the restore check in %s", path.parent)


def check_memory_path(store: EvidenceStore) -> Path:
    return cache_dir() / f"restore-check-{hashlib.sha256(str(store.root).encode()).hexdigest()[:16]}.json"


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
