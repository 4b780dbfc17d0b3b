"""`lifecycle audit verify`: the whole audit chain against every signed checkpoint.

Everything is recomputed here, in Python, from the rows' own columns (their canonical
text is rendered by PostgreSQL built-ins only, so no function the database owner could
replace takes part): each record's hash, each link's statement hash (what its records
share), Merkle root, count and hash, the chain of links, and then every checkpoint with
the public key. What it names:

* a changed row (its content no longer gives its hash), or a changed and re-hashed row
  (its link's Merkle root no longer matches); a changed statement (the link's shared
  fields no longer give its statement hash);
* a deleted (or added) row: its link's record count or root no longer matches;
* a deleted link, a broken link chain, a head that does not match the last link;
* a truncated tail: a checkpoint signs a link the database no longer has;
* a chain re-hashed consistently: internally sound, but not what a checkpoint signed;
* a forked chain: two checkpoints sign different links at one seq;
* a missing checkpoint sequence number, a checkpoint not linked to its predecessor, a
  signature that does not verify.
"""

from __future__ import annotations

import dataclasses
import hashlib

from telco_lifecycle.evidence import audit, merkle, signing
from telco_lifecycle.evidence.store import EvidenceStore, canonical, checkpoint_hash, evidence_store

UTC_TEXT = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
V1_TEXT = ("concat_ws('|', a.audit_id, " + UTC_TEXT.format("a.recorded_at") + ", a.action, coalesce(a.rule, ''),"
           " coalesce(a.customer_id::text, ''), coalesce(a.table_name, ''), a.row_count, coalesce(a.as_of::text, ''),"
           " a.dry_run, coalesce(a.dag_id, ''), coalesce(a.run_id, ''), coalesce(a.task_id, ''),"
           " coalesce(a.try_number::text, ''), a.details::text, a.prev_hash)")
# Every record with the text its hash covers (a version-3 record's with its link's
# statement hash: none when the link is gone), by link and id.
RECORDS = (f"SELECT a.audit_id, coalesce(a.link_id, 0), a.hash_version, a.row_hash, a.prev_hash,"
           f" CASE WHEN a.hash_version = 1 THEN {V1_TEXT} ELSE {audit.v2_text_sql('a')} END"
           f" FROM lifecycle_audit_before_v3 a UNION ALL"
           f" SELECT r.audit_id, r.link_id, 3, r.row_hash, '', {audit.record_text_sql('r', 'l.statement_hash')}"
           f" FROM lifecycle_audit_record r LEFT JOIN lifecycle_audit_link l ON l.link_id = r.link_id ORDER BY 2, 1")
# Every link (Link's fields), and its statement's text (version 3).
LINKS = ("SELECT seq, link_id, prev_hash, merkle_root, record_count, first_audit_id, last_audit_id,"
         f" total_records, {UTC_TEXT.format('sealed_at')}, link_hash, statement_hash,"
         f" CASE WHEN statement_hash IS NOT NULL THEN {audit.statement_text_sql('l')} END"
         " FROM lifecycle_audit_link l ORDER BY seq")
GENESIS = "0" * 64


