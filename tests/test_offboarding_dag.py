"""customer_offboarding through dag.test() on a freshly migrated and seeded database."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import ANCHOR, AUDIT_TRAIL, respond_to_approval
from retention_helpers import hold


def active_customer_with_config(telco, held: bool = False) -> int:
    negation = "" if held else "NOT"
    return telco.scalar(f"""
        SELECT c.customer_id FROM customers c
        WHERE c.relationship_ended_on IS NULL AND {negation} lifecycle_on_hold(c.customer_id)
          AND EXISTS (SELECT 1 FROM pbx_configs p WHERE p.customer_id = c.customer_id)
          AND EXISTS (SELECT 1 FROM sip_peers s WHERE s.customer_id = c.customer_id)
        ORDER BY c.customer_id LIMIT 1""")


def test_offboarding_deletes_pbx_and_sip_and_nothing_else(telco, run_dag):
    customer = active_customer_with_config(telco)
    before = telco.fingerprint(exclude=AUDIT_TRAIL + ("pbx_configs", "sip_peers", "customers"))
    pbx = telco.scalar("SELECT count(*) FROM pbx_configs WHERE customer_id = %s", (customer,))
    sip = telco.scalar("SELECT count(*) FROM sip_peers WHERE customer_id = %s", (customer,))

    dag_run, xcom = run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "test"})

    assert dag_run.state == "success"
    assert telco.scalar("SELECT count(*) FROM pbx_configs WHERE customer_id = %s", (customer,)) == 0
    assert telco.scalar("SELECT count(*) FROM sip_peers WHERE customer_id = %s", (customer,)) == 0
    assert telco.scalar("SELECT relationship_ended_on FROM customers WHERE customer_id = %s", (customer,)) is not None
    assert telco.fingerprint(exclude=AUDIT_TRAIL + ("pbx_configs", "sip_peers", "customers")) == before
    # other customers' configuration untouched
    assert telco.scalar("SELECT count(*) FROM pbx_configs") > 0
    summary = xcom["summarise"]
    assert summary["deleted"] == {"pbx_configs": pbx, "sip_peers": sip}
    assert summary["verification"] == "passed"
    audit = telco.rows("SELECT action, rule, table_name, row_count, dry_run, dag_id FROM lifecycle_audit"
                       " WHERE customer_id = %s ORDER BY audit_id", (customer,))
    assert audit == [
        ("end_relationship", "offboarding", "customers", 1, False, "customer_offboarding"),
        ("delete", "pbx_sip_config", "pbx_configs", pbx, False, "customer_offboarding"),
        ("delete", "pbx_sip_config", "sip_peers", sip, False, "customer_offboarding"),
    ]
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit_chain_breaks") == 0


def test_dry_run_reports_counts_and_changes_nothing(telco, run_dag):
    customer = active_customer_with_config(telco)
    before = telco.fingerprint()
    pbx = telco.scalar("SELECT count(*) FROM pbx_configs WHERE customer_id = %s", (customer,))

    dag_run, xcom = run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "test",
                                                     "dry_run": True})

    assert dag_run.state == "success"
    assert xcom["summarise"]["deleted"]["pbx_configs"] == pbx
    assert xcom["summarise"]["dry_run"] is True
    assert telco.fingerprint() == before
    assert telco.scalar("SELECT bool_and(dry_run) FROM lifecycle_audit WHERE customer_id = %s", (customer,))


def test_second_offboarding_is_a_no_op_that_says_so(telco, run_dag):
    customer = active_customer_with_config(telco)
    run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "test"})
    before = telco.fingerprint(exclude=())

    dag_run, xcom = run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "test"})

    assert dag_run.state == "success"
    assert xcom["summarise"]["no_op"] is True
    assert "already offboarded" in xcom["summarise"]["message"]
    assert telco.fingerprint(exclude=()) == before  # not even an audit row


def config_rows(telco, customer: int) -> int:
    return telco.scalar("SELECT (SELECT count(*) FROM pbx_configs WHERE customer_id = %(c)s)"
                        " + (SELECT count(*) FROM sip_peers WHERE customer_id = %(c)s)", {"c": customer})


def test_offboarding_under_legal_hold_records_the_end_and_defers_the_deletion(telco, run_dag):
    from telco_lifecycle.rules.status import holds_in_force

    customer = active_customer_with_config(telco, held=True)
    assert customer is not None, "the seed places holds on some active customers with configuration"
    kept = config_rows(telco, customer)
    holds = telco.rows("SELECT legal_hold_id, case_reference FROM legal_holds WHERE customer_id = %s"
                       " AND released_on IS NULL ORDER BY placed_on", (customer,))
    cases = [case for _, case in holds]
    deferred_before = holds_in_force(telco.conn)["deferred_offboarding"]

    dag_run, xcom = run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "test"})

    assert dag_run.state == "success" and xcom["summarise"]["deferred"] is True
    assert xcom["summarise"]["verification"] == "passed" and "deferred" in xcom["summarise"]["message"]
    assert telco.scalar("SELECT relationship_ended_on FROM customers WHERE customer_id = %s", (customer,)) is not None
    assert config_rows(telco, customer) == kept > 0
    assert telco.scalar("SELECT details->'legal_hold_ids' FROM lifecycle_audit WHERE customer_id = %s"
                        " AND action = 'defer_deletion'", (customer,)) == [hold_id for hold_id, _ in holds]
    assert holds_in_force(telco.conn)["deferred_offboarding"] == deferred_before + 1

    for number, case in enumerate(cases, 1):  # only the release of the last hold deletes
        dag_run, xcom = hold(run_dag, customer, "release", case)
        assert dag_run.state == "success"
        assert config_rows(telco, customer) == (0 if number == len(cases) else kept)
    assert "deferred PBX/SIP deletion done" in xcom["apply_legal_hold"]["message"]
    assert holds_in_force(telco.conn)["deferred_offboarding"] == deferred_before


def test_a_deferred_deletion_is_done_by_the_next_daily_run_at_the_latest(telco, run_dag):
    customer = active_customer_with_config(telco, held=True)
    run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "test"})
    assert config_rows(telco, customer) > 0
    telco.execute("UPDATE legal_holds SET released_on = current_date WHERE customer_id = %s", (customer,))

    dag_run, xcom = run_dag("crm_retention", {})

    assert dag_run.state == "success" and config_rows(telco, customer) == 0
    assert xcom["complete_deferred_offboarding"]["customers"] == 1
    assert xcom["verify_retention"]["verification"] == "passed"


def test_unknown_customer_fails_and_changes_nothing(telco, run_dag):
    before = telco.fingerprint()
    dag_run, _ = run_dag("customer_offboarding", {"customer_id": 987654321, "requested_by": "test"})
    assert dag_run.state == "failed"
    assert telco.fingerprint() == before
    assert "987654321" in telco.refusal(dag_run.run_id)[1]


@pytest.mark.parametrize("conf, problem", [
    ({"customer_id": -5, "requested_by": "test"}, "customer_id"),
    ({"customer_id": "abc", "requested_by": "test"}, "customer_id"),
    ({"customer_id": 0, "requested_by": "test"}, "customer_id"),
    ({"customer_id": 1}, "requested_by"),
    ({"customer_id": 1, "requested_by": ""}, "requested_by"),
    ({"customer_id": 1, "requested_by": "t", "relationship_end": "2024-02-30"}, "relationship_end"),
    ({"customer_id": 1, "requested_by": "t", "dry_run": "yes"}, "dry_run"),
])
def test_bad_params_are_rejected_before_anything_runs(telco, run_dag, conf, problem):
    from airflow.sdk.definitions.param import ParamValidationError

    before = telco.fingerprint(exclude=())
    with pytest.raises(ParamValidationError, match=problem):
        run_dag("customer_offboarding", conf)
    assert telco.fingerprint(exclude=()) == before


def test_end_date_in_the_future_is_refused(telco, run_dag):
    customer = active_customer_with_config(telco)
    before = telco.fingerprint()
    dag_run, _ = run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "t",
                                                  "relationship_end": "2999-01-01"})
    assert dag_run.state == "failed"
    assert telco.fingerprint() == before
    assert "2999-01-01" in telco.refusal(dag_run.run_id)[1]


# Back-dated ends: dag.test() runs at ANCHOR noon; an end more than 31 days earlier needs a second person.
BACKDATE_RUN = dt.datetime.combine(ANCHOR, dt.time(12), dt.UTC)
BACKDATED = ANCHOR - dt.timedelta(days=400)  # past the CRM purge's one year: the next purge would act


def ended_on(telco, customer: int) -> dt.date:
    return telco.scalar("SELECT relationship_ended_on FROM customers WHERE customer_id = %s", (customer,))


def test_a_back_dated_end_waits_for_a_second_person_and_the_deletion_does_not(telco, run_dag, monkeypatch):
    monkeypatch.delenv("LIFECYCLE_REQUIRE_ERASURE_APPROVAL", raising=False)
    customer = active_customer_with_config(telco)
    responder = respond_to_approval("customer_offboarding", "approve_backdate", "Approve", user="dpo-approver")

    dag_run, xcom = run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "test",
                                                     "relationship_end": BACKDATED.isoformat()}, BACKDATE_RUN)

    responder.join(timeout=5)
    assert dag_run.state == "success"
    assert telco.scalar("SELECT count(*) FROM pbx_configs WHERE customer_id = %s", (customer,)) == 0
    assert ended_on(telco, customer) == BACKDATED
    assert "crm_master_data" in xcom["offboard_customer"]["backdate"]["body"]  # what the approver was shown
    assert telco.rows("SELECT action, details->>'relationship_ended_on', details->>'approved_by' FROM lifecycle_audit"
                      " WHERE customer_id = %s AND action IN ('end_relationship', 'backdate_relationship_end')"
                      " ORDER BY audit_id", (customer,)) == [
        ("end_relationship", ANCHOR.isoformat(), None),
        ("backdate_relationship_end", BACKDATED.isoformat(), "dpo-approver")]


def test_a_rejected_back_dated_end_keeps_the_run_date(telco, run_dag, monkeypatch):
    monkeypatch.delenv("LIFECYCLE_REQUIRE_ERASURE_APPROVAL", raising=False)
    customer = active_customer_with_config(telco)
    responder = respond_to_approval("customer_offboarding", "approve_backdate", "Reject", user="dpo-approver")

    dag_run, xcom = run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "test",
                                                     "relationship_end": BACKDATED.isoformat()}, BACKDATE_RUN)

    responder.join(timeout=5)
    assert dag_run.state == "success"
    assert telco.scalar("SELECT count(*) FROM pbx_configs WHERE customer_id = %s", (customer,)) == 0
    assert ended_on(telco, customer) == ANCHOR  # the clocks start later, never earlier
    assert xcom["summarise"]["relationship_ended_on"] == ANCHOR.isoformat()
    assert "rejected" in xcom["summarise"]["message"]
    assert telco.scalar("SELECT details->>'rejected_end' FROM lifecycle_audit WHERE customer_id = %s"
                        " AND action = 'backdate_rejected'", (customer,)) == BACKDATED.isoformat()


def test_an_end_within_the_limit_needs_no_approval(telco, run_dag, monkeypatch):
    monkeypatch.delenv("LIFECYCLE_REQUIRE_ERASURE_APPROVAL", raising=False)
    customer = active_customer_with_config(telco)
    recent = ANCHOR - dt.timedelta(days=31)

    dag_run, _ = run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "test",
                                                  "relationship_end": recent.isoformat()}, BACKDATE_RUN)

    assert dag_run.state == "success" and ended_on(telco, customer) == recent


def test_a_retry_after_the_first_try_committed_still_asks_for_the_back_dating(telco):
    """The task died after its transaction committed the run's date: the retry's offboarding is a
    no-op, and the back-dated end is still put to the approver (not lost, not applied)."""
    from telco_lifecycle.database import connect
    from telco_lifecycle.evidence.audit import RunContext
    from telco_lifecycle.rules import offboarding

    customer = active_customer_with_config(telco)
    request = offboarding.OffboardingRequest(customer, ANCHOR, "test", BACKDATED)
    conn = connect(telco.url)
    try:
        first = offboarding.offboard_unless_backdated(conn, request, RunContext("customer_offboarding", "r1", "t", 1),
                                                      approvals_on=True)
        retry = offboarding.offboard_unless_backdated(conn, request, RunContext("customer_offboarding", "r1", "t", 2),
                                                      approvals_on=True)
        with pytest.raises(offboarding.OffboardingRefused, match="correcting an end date is not an offboarding"):
            offboarding.offboard_unless_backdated(conn, request, RunContext("customer_offboarding", "r2", "t", 1),
                                                  approvals_on=True)  # another run: as any offboarding
    finally:
        conn.close()
    assert not first["no_op"] and retry["no_op"]
    assert first["backdate"]["requested"] == retry["backdate"]["requested"] == BACKDATED.isoformat()
    assert ended_on(telco, customer) == ANCHOR
