"""accounting_retention through dag.test(): fiscal-year boundaries (31 December and a
fiscal year ending 30 June), Copenhagen dates of CDRs, partition drops with held rows kept."""

from __future__ import annotations

import datetime as dt

import pytest
from retention_helpers import add_customer, at, rows_of

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
    add_customer(telco, 100032, None, invoices=[(D(2019, 6, 30), 2019)], cdrs=[T(2019, 12, 15, 12)])
    telco.execute("INSERT INTO legal_holds (customer_id, case_reference, placed_on)"
                  " VALUES (100032, 'SKP-T', '2019-01-01')")
    held_before = rows_of(telco, 100032)

    dag_run, xcom = run_dag("accounting_retention", {}, at(D(2024, 12, 31)))
    assert dag_run.state == "success"
    assert rows_of(telco, 100031)["invoices"] == 2 and len(cdr_times(telco, 100031)) == 2
    assert partition_exists(telco, "cdrs_y2019m12")

    dag_run, xcom = run_dag("accounting_retention", {"dry_run": True}, at(D(2025, 1, 1)))
    would = xcom["verify_retention"]["due"]
    assert dag_run.state == "success" and partition_exists(telco, "cdrs_y2019m12")

    dag_run, xcom = run_dag("accounting_retention", {}, at(D(2025, 1, 1), hour=4))

    assert dag_run.state == "success"
    summary = xcom["verify_retention"]
    assert summary["verification"] == "passed" and summary["removed"] == would
    assert "cdrs_y2019m12" in summary["partitions_dropped"] and not partition_exists(telco, "cdrs_y2019m12")
    assert partition_exists(telco, "cdrs_y2020m01")
    assert telco.rows("SELECT fiscal_year FROM invoices WHERE customer_id = 100031") == [(2020,)]
    assert telco.scalar("SELECT count(*) FROM payments p JOIN invoices i USING (invoice_id)"
                        " WHERE i.customer_id = 100031") == 1
    assert cdr_times(telco, 100031) == [T(2020, 1, 1, 0, 30)]
    # the held customer's December CDR survived the drop, in the default partition
    assert rows_of(telco, 100032) == held_before
    assert telco.scalar("SELECT count(*) FROM cdrs_default WHERE customer_id = 100032") == 1
    drop = telco.rows("SELECT row_count, details FROM lifecycle_audit WHERE action = 'drop_partition'"
                      " AND details->>'partition' = 'cdrs_y2019m12'")
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
    assert not partition_exists(telco, "cdrs_y2020m06") and partition_exists(telco, "cdrs_y2020m07")
