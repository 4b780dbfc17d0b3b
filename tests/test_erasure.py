"""data_subject_erasure through dag.test(): exactly the policy's sets go, accounting and held
customers stay untouched, and the approval step is answered through Airflow's own HITL API."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from conftest import respond_to_approval

from telco_lifecycle.evidence.refusals import statement_stem

RUN_DATE = dt.datetime(2026, 6, 15, 12, tzinfo=dt.UTC)
ACCOUNTING = ("invoices", "payments")




@pytest.fixture(autouse=True)
def own_reports_dir(tmp_path, monkeypatch):
    """Each test its own reports folder: an erasure removes the customer's report files,
    and another test's files for the same customer id would show up in its audit rows."""
    monkeypatch.setenv("LIFECYCLE_REPORTS_DIR", str(tmp_path / "reports"))


@pytest.fixture
def no_approval(monkeypatch):
    monkeypatch.setenv("LIFECYCLE_REQUIRE_ERASURE_APPROVAL", "false")


def pick(telco, where: str) -> int:
    return telco.scalar(f"""
        SELECT c.customer_id FROM customers c
        WHERE {where} AND NOT lifecycle_on_hold(c.customer_id)
          AND EXISTS (SELECT 1 FROM crm_correspondence x WHERE x.customer_id = c.customer_id)
          AND EXISTS (SELECT 1 FROM contacts x WHERE x.customer_id = c.customer_id AND x.role = 'other')
          AND EXISTS (SELECT 1 FROM invoices x WHERE x.customer_id = c.customer_id)
        ORDER BY c.customer_id LIMIT 1""")


def accounting_fingerprint(telco) -> dict[str, str]:
    return {table: md5 for table, md5 in telco.fingerprint().items() if table in ACCOUNTING}


def counts(telco, customer: int) -> dict[str, int]:
    return {
        "crm_correspondence": telco.scalar("SELECT count(*) FROM crm_correspondence WHERE customer_id = %s",
                                           (customer,)),
        "contacts_other": telco.scalar("SELECT count(*) FROM contacts WHERE customer_id = %s AND role = 'other'",
                                       (customer,)),
        "contacts_kept": telco.scalar("SELECT count(*) FROM contacts WHERE customer_id = %s AND role <> 'other'",
                                      (customer,)),
        "phone_numbers": telco.scalar("SELECT count(*) FROM phone_numbers WHERE customer_id = %s", (customer,)),
        "pbx_configs": telco.scalar("SELECT count(*) FROM pbx_configs WHERE customer_id = %s", (customer,)),
        "sip_peers": telco.scalar("SELECT count(*) FROM sip_peers WHERE customer_id = %s", (customer,)),
        "archived_contracts": telco.scalar("SELECT count(*) FROM archived_contracts WHERE customer_id = %s",
                                           (customer,)),
        "cdrs": telco.scalar("SELECT count(*) FROM cdrs WHERE customer_id = %s", (customer,)),
        "customer_name": telco.scalar("SELECT count(company_name) FROM customers WHERE customer_id = %s", (customer,)),
    }


def test_active_customer_loses_only_what_is_not_needed_to_deliver_and_invoice(telco, run_dag, no_approval):
    customer = pick(telco, "c.relationship_ended_on IS NULL")
    before = counts(telco, customer)
    accounting = accounting_fingerprint(telco)

    dag_run, xcom = run_dag("data_subject_erasure", {"customer_id": customer, "requested_by": "test"}, RUN_DATE)

    assert dag_run.state == "success"
    after = counts(telco, customer)
    assert after == {**before, "crm_correspondence": 0, "contacts_other": 0}
    assert accounting_fingerprint(telco) == accounting
    summary = xcom["summarise"]
    assert summary["erased"]["crm_correspondence"] == before["crm_correspondence"]
    assert summary["erased"]["contacts"] == before["contacts_other"]
    assert summary["kept"]["contacts"] == before["contacts_kept"]
    assert summary["approval"] == {"required": False, "by": None, "at": None}
    statement = json.loads(Path(summary["statement"]).read_text(encoding="utf-8"))
    assert statement["verification"]["result"] == "passed"
    kept = {k["table"]: k for k in statement["kept"]}
    assert kept["phone_numbers"]["reason"]["en"] == "The numbers are the service itself."
    assert "Bookkeeping Act" in kept["invoices"]["reason"]["en"]
    assert Path(summary["statement"]).with_suffix(".html").exists()
    audit = telco.rows("SELECT action, table_name, row_count, details->>'approval_required' FROM lifecycle_audit"
                       " WHERE customer_id = %s ORDER BY audit_id", (customer,))
    assert audit == [("erase_on_request", "crm_correspondence", before["crm_correspondence"], "false"),
                     ("erase_on_request", "contacts", before["contacts_other"], "false"),
                     ("erasure_request", None, before["crm_correspondence"] + before["contacts_other"], "false")]

    # a second request erases nothing more
    again, xcom = run_dag("data_subject_erasure", {"customer_id": customer, "requested_by": "test"}, RUN_DATE)
    assert again.state == "success" and not any(xcom["summarise"]["erased"].values())


