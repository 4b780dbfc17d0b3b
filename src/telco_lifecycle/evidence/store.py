"""The evidence store outside the telecom database: the deletion ledger and the signed
checkpoints of the audit chain.

A directory (LIFECYCLE_EVIDENCE_DIR, default <project>/.lifecycle/evidence; in compose
its own volume). Nothing in it is ever rewritten: every ledger append is a new segment
file and every checkpoint a new sequence-numbered file, each created exclusively, so the
same layout maps onto an object store with write-once retention (one object per file,
names that sort in creation order). A ledger segment belongs to one process, which only
ever appends to it: each append is written at once (a crash of the process loses
nothing) and fsync'd at most SYNC_INTERVAL later and at the end of every task (`sync`),
because an fsync per purge batch would cost as much as the batch's SQL. Checkpoints are
fsync'd at once.

    ledger/<time_ns>-<pid>-<random>.jsonl   one JSON entry per line, appended by one process
    checkpoints/<sequence>.json             one signed checkpoint (see signing.py)

Neither holds personal data: internal customer ids, rule and table names, counts, run
ids and hashes.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

from telco_lifecycle.evidence import signing
from telco_lifecycle.settings import project_dir

EVIDENCE_DIR_ENV = "LIFECYCLE_EVIDENCE_DIR"
SEQUENCE_DIGITS = 12
SYNC_INTERVAL = 1.0  # seconds a written ledger segment may wait for its fsync
_segments: dict[Path, tuple[int, int]] = {}  # ledger folder -> (pid, open descriptor) of this process
_last_sync = [0.0]


def evidence_dir() -> Path:
    return Path(os.environ.get(EVIDENCE_DIR_ENV) or project_dir() / ".lifecycle" / "evidence").resolve()


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)  # one, not one per call


def canonical(document: dict) -> bytes:
    """The bytes a hash or signature covers: sorted keys, no spaces, UTF-8."""
    return _CANONICAL.encode(document).encode("utf-8")


def _write_once(path: Path, data: bytes) -> None:
    """Create `path` (FileExistsError if it exists), write and fsync it and its folder."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync() -> None:
    """fsync the ledger segments this process appends to."""
    for pid, fd in _segments.values():
        if pid == os.getpid():
            os.fsync(fd)
    _last_sync[0] = time.monotonic()


