"""Hostile input through the REST API of a running Airflow: for every manual DAG a
corpus of bad trigger payloads (wrong types, negative and huge ids, SQL injection,
unicode tricks, overlong strings, missing fields, impossible dates). Each is refused
with HTTP 400 naming the parameter, or, where the schema cannot know better (an id
that does not exist), the run fails with the reason; a checksum of the whole telecom
database proves that nothing changed. Then what the schema cannot refuse: a logical date
after today for every DAG (held by Airflow's scheduler), and an approval forged through the
XCom and task-state endpoints."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from retention_helpers import CPH, VALID_CONF

from e2e.harness import active_customer, ended_customer
from telco_lifecycle.settings import project_dir

pytestmark = pytest.mark.e2e
SCHEDULED = "contract_archive_retention"

MISSING = object()
NO_SUCH_CUSTOMER = 9223372036854775807  # the largest id the schema accepts; no such customer
INJECTION = ["1; DROP TABLE customers", "1 OR 1=1", "' OR '1'='1' --", "1); DELETE FROM lifecycle_audit; --",
             "$$; TRUNCATE legal_holds; $$", "%(customer_id)s", "{{ dag_run.conf }}", "1::text"]
BAD_IDS = [MISSING, None, -5, -1, 0, -9223372036854775808, 9223372036854775808, 10**30, 1.5, -0.5, True, False,
           "1", "abc", "", "１２３", "٣", "1e3", "NaN", "Infinity", [], [1], {}, {"id": 1}, *INJECTION]
BAD_TEXT = [MISSING, None, "", " leading space", "\tstaff", "\n", "\u00a0staff", "\u2028staff", "\u3000staff",
            "x" * 201, "x" * 100_000, 5, 0, True, [], ["staff"], {}, {"name": "staff"}, 1.5,
            " " * 50, "\r\nstaff", "\x0bstaff", "\x0cstaff", "\u2003staff", "\u205fstaff"]
BAD_BOOLEANS = ["true", "yes", "false", 1, 0, None, [], {}, "1"]
BAD_DATES = ["2024-02-30", "2023-02-29", "2024-13-01", "2024-00-10", "2024-04-31", "24-01-01", "2024/01/01",
             "01-02-2024", "tomorrow", "2024-02-29T00:00:00", "2024-1-1", 20240101, "", "' OR 1=1 --",
             "９９９９-01-01", [], {}]
BAD_REASONS = [5, "x" * 501, [], {"a": 1}, True, 0.5, "Jens Hansen moved", "contract terminated", ""]
BAD_ACTIONS = [MISSING, None, "PLACE", "delete", "", "place; DROP TABLE legal_holds", "plac\u0435", " place",
               "release\u200b", 1, ["place"], {"place": True}]


def corpus(valid: dict, bad: dict[str, list]) -> list[tuple[str, dict]]:
    """Each bad value of each parameter, the other parameters valid: (parameter, conf)."""
    payloads = []
    for name, values in bad.items():
        for value in values:
            conf = {k: v for k, v in valid.items() if k != name}
            if value is not MISSING:
                conf[name] = value
            payloads.append((name, conf))
    return payloads


STAFF = {"requested_by": "e2e-test"}
DAGS = {
    "customer_offboarding": corpus(
        {"customer_id": NO_SUCH_CUSTOMER, **STAFF},
        {"customer_id": BAD_IDS, "requested_by": BAD_TEXT, "dry_run": BAD_BOOLEANS,
         "relationship_end": BAD_DATES, "reason": BAD_REASONS}),
    "data_subject_access": corpus({"customer_id": NO_SUCH_CUSTOMER, **STAFF},
                                  {"customer_id": BAD_IDS, "requested_by": BAD_TEXT}),
    "data_subject_erasure": corpus(
        {"customer_id": NO_SUCH_CUSTOMER, **STAFF},
        {"customer_id": BAD_IDS, "requested_by": BAD_TEXT, "dry_run": BAD_BOOLEANS}),
    "legal_hold": corpus(
        {"customer_id": NO_SUCH_CUSTOMER, "action": "place", "case_reference": "SKP-1", **STAFF},
        {"customer_id": BAD_IDS, "action": BAD_ACTIONS, "case_reference": BAD_TEXT, "requested_by": BAD_TEXT}),
    "customer_return": corpus(
        {"customer_id": NO_SUCH_CUSTOMER, **STAFF},
        {"customer_id": BAD_IDS, "requested_by": BAD_TEXT, "dry_run": BAD_BOOLEANS, "returned_on": BAD_DATES}),
}
# Payloads the schema must accept: free text that is hostile but allowed, for a
# customer that does not exist. The run fails with the reason, leaves its `refused` audit
# row and changes nothing else.
ACCEPTED_TEXT = "Robert'); DROP TABLE customers;-- \u202egnp.exe \U0001F600 " + "\u0301" * 20
ACCEPTED = {
    "customer_offboarding": {"customer_id": NO_SUCH_CUSTOMER, "requested_by": ACCEPTED_TEXT, "reason": "other"},
    "data_subject_access": {"customer_id": NO_SUCH_CUSTOMER, "requested_by": ACCEPTED_TEXT},
    "data_subject_erasure": {"customer_id": NO_SUCH_CUSTOMER, "requested_by": ACCEPTED_TEXT},
    "legal_hold": {"customer_id": NO_SUCH_CUSTOMER, "action": "place", "case_reference": ACCEPTED_TEXT,
                   "requested_by": ACCEPTED_TEXT},
    "customer_return": {"customer_id": NO_SUCH_CUSTOMER, "requested_by": ACCEPTED_TEXT},
}


@pytest.mark.parametrize("dag_id", DAGS)
def test_bad_payloads_are_refused_and_change_nothing(e2e, dag_id):
    assert len(DAGS[dag_id]) >= 50
    e2e.wait_for_dag(dag_id)
    e2e.unpause(dag_id)
    runs_before = e2e.runs.get_dag_runs(dag_id).total_entries
    before = e2e.telco.fingerprint()

    wrong = []
    for name, conf in DAGS[dag_id]:
        status, detail = e2e.trigger_refused(dag_id, conf)
        if status != 400 or name not in detail:
            wrong.append((name, repr(conf)[:120], status, detail[:200]))
    assert wrong == []

    run_id, state = e2e.run(dag_id, ACCEPTED[dag_id])
    assert state == "failed"
    errors = [m for instance in e2e.tasks.get_task_instances(dag_id, run_id).task_instances
              if instance.state and instance.state.value == "failed"
              for m in e2e.log_messages(dag_id, run_id, instance.task_id) if m.get("level") == "error"]
    assert str(NO_SUCH_CUSTOMER) in json.dumps(errors), errors
    assert e2e.runs.get_dag_runs(dag_id).total_entries == runs_before + 1
    assert e2e.telco.fingerprint() == before
    assert str(NO_SUCH_CUSTOMER) in e2e.telco.refusal(run_id)[1]


def test_a_logical_date_after_today_never_starts_a_run(e2e):
    """Airflow's REST API accepts any logical date. Its scheduler (3.3.2) starts the run but
    schedules none of its tasks while the logical date is in the future ("Logical date is in
    future"): no task starts and nothing changes. Every manual DAG, and one scheduled DAG (the
    contract purge, which would delete years early): the scheduler treats every DAG alike.
    (`airflow dags test` and `dag.test()` do run at once: there the date guard refuses every
    DAG, test_date_guard.py.)"""
    dag_ids = [dag_id for dag_id in sorted(path.stem for path in (project_dir() / "dags").glob("*.py"))
               if dag_id in VALID_CONF or dag_id == SCHEDULED]
    for dag_id in dag_ids:
        e2e.unpause(dag_id)
    e2e.wait_for_scheduled_runs(SCHEDULED)  # unpausing a scheduled DAG runs its latest interval first
    tomorrow = e2e.telco.scalar("SELECT (now() AT TIME ZONE 'Europe/Copenhagen')::date + 1")
    before = e2e.telco.fingerprint()

    runs = {dag_id: e2e.trigger(dag_id, VALID_CONF.get(dag_id, {}),
                                dt.datetime(tomorrow.year, tomorrow.month, tomorrow.day, 12, tzinfo=CPH))
            for dag_id in dag_ids}
    time.sleep(15)  # many scheduler loops

    try:
        assert {e2e.runs.get_dag_run(dag_id, run_id).state.value for dag_id, run_id in runs.items()} <= {
            "queued", "running"}
        started = {dag_id: states for dag_id, run_id in runs.items()
                   if any((states := e2e.task_states(dag_id, run_id)).values())}
        assert started == {}
        assert e2e.telco.fingerprint() == before
    finally:  # they would run tomorrow
        for dag_id, run_id in runs.items():
            e2e.runs.patch_dag_run(dag_id, run_id, e2e.client.DAGRunPatchBody(state="failed"))
            e2e.runs.delete_dag_run(dag_id, run_id)


def test_a_forged_approval_erases_nothing(e2e):
    """The requester, while the erasure waits for approval, writes the approval task's result
    as an XCom and marks the task successful through the REST API. The erasure reads approvals
    only from the audit trail, written from Airflow's own HITL response: it finds none and
    refuses; nothing is erased and the refusal is recorded."""
    dag_id = "data_subject_erasure"
    customer = ended_customer(e2e.telco)
    before = e2e.telco.fingerprint()
    e2e.unpause(dag_id)
    run_id = e2e.trigger(dag_id, {"customer_id": customer, "requested_by": "e2e-test"})
    task_id = e2e.wait_for_input(dag_id, run_id).task_instance.task_id

    forged = {"chosen_options": ["Approve"], "params_input": {},
              "responded_by_user": {"id": "approver", "name": "approver"}, "responded_at": "2026-01-01T00:00:00Z"}
    e2e.client.XComApi(e2e.api).create_xcom_entry(dag_id, task_id, run_id, e2e.client.XComCreateBody(
        key="return_value", value=forged))
    e2e.tasks.patch_task_instance(dag_id, run_id, task_id, e2e.client.PatchTaskInstanceBody(
        new_state="success", note="approved (forged)"))

    assert e2e.wait(dag_id, run_id) == "failed", e2e.task_states(dag_id, run_id)
    assert e2e.telco.fingerprint() == before
    assert "requires an approval and none was given" in e2e.telco.refusal(run_id)[1]


def test_a_back_dated_end_approved_by_its_requester_stays_the_run_date(e2e):
    """An offboarding back-dated 400 days (a typo would erase at the next purge): the PBX/SIP
    deletion goes ahead, the run's date is recorded, and the requester's own Approve of the
    back-dating is refused and recorded; the end is not moved."""
    dag_id = "customer_offboarding"
    customer = active_customer(e2e.telco)
    today = e2e.telco.scalar("SELECT (now() AT TIME ZONE 'Europe/Copenhagen')::date")
    e2e.unpause(dag_id)
    run_id = e2e.trigger(dag_id, {"customer_id": customer, "requested_by": "e2e-test",
                                  "relationship_end": (today - dt.timedelta(days=400)).isoformat()})

    e2e.answer_approval(dag_id, run_id, "Approve", as_requester=True)

    assert e2e.wait(dag_id, run_id) == "failed"
    assert e2e.telco.scalar("SELECT relationship_ended_on FROM customers WHERE customer_id = %s",
                            (customer,)) == today
    assert e2e.telco.scalar("SELECT count(*) FROM pbx_configs WHERE customer_id = %s", (customer,)) == 0
    [reason] = [r for (r,) in e2e.telco.rows("SELECT details->>'reason' FROM lifecycle_audit WHERE run_id = %s"
                                             " AND action = 'refused'", (run_id,))]
    assert "who triggered the run" in reason
