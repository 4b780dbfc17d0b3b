"""Deletion certificate for one customer: every rule applied to it, when, by which run,
how many rows, the verification result of that run (from its task logs), and the audit
hashes that back each line (with the chain's state at each row).

Written as HTML and JSON under LIFECYCLE_REPORTS_DIR/certificates/. Nothing personal:
the certificate names the customer by its internal id only. Every time is Copenhagen time;
the HTML prints on one A4 page width (landscape; hashes wrap).
"""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path

from telco_lifecycle.customers import require_customer
from telco_lifecycle.database import transaction
from telco_lifecycle.evidence.audit_report import LOCAL_TZ, STYLE, html_table, log_source, read_logs, run_label
from telco_lifecycle.settings import read_sql, reports_dir

COLUMNS = ("audit_id", "recorded_at", "action", "rule", "table_name", "row_count", "as_of", "dry_run",
           "dag_id", "run_id", "task_id", "try_number", "details", "prev_hash", "row_hash", "chain_problem")


def build_certificate(conn, customer_id: int, source=None, out_dir: Path | None = None) -> dict:
    """The certificate of `customer_id` (UnknownCustomer if no such customer ever existed
    and no audit row names it); returns it with the paths written."""
    with transaction(conn) as cur:
        cur.execute(read_sql("audit/customer_actions.sql"), {"customer_id": customer_id})
        actions = [dict(zip(COLUMNS, row)) for row in cur.fetchall()]
        if not actions:
            require_customer(cur, customer_id)  # raises for an unknown customer
    runs = {(a["dag_id"], a["run_id"]) for a in actions}
    findings = read_logs(source or log_source(), runs=runs) if runs else None
    logged = {(e["audit_id"], e["row_hash"]) for _, e in findings.events} if findings else set()
    for action in actions:
        checks = [c for c in findings.verifications
                  if (c["dag_id"], c["run_id"]) == (action["dag_id"], action["run_id"]) and c["rule"] == action["rule"]]
        action["verification"] = (("passed" if all(c["verdict"] == "passed" for c in checks) else "FAILED")
                                  + f" ({len(checks)} check(s))" if checks else "no check of this rule in the run")
        action["event_in_task_log"] = (action["audit_id"], action["row_hash"]) in logged
        action["recorded_at"] = action["recorded_at"].astimezone(LOCAL_TZ).isoformat(timespec="seconds")
        action["as_of"] = action["as_of"].isoformat() if action["as_of"] else None
    certificate = {
        "customer_id": customer_id,
        "issued_at": dt.datetime.now(LOCAL_TZ).isoformat(timespec="seconds"),
        "actions": actions,
        "rules_applied": sorted({a["rule"] for a in actions if a["rule"] and not a["dry_run"]}),
        "backed_by_audit_trail": all(a["chain_problem"] is None and a["event_in_task_log"] for a in actions),
    }
    out_dir = out_dir or reports_dir() / "certificates"
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"deletion_certificate_customer_{customer_id}"
    certificate.update(html=str(stem.with_suffix(".html")), json=str(stem.with_suffix(".json")))
    stem.with_suffix(".json").write_text(json.dumps(certificate, indent=2, default=str), encoding="utf-8")
    stem.with_suffix(".html").write_text(render_html(certificate), encoding="utf-8")
    return certificate


# One A4 page wide: landscape, small type, long identifiers wrap instead of widening the table.
PRINT_STYLE = """@page{size:A4 landscape;margin:10mm}body{margin:0 auto;max-width:277mm;font-size:9pt}
table{width:100%;table-layout:fixed;font-size:7.5pt}
td,th{padding:.2em .3em;overflow-wrap:anywhere}"""


COLUMN_WIDTHS = "<table><colgroup>" + "".join(f"<col style='width:{w}%'>" for w in (
    9, 9, 9, 9, 5, 7, 15, 10, 5, 12, 4, 6)) + "</colgroup>"


def _local(iso: str) -> str:
    """An ISO time as Copenhagen wall time, to the second."""
    return dt.datetime.fromisoformat(iso).astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S")


def render_html(c: dict) -> str:
    title = f"Deletion certificate, customer {c['customer_id']}"
    state = ("Every line below is an intact link of the audit hash chain and is confirmed by the event in its "
             "run's task log." if c["backed_by_audit_trail"] else
             "WARNING: at least one line is not backed: its chain link is broken or its event is missing from "
             "the task logs (see the last columns).")
    rows = [[_local(a["recorded_at"]), a["rule"] or "", a["action"] + (" (dry run)" if a["dry_run"] else ""),
             a["table_name"] or "", a["row_count"], a["as_of"] or "", f"{a['dag_id']}, {run_label(a['run_id'])}",
             a["verification"], a["audit_id"], a["row_hash"], a["chain_problem"] or "intact",
             "yes" if a["event_in_task_log"] else "NO"] for a in c["actions"]]
    table = html_table(["recorded", "rule", "action", "table", "rows", "as of", "run", "verification", "audit id",
                    "row hash (SHA-256)", "chain", "event in task log"], rows).replace("<table>", COLUMN_WIDTHS, 1)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}{PRINT_STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Issued {html.escape(_local(c['issued_at']))} (all times Europe/Copenhagen). Rules applied: {html.escape(', '.join(c['rules_applied']) or 'none')}.</p>
<p class="{'good' if c['backed_by_audit_trail'] else 'bad'}">{html.escape(state)}</p>
{table}
<p>Whole-table actions (CDR month partitions dropped by the accounting rule) name no customer and are in the
audit report instead.</p>
</body></html>
"""