@dataclasses.dataclass
class Link:
    seq: int
    link_id: int
    prev_hash: str
    merkle_root: str
    record_count: int
    first_audit_id: int
    last_audit_id: int
    total_records: int
    sealed_at: str
    link_hash: str
    statement_hash: str | None = None  # version 3: the hash of what its records share

    def recomputed_hash(self) -> str:
        fields = ("link", self.seq, self.link_id, self.prev_hash, self.merkle_root, self.record_count,
                  self.first_audit_id, self.last_audit_id, self.total_records, self.sealed_at, self.statement_hash)
        return sha256("|".join(str(v) for v in fields if v is not None))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def verify(conn, store: EvidenceStore | None = None, public_key: str | None = None) -> dict:
    """Check the chain and the checkpoints; the findings (empty when everything verifies)."""
    store = store or evidence_store()
    findings: list[str] = []
    with conn.cursor() as cur:
        cur.execute(LINKS)
        rows = cur.fetchall()
        cur.execute("SELECT seq, link_hash, total_records FROM lifecycle_audit_head")
        head = cur.fetchone()
    links = [Link(*row[:-1]) for row in rows]
    by_id = {link.link_id: link for link in links}
    records = _check_records(conn, by_id, findings)
    _check_links(links, [row[-1] for row in rows], head, findings)
    checkpoints = store.checkpoints()
    _check_checkpoints(checkpoints, links, findings, signing.public_key(public_key))
    conn.rollback()
    last = checkpoints[-1] if checkpoints else None
    unwitnessed = len(links) - max((c.get("seq", 0) for c in checkpoints), default=0)
    return {"ok": not findings, "findings": findings, "records": records, "links": len(links),
            "checkpoints": len(checkpoints), "last_checkpoint": last and last.get("sequence"),
            "links_after_last_checkpoint": max(unwitnessed, 0)}


def describe(result: dict) -> str:
    """The verification as a person reads it: the verdict, the counts, then each finding."""
    state = "verified" if result["ok"] else f"FAILED ({len(result['findings'])} finding(s))"
    lines = [f"audit chain {state}: {result['records']} record(s) in {result['links']} link(s),"
             f" {result['checkpoints']} signed checkpoint(s); {result['links_after_last_checkpoint']} link(s)"
             " after the last checkpoint"]
    return "\n".join(lines + [f"  - {finding}" for finding in result["findings"]])


def _check_records(conn, by_id: dict[int, Link], findings: list[str]) -> int:  # noqa: C901 - one pass
    """Every record's hash, the version-1 chain, and each link's records against the link."""
    count, previous_v1 = 0, GENESIS
    group_id = None
    leaves: list[str] = []
    ids: list[int] = []

    def close_group() -> None:
        if group_id is None:
            return
        link = by_id.get(group_id)
        if link is None:
            findings.append(f"audit rows {ids[0]}..{ids[-1]} ({len(ids)}) name link {group_id}, which is not in the"
                            " chain: written outside it, or their link was deleted")
            return
        where = f"link {link.seq} (audit rows {link.first_audit_id}..{link.last_audit_id})"
        if len(leaves) != link.record_count:
            change = "deleted" if len(leaves) < link.record_count else "added"
            findings.append(f"{where}: {len(leaves)} record(s) in the database, {link.record_count} sealed:"
                            f" audit row(s) {change}")
        elif merkle.root(leaves) != link.merkle_root:
            findings.append(f"{where}: its records do not give its Merkle root: an audit row was changed and"
                            " re-hashed, or replaced")
        del by_id[group_id]

    with conn.cursor(name="lifecycle_audit_verify") as cur:
        cur.itersize = 10000
        cur.execute(RECORDS)
        for audit_id, link_id, version, row_hash, prev_hash, text in cur:
            count += 1
            if link_id != group_id:
                close_group()
                group_id, leaves, ids = link_id, [], []
            leaves.append(row_hash)
            ids.append(audit_id)
            if text is None:  # a version-3 record of a link that is gone, or has no statement
                if link_id in by_id:
                    findings.append(f"audit row {audit_id} was moved: link {by_id[link_id].seq} has no statement")
            elif sha256(text) != row_hash:
                findings.append(f"audit row {audit_id} was changed: its content does not give its hash")
            if version == 1:
                if prev_hash != previous_v1:
                    findings.append(f"audit row {audit_id} (version 1): previous hash does not match the preceding"
                                    " row: a row before it was deleted")
                previous_v1 = row_hash
        close_group()
    for link in by_id.values():  # links whose records are all gone
        if link.record_count:
            findings.append(f"link {link.seq} (audit rows {link.first_audit_id}..{link.last_audit_id}):"
                            f" 0 record(s) in the database, {link.record_count} sealed: audit row(s) deleted")
    return count


