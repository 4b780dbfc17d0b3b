"""Helpers of the retention tests: customers with chosen dates, runs at chosen days."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

CPH = ZoneInfo("Europe/Copenhagen")

# A conf each manual DAG accepts (what it acts on is irrelevant: it must not get that far).
VALID_CONF = {
    "customer_offboarding": {"customer_id": 1, "requested_by": "test"},
    "customer_return": {"customer_id": 1, "requested_by": "test"},
    "legal_hold": {"customer_id": 1, "action": "release", "case_reference": "X", "requested_by": "test"},
    "data_subject_access": {"customer_id": 1, "requested_by": "test"},
    "data_subject_erasure": {"customer_id": 1, "requested_by": "test"},
    "restore_reconciliation": {"requested_by": "test"},
}


def at(day: dt.date, hour: int = 3) -> dt.datetime:
    """A logical date on `day`, Copenhagen time (vary `hour` to run a DAG twice for one day)."""
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=CPH)


def add_customer(telco, customer_id: int, ended_on: dt.date | None, invoices=(), cdrs=()) -> None:
    """A customer with one row in every CRM table and one archived contract; `invoices`:
    (issued_on, fiscal_year) pairs, each paid; `cdrs`: Copenhagen-local start times."""
    telco.execute("INSERT INTO customers (customer_id, company_name, cvr, address, email, phone,"
                  " relationship_ended_on) VALUES (%s, 'Test ApS', '12345678', 'Testvej 1', 't@example.dk',"
                  " '+4512345678', %s)", (customer_id, ended_on))
    telco.execute("INSERT INTO contacts (customer_id, full_name, role) VALUES (%s, 'Test Person', 'billing')",
                  (customer_id,))
    telco.execute("INSERT INTO crm_correspondence (customer_id, contact_id, sent_at, subject, body)"
                  " SELECT customer_id, contact_id, '2019-01-01', 's', 'b' FROM contacts WHERE customer_id = %s",
                  (customer_id,))
    telco.execute("INSERT INTO phone_numbers (number, customer_id, kind) VALUES (%s, %s, 'main')",
                  (f"+459{customer_id:07d}", customer_id))
    telco.execute("INSERT INTO archived_contracts (customer_id, signed_on, document) VALUES (%s, '2015-01-01', 'x')",
                  (customer_id,))
    for issued_on, fiscal_year in invoices:
        telco.execute("WITH i AS (INSERT INTO invoices (customer_id, issued_on, fiscal_year, billing_name, amount_dkk)"
                      " VALUES (%s, %s, %s, 'Test ApS', 100) RETURNING invoice_id, issued_on)"
                      " INSERT INTO payments (invoice_id, paid_on, amount_dkk)"
                      " SELECT invoice_id, issued_on, 100 FROM i",
                      (customer_id, issued_on, fiscal_year))
    for started_at in cdrs:
        telco.execute("INSERT INTO cdrs (customer_id, a_number, b_number, started_at, kind)"
                      " VALUES (%s, '+4511111111', '+4522222222', %s, 'sms')",
                      (customer_id, started_at.replace(tzinfo=CPH)))


def rows_of(telco, customer_id: int) -> dict[str, int]:
    """The customer's rows per governed table (customers: rows still holding personal data)."""
    from telco_lifecycle.customers import row_counts
    from telco_lifecycle.policy import load_policy

    with telco.conn.cursor() as cur:
        counts = row_counts(cur, load_policy(), customer_id)
    counts["customers"] = telco.scalar("SELECT count(*) FROM customers WHERE customer_id = %s"
                                       " AND company_name IS NOT NULL", (customer_id,))
    return counts


def hold(run_dag, customer_id: int, action: str, case: str = "SKP-TEST-1", answer: str | None = "Approve",
         logical_date: dt.datetime | None = None):
    """Place or release a hold through the legal_hold DAG; a release is answered `answer` by a
    second person (None: nobody answers, for a release refused before it asks)."""
    from conftest import respond_to_approval

    responder = respond_to_approval("legal_hold", "approve_release", answer) if action == "release" and answer else None
    result = run_dag("legal_hold", {"customer_id": customer_id, "action": action, "case_reference": case,
                                    "requested_by": "test"}, logical_date)
    if responder:
        responder.join(timeout=5)
    return result


def cdr_partitions(telco) -> list[str]:
    """The month (and default) partitions of `cdrs`, by name."""
    return [r[0] for r in telco.rows("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                                     " WHERE i.inhparent = 'cdrs_live'::regclass ORDER BY 1")]
