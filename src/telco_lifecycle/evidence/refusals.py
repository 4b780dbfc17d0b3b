"""Refusals are outcomes: a request the lifecycle refuses (a legal hold, an unknown customer,
a date after today, a rejected approval) leaves an audit row `refused` with the rule and
the reason, and for a data-subject request a statement the DPO can hand on.

The reason is the refusal's own message: the lifecycle writes those without personal data or
free text (internal ids, dates, hold ids; never a case reference or who asked). Who asked
(`requested_by`, free text) goes only into the DPO's statement, a report file that expires.
The row is written in its own transaction, since the refused change itself wrote nothing.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import re
from pathlib import Path

from telco_lifecycle.database import transaction
from telco_lifecycle.evidence import audit
from telco_lifecycle.report_files import report_folder, write_report

log = logging.getLogger("telco_lifecycle.evidence.refusals")
ACTION = "refused"
# The data-subject request DAGs: their refusals get a statement for the DPO.
REQUEST_KINDS = {"data_subject_access": ("access", "indsigt"), "data_subject_erasure": ("erasure", "sletning")}


def one_line(reason: str) -> str:
    """The reason as the one line the log, the UI and the audit row show."""
    return " ".join(reason.split())[:500]


def record_refusal(conn, run: audit.RunContext, reason: str, rule: str | None = None,
                   customer_id: int | None = None, as_of: dt.date | None = None,
                   details: dict | None = None, requested_by: str | None = None) -> dict:
    """Write and emit the audit row of a refusal; the event (with `statement`, the path of
    the DPO's statement, for a data-subject request)."""
    reason = one_line(reason)
    with transaction(conn) as cur:
        event = audit.record(cur, audit.Action(ACTION, rule, customer_id, None, 0, as_of, False,
                                               {**(details or {}), "reason": reason}), run)
    audit.emit([event])
    log.error("refused: %s", reason)
    if run.dag_id in REQUEST_KINDS:
        event["statement"] = str(write_statement(event, requested_by))
    return event


def statement_stem(dag_id: str, customer_id: int | None, run_id: str) -> Path:
    """Where the statement of a refused request goes (without the .json / .html suffix)."""
    return report_folder("refusals") / (f"{dag_id}_customer_{customer_id}_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id))


def write_statement(event: dict, requested_by: str | None = None) -> Path:
    """The statement of a refused data-subject request (JSON and HTML, Danish and English),
    under LIFECYCLE_REPORTS_DIR/refusals/; returns the HTML's path."""
    kind_en, kind_da = REQUEST_KINDS[event["dag_id"]]
    stem = statement_stem(event["dag_id"], event["customer_id"], event["run_id"])
    recorded = event["recorded_at"]  # a datetime from the audit record, text from a logged event
    moment = recorded if isinstance(recorded, dt.datetime) else dt.datetime.fromisoformat(recorded)
    statement = {"request": kind_en, "customer_id": event["customer_id"], "run_id": event["run_id"],
                 "refused_at": moment.isoformat(), "reason": event["details"]["reason"],
                 "rule": event["rule"], "requested_by": requested_by, "audit_id": event["audit_id"],
                 "row_hash": event["row_hash"]}
    write_report(stem.with_suffix(".json"), json.dumps(statement, indent=2))
    e = html.escape
    write_report(stem.with_suffix(".html"), f"""<!DOCTYPE html>
<html lang="da"><head><meta charset="utf-8"><title>Afvist anmodning om {kind_da}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:50em}} small{{color:#555}}</style></head><body>
<h1>Afvist anmodning om {kind_da}</h1>
<p>Anmodningen om {kind_da} for kunde {e(str(event['customer_id']))} blev afvist den {moment:%Y-%m-%d kl. %H:%M}.</p>
<p><b>Begrundelse:</b> {e(statement['reason'])}</p>
<p><b>Anmodet af:</b> {e(requested_by or '-')}</p>
<h2>Refused request for {kind_en}</h2>
<p>The request for {kind_en} for customer {e(str(event['customer_id']))} was refused on {moment:%Y-%m-%d at %H:%M}
(Europe/Copenhagen).</p>
<p><b>Reason:</b> {e(statement['reason'])}</p>
<p><b>Requested by:</b> {e(requested_by or '-')}</p>
<p><small>Audit trail: entry {event['audit_id']}, SHA-256 {e(event['row_hash'])}; run {e(event['run_id'])}.</small></p>
</body></html>
""")
    return stem.with_suffix(".html")
