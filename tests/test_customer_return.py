"""customer_return through dag.test(): a customer that signs again before its CRM purge is
active again, and the contracts of its earlier relationship keep their five-year clock."""

from __future__ import annotations

import datetime as dt

import pytest
from retention_helpers import add_customer, at

D = dt.date
ENDED = D(2020, 2, 29)  # a leap day: + 5 years = 28 February 2025


def contracts(telco, customer: int) -> list[tuple]:
    return telco.rows("SELECT signed_on, relationship_ended_on FROM archived_contracts WHERE customer_id = %s"
                      " ORDER BY signed_on", (customer,))


def test_a_returned_customers_earlier_contracts_keep_their_clock(telco, run_dag):
    add_customer(telco, 100071, ENDED)  # one contract, signed 2015-01-01
    dag_run, xcom = run_dag("customer_return", {"customer_id": 100071, "returned_on": "2021-02-01",
                                                "requested_by": "test"}, at(D(2021, 2, 1)))
    assert dag_run.state == "success" and xcom["verify_return"]["verification"] == "passed"
    assert telco.scalar("SELECT relationship_ended_on FROM customers WHERE customer_id = 100071") is None
    assert contracts(telco, 100071) == [(D(2015, 1, 1), ENDED)]
    assert telco.scalar("SELECT details->>'earlier_relationship_ended_on' FROM lifecycle_audit"
                        " WHERE customer_id = 100071 AND action = 'customer_return'") == ENDED.isoformat()
    telco.execute("INSERT INTO archived_contracts (customer_id, signed_on, document)"
                  " VALUES (100071, '2021-02-01', 'y')")

    dag_run, _ = run_dag("contract_archive_retention", {}, at(D(2025, 2, 27)))
    assert dag_run.state == "success" and len(contracts(telco, 100071)) == 2

    dag_run, xcom = run_dag("contract_archive_retention", {}, at(D(2025, 2, 28)))

    assert dag_run.state == "success" and xcom["verify_retention"]["verification"] == "passed"
    assert contracts(telco, 100071) == [(D(2021, 2, 1), None)]  # the new relationship's contract stays
    assert telco.scalar("SELECT company_name FROM customers WHERE customer_id = 100071") == "Test ApS"


@pytest.mark.parametrize("case", ["crm_purged", "unknown", "future", "active", "before_the_end", "dry_run"])
def test_bad_requests_fail_clearly_and_change_nothing(telco, run_dag, case):
    add_customer(telco, 100072, ENDED)
    if case == "crm_purged":
        telco.execute("UPDATE customers SET company_name = NULL, crm_purged_on = '2021-03-01'"
                      " WHERE customer_id = 100072")
    if case == "active":
        telco.execute("UPDATE customers SET relationship_ended_on = NULL WHERE customer_id = 100072")
    conf = {"customer_id": 987654321 if case == "unknown" else 100072, "requested_by": "test",
            "returned_on": {"future": "2026-12-02", "before_the_end": "2020-02-28"}.get(case, "2021-03-02"),
            "dry_run": case == "dry_run"}
    before = telco.fingerprint()

    dag_run, xcom = run_dag("customer_return", conf, at(D(2026, 12, 1)))

    assert dag_run.state == ("success" if case == "dry_run" else "failed")
    assert telco.fingerprint() == before
    if case == "dry_run":
        assert xcom["verify_return"]["contracts_keeping_their_clock"] == 1
    else:
        assert not telco.scalar("SELECT count(*) FROM lifecycle_audit WHERE action = 'customer_return'")