def test_ended_customer_loses_everything_but_accounting(telco, run_dag, no_approval):
    customer = pick(telco, "c.relationship_ended_on IS NOT NULL AND EXISTS (SELECT 1 FROM archived_contracts a"
                           " WHERE a.customer_id = c.customer_id)")
    before = counts(telco, customer)
    accounting = accounting_fingerprint(telco)
    others = telco.scalar("SELECT count(*) FROM crm_correspondence WHERE customer_id <> %s", (customer,))

    dag_run, xcom = run_dag("data_subject_erasure", {"customer_id": customer, "requested_by": "test"}, RUN_DATE)

    assert dag_run.state == "success"
    assert counts(telco, customer) == {key: 0 for key in before} | {"cdrs": before["cdrs"]}
    assert telco.rows("SELECT company_name, cvr, address, email, phone, relationship_ended_on IS NOT NULL"
                      " FROM customers WHERE customer_id = %s", (customer,)) == [(None,) * 5 + (True,)]
    assert accounting_fingerprint(telco) == accounting
    assert telco.scalar("SELECT count(*) FROM crm_correspondence WHERE customer_id <> %s", (customer,)) == others
    assert xcom["summarise"]["verification"] == "passed"
    assert telco.scalar("SELECT crm_purged_on FROM customers WHERE customer_id = %s", (customer,)) == RUN_DATE.date()


def test_crm_purge_writes_nothing_for_a_customer_erased_before(telco, run_dag, no_approval):
    """Erasure stamps crm_purged_on: the CRM purge that follows finds the customer reduced."""
    as_of = dt.date(2026, 11, 30)
    customer = pick(telco, f"c.relationship_ended_on <= DATE '{as_of}' - interval '1 year'")
    assert run_dag("data_subject_erasure", {"customer_id": customer, "requested_by": "test"}, RUN_DATE)[0].state \
        == "success"

    dag_run, _ = run_dag("crm_retention", {"as_of": as_of.isoformat()},
                         dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC))

    assert dag_run.state == "success"
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit WHERE customer_id = %s AND rule = 'crm_master_data'"
                        " AND dag_id = 'crm_retention'", (customer,)) == 0
    assert telco.scalar("SELECT crm_purged_on FROM customers WHERE customer_id = %s", (customer,)) == RUN_DATE.date()


def test_legal_hold_blocks_everything(telco, run_dag, no_approval):
    customer = telco.scalar("SELECT customer_id FROM legal_holds WHERE released_on IS NULL ORDER BY 1 LIMIT 1")
    before = telco.fingerprint()
    dag_run, _ = run_dag("data_subject_erasure", {"customer_id": customer, "requested_by": "test"}, RUN_DATE)
    assert dag_run.state == "failed"
    assert telco.fingerprint() == before
    reason = telco.refusal(dag_run.run_id)[1]
    assert "hold" in reason
    statement = statement_stem("data_subject_erasure", customer, dag_run.run_id)
    assert reason in statement.with_suffix(".html").read_text(encoding="utf-8")
    assert json.loads(statement.with_suffix(".json").read_text())["reason"] == reason


def test_unknown_customer_fails_and_changes_nothing(telco, run_dag, no_approval):
    before = telco.fingerprint()
    dag_run, _ = run_dag("data_subject_erasure", {"customer_id": 987654321, "requested_by": "test"}, RUN_DATE)
    assert dag_run.state == "failed"
    assert telco.fingerprint() == before
    assert "987654321" in telco.refusal(dag_run.run_id)[1]


@pytest.mark.parametrize("conf, problem", [
    ({"customer_id": 0, "requested_by": "t"}, "customer_id"),
    ({"customer_id": 1}, "requested_by"),
    ({"customer_id": 1, "requested_by": "t", "dry_run": "yes"}, "dry_run"),
])
def test_bad_params_are_rejected(telco, run_dag, conf, problem):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match=problem):
        run_dag("data_subject_erasure", conf)


def test_dry_run_counts_and_changes_nothing(telco, run_dag):
    customer = pick(telco, "c.relationship_ended_on IS NOT NULL")
    before = telco.fingerprint()
    dag_run, xcom = run_dag("data_subject_erasure", {"customer_id": customer, "requested_by": "t", "dry_run": True},
                            RUN_DATE)
    assert dag_run.state == "success"  # no approval step for a dry run, even with approval required
    assert xcom["summarise"]["erased"]["crm_correspondence"] == counts(telco, customer)["crm_correspondence"] > 0
    assert telco.fingerprint() == before