class EvidenceStore:
    """Append-only ledger segments and write-once checkpoints in one directory."""

    def __init__(self, root: Path):
        self.root = root
        self.ledger_dir = root / "ledger"
        self.checkpoint_dir = root / "checkpoints"

    def _ensure(self) -> None:
        self.ledger_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)

    # --- the deletion ledger -------------------------------------------------------

    def append_ledger(self, lines: str) -> None:
        """Append committed entries (JSON lines, each ending in a newline: the database
        builds them, one per statement, `audit.STATEMENT_LEDGER_LINE`) to this process's
        segment, in one write."""
        if not lines:
            return
        self._ensure()
        os.write(self._segment(), lines.encode("utf-8"))
        if time.monotonic() - _last_sync[0] >= SYNC_INTERVAL:
            sync()

    def _segment(self) -> int:
        """This process's segment (created on its first append, never reopened)."""
        pid, fd = _segments.get(self.ledger_dir, (None, -1))
        if pid != os.getpid():
            path = self.ledger_dir / f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o640)
            _fsync_dir(self.ledger_dir)
            _segments[self.ledger_dir] = (os.getpid(), fd)
        return fd

    def ledger(self, appended_since: float | None = None) -> Iterator[dict]:
        """Every entry, one per record: segment by segment in creation order, each in
        append order (a line cut short by a crash while it was written is skipped; a
        statement's line gives its records in id order). With `appended_since` (a
        time.time()), only the segments appended to at or after it."""
        if not self.ledger_dir.is_dir():
            return
        for path in sorted(self.ledger_dir.glob("*.jsonl")):
            if appended_since is not None and path.stat().st_mtime < appended_since:
                continue
            with path.open(encoding="utf-8") as lines:
                for line in lines:
                    if line.endswith("\n"):
                        yield from ledger_entries(json.loads(line))

    # --- signed checkpoints --------------------------------------------------------

    def write_checkpoint(self, checkpoint: dict) -> Path:
        """Sign `checkpoint` (the chain head) as the next sequence number, linked to the
        previous checkpoint by its hash, and write it; never overwrites (a concurrent
        writer that took the number first makes this one take the next)."""
        self._ensure()
        signer = signing.signing_key()
        while True:
            last = self.last_checkpoint()
            document = {**checkpoint, "sequence": (last["sequence"] + 1) if last else 1,
                        "previous_checkpoint": checkpoint_hash(last) if last else None,
                        "key_id": signing.key_id(signer.public_key())}
            signed = {**document, "signature": signing.sign(signer, canonical(document))}
            path = self.checkpoint_dir / f"{document['sequence']:0{SEQUENCE_DIGITS}d}.json"
            try:
                _write_once(path, canonical(signed) + b"\n")
                return path
            except FileExistsError:
                continue

    def last_checkpoint(self) -> dict | None:
        """The checkpoint with the highest sequence number (its file name), read alone: a
        checkpoint is written by every run, and the store grows with the years."""
        names = sorted(self.checkpoint_dir.glob("*.json")) if self.checkpoint_dir.is_dir() else []
        return json.loads(names[-1].read_text(encoding="utf-8")) if names else None

    def checkpoints(self) -> list[dict]:
        """Every checkpoint, by sequence number (as stored; `lifecycle audit verify` checks them)."""
        if not self.checkpoint_dir.is_dir():
            return []
        found = []
        for path in sorted(self.checkpoint_dir.glob("*.json")):
            document = json.loads(path.read_text(encoding="utf-8"))
            document["_file"] = path.name
            found.append(document)
        return sorted(found, key=lambda d: d.get("sequence", 0))


# What a restore's reconciliation needs to do an action again (rules/restore.py), in its
# ledger entry: the end date an offboarding set (and the one an approved back-dating
# replaced), the hold's id; the case a hold belongs to is free text, so it reaches the
# ledger only (`audit.Action.ledger`), never the trail.
REPLAY_DETAILS = ("relationship_ended_on", "provisional_end", "legal_hold_id")
# A statement's line: what its records share (and its `shared` object), and per record
# these lists, in id order (and its `tables` with each record's `counts`, its `details`).
STATEMENT_SHARED = ("action", "rule", "as_of", "dag_id", "run_id", "recorded_at")
STATEMENT_LISTS = ("audit_ids", "row_hashes", "customer_ids", "row_counts")


def ledger_entries(line: dict) -> Iterator[dict]:
    """The entries of one ledger line, one per record, as a record's own line (written
    before migration 0031) gives it: its id and hash, action, rule, customer, rows per
    table, as_of, run, partition, time, and what a replay needs."""
    if "audit_ids" not in line:  # one record's line
        yield line
        return
    shared = {**{key: line[key] for key in STATEMENT_SHARED}, **line["shared"]}
    tables, counts, details = line["tables"], line["counts"], line["details"]
    for i, (audit_id, row_hash, customer_id, row_count) in enumerate(zip(*(line[k] for k in STATEMENT_LISTS),
                                                                          strict=True)):
        own = (details[i] if details else None) or {}
        if tables:
            per_table = {table: n for table, n in zip(tables, counts[i], strict=True) if n}
        else:
            per_table = {line["table_name"]: row_count} if line["table_name"] else {}
        yield {**shared, "audit_id": audit_id, "row_hash": row_hash, "customer_id": customer_id,
               "tables": per_table, "partition": own.get("partition"),
               **{key: value for key, value in own.items() if key in REPLAY_DETAILS}}


def checkpoint_hash(checkpoint: dict) -> str:
    """SHA-256 of a signed checkpoint as written (what the next one links to)."""
    return hashlib.sha256(canonical({k: v for k, v in checkpoint.items() if not k.startswith("_")})).hexdigest()


def evidence_store() -> EvidenceStore:
    return EvidenceStore(evidence_dir())
