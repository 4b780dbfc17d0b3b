"""accounting_retention through dag.test(): fiscal-year boundaries (31 December and a
fiscal year ending 30 June), Copenhagen dates of CDRs, partition drops with held rows kept."""

from __future__ import annotations

import datetime as dt

import pytest
from retention_helpers import CPH, add_customer, at, rows_of

D, T = dt.date, dt.datetime


def cdr_times(telco, customer_id: int) -> list[dt.datetime]:
    return [r[0] for r in telco.rows("SELECT started_at AT TIME ZONE 'Europe/Copenhagen' FROM cdrs"
                                     " WHERE customer_id = %s ORDER BY 1", (customer_id,))]


def partition_exists(telco, name: str) -> bool:
    return telco.scalar("SELECT to_regclass(%s) IS NOT NULL", (name,))


def test_fiscal_year_boundary_partitions_and_holds(telco, run_dag):
    # FY 2019 (calendar year) is kept until 2024-12-31 and due on 2025-01-01.
    add_customer(telco, 100031, None, invoices=[(D(2019, 12, 31), 2019), (D(2020, 3, 31), 2020)],
                 cdrs=[T(2019, 12, 31, 23, 30), T(2020, 1, 1, 0, 30)])  # 00:30 is still 2019 in UTC
    add_customer(telco, 100032, None, invoices=[(D(2019, 6, 30), 2019)], cdrs=[T(2019, 9, 15, 12)])
    telco.execute("INSERT INTO legal_holds (customer_id, case_reference, placed_on)"
                  " VALUES (100032, 'SKP-T', '2019-01-01')")
    held_before = rows_of(telco, 100032)

    dag_run, xcom = run_dag("accounting_retention", {}, at(D(2024, 12, 31)))
    assert dag_run.state == "success"
    assert rows_of(telco, 100031)["invoices"] == 2 and len(cdr_times(telco, 100031)) == 2
    assert partition_exists(telco, "cdrs_y2019m09")

    dag_run, xcom = run_dag("accounting_retention", {"dry_run": True}, at(D(2025, 1, 1)))
    would = xcom["verify_retention"]["due"]
    assert dag_run.state == "success" and partition_exists(telco, "cdrs_y2019m09")

    dag_run, xcom = run_dag("accounting_retention", {}, at(D(2025, 1, 1), hour=4))

    assert dag_run.state == "success"
    summary = xcom["verify_retention"]
    assert summary["verification"] == "passed" and summary["removed"] == would
    assert "cdrs_y2019m09" in summary["partitions_dropped"] and not partition_exists(telco, "cdrs_y2019m09")
    # the seeded Q4 2019 invoices were paid in January 2020: their unit (with the
    # October-December CDRs billed on them) is kept a year longer, so is the month
    assert partition_exists(telco, "cdrs_y2019m12") and partition_exists(telco, "cdrs_y2020m01")
    assert telco.rows("SELECT fiscal_year FROM invoices WHERE customer_id = 100031") == [(2020,)]
    assert telco.scalar("SELECT count(*) FROM payments p JOIN invoices i USING (invoice_id)"
                        " WHERE i.customer_id = 100031") == 1
    assert cdr_times(telco, 100031) == [T(2020, 1, 1, 0, 30)]
    # the held customer's September CDR survived the drop, set aside in cdrs_held
    assert rows_of(telco, 100032) == held_before
    assert telco.scalar("SELECT count(*) FROM cdrs_held WHERE customer_id = 100032") == 1
    drop = telco.rows("SELECT row_count, details FROM lifecycle_audit WHERE action = 'drop_partition'"
                      " AND details->>'partition' = 'cdrs_y2019m09'")
    assert drop and drop[0][1]["kept_for_legal_hold"] >= 1
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit WHERE customer_id = 100032"
                        " AND action = 'skipped_legal_hold' AND rule = 'accounting'") == 1

    # nothing is due until the next fiscal year ends: the run stops after planning
    before = telco.fingerprint(exclude=())
    dag_run, xcom = run_dag("accounting_retention", {}, at(D(2025, 6, 1)))
    assert dag_run.state == "success" and "purge_due" not in xcom
    assert telco.fingerprint(exclude=()) == before


