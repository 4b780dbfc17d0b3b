"""legal_hold through dag.test(): place, repeat, release, refusals, bad params."""

from __future__ import annotations

import pytest
from retention_helpers import hold

CUSTOMER = 42


def test_place_repeat_and_release(telco, run_dag):
    dag_run, xcom = hold(run_dag, CUSTOMER, "place", "SKP-2026-1")
    assert dag_run.state == "success" and xcom["apply_legal_hold"]["no_op"] is False
    assert telco.scalar("SELECT lifecycle_on_hold(%s)", (CUSTOMER,))
    audit = telco.rows("SELECT a.action, h.case_reference, h.placed_by, a.details::text LIKE '%%SKP%%'"
                       " FROM lifecycle_audit a"
                       " JOIN legal_holds h ON h.legal_hold_id = (a.details->>'legal_hold_id')::int"
                       " WHERE a.customer_id = %s", (CUSTOMER,))
    assert audit == [("place_legal_hold", "SKP-2026-1", "test", False)]  # free text only in legal_holds

    before = telco.fingerprint(exclude=())
    dag_run, xcom = hold(run_dag, CUSTOMER, "place", "SKP-2026-1")
    assert dag_run.state == "success" and xcom["apply_legal_hold"]["no_op"] is True
    assert telco.fingerprint(exclude=()) == before

    dag_run, xcom = hold(run_dag, CUSTOMER, "release", "SKP-2026-1")
    assert dag_run.state == "success"
    assert telco.scalar("SELECT released_on = %s::date FROM legal_holds WHERE customer_id = %s"
                        " AND case_reference = 'SKP-2026-1'", (xcom["apply_legal_hold"]["run_date"], CUSTOMER))
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit WHERE customer_id = %s"
                        " AND action = 'release_legal_hold'", (CUSTOMER,)) == 1


@pytest.mark.parametrize("customer, action", [(CUSTOMER, "release"), (987654321, "place")])
def test_refusals_change_nothing(telco, run_dag, customer, action):
    before = telco.fingerprint()
    dag_run, _ = hold(run_dag, customer, action, "SKP-NONE")
    assert dag_run.state == "failed"
    assert telco.fingerprint() == before
    assert telco.refusal(dag_run.run_id)[1]


@pytest.mark.parametrize("conf, problem", [
    ({"customer_id": 1, "action": "freeze", "case_reference": "X", "requested_by": "t"}, "action"),
    ({"customer_id": 1, "action": "place", "requested_by": "t"}, "case_reference"),
    ({"customer_id": 1, "action": "place", "case_reference": "", "requested_by": "t"}, "case_reference"),
    ({"customer_id": 0, "action": "place", "case_reference": "X", "requested_by": "t"}, "customer_id"),
])
def test_bad_params_are_rejected(telco, run_dag, conf, problem):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match=problem):
        run_dag("legal_hold", conf)
