"""crm_retention and contract_archive_retention through dag.test() at the boundary days."""

from __future__ import annotations

import datetime as dt

from retention_helpers import add_customer, at, hold, rows_of

D = dt.date


def test_crm_retention_boundaries_29_february_and_rerun(telco, run_dag):
    # as_of 2025-02-28: deadlines the day before, on the day (29 Feb + 1 year = 28 Feb), the day after
    add_customer(telco, 100001, D(2024, 2, 27))
    add_customer(telco, 100002, D(2024, 2, 29))
    add_customer(telco, 100003, D(2024, 3, 1))
    add_customer(telco, 100004, None)
    kept_before = {c: rows_of(telco, c) for c in (100003, 100004)}

    dag_run, xcom = run_dag("crm_retention", {}, at(D(2025, 2, 28)))

    assert dag_run.state == "success"
    for customer in (100001, 100002):
        assert rows_of(telco, customer) == {
            "pbx_configs": 0, "sip_peers": 0, "crm_correspondence": 0, "contacts": 0, "phone_numbers": 0,
            "customers": 0, "archived_contracts": 1, "cdrs": 0, "payments": 0, "invoices": 0}
        assert telco.rows("SELECT relationship_ended_on IS NOT NULL, crm_purged_on, cvr, email FROM customers"
                          " WHERE customer_id = %s", (customer,)) == [(True, D(2025, 2, 28), None, None)]
    for customer, before in kept_before.items():
        assert rows_of(telco, customer) == before
    summary = xcom["verify_retention"]
    assert summary["verification"] == "passed" and summary["as_of"] == "2025-02-28"
    assert summary["removed"] == summary["due"] and summary["removed"]["customers"] >= 2
    audit = telco.rows("SELECT action, rule, table_name, row_count, details->'tables' FROM lifecycle_audit"
                       " WHERE customer_id = 100002 ORDER BY audit_id")
    assert audit == [("purge", "crm_master_data", None, 4, {  # one record per customer and rule
        "crm_correspondence": 1, "contacts": 1, "phone_numbers": 1, "customers": 1})]

    # the day after: 100003 is due; a re-run of that date changes nothing, not even the audit trail
    dag_run, xcom = run_dag("crm_retention", {"as_of": "2025-03-01"}, at(D(2025, 3, 1)))
    assert dag_run.state == "success"
    assert rows_of(telco, 100003)["customers"] == 0 and rows_of(telco, 100004) == kept_before[100004]
    before = telco.fingerprint(exclude=())
    dag_run, xcom = run_dag("crm_retention", {"as_of": "2025-03-01"}, at(D(2025, 3, 1), hour=4))
    assert dag_run.state == "success"
    assert sum(xcom["verify_retention"]["removed"].values()) == 0
    assert telco.fingerprint(exclude=()) == before
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit_chain_breaks") == 0


def test_contract_archive_boundaries(telco, run_dag):
    add_customer(telco, 100011, D(2020, 2, 27))
    add_customer(telco, 100012, D(2020, 2, 29))   # + 5 years = 2025-02-28
    add_customer(telco, 100013, D(2020, 3, 1))

    dag_run, xcom = run_dag("contract_archive_retention", {}, at(D(2025, 2, 28)))

    assert dag_run.state == "success"
    assert [rows_of(telco, c)["archived_contracts"] for c in (100011, 100012, 100013)] == [0, 0, 1]
    assert rows_of(telco, 100012)["contacts"] == 1  # another rule's data stays
    assert xcom["verify_retention"]["verification"] == "passed"


def test_dry_run_counts_exactly_and_changes_nothing(telco, run_dag):
    before = telco.fingerprint()

    dag_run, xcom = run_dag("crm_retention", {"dry_run": True}, at(D(2026, 6, 15)))

    assert dag_run.state == "success"
    assert telco.fingerprint() == before
    would = xcom["verify_retention"]["due"]
    assert xcom["verify_retention"]["dry_run"] is True and would["customers"] > 10
    assert telco.scalar("SELECT bool_and(dry_run) FROM lifecycle_audit WHERE rule = 'crm_master_data'")

    dag_run, xcom = run_dag("crm_retention", {}, at(D(2026, 6, 15), hour=4))
    assert xcom["verify_retention"]["removed"] == would