@pytest.fixture
def fiscal_year_ending_30_june(tmp_path, monkeypatch):
    """The real policy with the fiscal year ending on 30 June."""
    from telco_lifecycle.policy import default_policy_path, load_policy

    text = default_policy_path().read_text(encoding="utf-8")
    assert 'fiscal_year_end: "12-31"' in text
    path = tmp_path / "retention.yaml"
    path.write_text(text.replace('fiscal_year_end: "12-31"', 'fiscal_year_end: "06-30"'), encoding="utf-8")
    monkeypatch.setenv("LIFECYCLE_POLICY_FILE", str(path))
    load_policy.cache_clear()
    yield
    monkeypatch.delenv("LIFECYCLE_POLICY_FILE")
    load_policy.cache_clear()


def test_fiscal_year_ending_30_june(telco, run_dag, fiscal_year_ending_30_june):
    # FY 2020 runs 2019-07-01 .. 2020-06-30: kept until 2025-06-30, due on 2025-07-01.
    add_customer(telco, 100041, D(2021, 1, 1), invoices=[(D(2020, 6, 30), 2020), (D(2020, 9, 30), 2021)],
                 cdrs=[T(2020, 6, 30, 23, 30), T(2020, 7, 1, 0, 30)])  # 00:30 is still 30 June in UTC

    dag_run, _ = run_dag("accounting_retention", {}, at(D(2025, 6, 30)))
    assert dag_run.state == "success"
    assert rows_of(telco, 100041)["invoices"] == 2 and len(cdr_times(telco, 100041)) == 2

    dag_run, xcom = run_dag("accounting_retention", {}, at(D(2025, 7, 1)))

    assert dag_run.state == "success" and xcom["verify_retention"]["verification"] == "passed"
    assert telco.rows("SELECT fiscal_year FROM invoices WHERE customer_id = 100041") == [(2021,)]
    assert cdr_times(telco, 100041) == [T(2020, 7, 1, 0, 30)]
    # the seeded Q2 2020 invoices (issued 30 June) were paid in July: fiscal 2021 material with
    # the April-June CDRs billed on them, so June waits; March's units were wholly fiscal 2020
    assert not partition_exists(telco, "cdrs_y2020m03") and partition_exists(telco, "cdrs_y2020m06")


def add_invoice(telco, customer_id: int, issued_on: dt.date, fiscal_year: int, paid_on: dt.date | None = None,
                cdrs=()) -> int:
    """An invoice (paid on `paid_on`) with the CDRs billed on it (Copenhagen-local times)."""
    invoice = telco.scalar("INSERT INTO invoices (customer_id, issued_on, fiscal_year, billing_name, amount_dkk)"
                           " VALUES (%s, %s, %s, 'Test ApS', 100) RETURNING invoice_id",
                           (customer_id, issued_on, fiscal_year))
    if paid_on:
        telco.execute("INSERT INTO payments (invoice_id, paid_on, amount_dkk) VALUES (%s, %s, 100)", (invoice, paid_on))
    for started_at in cdrs:
        telco.execute("INSERT INTO cdrs (customer_id, a_number, b_number, started_at, kind, invoice_id)"
                      " VALUES (%s, '+4511111111', '+4522222222', %s, 'sms', %s)",
                      (customer_id, started_at.replace(tzinfo=CPH), invoice))
    return invoice


def unit_rows(telco, invoice: int) -> tuple[int, int, int]:
    return (telco.scalar("SELECT count(*) FROM invoices WHERE invoice_id = %s", (invoice,)),
            telco.scalar("SELECT count(*) FROM payments WHERE invoice_id = %s", (invoice,)),
            telco.scalar("SELECT count(*) FROM cdrs WHERE invoice_id = %s", (invoice,)))


def test_an_invoice_its_payments_and_billed_cdrs_go_together_when_the_latest_is_due(telco, run_dag):
    """A fiscal-2019 invoice paid in January 2020, and a December 2019 CDR billed on a
    fiscal-2020 invoice: both units are 2020 material, kept until 2025-12-31."""
    add_customer(telco, 100051, None)
    paid_late = add_invoice(telco, 100051, D(2019, 12, 31), 2019, paid_on=D(2020, 1, 10),
                            cdrs=[T(2019, 11, 20, 12)])
    billed_late = add_invoice(telco, 100051, D(2020, 1, 15), 2020, paid_on=D(2020, 1, 20),
                              cdrs=[T(2019, 12, 20, 12)])
    midnight = add_invoice(telco, 100051, D(2019, 12, 31), 2019, paid_on=D(2019, 12, 31),
                           cdrs=[T(2020, 1, 1, 0, 30)])  # Copenhagen 1 January: fiscal 2020 (UTC: 2019)
    on_time = add_invoice(telco, 100051, D(2019, 12, 31), 2019, paid_on=D(2019, 12, 31),
                          cdrs=[T(2019, 12, 31, 23, 59)])
    units = (paid_late, billed_late, midnight)

    for day in (D(2025, 1, 1), D(2025, 12, 31)):  # the old, too early deadline; the day before the right one
        dag_run, xcom = run_dag("accounting_retention", {}, at(day))
        assert dag_run.state == "success"
        assert [unit_rows(telco, unit) for unit in units] == [(1, 1, 1)] * 3, day
        if day == D(2025, 1, 1):
            assert unit_rows(telco, on_time) == (0, 0, 0)  # wholly 2019 material
            assert xcom["verify_retention"]["verification"] == "passed"
    assert telco.scalar("SELECT to_regclass('cdrs_y2019m12') IS NOT NULL")  # billed on kept units

    dag_run, xcom = run_dag("accounting_retention", {}, at(D(2026, 1, 1)))

    assert dag_run.state == "success" and xcom["verify_retention"]["verification"] == "passed"
    assert [unit_rows(telco, unit) for unit in units] == [(0, 0, 0)] * 3
    assert not telco.scalar("SELECT to_regclass('cdrs_y2019m12') IS NOT NULL")