def test_rejection_erases_nothing_and_records_who(telco, run_dag):
    customer = pick(telco, "c.relationship_ended_on IS NOT NULL")
    before = telco.fingerprint()
    responder = respond_to_approval("data_subject_erasure", "approve_erasure", "Reject", user="dpo-rejecter")

    dag_run, xcom = run_dag("data_subject_erasure", {"customer_id": customer, "requested_by": "test"}, RUN_DATE)

    responder.join(timeout=5)
    assert dag_run.state == "success"
    assert telco.fingerprint() == before
    assert xcom["summarise"]["rejected_by"] == "dpo-rejecter"
    assert telco.rows("SELECT action, coalesce(details->>'rejected_by', details->>'responded_by')"
                      " FROM lifecycle_audit WHERE customer_id = %s ORDER BY audit_id", (customer,)) == [
        ("approval_answered", "dpo-rejecter"), ("erasure_rejected", "dpo-rejecter")]


def test_approval_is_required_by_default_and_recorded(telco, run_dag, monkeypatch):
    monkeypatch.delenv("LIFECYCLE_REQUIRE_ERASURE_APPROVAL", raising=False)
    customer = pick(telco, "c.relationship_ended_on IS NOT NULL")
    responder = respond_to_approval("data_subject_erasure", "approve_erasure", "Approve", user="dpo-approver")

    dag_run, xcom = run_dag("data_subject_erasure", {"customer_id": customer, "requested_by": "test"}, RUN_DATE)

    responder.join(timeout=5)
    assert dag_run.state == "success"
    assert counts(telco, customer)["crm_correspondence"] == 0
    assert xcom["summarise"]["approval"]["required"] is True
    assert xcom["summarise"]["approval"]["by"] == "dpo-approver"
    assert set(telco.rows("SELECT details->>'approval_required', details->>'approved_by' FROM lifecycle_audit"
                          " WHERE customer_id = %s AND action <> 'approval_answered'", (customer,))) == {
        ("true", "dpo-approver")}
    # the answer as Airflow recorded it: the responder and the user who triggered the run
    assert telco.rows("SELECT details->>'responded_by', details->>'triggered_by', details->'chosen_options'"
                      " FROM lifecycle_audit WHERE customer_id = %s AND action = 'approval_answered'",
                      (customer,)) == [("dpo-approver", "dag_test", ["Approve"])]


def test_the_user_who_triggered_the_run_cannot_approve_it(telco, run_dag, monkeypatch):
    """`dag.test()` triggers as `dag_test`; that user's Approve is refused and nothing is erased."""
    monkeypatch.delenv("LIFECYCLE_REQUIRE_ERASURE_APPROVAL", raising=False)
    customer = pick(telco, "c.relationship_ended_on IS NOT NULL")
    before = telco.fingerprint()
    responder = respond_to_approval("data_subject_erasure", "approve_erasure", "Approve", user="dag_test")

    dag_run, _ = run_dag("data_subject_erasure", {"customer_id": customer, "requested_by": "test"}, RUN_DATE)

    responder.join(timeout=5)
    assert dag_run.state == "failed"
    assert telco.fingerprint() == before
    [reason] = [r for a, r in telco.rows("SELECT action, details->>'reason' FROM lifecycle_audit"
                                         " WHERE run_id = %s", (dag_run.run_id,)) if a == "refused"]
    assert "answered by dag_test, who triggered the run" in reason


def test_approvers_exclude_the_requester(telco, run_dag, monkeypatch):
    """LIFECYCLE_APPROVERS: the HITL request names who may answer (Airflow refuses anyone else),
    the requester taken off the list; a list of only the requester is refused before anyone
    is asked."""
    from telco_lifecycle.workflows.approvals import assignees

    assert assignees(["dag_test", "dpo-approver"], "dag_test") == [{"id": "dpo-approver", "name": "dpo-approver"}]
    assert assignees([], "dag_test") is None  # no list: anyone but the requester (checked on the answer)
    monkeypatch.delenv("LIFECYCLE_REQUIRE_ERASURE_APPROVAL", raising=False)
    monkeypatch.setenv("LIFECYCLE_APPROVERS", "dag_test")
    customer = pick(telco, "c.relationship_ended_on IS NOT NULL")
    before = telco.fingerprint()

    dag_run, _ = run_dag("data_subject_erasure", {"customer_id": customer, "requested_by": "test"}, RUN_DATE)

    assert dag_run.state == "failed"
    assert telco.fingerprint() == before
    assert "no approver other than dag_test" in telco.refusal(dag_run.run_id)[1]
