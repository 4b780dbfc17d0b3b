"""Deletion certificate for one customer: every rule applied to it, when, by which run,
how many rows, the verification result of that run (from its task logs), and the proof
that backs each line offline: the audit record itself (its canonical text, and the text
of the statement it shares with the other records of its link), its Merkle inclusion
proof in its chain link, the links from there to a signed checkpoint, and that
checkpoint. `lifecycle certificate verify FILE` checks all of it with only the
public key (`verify_file`); no database, no logs.

Written as HTML and JSON under LIFECYCLE_REPORTS_DIR/certificates/. Nothing personal:
the certificate names the customer by its internal id only. Every time is Copenhagen time;
the HTML prints on one A4 page width (landscape; hashes wrap).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
from pathlib import Path

from telco_lifecycle.customers import require_customer
from telco_lifecycle.database import transaction
from telco_lifecycle.evidence import audit, checkpoints, merkle, signing
from telco_lifecycle.evidence.audit_report import (
    LOCAL_TZ,
    STYLE,
    LogFindings,
    html_table,
    log_source,
    read_logs,
    run_label,
)
from telco_lifecycle.evidence.integrity import LINKS, Link
from telco_lifecycle.evidence.store import canonical, evidence_store
from telco_lifecycle.report_files import private_dir, report_folder, write_report

COLUMNS = ("audit_id", "recorded_at", "action", "rule", "table_name", "row_count", "as_of", "dry_run",
           "dag_id", "run_id", "task_id", "try_number", "details", "link_id", "hash_version", "row_hash", "record",
           "statement")
# A customer's records, each with the text its hash covers (and a version-3 record's
# statement: what it shares with its link's other records).
CUSTOMER_RECORDS = (f"SELECT a.audit_id, a.recorded_at, a.action, a.rule, a.table_name, a.row_count, a.as_of,"
                    f" a.dry_run, a.dag_id, a.run_id, a.task_id, a.try_number, a.details, a.link_id, a.hash_version,"
                    f" a.row_hash,"
                    f" coalesce({audit.record_text_sql('r', 'l.statement_hash')}, {audit.v2_text_sql('o')}),"
                    f" CASE WHEN r.audit_id IS NOT NULL THEN {audit.statement_text_sql('l')} END"
                    " FROM lifecycle_audit a"
                    " LEFT JOIN lifecycle_audit_record r ON a.hash_version = 3 AND r.audit_id = a.audit_id"
                    " LEFT JOIN lifecycle_audit_link l ON l.link_id = r.link_id"
                    " LEFT JOIN lifecycle_audit_before_v3 o ON a.hash_version = 2 AND o.audit_id = a.audit_id"
                    " WHERE a.customer_id = %(customer_id)s ORDER BY a.audit_id")
LINK_LEAVES = ("SELECT audit_id, row_hash FROM lifecycle_audit_before_v3 WHERE link_id = %(link_id)s UNION ALL"
               " SELECT audit_id, row_hash FROM lifecycle_audit_record WHERE link_id = %(link_id)s"
               " AND audit_id BETWEEN %(first)s AND %(last)s ORDER BY audit_id")
# Where a line's fields stand in the texts that back it (a version-2 record; a version-3
# record and its statement).
V2_FIELDS = {"audit_id": 1, "action": 3, "rule": 4, "customer_id": 5, "table_name": 6, "row_count": 7,
             "dry_run": 9, "dag_id": 10, "run_id": 11}
RECORD_FIELDS = {field: 1 + audit.RECORD_FIELDS.index(field) for field in ("audit_id", "customer_id", "row_count")}
STATEMENT_FIELDS = {field: 1 + audit.STATEMENT_FIELDS.index(field)
                    for field in ("link_id", "action", "rule", "table_name", "dry_run", "dag_id", "run_id")}


def build_certificate(conn, customer_id: int, source=None, out_dir: Path | None = None) -> dict:
    """The certificate of `customer_id` (UnknownCustomer if no such customer ever existed
    and no audit row names it); returns it with the paths written."""
    checkpoints.write_current(conn, {"certificate": customer_id})  # a checkpoint covering every record
    signed = evidence_store().checkpoints()
    with transaction(conn) as cur:
        cur.execute(CUSTOMER_RECORDS, {"customer_id": customer_id})
        actions = [dict(zip(COLUMNS, row, strict=True)) for row in cur.fetchall()]
        if not actions:
            require_customer(cur, customer_id)  # raises for an unknown customer
        cur.execute(LINKS)
        links = {link.link_id: link for link in (Link(*row[:-1]) for row in cur.fetchall())}
        by_seq = {link.seq: link for link in links.values()}
        for action in actions:
            action["proof"] = _proof(cur, action, links, by_seq, signed)
    runs = {(a["dag_id"], a["run_id"]) for a in actions}
    findings = read_logs(source or log_source(), runs=runs) if runs else LogFindings()
    logged = {(link["link_id"], link["link_hash"]) for _, e in findings.events for link in e.get("links", [])}
    for action in actions:
        checks = [c for c in findings.verifications
                  if (c["dag_id"], c["run_id"]) == (action["dag_id"], action["run_id"]) and c["rule"] == action["rule"]]
        action["verification"] = (("passed" if all(c["verdict"] == "passed" for c in checks) else "FAILED")
                                  + f" ({len(checks)} check(s))" if checks else "no check of this rule in the run")
        link = links.get(action["link_id"])
        action["event_in_task_log"] = link is not None and (link.link_id, link.link_hash) in logged
        action["recorded_at"] = action["recorded_at"].astimezone(LOCAL_TZ).isoformat(timespec="seconds")
        action["as_of"] = action["as_of"].isoformat() if action["as_of"] else None
    public_key = signing.public_key()
    certificate = {
        "customer_id": customer_id,
        "issued_at": dt.datetime.now(LOCAL_TZ).isoformat(timespec="seconds"),
        "public_key": signing.public_key_text(public_key),
        "actions": actions,
        "rules_applied": sorted({a["rule"] for a in actions if a["rule"] and not a["dry_run"]}),
    }
    certificate["proof_problems"] = check(certificate, public_key)
    certificate["backed_by_audit_trail"] = not certificate["proof_problems"] and all(
        a["event_in_task_log"] for a in actions)
    out_dir = private_dir(out_dir) if out_dir else report_folder("certificates")
    stem = out_dir / f"deletion_certificate_customer_{customer_id}"
    certificate.update(html=str(stem.with_suffix(".html")), json=str(stem.with_suffix(".json")))
    write_report(stem.with_suffix(".json"), json.dumps(certificate, indent=2, default=str))
    write_report(stem.with_suffix(".html"), render_html(certificate))
    return certificate


def _proof(cur, action: dict, links: dict, by_seq: dict, signed: list[dict]) -> dict | None:
    """The record's inclusion proof, the links up to the first checkpoint covering it, and that checkpoint."""
    link = links.get(action["link_id"])
    if action["hash_version"] == 1 or link is None:
        return None  # a version-1 record: backed by the version-1 chain (lifecycle audit verify)
    cur.execute(LINK_LEAVES, {"link_id": link.link_id, "first": link.first_audit_id, "last": link.last_audit_id})
    leaves = [row[1] for row in cur.fetchall()]
    covering = next((c for c in signed if c.get("seq", 0) >= link.seq and c.get("kind") == checkpoints.KIND), None)
    if covering is None or action["row_hash"] not in leaves:
        return None
    path = [by_seq[seq].__dict__ for seq in range(link.seq, covering["seq"] + 1) if seq in by_seq]
    return {"merkle_path": merkle.proof(leaves, leaves.index(action["row_hash"])), "links": path,
            "checkpoint": {k: v for k, v in covering.items() if not k.startswith("_")}}


