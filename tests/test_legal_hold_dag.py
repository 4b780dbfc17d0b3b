"""legal_hold through dag.test(): place, repeat, release (approved by a second person),
refusals, bad params."""

from __future__ import annotations

import pytest
from conftest import respond_to_approval
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
    # who approved, as Airflow recorded it (dag.test() triggers as dag_test; the helper answers as dpo)
    assert telco.rows("SELECT details->>'approval_required', details->>'approved_by' FROM lifecycle_audit"
                      " WHERE customer_id = %s AND action = 'release_legal_hold'", (CUSTOMER,)) == [("true", "dpo")]
    assert telco.rows("SELECT details->>'responded_by', details->>'triggered_by' FROM lifecycle_audit"
                      " WHERE customer_id = %s AND action = 'approval_answered'", (CUSTOMER,)) == [("dpo", "dag_test")]


def test_a_rejected_release_keeps_the_hold(telco, run_dag):
    hold(run_dag, CUSTOMER, "place", "SKP-2026-2")
    before = telco.fingerprint()

    dag_run, xcom = hold(run_dag, CUSTOMER, "release", "SKP-2026-2", answer="Reject")

    assert dag_run.state == "success" and "apply_legal_hold" not in xcom
    assert xcom["summarise"]["rejected_by"] == "dpo" and "stays in force" in xcom["summarise"]["message"]
    assert telco.fingerprint() == before
    assert telco.scalar("SELECT lifecycle_on_hold(%s)", (CUSTOMER,))


def test_the_user_who_triggered_a_release_cannot_approve_it(telco, run_dag):
    hold(run_dag, CUSTOMER, "place", "SKP-2026-3")
    before = telco.fingerprint()
    responder = respond_to_approval("legal_hold", "approve_release", "Approve", user="dag_test")

    dag_run, _ = hold(run_dag, CUSTOMER, "release", "SKP-2026-3", answer=None)

    responder.join(timeout=5)
    assert dag_run.state == "failed"
    assert telco.fingerprint() == before
    assert telco.scalar("SELECT lifecycle_on_hold(%s)", (CUSTOMER,))
    assert "answered by dag_test, who triggered the run" in telco.refusal(dag_run.run_id)[1]


def test_a_release_without_approval_says_so(telco, run_dag, monkeypatch):
    monkeypatch.setenv("LIFECYCLE_REQUIRE_ERASURE_APPROVAL", "false")
    hold(run_dag, CUSTOMER, "place", "SKP-2026-4")

    dag_run, xcom = hold(run_dag, CUSTOMER, "release", "SKP-2026-4", answer=None)

    assert dag_run.state == "success" and "approve_release" not in xcom
    assert telco.rows("SELECT details->>'approval_required', details->>'approved_by' FROM lifecycle_audit"
                      " WHERE customer_id = %s AND action = 'release_legal_hold'", (CUSTOMER,)) == [("false", None)]


@pytest.mark.parametrize("customer, action", [(CUSTOMER, "release"), (987654321, "place")])
def test_refusals_change_nothing(telco, run_dag, customer, action):
    before = telco.fingerprint()
    dag_run, _ = hold(run_dag, customer, action, "SKP-NONE", answer=None)
    assert dag_run.state == "failed"
    assert telco.fingerprint() == before
    assert telco.refusal(dag_run.run_id)[1]


def test_free_text_of_a_refused_request_stays_out_of_the_trail(telco, run_dag):
    """The case reference and who asked are free text: a refusal's audit row names neither."""
    dag_run, _ = run_dag("legal_hold", {"customer_id": CUSTOMER, "action": "release",
                                        "case_reference": "SKP-SECRET-77", "requested_by": "Jens Secretsen"})
    assert dag_run.state == "failed"
    assert "no hold in force" in telco.refusal(dag_run.run_id)[1]
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit WHERE details::text LIKE '%%Secret%%'"
                        " OR details::text LIKE '%%SECRET%%'") == 0


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