def test_a_stored_fiscal_year_is_not_trusted(telco, run_dag, fiscal_year_ending_30_june):
    """Fiscal year ending 30 June: an invoice issued 2020-12-15 is fiscal 2021 even when
    labelled 2020 (kept until 2026-06-30); one labelled later than its date keeps the later."""
    add_customer(telco, 100061, None)
    # what `lifecycle migrate` records of this policy (the drop function's own guard reads it)
    telco.execute("UPDATE lifecycle_policy_settings SET fiscal_year_end = '06-30'")
    mislabelled = add_invoice(telco, 100061, D(2020, 12, 15), 2020, paid_on=D(2020, 12, 20))
    labelled_later = add_invoice(telco, 100061, D(2020, 5, 15), 2021, paid_on=D(2020, 5, 20))
    right = add_invoice(telco, 100061, D(2020, 5, 15), 2020, paid_on=D(2020, 5, 20))

    dag_run, xcom = run_dag("accounting_retention", {}, at(D(2025, 7, 1)))
    assert dag_run.state == "success" and xcom["verify_retention"]["verification"] == "passed"
    assert (unit_rows(telco, mislabelled), unit_rows(telco, labelled_later), unit_rows(telco, right)) == (
        (1, 1, 0), (1, 1, 0), (0, 0, 0))

    dag_run, _ = run_dag("accounting_retention", {}, at(D(2026, 6, 30)))
    assert dag_run.state == "success" and unit_rows(telco, mislabelled) == (1, 1, 0)

    dag_run, xcom = run_dag("accounting_retention", {}, at(D(2026, 7, 1)))
    assert dag_run.state == "success" and xcom["verify_retention"]["verification"] == "passed"
    assert unit_rows(telco, mislabelled) == unit_rows(telco, labelled_later) == (0, 0, 0)


def test_a_changed_fiscal_year_end_is_refused_unless_the_old_one_is_recorded(telco, run_dag, tmp_path, monkeypatch):
    from telco_lifecycle.database import connect
    from telco_lifecycle.policy import default_policy_path, load_policy
    from telco_lifecycle.rules import retention

    dag_run, _ = run_dag("accounting_retention", {}, at(D(2025, 1, 1)))  # records the year end 12-31
    assert dag_run.state == "success"
    text = default_policy_path().read_text(encoding="utf-8")
    variants = {"unrecorded": 'fiscal_year_end: "06-30"\nearlier_fiscal_year_ends: []',
                "recorded": 'fiscal_year_end: "06-30"\nearlier_fiscal_year_ends:'
                            ' [{fiscal_year_end: "12-31", last_year_ended_on: 2025-12-31}]'}
    conn = connect(telco.url)
    try:
        for name, year_ends in variants.items():
            path = tmp_path / f"{name}.yaml"
            path.write_text(text.replace('fiscal_year_end: "12-31"\nearlier_fiscal_year_ends: []', year_ends),
                            encoding="utf-8")
            policy = load_policy(path)
            if name == "unrecorded":
                before = telco.fingerprint(exclude=())
                with pytest.raises(retention.RetentionRefused, match="earlier_fiscal_year_ends"):
                    retention.plan(conn, "accounting", D(2026, 1, 1), policy)
                assert telco.fingerprint(exclude=()) == before
            else:
                assert retention.plan(conn, "accounting", D(2026, 1, 1), policy)["rule"] == "accounting"
    finally:
        conn.close()