def _check_links(links: list[Link], statements: list[str | None], head, findings: list[str]) -> None:
    """The chain of links, each link's own hash and its statement's (`statements`: their texts)."""
    previous, total = GENESIS, 0
    for expected, (link, statement) in enumerate(zip(links, statements, strict=True), start=1):
        if link.seq != expected:
            findings.append(f"chain link(s) {expected}..{link.seq - 1} are missing: deleted links")
        if link.prev_hash != previous:
            findings.append(f"link {link.seq} does not follow the link before it (previous hash differs)")
        if link.recomputed_hash() != link.link_hash:
            findings.append(f"link {link.seq} was changed: its fields do not give its hash")
        if statement is not None and sha256(statement) != link.statement_hash:
            findings.append(f"link {link.seq}'s statement (what its records share: action, rule, run, details) was"
                            " changed: it does not give its hash")
        total += link.record_count
        if link.total_records != total:
            findings.append(f"link {link.seq} counts {link.total_records} records in the chain, the links"
                            f" before it add up to {total}")
        previous = link.link_hash
    last = links[-1] if links else None
    if head and (head[0], head[1]) != ((last.seq, last.link_hash) if last else (0, GENESIS)):
        findings.append(f"the chain head (link {head[0]}) is not the last link"
                        f" ({last.seq if last else 0}): links were removed or the head moved")


def _superseded(checkpoints: list[dict], key) -> set[int]:
    """Checkpoints of history a restore lost, named by the signed checkpoint of the
    reconciliation that re-applied it (rules/restore.py): not held against the chain."""
    return {number for c in checkpoints if isinstance(c.get("by"), dict)
            and signing.verify(key, canonical({k: v for k, v in c.items() if k not in ("signature", "_file")}),
                               c.get("signature", ""))
            for number in c["by"].get("superseded_checkpoints", []) if number < c.get("sequence", 0)}


def _check_checkpoints(checkpoints: list[dict], links: list[Link], findings: list[str], key) -> None:  # noqa: C901
    by_position = {link.seq: link for link in links}
    last_position = links[-1].seq if links else 0
    signed: dict[int, tuple[int, str]] = {}
    previous = None
    superseded = _superseded(checkpoints, key)
    for checkpoint in checkpoints:
        sequence: int = checkpoint["sequence"]
        name = f"checkpoint {sequence}"
        expected = previous.get("sequence", 0) + 1 if previous else 1
        if sequence != expected:
            findings.append(f"checkpoint sequence number(s) {expected}..{sequence - 1} are missing:"
                            " checkpoints were removed")
        body = {k: v for k, v in checkpoint.items() if k not in ("signature", "_file")}
        if not signing.verify(key, canonical(body), checkpoint.get("signature", "")):
            findings.append(f"{name} ({checkpoint.get('_file')}): its signature does not verify with the public key")
            previous = checkpoint
            continue
        if sequence == expected and previous is not None \
                and checkpoint.get("previous_checkpoint") != checkpoint_hash(previous):
            findings.append(f"{name} does not follow checkpoint {previous.get('sequence')} (its link to the previous"
                            " checkpoint differs): a forked or replaced checkpoint sequence")
        previous = checkpoint
        if sequence in superseded:
            continue
        seq, link_hash = checkpoint["seq"], checkpoint["link_hash"]
        if seq in signed and signed[seq][1] != link_hash:
            findings.append(f"forked chain: checkpoints {signed[seq][0]} and {sequence} sign different links"
                            f" at link {seq}")
        signed.setdefault(seq, (sequence, link_hash))
        if seq == 0:
            continue
        link = by_position.get(seq)
        if link is None:
            if seq > last_position:
                findings.append(f"truncated tail: {name} signs link {seq} ({checkpoint['total_records']}"
                                f" records), the database's chain ends at link {last_position}")
            continue
        if link.link_hash != link_hash or link.total_records != checkpoint["total_records"]:
            findings.append(f"the chain was rewritten: link {seq} in the database is not the one {name} signed"
                            " (re-hashed consistently, or a forked chain)")