def test_legal_hold_blocks_then_release_purges(telco, run_dag):
    add_customer(telco, 100021, D(2020, 1, 1))
    before = rows_of(telco, 100021)
    assert hold(run_dag, 100021, "place")[0].state == "success"

    for dag_id in ("crm_retention", "contract_archive_retention"):
        dag_run, xcom = run_dag(dag_id, {}, at(D(2026, 6, 15)))
        assert dag_run.state == "success" and xcom["verify_retention"]["skipped_legal_hold"] >= 1
    assert rows_of(telco, 100021) == before
    skipped = telco.rows("SELECT rule, (SELECT array_agg(h.case_reference) FROM legal_holds h WHERE h.legal_hold_id IN"
                         " (SELECT jsonb_array_elements_text(details->'legal_hold_ids')::int)) FROM lifecycle_audit"
                         " WHERE customer_id = 100021 AND action = 'skipped_legal_hold' ORDER BY audit_id")
    assert skipped == [("crm_master_data", ["SKP-TEST-1"]), ("archived_contracts", ["SKP-TEST-1"])]

    assert hold(run_dag, 100021, "release")[0].state == "success"
    dag_run, _ = run_dag("crm_retention", {}, at(D(2026, 6, 15), hour=4))
    assert dag_run.state == "success"
    assert rows_of(telco, 100021)["contacts"] == 0 and rows_of(telco, 100021)["archived_contracts"] == 1


def test_the_purges_hold_condition_is_lifecycle_on_hold(telco):
    """The purge's statements test holds with customers.on_hold_sql (joinable), the database's
    own checks with lifecycle_on_hold(): for every customer, held, released or never held, they agree."""
    from telco_lifecycle.customers import on_hold_sql

    telco.execute("UPDATE legal_holds SET released_on = placed_on + 1 WHERE legal_hold_id IN"
                  " (SELECT min(legal_hold_id) FROM legal_holds)")
    held, released, differ = telco.rows(
        f"SELECT count(*) FILTER (WHERE {on_hold_sql('c.customer_id')}),"
        " count(*) FILTER (WHERE EXISTS (SELECT 1 FROM legal_holds r WHERE r.customer_id = c.customer_id"
        "                                AND r.released_on IS NOT NULL)),"
        f" count(*) FILTER (WHERE lifecycle_on_hold(c.customer_id) IS DISTINCT FROM {on_hold_sql('c.customer_id')})"
        " FROM customers c")[0]
    assert held > 0 and released > 0 and differ == 0


def test_as_of_after_the_run_date_is_refused(telco, run_dag):
    before = telco.fingerprint()
    dag_run, _ = run_dag("crm_retention", {"as_of": "2031-01-01"}, at(D(2026, 6, 15)))
    assert dag_run.state == "failed"
    assert telco.fingerprint() == before  # the refusal is recorded (audit row `refused`), nothing else
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit WHERE action = 'refused'") == 1


def test_a_batch_statement_checks_each_customers_hold_and_clock_itself(telco):
    """A batch's customers were found before its statement ran: one placed under a hold
    meanwhile and one whose clock has not run out (a caller's slip) keep everything; only
    the due one is purged, and only it gets a record."""
    from telco_lifecycle.database import connect, transaction
    from telco_lifecycle.evidence.audit import RunContext
    from telco_lifecycle.rules import retention

    add_customer(telco, 100021, D(2024, 1, 10))  # due at 2025-02-28
    add_customer(telco, 100022, D(2024, 1, 10))  # due, but held after the batch was read
    add_customer(telco, 100023, D(2024, 6, 1))   # not due yet
    telco.execute("INSERT INTO legal_holds (customer_id, case_reference, placed_on) VALUES (100022, 'SKP-9', %s)",
                  (D(2025, 2, 27),))
    kept = {c: rows_of(telco, c) for c in (100022, 100023)}

    s = retention.scope("crm_master_data", D(2025, 2, 28))
    removed = {item.table: 0 for item in s.rule.data}
    conn = connect(telco.url)
    with transaction(conn) as cur:
        written = retention._purge_batch(cur, s, [100023, 100021, 100022], RunContext(), removed)
    conn.close()

    assert written is not None and written.customers == frozenset({100021})
    assert rows_of(telco, 100021)["contacts"] == 0
    assert {c: rows_of(telco, c) for c in kept} == kept
    assert telco.rows("SELECT DISTINCT customer_id FROM lifecycle_audit WHERE action = 'purge'") == [(100021,)]
