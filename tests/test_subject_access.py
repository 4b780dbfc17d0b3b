"""data_subject_access through dag.test(): every policy category, nothing of other customers,
personal data only in the files."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tracemalloc
from pathlib import Path

from conftest import ANCHOR

from telco_lifecycle.policy import load_policy
from telco_lifecycle.subjects.access import LABELS, VALUE_LABELS

RUN_DATE = dt.datetime(2026, 6, 15, 12, tzinfo=dt.UTC)


def customer_with_everything(telco) -> int:
    return telco.scalar("""
        SELECT c.customer_id FROM customers c
        WHERE c.relationship_ended_on IS NULL AND NOT lifecycle_on_hold(c.customer_id)
          AND EXISTS (SELECT 1 FROM crm_correspondence x WHERE x.customer_id = c.customer_id)
          AND EXISTS (SELECT 1 FROM pbx_configs x WHERE x.customer_id = c.customer_id)
          AND EXISTS (SELECT 1 FROM payments p JOIN invoices i USING (invoice_id) WHERE i.customer_id = c.customer_id)
        ORDER BY c.customer_id LIMIT 1""")


def test_access_export_has_every_category_and_only_this_customer(telco, run_dag):
    customer = customer_with_everything(telco)
    policy = load_policy()
    before = telco.fingerprint()

    dag_run, xcom = run_dag("data_subject_access", {"customer_id": customer, "requested_by": "test"}, RUN_DATE)

    assert dag_run.state == "success"
    result = xcom["export_customer_data"]
    report = json.loads(Path(result["json_file"]).read_text(encoding="utf-8"))
    assert hashlib.sha256(Path(result["json_file"]).read_bytes()).hexdigest() == result["sha256"]
    assert [c["rule"] for c in report["categories"]] == [r.id for r in policy.rules]
    for category, rule in zip(report["categories"], policy.rules, strict=True):
        assert category["legal_basis"] == rule.legal_basis.model_dump()
        assert [t["table"] for t in category["tables"]] == list(rule.tables)
        for table in category["tables"]:
            item = next(i for i in rule.data if i.table == table["table"])
            expected = telco.scalar(f"SELECT count(*) FROM {item.table} WHERE {item.subject_filter()}",
                                    {"customer_id": customer})
            assert table["row_count"] == len(table["rows"]) == expected > 0, item.table
            for row in table["rows"]:
                if "customer_id" in row:
                    assert row["customer_id"] == customer
        assert category["retention"] == rule.in_words().model_dump()
        assert [r["id"] for r in category["recipients"]] == [r.id for r in policy.recipients_of(rule.id)]
        if rule.clock == "relationship_end":  # an active customer: the rule in words
            assert category["deletion"] == [{"when": rule.in_words().model_dump(), "deleted_on": None}]
        else:
            years = [d["fiscal_year"] for d in category["deletion"]]
            assert years == list(range(min(years), max(years) + 1))
            assert category["deletion"][0]["deleted_on"] == f"{years[0] + 5 + 1}-01-01"
    invoice_ids = {r["invoice_id"] for c in report["categories"] for t in c["tables"] if t["table"] == "invoices"
                   for r in t["rows"]}
    payments = next(t for c in report["categories"] for t in c["tables"] if t["table"] == "payments")
    assert {r["invoice_id"] for r in payments["rows"]} <= invoice_ids

    page = Path(result["html_file"]).read_text(encoding="utf-8")
    for rule in policy.rules:  # Danish by default
        assert rule.category.da in page and rule.category.en not in page
    assert "Opbevares, så længe kundeforholdet består" in page
    assert "118-nummeroplysningen" in page and "inkassobureau" in page and "Videregives til" in page
    name = telco.scalar("SELECT company_name FROM customers WHERE customer_id = %s", (customer,))
    assert name in page
    cdr_numbers = telco.rows("SELECT b_number FROM cdrs WHERE customer_id = %s", (customer,))
    assert not any(number in page for (number,) in cdr_numbers), "CDRs are summarised, not listed, in HTML"
    for kind, count in telco.rows("SELECT kind, count(*) FROM cdrs WHERE customer_id = %s GROUP BY kind",
                                  (customer,)):
        assert f"<td>{VALUE_LABELS['kind'][kind][0]}</td><td>{count}</td>" in page

    # nothing changed, and the audit row carries counts and the checksum, no personal data
    assert telco.fingerprint() == before
    action, details = telco.rows("SELECT action, details::text FROM lifecycle_audit WHERE customer_id = %s",
                                 (customer,))[0]
    assert action == "subject_access_export"
    assert result["sha256"] in details and name not in details
    assert name not in json.dumps(result)


def test_ended_customer_gets_deletion_dates(telco, run_dag):
    customer = telco.scalar("""SELECT customer_id FROM customers WHERE relationship_ended_on > %s - 365
                               ORDER BY customer_id LIMIT 1""", (ANCHOR,))
    ended = telco.scalar("SELECT relationship_ended_on FROM customers WHERE customer_id = %s", (customer,))
    dag_run, xcom = run_dag("data_subject_access", {"customer_id": customer, "requested_by": "test"}, RUN_DATE)
    assert dag_run.state == "success"
    report = json.loads(Path(xcom["export_customer_data"]["json_file"]).read_text(encoding="utf-8"))
    crm = next(c for c in report["categories"] if c["rule"] == "crm_master_data")
    assert crm["deletion"][0]["deleted_on"] == ended.replace(year=ended.year + 1).isoformat()


def test_accounting_dates_follow_the_units_and_a_hold_keeps_everything(telco, run_dag):
    """A fiscal-2019 invoice paid in January 2020 is 2020 material (deleted 2026-01-01); under a
    legal hold in force every category says it is kept under the hold."""
    customer = telco.scalar("SELECT max(customer_id) + 1 FROM customers")
    telco.execute("INSERT INTO customers (customer_id, company_name) VALUES (%s, 'Unit ApS')", (customer,))
    invoice = telco.scalar("INSERT INTO invoices (customer_id, issued_on, fiscal_year) VALUES (%s, '2019-12-31', 2019)"
                           " RETURNING invoice_id", (customer,))
    telco.execute("INSERT INTO payments (invoice_id, paid_on) VALUES (%s, '2020-01-10')", (invoice,))
    telco.execute("INSERT INTO cdrs (customer_id, a_number, b_number, started_at, kind) VALUES"
                  " (%s, '+4511111111', '+4522222222', '2019-06-01 12:00+02', 'sms')", (customer,))

    def categories() -> dict:
        dag_run, xcom = run_dag("data_subject_access", {"customer_id": customer, "requested_by": "test"}, RUN_DATE)
        assert dag_run.state == "success"
        report = json.loads(Path(xcom["export_customer_data"]["json_file"]).read_text(encoding="utf-8"))
        return {c["rule"]: c for c in report["categories"]}

    accounting = categories()["accounting"]["deletion"]
    assert [(d["fiscal_year"], d["deleted_on"]) for d in accounting] == [(2019, "2025-01-01"), (2020, "2026-01-01")]

    telco.execute("INSERT INTO legal_holds (customer_id, case_reference, placed_on) VALUES (%s, 'SKP-A', '2026-01-01')",
                  (customer,))
    for category in categories().values():
        assert category["deletion"] == [{"when": {"en": "kept under a legal hold",
                                                  "da": "opbevares på grund af et retligt pålæg (legal hold)"},
                                         "deleted_on": None, "legal_hold": True}]


def test_export_streams_cdrs_in_constant_memory(telco):
    """Python memory stays flat whether the customer has 20 or 20,000 CDRs."""
    from telco_lifecycle.database import connect
    from telco_lifecycle.evidence import audit
    from telco_lifecycle.subjects import access as subject_access

    customer = customer_with_everything(telco)

    def peak_after_adding(extra: int) -> int:
        telco.execute("""INSERT INTO cdrs (customer_id, a_number, b_number, started_at, duration_s, kind)
                         SELECT %s, '+4512345678', '+4587654321', timestamptz '2026-01-01' + n * interval '1 minute',
                                60, 'call' FROM generate_series(1, %s) n""", (customer, extra))
        conn = connect(telco.url)
        tracemalloc.start()
        subject_access.export(conn, customer, "test", ANCHOR, audit.RunContext(run_id=f"memory_{extra}"))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        conn.close()
        return peak

    small = peak_after_adding(0)
    large = peak_after_adding(20000)
    assert large < small + 1_000_000, (small, large)


def test_unknown_customer_fails_and_writes_nothing(telco, run_dag):
    before = telco.fingerprint()
    dag_run, _ = run_dag("data_subject_access", {"customer_id": 987654321, "requested_by": "test"}, RUN_DATE)
    assert dag_run.state == "failed"
    assert telco.fingerprint() == before
    assert "987654321" in telco.refusal(dag_run.run_id)[1]


def test_report_in_english_with_labels_and_documents_as_files(telco, run_dag):
    """language=en: English only, labels instead of column names, no null/false/hex; each
    signed contract a file beside the report, listed by name, size and checksum."""
    customer = customer_with_everything(telco)
    dag_run, xcom = run_dag("data_subject_access", {"customer_id": customer, "requested_by": "test",
                                                    "language": "en"}, RUN_DATE)
    assert dag_run.state == "success"
    result = xcom["export_customer_data"]
    page = Path(result["html_file"]).read_text(encoding="utf-8")
    assert "<html lang='en'>" in page and "Kept while the relationship lasts" in page
    for rule in load_policy().rules:
        assert rule.category.en in page and rule.category.da not in page
    for raw in ("<th>company_name</th>", "<th>customer_id</th>", "null", "false", "\\x"):
        assert raw not in page, raw
    assert f"<th>{LABELS['company_name'][1]}</th>" in page
    documents = telco.rows("SELECT document FROM archived_contracts WHERE customer_id = %s", (customer,))
    assert len(result["documents"]) == len(documents) > 0
    for entry in result["documents"]:
        path = Path(entry["file"])
        assert path.parent == Path(result["html_file"]).with_name(Path(result["html_file"]).stem + "_files")
        assert path.name in page and entry["sha256"] in page and f"{entry['bytes']} bytes" in page
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert {hashlib.sha256(bytes(c)).hexdigest() for (c,) in documents} == {d["sha256"] for d in result["documents"]}
    report = json.loads(Path(result["json_file"]).read_text(encoding="utf-8"))
    contracts = next(t for c in report["categories"] for t in c["tables"] if t["table"] == "archived_contracts")
    assert {row["document"]["sha256"] for row in contracts["rows"]} == {d["sha256"] for d in result["documents"]}


def test_deletion_says_will_be_or_was(telco, run_dag):
    """An ended customer: a category not yet due "will be deleted on"; once deleted, "Deleted on"."""
    customer = telco.scalar("""SELECT customer_id FROM customers WHERE relationship_ended_on > %s - 365
                               AND NOT lifecycle_on_hold(customer_id) ORDER BY customer_id LIMIT 1""", (ANCHOR,))
    ended = telco.scalar("SELECT relationship_ended_on FROM customers WHERE customer_id = %s", (customer,))
    _, xcom = run_dag("data_subject_access", {"customer_id": customer, "requested_by": "test", "language": "en"},
                      RUN_DATE)
    page = Path(xcom["export_customer_data"]["html_file"]).read_text(encoding="utf-8")
    assert f"Will be deleted on {ended.replace(year=ended.year + 1)}." in page  # CRM master data
    pbx_due = load_policy().rule("pbx_sip_config").deadline(ended)
    assert f"Deleted on {pbx_due}." in page  # PBX/SIP went at the offboarding
