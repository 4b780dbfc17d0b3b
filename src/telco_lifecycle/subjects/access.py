"""Right of access: everything the database holds about one customer, category by
category as the policy defines them, as a JSON file and a readable HTML report.

For each category (a rule of the policy): its data, its legal basis, the rule, and
when it will be deleted ("while the relationship lasts" for an active customer's
relationship-clock data; per fiscal year for accounting material). Rows are read
through a server-side cursor and streamed to both files in chunks, so memory does
not grow with the customer's data; tables the policy marks with `summary_by` (the
call detail records) are summarised in the HTML report (count and period per kind)
and listed in full in the JSON file only.

The files under LIFECYCLE_REPORTS_DIR are the only place the personal data goes:
the return value, the log and the audit row carry the customer id, counts and the
files' SHA-256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import re
from pathlib import Path

from telco_lifecycle.customers import require_customer
from telco_lifecycle.database import transaction
from telco_lifecycle.evidence import audit
from telco_lifecycle.policy import Bilingual, DataItem, Policy, Rule, load_policy
from telco_lifecycle.settings import reports_dir

CHUNK_ROWS = 2000  # rows fetched per round trip of the server-side cursor
CELL_CHARS = 300  # longer values are shortened in the HTML report (the JSON file has them whole)
WHILE_ACTIVE = Bilingual(en="while the relationship lasts", da="så længe kundeforholdet består")


def output_dir() -> Path:
    path = reports_dir() / "subject_access"
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_stem(customer_id: int, run_id: str) -> str:
    return f"customer_{customer_id}_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)


def deletion_schedule(policy: Policy, rule: Rule, ended_on: dt.date | None,
                      fiscal_years: tuple[int, int] | None) -> list[dict]:
    """When the category's data is deleted: one entry, or one per fiscal year held."""
    if rule.clock == "relationship_end":
        if ended_on is None:
            return [{"when": WHILE_ACTIVE.model_dump(), "deleted_on": None}]
        due = rule.deadline(ended_on)
        return [{"when": {"en": f"on {due}", "da": f"den {due}"}, "deleted_on": due.isoformat()}]
    if fiscal_years is None:
        return []
    schedule = []
    for year in range(fiscal_years[0], fiscal_years[1] + 1):
        due = rule.deadline(policy.fiscal_year_end_date(year))
        schedule.append({"when": {"en": f"material of fiscal year {year}: on {due}",
                                  "da": f"materiale fra regnskabsåret {year}: den {due}"},
                         "fiscal_year": year, "deleted_on": due.isoformat()})
    return schedule


def _fiscal_years(cur, policy: Policy, item: DataItem, customer_id: int) -> tuple[int, int] | None:
    """The first and last fiscal year of the customer's rows of a fiscal-year dated item."""
    column = item.dated_by.rsplit(".", 1)[-1]
    if "." in item.dated_by:
        via, key = item.subject.via, item.subject.column
        cur.execute(f"SELECT min(v.{column}), max(v.{column}) FROM {via} v WHERE v.{key} IN"
                    f" (SELECT {key} FROM {item.table} WHERE {item.subject_filter()})", {"customer_id": customer_id})
    elif column == "fiscal_year":
        cur.execute(f"SELECT min({column}), max({column}) FROM {item.table} WHERE {item.subject_filter()}",
                    {"customer_id": customer_id})
    else:  # a timestamp: its Copenhagen date (the session's time zone) decides the fiscal year
        cur.execute(f"SELECT min({column})::date, max({column})::date FROM {item.table}"
                    f" WHERE {item.subject_filter()}", {"customer_id": customer_id})
    low, high = cur.fetchone()
    if low is None:
        return None
    if isinstance(low, dt.date):
        low, high = policy.fiscal_year_of(low), policy.fiscal_year_of(high)
    return low, high


def _order_by(item: DataItem) -> str:
    own_date = item.dated_by and "." not in item.dated_by
    return f"{item.dated_by}, t" if own_date else "t"


