"""Signed checkpoints of the audit chain's head, written to the evidence store.

After commit, every transaction that extended the chain hands its head to `committed`;
a checkpoint is written for the first of a process and then at most every
CHECKPOINT_INTERVAL, and `flush` (the end of every lifecycle task, every command, and
process exit) writes the last one: so every run that adds audit rows leaves a
checkpoint covering them, without a file and a signature per purge batch.
`retention_verification` (daily) and every audit report write one from the database's
head (`write_current`).
"""

from __future__ import annotations

import atexit
import datetime as dt
import time
from pathlib import Path

from telco_lifecycle.evidence import store

CHECKPOINT_INTERVAL = 30.0  # seconds
KIND = "lifecycle_audit_head"
_pending: dict = {}
_last_written: list[float | None] = [None]  # monotonic time of this process's last checkpoint


def document(seq: int, link_hash: str, total_records: int, last_audit_id: int | None, sealed_at,
             by: dict) -> dict:
    """What a checkpoint signs: the chain head (last link, its hash, records, time) and who wrote it."""
    return {"kind": KIND, "seq": seq, "link_hash": link_hash, "total_records": total_records,
            "last_audit_id": last_audit_id, "sealed_at": _iso(sealed_at),
            "written_at": dt.datetime.now(dt.UTC).isoformat(), "by": by}


def _iso(value) -> str | None:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def committed(link: dict, last_audit_id: int, by: dict) -> None:
    """The head after a committed transaction: its last link (seq, link_hash,
    total_records, sealed_at), the link's last record and the run that wrote it."""
    root = store.evidence_dir()
    if _pending and _pending["root"] == root and _pending["head"]["seq"] >= link["seq"]:
        return
    if _pending and _pending["root"] != root:
        flush()  # another store's head (a process acting on two databases)
    _pending.update(root=root, head=document(
        link["seq"], link["link_hash"], link["total_records"], last_audit_id, link["sealed_at"], by))
    if _last_written[0] is None or time.monotonic() - _last_written[0] >= CHECKPOINT_INTERVAL:
        flush()


def flush() -> Path | None:
    """Write the pending checkpoint, if any, to the store it belongs to, and fsync the ledger."""
    store.sync()
    if not _pending:
        return None
    root, head = _pending["root"], dict(_pending["head"])
    _pending.clear()
    _last_written[0] = time.monotonic()
    return store.EvidenceStore(root).write_checkpoint({**head, "written_at": dt.datetime.now(dt.UTC).isoformat()})


def write_current(conn, by: dict) -> Path:
    """A checkpoint of the database's chain head now (verification, audit reports)."""
    flush()
    with conn.cursor() as cur:
        cur.execute("SELECT h.seq, h.link_hash, h.total_records, h.last_audit_id, l.sealed_at"
                    " FROM lifecycle_audit_head h LEFT JOIN lifecycle_audit_link l USING (seq)")
        seq, link_hash, total, last_audit_id, sealed_at = cur.fetchone()
    conn.rollback()
    return store.evidence_store().write_checkpoint(document(seq, link_hash, total, last_audit_id, sealed_at, by))


atexit.register(flush)
