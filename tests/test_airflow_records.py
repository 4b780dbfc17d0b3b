"""No personal data in Airflow's own records: every manual DAG is triggered for a customer,
then its seeded personal data is searched for in dag_run.conf, XCom, the task logs and
Airflow's `log` table. Free text that could carry it is refused by the trigger params."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from conftest import load_dagbag, respond_to_approval

RUN_DATE = dt.datetime(2026, 6, 15, 12, tzinfo=dt.UTC)
# What the sweep fills in for a required param, by name: add one for a new param.
VALUES = {"requested_by": "sweep-test", "case_reference": "CASE-2026-001", "action": "place"}


def personal_data(telco, customer: int) -> set[str]:
    """The customer's seeded personal values long enough to be searched for."""
    values = set()
    for sql in ("SELECT company_name, address, email, phone, cvr FROM customers WHERE customer_id = %s",
                "SELECT full_name, email, phone FROM contacts WHERE customer_id = %s",
                "SELECT number, number FROM phone_numbers WHERE customer_id = %s",
                "SELECT subject, subject FROM crm_correspondence WHERE customer_id = %s",
                "SELECT billing_name, billing_address FROM invoices WHERE customer_id = %s"):
        for row in telco.rows(sql, (customer,)):
            values |= {str(v) for v in row if v is not None and len(str(v)) >= 6}
    return values


def manual_dag_ids() -> list[str]:
    """The DAGs triggered by hand only, and audit_report (monthly, and by hand)."""
    return sorted(d.dag_id for d in load_dagbag().dags.values()
                  if not d.timetable.can_be_scheduled or d.dag_id == "audit_report")


def conf_for(dag_id: str, customer: int) -> dict:
    """Every required param filled in (customer_id: the sweep's customer)."""
    params = load_dagbag().get_dag(dag_id).params
    conf = {}
    for name in params:
        param = params.get_param(name)
        types = param.schema.get("type")
        if param.has_value or "null" in (types if isinstance(types, list) else [types]):
            continue
        if name == "customer_id":
            conf[name] = customer
        else:
            assert name in VALUES, f"{dag_id}: no sweep value for the required param {name!r}; add one to VALUES"
            conf[name] = VALUES[name]
    return conf


def airflow_records(dag_runs) -> dict[str, str]:
    """Everything Airflow holds about the runs, as text per place."""
    from airflow.models.dagrun import DagRun
    from airflow.models.log import Log
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    keys = [(r.dag_id, r.run_id) for r in dag_runs]
    with create_session() as session:
        confs = [json.dumps(session.query(DagRun).filter_by(dag_id=d, run_id=r).one().conf) for d, r in keys]
        xcoms = [json.dumps(x.value, default=str) for d, r in keys
                 for x in session.query(XComModel).filter_by(dag_id=d, run_id=r)]
        log_rows = [f"{row.event} {row.extra} {row.owner}" for row in session.query(Log)]
    folder = Path(os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"])
    logs = [path.read_text(encoding="utf-8", errors="replace") for d, r in keys
            for path in (folder / f"dag_id={d}" / f"run_id={r}").rglob("*") if path.is_file()]
    assert logs, "the runs wrote task logs"
    return {"dag_run.conf": "\n".join(confs), "xcom": "\n".join(xcoms), "task logs": "\n".join(logs),
            "log table": "\n".join(log_rows)}


def test_no_personal_data_in_airflow_records_of_any_manual_run(telco, run_dag, monkeypatch):
    monkeypatch.setenv("LIFECYCLE_REQUIRE_ERASURE_APPROVAL", "false")
    customer = telco.scalar("""
        SELECT c.customer_id FROM customers c WHERE c.relationship_ended_on IS NULL
          AND NOT lifecycle_on_hold(c.customer_id)
          AND EXISTS (SELECT 1 FROM contacts x WHERE x.customer_id = c.customer_id)
          AND EXISTS (SELECT 1 FROM crm_correspondence x WHERE x.customer_id = c.customer_id)
        ORDER BY c.customer_id LIMIT 1""")
    secrets = personal_data(telco, customer)
    assert len(secrets) >= 5
    order = ["data_subject_access", "legal_hold", "customer_offboarding", "data_subject_erasure"]
    dag_ids = manual_dag_ids()
    assert set(order) <= set(dag_ids)
    runs = []

    def run(dag_id: str, conf: dict) -> None:  # distinct logical dates: dag.test() replaces a run of the same
        runs.append(run_dag(dag_id, conf, RUN_DATE + dt.timedelta(minutes=len(runs)))[0])

    for dag_id in order + [d for d in dag_ids if d not in order]:
        conf = conf_for(dag_id, customer)
        run(dag_id, conf)
        if dag_id == "legal_hold":  # released again (approved), so that the offboarding and erasure act
            responder = respond_to_approval(dag_id, "approve_release", "Approve")
            run(dag_id, {**conf, "action": "release"})
            responder.join(timeout=5)
    for dag_id in ("reports_retention", "airflow_metadata_retention"):  # daily, triggered by hand too
        run(dag_id, {"dry_run": True})
    assert [r.state for r in runs if r.dag_id in order] == ["success"] * 5
    for place, text in airflow_records(runs).items():
        found = sorted(s for s in secrets if s in text)
        assert not found, f"personal data of customer {customer} in {place}: {found}"


@pytest.mark.parametrize("reason", ["Jens Hansen moved to Aarhus", "contract terminated", ""])
def test_free_text_reason_is_refused_before_a_run_exists(telco, run_dag, reason):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError):
        run_dag("customer_offboarding", {"customer_id": 1, "requested_by": "t", "reason": reason}, RUN_DATE)


def test_every_free_text_param_is_bounded_and_says_no_personal_data():
    for dag in load_dagbag().dags.values():
        for name in dag.params:
            param = dag.params.get_param(name)
            schema, description = param.schema, param.description or ""
            types = schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")]
            if "string" in types and "enum" not in schema and "format" not in schema:
                assert schema.get("maxLength", 10**6) <= 200, f"{dag.dag_id}.{name} is not bounded"
                assert "no " in description.lower() and "personal data" in description, \
                    f"{dag.dag_id}.{name}: the description must say that no personal data goes there"