class _Output:
    """A file written under a temporary name and hashed while written; renamed when complete."""

    def __init__(self, path: Path):
        self.path, self.part = path, path.with_name(path.name + ".part")
        self.file = self.part.open("w", encoding="utf-8")
        self.sha256 = hashlib.sha256()

    def write(self, text: str) -> None:
        self.file.write(text)
        self.sha256.update(text.encode("utf-8"))

    def finish(self) -> str:
        self.file.close()
        self.part.replace(self.path)
        return self.sha256.hexdigest()

    def abandon(self) -> None:
        self.file.close()
        self.part.unlink(missing_ok=True)


def export(conn, customer_id: int, requested_by: str, as_of: dt.date, run: audit.RunContext) -> dict:
    """Write the customer's access report (JSON + HTML) and its audit row; counts and checksums back."""
    policy = load_policy()
    stem = file_stem(customer_id, run.run_id)
    json_out, html_out = _Output(output_dir() / f"{stem}.json"), _Output(output_dir() / f"{stem}.html")
    counts: dict[str, int] = {}
    try:
        with transaction(conn) as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one consistent snapshot
            ended_on = require_customer(cur, customer_id)["relationship_ended_on"]
            _write_head(json_out, html_out, customer_id, as_of, ended_on)
            for index, rule in enumerate(policy.rules):
                years = None
                if rule.clock == "fiscal_year_end":
                    spans = [s for s in (_fiscal_years(cur, policy, i, customer_id) for i in rule.data) if s]
                    years = (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None
                schedule = deletion_schedule(policy, rule, ended_on, years)
                _write_category(json_out, html_out, rule, schedule, first=index == 0)
                for position, item in enumerate(rule.data):
                    counts[item.table] = _write_table(conn, cur, json_out, html_out, item, customer_id,
                                                      first=position == 0)
                json_out.write("]}")
                html_out.write("</section>")
            json_out.write("]}\n")
            html_out.write("</body></html>\n")
            json_sha, html_sha = json_out.finish(), html_out.finish()
            event = audit.record(cur, audit.Action(
                "subject_access_export", None, customer_id, None, sum(counts.values()), as_of, False,
                {"requested_by": requested_by, "file": json_out.path.name, "sha256": json_sha,
                 "html_sha256": html_sha, "rows": counts}), run)
    except BaseException:
        json_out.abandon()
        html_out.abandon()
        raise
    audit.emit([event])
    return {"customer_id": customer_id, "as_of": as_of.isoformat(), "rows": counts,
            "json_file": str(json_out.path), "sha256": json_sha,
            "html_file": str(html_out.path), "html_sha256": html_sha, "audit_id": event["audit_id"]}


def _write_table(conn, cur, json_out: _Output, html_out: _Output, item: DataItem, customer_id: int,
                 first: bool) -> int:
    params = {"customer_id": customer_id}
    description = item.description or Bilingual(en=item.table, da=item.table)
    json_out.write(("" if first else ",") + json.dumps(
        {"table": item.table, "description": description.model_dump()})[:-1] + ', "rows": [')
    html_out.write(f"<h3>{_e(description.en)} <small>({_e(description.da)}; table <code>{item.table}</code>)"
                   "</small></h3>")
    if item.summary_by:
        _write_summary(cur, html_out, item, params)
    count = 0
    with conn.cursor(name=f"access_{item.table}") as rows:  # server-side: CHUNK_ROWS at a time
        rows.itersize = CHUNK_ROWS
        rows.execute(f"SELECT to_jsonb(t)::text FROM {item.table} t WHERE {item.subject_filter()}"
                     f" ORDER BY {_order_by(item)}", params)
        for (row,) in rows:
            json_out.write(("," if count else "") + "\n" + row)
            if not item.summary_by:
                if count == 0:
                    html_out.write("<table><tr>" + "".join(f"<th>{_e(k)}</th>" for k in json.loads(row)) + "</tr>")
                html_out.write("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in json.loads(row).values()) + "</tr>")
            count += 1
    json_out.write(f'], "row_count": {count}}}')
    if not item.summary_by:
        html_out.write("</table>" if count else "<p>None held.</p>")
    return count


def _write_summary(cur, html_out: _Output, item: DataItem, params: dict) -> None:
    group, period = item.summary_by, item.dated_by
    cur.execute(f"SELECT {group}, count(*), min({period}), max({period}) FROM {item.table}"
                f" WHERE {item.subject_filter()} GROUP BY {group} ORDER BY {group}", params)
    summary = cur.fetchall()
    if not summary:
        html_out.write("<p>None held.</p>")
        return
    html_out.write(f"<p>Summarised here; every record is listed in the JSON file.</p><table><tr>"
                   f"<th>{_e(item.summary_by)}</th><th>records</th><th>first</th><th>last</th></tr>")
    for group, number, first, last in summary:
        html_out.write(f"<tr><td>{_e(group)}</td><td>{number}</td><td>{_e(first)}</td><td>{_e(last)}</td></tr>")
    html_out.write("</table>")


def _write_head(json_out: _Output, html_out: _Output, customer_id: int, as_of: dt.date,
                ended_on: dt.date | None) -> None:
    head = {"customer_id": customer_id, "as_of": as_of.isoformat(),
            "relationship_ended_on": ended_on.isoformat() if ended_on else None}
    json_out.write(json.dumps(head)[:-1] + ', "categories": [')
    status = f"ended on {ended_on}" if ended_on else "active"
    html_out.write(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Data held about customer {customer_id}</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:75em}table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #bbb;padding:.2em .5em;font-size:.85em;vertical-align:top;text-align:left}"
        "section{border-top:2px solid #444;margin-top:2em}small{color:#555}</style></head><body>"
        f"<h1>Data held about customer {customer_id}</h1>"
        f"<p>As of {as_of}. Customer relationship: {status}. Each section is one category of data as our "
        "privacy policy defines it, with its legal basis and when it will be deleted. The JSON file delivered "
        "with this report holds the same data, every record included, in machine-readable form.</p>")


def _write_category(json_out: _Output, html_out: _Output, rule: Rule, schedule: list[dict], first: bool) -> None:
    erasure = (rule.erasure.reason.model_dump() if not rule.erasure.on_request else
               {"en": "Can be erased on request" + ("" if rule.erasure.while_active is True else
                                                    " (while the relationship lasts only in part or not at all)"),
                "da": "Kan slettes på anmodning" + ("" if rule.erasure.while_active is True else
                                                    " (mens kundeforholdet består kun delvis eller ikke)")})
    head = {"rule": rule.id, "category": rule.category.model_dump(), "legal_basis": rule.legal_basis.model_dump(),
            "erasure_on_request": erasure, "deletion": schedule}
    json_out.write(("" if first else ",") + "\n" + json.dumps(head, ensure_ascii=False)[:-1] + ', "tables": [')
    when = "".join(f"<li>{_e(entry['when']['en'])} <small>({_e(entry['when']['da'])})</small></li>"
                   for entry in schedule) or "<li>nothing held</li>"
    html_out.write(
        f"<section><h2>{_e(rule.category.en)}<br><small>{_e(rule.category.da)}</small></h2>"
        f"<p><b>Rule:</b> <code>{rule.id}</code></p>"
        f"<p><b>Legal basis:</b> {_e(rule.legal_basis.en)}<br><small>{_e(rule.legal_basis.da)}</small></p>"
        f"<p><b>Deleted:</b></p><ul>{when}</ul>"
        f"<p><b>Erasure on request:</b> {_e(erasure['en'])}</p>")


def _e(value) -> str:
    return html.escape(str(value))


def _cell(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) > CELL_CHARS:
        text = text[:CELL_CHARS] + f"… ({len(text)} characters; whole in the JSON file)"
    return _e(text)
