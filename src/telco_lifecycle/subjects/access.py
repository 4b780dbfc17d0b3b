"""Right of access: everything the database holds about one customer, category by
category as the policy defines them, as a JSON file and a readable HTML report.

For each category (a rule of the policy): its data, its legal basis, the rule in
words, whom the policy says it is passed to (the policy's `recipients`), and when it
will be deleted: the rule in words for an active customer's relationship-clock data,
the date once the relationship has ended, per fiscal year for accounting material (by
the accounting units, as verification computes them), and "kept under a legal hold"
while one is in force. Rows are read
through a server-side cursor and streamed to both files in chunks, so memory does
not grow with the customer's data; tables the policy marks with `summary_by` (the
call detail records) are summarised in the HTML report (count and period per kind)
and listed in full in the JSON file only.

The HTML report is for the customer: in Danish by default (`language="en"` for English), with
labels instead of column names, dates and times as such, and each category saying whether
its data will be deleted and when, or was. Binary documents (the signed contracts) are
delivered as files beside the report (`<report>_files/`), listed by name, size and SHA-256;
the JSON file refers to them the same way.

The files under LIFECYCLE_REPORTS_DIR are the only place the personal data goes:
the return value, the log and the audit row carry the customer id, counts and the
files' SHA-256.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path
from zoneinfo import ZoneInfo

from telco_lifecycle.customers import holds_in_force, require_customer
from telco_lifecycle.database import transaction
from telco_lifecycle.evidence import audit
from telco_lifecycle.evidence.retention_checks import unit_ends, unit_year_end
from telco_lifecycle.policy import Bilingual, DataItem, Policy, Rule, load_policy
from telco_lifecycle.report_files import ReportFile, private_dir, report_folder, write_report
from telco_lifecycle.settings import TIMEZONE

CHUNK_ROWS = 2000  # rows fetched per round trip of the server-side cursor
CELL_CHARS = 300  # longer values are shortened in the HTML report (the JSON file has them whole)
KEPT_UNDER_HOLD = Bilingual(en="kept under a legal hold", da="opbevares på grund af et retligt pålæg (legal hold)")
LANGUAGES = ("da", "en")
LOCAL_TZ = ZoneInfo(TIMEZONE)
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")

# The report's words, per language.
WORDS = {
    "da": {"title": "Oplysninger om kunde {customer}", "as_of": "Pr. {as_of}.", "active": "aktivt",
           "ended": "ophørt den {ended}", "relationship": "Kundeforhold: {status}.",
           "intro": "Hvert afsnit er én kategori af oplysninger, som vores privatlivspolitik definerer den, med"
                    " retsgrundlaget og hvornår oplysningerne slettes. JSON-filen, der leveres sammen med denne"
                    " rapport, indeholder de samme oplysninger, alle poster medtaget, i maskinlæsbar form.",
           "legal_basis": "Retsgrundlag", "deletion": "Sletning", "erasure": "Sletning på anmodning",
           "none_held": "Ingen oplysninger.", "summarised": "Opsummeret her; alle poster står i JSON-filen.",
           "records": "poster", "first": "første", "last": "seneste", "yes": "ja", "no": "nej",
           "documents": "Dokumenter (leveret som filer sammen med rapporten)", "file": "fil", "size": "størrelse",
           "checksum": "SHA-256", "bytes": "{n} byte", "shortened": "… ({n} tegn; hele teksten i JSON-filen)",
           "kept_active": "Opbevares, så længe kundeforholdet består, og slettes {period} efter dets ophør.",
           "kept_active_now": "Opbevares, så længe kundeforholdet består, og slettes, når det ophører.",
           "will": "Slettes den {day}.", "was": "Slettet den {day}.",
           "due": "Skulle slettes den {day}; opbevares fortsat, mens et retligt krav (retstvist) gælder,"
                  " ellers slettes de ved næste daglige kørsel.",
           "fiscal": "Materiale fra regnskabsåret {year}: ", "years": "{n} år",
           "held": "Opbevares, så længe et retligt pålæg (legal hold) gælder; slettes ikke, før det er ophævet.",
           "retention": "Regel", "recipients": "Videregives til", "nobody": "Ingen.",
           "erasable": "Kan slettes på anmodning.",
           "erasable_after": "Kan slettes på anmodning (mens kundeforholdet består kun delvis eller ikke)."},
    "en": {"title": "Data held about customer {customer}", "as_of": "As of {as_of}.", "active": "active",
           "ended": "ended on {ended}", "relationship": "Customer relationship: {status}.",
           "intro": "Each section is one category of data as our privacy policy defines it, with its legal basis"
                    " and when it is deleted. The JSON file delivered with this report holds the same data, every"
                    " record included, in machine-readable form.",
           "legal_basis": "Legal basis", "deletion": "Deletion", "erasure": "Erasure on request",
           "none_held": "None held.", "summarised": "Summarised here; every record is listed in the JSON file.",
           "records": "records", "first": "first", "last": "last", "yes": "yes", "no": "no",
           "documents": "Documents (delivered as files with this report)", "file": "file", "size": "size",
           "checksum": "SHA-256", "bytes": "{n} bytes", "shortened": "… ({n} characters; whole in the JSON file)",
           "kept_active": "Kept while the relationship lasts; deleted {period} after it ends.",
           "kept_active_now": "Kept while the relationship lasts; deleted when it ends.",
           "will": "Will be deleted on {day}.", "was": "Deleted on {day}.",
           "due": "Due for deletion on {day}; still held while a legal hold applies, otherwise deleted by the"
                  " next daily run.",
           "fiscal": "Material of fiscal year {year}: ", "years": "{n} year(s)",
           "held": "Kept under a legal hold; not deleted until it is released.",
           "retention": "Rule", "recipients": "Passed to", "nobody": "Nobody.",
           "erasable": "Can be erased on request.",
           "erasable_after": "Can be erased on request (while the relationship lasts only in part or not at all)."},
}
# Column labels (Danish, English); a column not listed shows its name in words.
LABELS = {
    "customer_id": ("Kundenummer", "Customer number"), "company_name": ("Firmanavn", "Company name"),
    "cvr": ("CVR-nummer", "CVR number"), "address": ("Adresse", "Address"), "email": ("E-mail", "E-mail"),
    "phone": ("Telefon", "Phone"), "relationship_ended_on": ("Kundeforhold ophørt", "Relationship ended"),
    "crm_purged_on": ("Stamdata slettet", "Master data deleted"),
    "directory_opt_out": ("Hemmeligt nummer (ikke i 118)", "Unlisted (not in directory 118)"),
    "directory_opt_in": ("Oplyses i 118 efter ønske", "Listed in directory 118 on request"),
    "contact_id": ("Kontakt-nr.", "Contact no."), "full_name": ("Navn", "Name"), "role": ("Rolle", "Role"),
    "correspondence_id": ("Henvendelse-nr.", "Message no."), "sent_at": ("Sendt", "Sent"),
    "subject": ("Emne", "Subject"), "body": ("Tekst", "Text"), "number": ("Nummer", "Number"),
    "kind": ("Type", "Kind"), "pbx_config_id": ("Omstilling-nr.", "PBX no."), "config": ("Opsætning", "Setup"),
    "sip_peer_id": ("SIP-konto-nr.", "SIP account no."), "username": ("Brugernavn", "User name"),
    "secret_hash": ("Adgangskode (kun som hash)", "Password (hash only)"), "host": ("Vært", "Host"),
    "contract_id": ("Aftale-nr.", "Agreement no."), "signed_on": ("Underskrevet", "Signed"),
    "document": ("Dokument", "Document"), "invoice_id": ("Faktura-nr.", "Invoice no."),
    "issued_on": ("Udstedt", "Issued"), "fiscal_year": ("Regnskabsår", "Fiscal year"),
    "billing_name": ("Faktureringsnavn", "Billing name"), "billing_address": ("Faktureringsadresse", "Billing address"),
    "amount_dkk": ("Beløb (kr.)", "Amount (DKK)"), "payment_id": ("Betaling-nr.", "Payment no."),
    "paid_on": ("Betalt", "Paid"), "a_number": ("Fra nummer", "From number"), "b_number": ("Til nummer", "To number"),
    "started_at": ("Tidspunkt", "Time"), "duration_s": ("Varighed (sek.)", "Duration (s)"),
}
VALUE_LABELS = {
    "role": {"billing": ("fakturering", "billing"), "technical": ("teknik", "technical"), "other": ("andet", "other")},
    "kind": {"main": ("hovednummer", "main number"), "landline": ("fastnet", "landline"), "mobile": ("mobil", "mobile"),
             "call": ("opkald", "call"), "sms": ("sms", "SMS"), "mms": ("mms", "MMS"), "data": ("data", "data")},
}


def output_dir() -> Path:
    return report_folder("subject_access")


def file_stem(customer_id: int, run_id: str) -> str:
    return f"customer_{customer_id}_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)


def deletion_schedule(policy: Policy, rule: Rule, ended_on: dt.date | None, year_ends: list[dt.date],
                      held: bool) -> list[dict]:
    """When the category's data is deleted: under a legal hold in force, not while it
    lasts; for a relationship clock the rule in words while the relationship lasts, the
    date once it has ended; for accounting one entry per fiscal year the customer's rows
    are kept for (accounting units: see policy.DataItem.unit_key)."""
    if held:
        return [{"when": KEPT_UNDER_HOLD.model_dump(), "deleted_on": None, "legal_hold": True}]
    if rule.clock == "relationship_end":
        if ended_on is None:
            return [{"when": rule.in_words().model_dump(), "deleted_on": None}]
        due = rule.deadline(ended_on)
        return [{"when": {"en": f"on {due}", "da": f"den {due}"}, "deleted_on": due.isoformat()}]
    schedule = []
    for end in year_ends:
        due = rule.deadline(end)
        schedule.append({"when": {"en": f"material of fiscal year {end.year} (ended {end}): on {due}",
                                  "da": f"materiale fra regnskabsåret {end.year} (sluttede {end}): den {due}"},
                         "fiscal_year": end.year, "fiscal_year_ended_on": end.isoformat(),
                         "deleted_on": due.isoformat()})
    return schedule


def _year_ends(cur, policy: Policy, rule: Rule, customer_id: int) -> list[dt.date]:
    """The fiscal-year ends the customer's rows of a fiscal-year rule are kept for: per row
    its own, or its accounting unit's latest (the definitions verification uses, over the
    customer's rows only)."""
    mine = " UNION ".join(f"SELECT {i.unit_key} FROM {i.table} WHERE {i.subject_filter()}"
                          for i in rule.data if i.unit_key)
    ends = []
    for item in rule.data:
        units = f" LEFT JOIN {unit_ends(policy, rule, mine)} ue ON ue.unit = t.{item.unit_key}" if item.unit_key else ""
        ends.append(f"SELECT {unit_year_end(policy, rule, item)} FROM {item.table} t{units}"
                    f" WHERE {item.subject_filter()}")
    cur.execute(f"SELECT DISTINCT e FROM ({' UNION '.join(ends)}) u(e) WHERE e IS NOT NULL ORDER BY e",
                {"customer_id": customer_id})
    return [row[0] for row in cur.fetchall()]


