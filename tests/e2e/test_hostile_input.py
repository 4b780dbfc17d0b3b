"""Hostile input through the REST API of a running Airflow: for every manual DAG a
corpus of bad trigger payloads (wrong types, negative and huge ids, SQL injection,
unicode tricks, overlong strings, missing fields, impossible dates). Each is refused
with HTTP 400 naming the parameter, or, where the schema cannot know better (an id
that does not exist), the run fails with the reason; a checksum of the whole telecom
database proves that nothing changed."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

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