def check(certificate: dict, public_key) -> list[str]:
    """Every line's proof, offline: the record's hash, its Merkle path to its link's root,
    each link's hash and its successor's link to it, up to the checkpoint, whose signature
    must verify with `public_key`. The problems (empty when it verifies)."""
    problems = []
    customer = certificate["customer_id"]
    for action in certificate["actions"]:
        where = f"audit row {action['audit_id']}"
        proof = action.get("proof")
        if not proof:
            problems.append(f"{where}: no proof (a version-1 record or no checkpoint covers it)")
            continue
        if _sha256(action["record"]) != action["row_hash"]:
            problems.append(f"{where}: the record does not give its hash")
        path = [Link(**link) for link in proof["links"]]
        problems += [f"{where}: {problem}" for problem in _fields_backed(action, customer, path[0])]
        if merkle.root_from_proof(action["row_hash"], proof["merkle_path"]) != path[0].merkle_root:
            problems.append(f"{where}: its inclusion proof does not lead to its link's Merkle root")
        for before, after in zip(path, path[1:] + [None], strict=True):
            if before.recomputed_hash() != before.link_hash or (after and after.prev_hash != before.link_hash):
                problems.append(f"{where}: the links from its own to the checkpoint's do not chain (link {before.seq})")
                break
        signed = proof["checkpoint"]
        body = {k: v for k, v in signed.items() if k != "signature"}
        if (signed["seq"], signed["link_hash"]) != (path[-1].seq, path[-1].link_hash):
            problems.append(f"{where}: the checkpoint signs another link than the proof ends at")
        elif not signing.verify(public_key, canonical(body), signed.get("signature", "")):
            problems.append(f"{where}: the checkpoint's signature does not verify with the public key")
    return problems


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fields_backed(action: dict, customer: int, link: Link) -> list[str]:
    """Does the line say what its texts say (a version-3 record: its own and its
    statement's, which its link's hash covers)? The problems."""
    shown = {**action, "customer_id": customer}
    record = json.loads(action["record"])
    if action.get("statement") is None:  # a version-2 record: one text
        wrong = [field for field, i in V2_FIELDS.items() if record[i] != shown[field]]
        return [f"the line says other {', '.join(wrong)} than the record"] if wrong else []
    statement = json.loads(action["statement"])
    problems = []
    if not record[-1] == _sha256(action["statement"]) == link.statement_hash:
        problems.append("the statement does not give the hash its record and its link name")
    wrong = ([field for field, i in RECORD_FIELDS.items() if record[i] != shown[field]]
             + [field for field, i in STATEMENT_FIELDS.items() if statement[i] != shown[field]])
    if wrong:
        problems.append(f"the line says other {', '.join(wrong)} than the record and its statement")
    return problems


