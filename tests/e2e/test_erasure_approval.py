"""data_subject_erasure on a real Airflow: the human-in-the-loop approval answered through the
REST API (the HITL endpoints), approved in one run and rejected in another."""

from __future__ import annotations

import pytest

from e2e.harness import assert_run_logged_its_audit_rows, ended_customer, personal_data_left, requires_dag
from telco_lifecycle.policy import load_policy

pytestmark = [pytest.mark.e2e, requires_dag("data_subject_erasure")]
DAG = "data_subject_erasure"


def erasable_rules():
    return [rule for rule in load_policy().rules if rule.erasure.on_request]


def test_approved_erasure_erases_what_the_policy_allows(e2e):
    customer = ended_customer(e2e.telco)
    e2e.unpause(DAG)
    run_id = e2e.trigger(DAG, {"customer_id": customer, "requested_by": "e2e-test", "dry_run": False})

    e2e.answer_approval(DAG, run_id, "Approve")

    assert e2e.wait(DAG, run_id) == "success", e2e.task_states(DAG, run_id)
    for rule in erasable_rules():
        assert set(personal_data_left(e2e.telco, rule, customer).values()) == {0}, rule.id
    rows = assert_run_logged_its_audit_rows(e2e, DAG, run_id)
    assert {customer_id for _, _, _, customer_id, *_ in rows} == {customer}


def test_rejected_erasure_changes_nothing(e2e):
    customer = ended_customer(e2e.telco)
    before = e2e.telco.fingerprint()
    e2e.unpause(DAG)
    run_id = e2e.trigger(DAG, {"customer_id": customer, "requested_by": "e2e-test", "dry_run": False})

    approval_task = e2e.answer_approval(DAG, run_id, "Reject")

    assert e2e.wait(DAG, run_id) in {"success", "failed"}
    states = e2e.task_states(DAG, run_id)
    assert states[approval_task] in {"success", "failed"}
    assert e2e.telco.fingerprint() == before
    assert not e2e.telco.rows("SELECT action FROM lifecycle_audit WHERE run_id = %s"
                              " AND action IN ('delete', 'anonymise')", (run_id,))


def test_the_requester_cannot_approve_their_own_erasure(e2e):
    """Separation of duties through the REST API: the user who triggered the run answers
    Approve; the answer is refused, the run fails, nothing is erased, the refusal is recorded."""
    customer = ended_customer(e2e.telco)
    before = e2e.telco.fingerprint()
    e2e.unpause(DAG)
    run_id = e2e.trigger(DAG, {"customer_id": customer, "requested_by": "e2e-test", "dry_run": False})

    e2e.answer_approval(DAG, run_id, "Approve", as_requester=True)

    assert e2e.wait(DAG, run_id) == "failed"
    assert e2e.telco.fingerprint() == before
    [(reason,)] = e2e.telco.rows("SELECT details->>'reason' FROM lifecycle_audit WHERE run_id = %s"
                                 " AND action = 'refused'", (run_id,))
    assert "answered by admin, who triggered the run" in reason