def _order_by(item: DataItem) -> str:
    own_date = item.dated_by and "." not in item.dated_by
    return f"{item.dated_by}, t" if own_date else "t"


def export(conn, customer_id: int, requested_by: str, as_of: dt.date, run: audit.RunContext,
           language: str = "da") -> dict:
    """Write the customer's access report (JSON + HTML, documents as files beside them) and its
    audit row; counts and checksums back."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")
    policy = load_policy()
    stem = file_stem(customer_id, run.run_id)
    json_out, html_out = ReportFile(output_dir() / f"{stem}.json"), ReportFile(output_dir() / f"{stem}.html")
    report = _Report(html_out, language, output_dir() / f"{stem}_files")
    counts: dict[str, int] = {}
    try:
        with transaction(conn) as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one consistent snapshot
            ended_on = require_customer(cur, customer_id)["relationship_ended_on"]
            if ended_on is not None and ended_on > as_of:
                ended_on = None  # ends later: the relationship lasts at as_of
            on_hold = bool(holds_in_force(cur, customer_id))
            _write_head(json_out, report, customer_id, as_of, ended_on)
            for index, rule in enumerate(policy.rules):
                year_ends = _year_ends(cur, policy, rule, customer_id) if rule.clock == "fiscal_year_end" else []
                schedule = deletion_schedule(policy, rule, ended_on, year_ends, on_hold)
                _write_category(json_out, report, policy, rule, schedule, first=index == 0)
                held = 0
                for position, item in enumerate(rule.data):
                    counts[item.table], holding = _write_table(conn, cur, json_out, report, item, customer_id,
                                                               first=position == 0)
                    held += holding
                json_out.write("]}")
                _write_deletion(report, rule, schedule, held, as_of)
                html_out.write("</section>")
            json_out.write("]}\n")
            html_out.write("</body></html>\n")
            json_sha, html_sha = json_out.commit(), html_out.commit()
        # The audit row in a READ COMMITTED transaction of its own: the snapshot above
        # may be older than the chain's head (lifecycle_audit_seal locks the latest).
        with transaction(conn) as cur:
            event = audit.record(cur, audit.Action(
                "subject_access_export", None, customer_id, None, sum(counts.values()), as_of, False,
                {"file": json_out.path.name, "sha256": json_sha,  # who asked: in the run's params
                 "html_sha256": html_sha, "rows": counts, "language": language,
                 "documents": {d["file"]: d["sha256"] for d in report.documents}}), run)
    except BaseException:
        json_out.abandon()
        html_out.abandon()
        report.abandon()
        raise
    audit.emit([event])
    return {"customer_id": customer_id, "as_of": as_of.isoformat(), "rows": counts, "language": language,
            "json_file": str(json_out.path), "sha256": json_sha,
            "html_file": str(html_out.path), "html_sha256": html_sha,
            "documents": [{"file": str(report.files_dir / d["file"]), "bytes": d["bytes"], "sha256": d["sha256"]}
                          for d in report.documents],
            "audit_id": event["audit_id"]}


class _Report:
    """The HTML report in one language, and the documents written beside it."""

    def __init__(self, out: ReportFile, language: str, files_dir: Path):
        self.out, self.language, self.files_dir = out, language, files_dir
        self.words = WORDS[language]
        self.documents: list[dict] = []

    def write(self, text: str) -> None:
        self.out.write(text)

    def say(self, key: str, **values) -> str:
        return _e(self.words[key].format(**values))

    def pick(self, text: Bilingual | dict) -> str:
        return _e(text[self.language] if isinstance(text, dict) else getattr(text, self.language))

    def label(self, column: str) -> str:
        pair = LABELS.get(column)
        return _e(pair[LANGUAGES.index(self.language)] if pair else column.replace("_", " ").capitalize())

    def value(self, column: str, value) -> str:
        """A value as a reader expects it: words for codes, dates and times as such, no `null`."""
        index = LANGUAGES.index(self.language)
        if value is None:
            return "–"
        if isinstance(value, bool):
            return self.say("yes" if value else "no")
        if column in VALUE_LABELS and value in VALUE_LABELS[column]:
            return _e(VALUE_LABELS[column][value][index])
        if isinstance(value, str) and TIMESTAMP.match(value):
            moment = dt.datetime.fromisoformat(value).astimezone(LOCAL_TZ)
            return _e(f"{moment:%Y-%m-%d} {'kl. ' if self.language == 'da' else ''}{moment:%H:%M}")
        if column.endswith("_dkk") and isinstance(value, (int, float)):
            text = f"{value:,.2f}"
            return _e(text.translate(str.maketrans(",.", ".,")) if self.language == "da" else text)
        if isinstance(value, dict):
            return "<br>".join(f"{_e(k)}: {self.value(k, v)}" for k, v in value.items())
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if len(text) > CELL_CHARS:
            return _e(text[:CELL_CHARS]) + self.say("shortened", n=len(text))
        return _e(text)

    def document(self, table: str, key, column: str, content: bytes) -> dict:
        """Write one binary value as a file beside the report; its name, size and checksum."""
        suffix = ".pdf" if content.startswith(b"%PDF") else ".bin"
        name = f"{table}_{key}_{column}{suffix}"
        entry = {"file": name, "bytes": len(content),
                 "sha256": write_report(private_dir(self.files_dir) / name, content)}
        self.documents.append(entry)
        return entry

    def abandon(self) -> None:
        for entry in self.documents:
            (self.files_dir / entry["file"]).unlink(missing_ok=True)


def _columns(cur, table: str) -> tuple[list[str], list[str]]:
    """The table's columns in their order: (the others, the binary ones)."""
    cur.execute("SELECT attname, atttypid = 'bytea'::regtype FROM pg_attribute WHERE attrelid = %s::regclass"
                " AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (table,))
    columns = cur.fetchall()
    return [name for name, binary in columns if not binary], [name for name, binary in columns if binary]


def _write_table(conn, cur, json_out: ReportFile, report: _Report, item: DataItem, customer_id: int,
                 first: bool) -> tuple[int, int]:
    """Stream the item's rows to both files; (rows, rows still holding the item's data: for an
    anonymised item, those whose anonymised columns are not all empty)."""
    plain, binary = _columns(cur, item.table)
    params = {"customer_id": customer_id}
    description = item.description or Bilingual(en=item.table, da=item.table)
    json_out.write(("" if first else ",") + json.dumps(
        {"table": item.table, "description": description.model_dump()})[:-1] + ', "rows": [')
    report.write(f"<h3>{report.pick(description)}</h3>")
    if item.summary_by:
        _write_summary(cur, report, item, params)
    # json_build_object keeps the columns' order (to_jsonb sorts them); documents come as bytes
    row_sql = "json_build_object(" + ", ".join(f"'{c}', t.{c}" for c in plain) + ")::text"
    count = holding = 0
    with conn.cursor(name=f"access_{item.table}") as rows:  # server-side: CHUNK_ROWS at a time
        rows.itersize = CHUNK_ROWS
        rows.execute(f"SELECT {', '.join([row_sql, *(f't.{c}' for c in binary)])}"
                     f" FROM {item.table} t WHERE {item.subject_filter()} ORDER BY {_order_by(item)}", params)
        for row_text, *contents in rows:
            row = json.loads(row_text)
            key = next(iter(row.values()), count)
            for column, content in zip(binary, contents, strict=True):
                row[column] = None if content is None else report.document(item.table, key, column, bytes(content))
            holding += item.action != "anonymise" or any(row.get(c) is not None for c in item.columns)
            json_out.write(("," if count else "") + "\n" + json.dumps(row, ensure_ascii=False))
            if not item.summary_by:
                shown = {k: v for k, v in row.items()
                         if k not in binary and (k != "customer_id" or item.table == "customers")}
                shown.update({column: row[column] for column in binary})  # documents last
                if count == 0:
                    report.write("<table><tr>" + "".join(f"<th>{report.label(k)}</th>" for k in shown) + "</tr>")
                report.write("<tr>" + "".join(
                    f"<td>{_document_cell(report, v) if k in binary else report.value(k, v)}</td>"
                    for k, v in shown.items()) + "</tr>")
            count += 1
    json_out.write(f'], "row_count": {count}}}')
    if not item.summary_by:
        report.write("</table>" if count else f"<p>{report.say('none_held')}</p>")
    return count, holding


def _document_cell(report: _Report, entry: dict | None) -> str:
    if entry is None:
        return "–"
    return (f"<a href='{_e(report.files_dir.name)}/{_e(entry['file'])}'>{_e(entry['file'])}</a>"
            f"<br><small>{report.say('bytes', n=entry['bytes'])} · SHA-256 <code>{entry['sha256']}</code></small>")


def _write_summary(cur, report: _Report, item: DataItem, params: dict) -> None:
    group, period = item.summary_by, item.dated_by
    if group is None or period is None:
        raise ValueError(f"{item.table}: a summary needs both `summary_by` and `dated_by`")
    cur.execute(f"SELECT {group}, count(*), min({period}), max({period}) FROM {item.table}"
                f" WHERE {item.subject_filter()} GROUP BY {group} ORDER BY {group}", params)
    summary = cur.fetchall()
    if not summary:
        report.write(f"<p>{report.say('none_held')}</p>")
        return
    report.write(f"<p>{report.say('summarised')}</p><table><tr><th>{report.label(group)}</th>"
                 f"<th>{report.say('records')}</th><th>{report.say('first')}</th><th>{report.say('last')}</th></tr>")
    for value, number, first, last in summary:
        report.write(f"<tr><td>{report.value(group, value)}</td><td>{number}</td>"
                     f"<td>{report.value(period, first.isoformat())}</td>"
                     f"<td>{report.value(period, last.isoformat())}</td></tr>")
    report.write("</table>")


def _write_head(json_out: ReportFile, report: _Report, customer_id: int, as_of: dt.date,
                ended_on: dt.date | None) -> None:
    head = {"customer_id": customer_id, "as_of": as_of.isoformat(),
            "relationship_ended_on": ended_on.isoformat() if ended_on else None}
    json_out.write(json.dumps(head)[:-1] + ', "categories": [')
    status = report.words["ended"].format(ended=ended_on) if ended_on else report.words["active"]
    title = report.say("title", customer=customer_id)
    report.write(
        f"<!DOCTYPE html><html lang='{report.language}'><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:75em}table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #bbb;padding:.2em .5em;font-size:.85em;vertical-align:top;text-align:left}"
        "section{border-top:2px solid #444;margin-top:2em}small{color:#555}</style></head><body>"
        f"<h1>{title}</h1><p>{report.say('as_of', as_of=as_of)} {report.say('relationship', status=status)}"
        f" {report.say('intro')}</p>")


def _write_category(json_out: ReportFile, report: _Report, policy: Policy, rule: Rule, schedule: list[dict],
                    first: bool) -> None:
    erasure = (rule.erasure.exempt_reason.model_dump() if not rule.erasure.on_request else
               {"en": "Can be erased on request" + ("" if rule.erasure.while_active is True else
                                                    " (while the relationship lasts only in part or not at all)"),
                "da": "Kan slettes på anmodning" + ("" if rule.erasure.while_active is True else
                                                    " (mens kundeforholdet består kun delvis eller ikke)")})
    recipients = [{"id": r.id, **r.name.model_dump()} for r in policy.recipients_of(rule.id)]
    head = {"rule": rule.id, "category": rule.category.model_dump(), "legal_basis": rule.legal_basis.model_dump(),
            "retention": rule.in_words().model_dump(), "erasure_on_request": erasure, "deletion": schedule,
            "recipients": recipients}
    json_out.write(("" if first else ",") + "\n" + json.dumps(head, ensure_ascii=False)[:-1] + ', "tables": [')
    report.write(
        f"<section><h2>{report.pick(rule.category)}</h2>"
        f"<p><b>{report.say('legal_basis')}:</b> {report.pick(rule.legal_basis)}</p>"
        f"<p><b>{report.say('retention')}:</b> {report.pick(rule.in_words())}</p>"
        f"<p><b>{report.say('erasure')}:</b> {report.pick(erasure)}</p>"
        f"<p><b>{report.say('recipients')}:</b></p><ul>"
        + ("".join(f"<li>{report.pick(r)}</li>" for r in recipients) or f"<li>{report.say('nobody')}</li>")
        + "</ul>")


def _write_deletion(report: _Report, rule: Rule, schedule: list[dict], held: int, as_of: dt.date) -> None:
    """Whether the category's data will be deleted and when, or was (written after its rows are counted)."""
    lines = []
    for entry in schedule:
        if entry.get("legal_hold"):
            lines.append(report.say("held"))
            continue
        if entry["deleted_on"] is None:  # an active customer: the clock has not started
            period = report.words["years"].format(n=rule.period_years)
            lines.append(report.say("kept_active", period=period) if rule.period_years
                         else report.say("kept_active_now"))
            continue
        day = dt.date.fromisoformat(entry["deleted_on"])
        verdict = "will" if day > as_of else "due" if held else "was"
        prefix = report.say("fiscal", year=entry["fiscal_year"]) if "fiscal_year" in entry else ""
        lines.append(prefix + report.say(verdict, day=day))
    if not lines:
        lines.append(report.say("none_held"))
    report.write(f"<p><b>{report.say('deletion')}:</b></p><ul>" + "".join(f"<li>{line}</li>" for line in lines)
                 + "</ul>")


def _e(value) -> str:
    return html.escape(str(value))