def verify_file(path: str, public_key: str | None = None) -> list[str]:
    """`lifecycle certificate verify FILE`: the problems of a certificate file (empty when it verifies)."""
    try:
        certificate = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return [f"cannot read the certificate: {error}"]
    try:
        return check(certificate, signing.public_key(public_key))
    except (KeyError, TypeError, ValueError, IndexError) as error:
        return [f"the certificate is malformed: {error!r}"]


# One A4 page wide: landscape, small type, long identifiers wrap instead of widening the table.
PRINT_STYLE = """@page{size:A4 landscape;margin:10mm}body{margin:0 auto;max-width:277mm;font-size:9pt}
table{width:100%;table-layout:fixed;font-size:7.5pt}
td,th{padding:.2em .3em;overflow-wrap:anywhere}"""


COLUMN_WIDTHS = "<table><colgroup>" + "".join(f"<col style='width:{w}%'>" for w in (
    9, 9, 9, 9, 5, 7, 15, 10, 5, 12, 4, 6)) + "</colgroup>"


def _local(iso: str) -> str:
    """An ISO time as Copenhagen wall time, to the second."""
    return dt.datetime.fromisoformat(iso).astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S")


def tables_label(action: dict) -> str:
    """The table a record names, or a purge's tables with their rows (one record per customer and rule)."""
    if action["table_name"] is not None:
        return action["table_name"]
    return ", ".join(f"{table} ({n})" for table, n in audit.tables_of(action).items())


def render_html(c: dict) -> str:
    title = f"Deletion certificate, customer {c['customer_id']}"
    state = ("Every line below carries its audit record, the record's inclusion proof in the audit chain and the"
             " signed checkpoint that covers it (check offline: lifecycle certificate verify FILE), and is confirmed"
             " by the event in its run's task log." if c["backed_by_audit_trail"] else
             "WARNING: at least one line is not backed: " + ("; ".join(c["proof_problems"])
                                                             or "its event is missing from the task logs") + ".")
    rows = [[_local(a["recorded_at"]), a["rule"] or "", a["action"] + (" (dry run)" if a["dry_run"] else ""),
             tables_label(a), a["row_count"], a["as_of"] or "", f"{a['dag_id']}, {run_label(a['run_id'])}",
             a["verification"], a["audit_id"], a["row_hash"],
             f"link {a['proof']['links'][0]['seq']}, checkpoint {a['proof']['checkpoint']['sequence']}"
             if a["proof"] else "no proof", "yes" if a["event_in_task_log"] else "NO"] for a in c["actions"]]
    table = html_table(["recorded", "rule", "action", "table", "rows", "as of", "run", "verification", "audit id",
                    "record hash (SHA-256)", "proof", "event in task log"], rows).replace("<table>", COLUMN_WIDTHS, 1)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}{PRINT_STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Issued {html.escape(_local(c['issued_at']))} (all times Europe/Copenhagen).
Rules applied: {html.escape(', '.join(c['rules_applied']) or 'none')}.</p>
<p class="{'good' if c['backed_by_audit_trail'] else 'bad'}">{html.escape(state)}</p>
{table}
<p>Whole-table actions (CDR month partitions dropped by the accounting rule) name no customer and are in the
audit report instead.</p>
</body></html>
"""
