"""customer_offboarding on a real Airflow, through the REST API and the official client."""

from __future__ import annotations

import json

import pytest

from e2e.harness import AUDIT_ROW, active_customer, assert_events_account_for

pytestmark = pytest.mark.e2e
DAG = "customer_offboarding"


def test_offboarding_runs_deletes_and_logs_its_audit_events(e2e):
    customer = active_customer(e2e.telco)
    pbx = e2e.telco.scalar("SELECT count(*) FROM pbx_configs WHERE customer_id = %s", (customer,))
    sip = e2e.telco.scalar("SELECT count(*) FROM sip_peers WHERE customer_id = %s", (customer,))

    run_id, state = e2e.run(DAG, {"customer_id": customer, "requested_by": "e2e-test", "reason": "other"})

    assert state == "success", e2e.task_states(DAG, run_id)
    assert e2e.telco.scalar("SELECT count(*) FROM pbx_configs WHERE customer_id = %s", (customer,)) == 0
    assert e2e.telco.scalar("SELECT count(*) FROM sip_peers WHERE customer_id = %s", (customer,)) == 0
    assert e2e.telco.scalar("SELECT relationship_ended_on FROM customers WHERE customer_id = %s",
                            (customer,)) is not None
    summary = e2e.xcom(DAG, run_id, "summarise")
    assert summary["deleted"] == {"pbx_configs": pbx, "sip_peers": sip}
    assert summary["verification"] == "passed"

    # The task log (read through the API) carries one audit event for the transaction,
    # accounting for every audit row of the run.
    [event] = e2e.audit_events(DAG, run_id, "offboard_customer")
    rows = e2e.telco.rows(f"SELECT {AUDIT_ROW} FROM lifecycle_audit WHERE run_id = %s ORDER BY audit_id", (run_id,))
    assert_events_account_for([event], rows)
    assert [(row[1], row[4]) for row in rows] == [
        ("end_relationship", "customers"), ("delete", "pbx_configs"), ("delete", "sip_peers")]
    assert (event["dag_id"], event["run_id"], event["customers"]) == (DAG, run_id, 1)
    assert {row[3] for row in rows} == {customer}


@pytest.mark.parametrize("conf, reason", [
    ({"customer_id": -5, "requested_by": "e2e-test"}, "customer_id"),
    ({"customer_id": "abc", "requested_by": "e2e-test"}, "customer_id"),
    ({"customer_id": 1}, "requested_by"),
    ({"customer_id": 1, "requested_by": "e2e-test", "relationship_end": "2024-02-30"}, "relationship_end"),
])
def test_invalid_params_are_refused_with_http_400_and_the_reason(e2e, conf, reason):
    e2e.wait_for_dag(DAG)
    runs_before = e2e.runs.get_dag_runs(DAG).total_entries

    status, detail = e2e.trigger_refused(DAG, conf)

    assert status == 400
    assert f"Invalid input for param {reason}" in detail
    assert e2e.runs.get_dag_runs(DAG).total_entries == runs_before


def test_refused_request_fails_the_run_with_its_reason_and_changes_nothing(e2e):
    before = e2e.telco.fingerprint()

    run_id, state = e2e.run(DAG, {"customer_id": 987654321, "requested_by": "e2e-test"})

    assert state == "failed"
    assert e2e.task_states(DAG, run_id)["offboard_customer"] == "failed"
    failure = [m for m in e2e.log_messages(DAG, run_id, "offboard_customer") if m.get("level") == "error"]
    assert "987654321" in json.dumps(failure), failure
    assert e2e.telco.fingerprint() == before  # nothing changed but the trail, which records the refusal
    rule, reason = e2e.telco.refusal(run_id)
    assert rule == "pbx_sip_config" and "987654321" in reason

