"""Driving a real Airflow from the outside: starting one on its own databases, and the
official Python client (`apache-airflow-client`) with a few helpers around it."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from conftest import SERVER, TelcoDatabase

from telco_lifecycle.evidence.audit import parse_event, tables_of
from telco_lifecycle.local.components import LocalAirflow, free_port, wait_for_dag
from telco_lifecycle.local.env import airflow_environment, drop_database, ensure_database
from telco_lifecycle.policy import Rule, add_years, load_policy
from telco_lifecycle.settings import AUDIT_LOGGER, project_dir, with_database

USERNAME, PASSWORD = "admin", "admin"
# A second person: approvals are answered by someone other than the user who triggered the run.
APPROVER, APPROVER_PASSWORD = "approver", "approver"
RUN_TIMEOUT = 240  # seconds a DAG run may take on a busy 2-core machine
FINISHED = {"success", "failed"}
# Deployment settings the e2e Airflow shares with docker-compose.yml (test_compose.py checks).
PRODUCTION_SETTINGS = {"LIFECYCLE_REQUIRE_ERASURE_APPROVAL": "true"}


def dag_file(dag_id: str) -> Path:
    return project_dir() / "dags" / f"{dag_id}.py"


def requires_dag(dag_id: str):
    """Skip while another team has not delivered the DAG yet (never once it exists)."""
    return pytest.mark.skipif(not dag_file(dag_id).exists(), reason=f"dags/{dag_id}.py is not there yet")


def create_database_from(template: str, name: str) -> str:
    import psycopg2

    drop_database(SERVER, name)
    admin = psycopg2.connect(with_database(SERVER, "postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    admin.close()
    return with_database(SERVER, name)


@contextlib.contextmanager
def running_airflow(tmp_path_factory, seeded_template: str, name: str, broker_url: str | None = None):
    """A started Airflow on its own metadata database and its own copy of the seeded telecom
    database; stopped (nothing left running) and both databases dropped afterwards."""
    tag = f"{name}_{uuid.uuid4().hex[:6]}"
    telco_name, airflow_name = f"lifecycle_e2e_telco_{tag}", f"lifecycle_e2e_airflow_{tag}"
    try:
        telco_url = create_database_from(seeded_template, telco_name)
        env = airflow_environment(telco_url, ensure_database(SERVER, airflow_name),
                                  str(tmp_path_factory.mktemp(f"airflow-{name}")))
        # Its own evidence store: a ledger shared with another database would make this one look restored.
        env["LIFECYCLE_EVIDENCE_DIR"] = str(tmp_path_factory.mktemp(f"evidence-{name}"))
        airflow = LocalAirflow(
            {**env, **PRODUCTION_SETTINGS},
            api_port=free_port(), username=USERNAME, password=PASSWORD, broker_url=broker_url,
            others={APPROVER: APPROVER_PASSWORD})
        airflow.prepare()
        telco = TelcoDatabase(telco_name)
        try:
            with airflow:
                yield AirflowE2E(airflow, telco)
        finally:
            telco.conn.close()
        assert airflow.leftover_processes() == [], "an Airflow process outlived stop()"
    finally:
        drop_database(SERVER, telco_name)
        drop_database(SERVER, airflow_name)


class AirflowE2E:
    """The running Airflow seen from outside: the official client plus a few helpers."""

    def __init__(self, airflow: LocalAirflow, telco: TelcoDatabase):
        import airflow_client.client as client

        self.airflow, self.telco, self.url = airflow, telco, airflow.url
        self.client = client
        config = client.Configuration(host=self.url, access_token=self.token())
        self.api = client.ApiClient(config)
        self.dags = client.DAGApi(self.api)
        self.runs = client.DagRunApi(self.api)
        self.tasks = client.TaskInstanceApi(self.api)

    def token(self, username: str = USERNAME, password: str = PASSWORD) -> str:
        return self.airflow.token(username, password)

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        wait_for_dag(self.dags, dag_id, timeout)

    def unpause(self, dag_id: str) -> None:
        self.wait_for_dag(dag_id)
        self.dags.patch_dag(dag_id, self.client.DAGPatchBody(is_paused=False))

    def trigger(self, dag_id: str, conf: dict, logical_date: dt.datetime | None = None) -> str:
        run = self.runs.trigger_dag_run(dag_id, self.client.TriggerDAGRunPostBody(logical_date=logical_date,
                                                                                   conf=conf))
        return run.dag_run_id

    def wait(self, dag_id: str, run_id: str, states=FINISHED, timeout: float = RUN_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = str(self.runs.get_dag_run(dag_id, run_id).state.value)
            if state in states:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} {run_id} still {state} after {timeout} s\n"
                                   f"{self.task_states(dag_id, run_id)}\n{self.airflow.log_tails()}")
            time.sleep(1)

    def run(self, dag_id: str, conf: dict) -> tuple[str, str]:
        """Unpause, trigger, wait: (run_id, final state)."""
        self.unpause(dag_id)
        run_id = self.trigger(dag_id, conf)
        return run_id, self.wait(dag_id, run_id)

    def wait_for_scheduled_runs(self, dag_id: str, timeout: float = RUN_TIMEOUT) -> None:
        """Until the scheduler has created the DAG's scheduled run(s) and they have finished."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs.get_dag_runs(dag_id, run_type=["scheduled"]).dag_runs
            if runs and all(run.state.value in FINISHED for run in runs):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"scheduled runs of {dag_id}: {[(r.dag_run_id, r.state) for r in runs]}")
            time.sleep(1)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        instances = self.tasks.get_task_instances(dag_id, run_id).task_instances
        return {ti.task_id: ti.state.value if ti.state else None for ti in instances}

    def log_messages(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> list[dict]:
        """The task's log as structured records (event, logger, level, timestamp, ...): NDJSON,
        because the JSON form keeps only event and timestamp."""
        response = self.tasks.get_log_without_preload_content(
            dag_id, run_id, task_id, try_number, full_content=True, accept="application/x-ndjson")
        assert response.status == 200, response.data
        return [json.loads(line) for line in response.data.decode().splitlines() if line.strip()]

    def audit_events(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> list[dict]:
        """The audit events a task logged (logger telco_lifecycle.audit, message prefix `AUDIT `)."""
        return [parse_event(m["event"]) for m in self.log_messages(dag_id, run_id, task_id, try_number)
                if m.get("logger") == AUDIT_LOGGER and parse_event(m["event"])]

    def run_audit_events(self, dag_id: str, run_id: str) -> list[dict]:
        """Every audit event (one per committed transaction) the run's tasks logged, over all
    their tries, in audit order."""
        events = []
        for ti in self.tasks.get_task_instances(dag_id, run_id).task_instances:
            for try_number in range(1, (ti.try_number or 0) + 1):
                events += self.audit_events(dag_id, run_id, ti.task_id, try_number)
        return sorted(events, key=lambda e: e["audit_ids"][0])

    def as_user(self, username: str, password: str):
        """The TaskInstance API logged in as another user."""
        config = self.client.Configuration(host=self.url, access_token=self.token(username, password))
        return self.client.TaskInstanceApi(self.client.ApiClient(config))

    def wait_for_input(self, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT):
        """The run's human-in-the-loop request once its task is parked (`awaiting_input`)."""
        deadline = time.monotonic() + timeout
        while not (pending := self.tasks.get_hitl_details(dag_id, run_id, response_received=False).hitl_details):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no approval request in {dag_id} {run_id}: {self.task_states(dag_id, run_id)}")
            time.sleep(1)
        request = pending[0]
        while self.tasks.get_task_instance(dag_id, run_id, request.task_instance.task_id).state.value \
                != "awaiting_input":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{request.task_instance.task_id} never waited for input:"
                                   f" {self.task_states(dag_id, run_id)}")
            time.sleep(1)
        return request

    def answer_approval(self, dag_id: str, run_id: str, option: str, timeout: float = RUN_TIMEOUT,
                        as_requester: bool = False) -> str:
        """Wait for the run's human-in-the-loop request, answer it with `option` as the approver
        (or, `as_requester`, as the user who triggered the run); its task id."""
        request = self.wait_for_input(dag_id, run_id, timeout)
        assert option in request.options, request.options
        task_id = request.task_instance.task_id
        self.wait_for_parked_process_reported(dag_id, run_id, task_id, timeout)
        answering = self.tasks if as_requester else self.as_user(APPROVER, APPROVER_PASSWORD)
        answering.update_hitl_detail(dag_id, run_id, task_id, -1,
                                     self.client.UpdateHITLDetailPayload(chosen_options=[option]))
        return task_id

    def wait_for_parked_process_reported(self, dag_id: str, run_id: str, task_id: str, timeout: float) -> None:
        """Answer as a person would: only after the scheduler has seen the parked task's process
        exit. In Airflow 3.3.2 an answer that resumes the task before that executor event is
        processed makes the scheduler fail the resumed task ("finished with state success, but
        the task instance's state attribute is queued"); a fixed pause loses that race on a
        loaded machine."""
        event = f"task_id='{task_id}', run_id='{run_id}'"
        scheduler_log = self.airflow.home / "scheduler.log"
        deadline = time.monotonic() + timeout
        while not any("Received executor event" in line and event in line
                      for line in scheduler_log.read_text(errors="replace").splitlines()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the scheduler never saw {task_id} of {run_id} park")
            time.sleep(0.5)

    def xcom(self, dag_id: str, run_id: str, task_id: str):
        entry = self.client.XComApi(self.api).get_xcom_entry(dag_id, task_id, run_id, "return_value")
        return entry.actual_instance.value

    def trigger_refused(self, dag_id: str, conf: dict) -> tuple[int, str]:
        """Trigger expecting a refusal: (HTTP status, detail)."""
        with pytest.raises(self.client.ApiException) as refused:
            self.trigger(dag_id, conf)
        return refused.value.status, json.loads(refused.value.body)["detail"]


def active_customer(telco: TelcoDatabase) -> int:
    """A customer still active, with PBX and SIP configuration and no legal hold."""
    return telco.scalar("""
        SELECT c.customer_id FROM customers c
        WHERE c.relationship_ended_on IS NULL AND NOT lifecycle_on_hold(c.customer_id)
          AND EXISTS (SELECT 1 FROM pbx_configs p WHERE p.customer_id = c.customer_id)
          AND EXISTS (SELECT 1 FROM sip_peers s WHERE s.customer_id = c.customer_id)
        ORDER BY random() LIMIT 1""")



def ended_customer(telco: TelcoDatabase) -> int:
    """A customer of our own whose relationship ended ten days ago (nothing due by retention yet)."""
    customer = telco.scalar("SELECT greatest(max(customer_id), 99999) + 1 FROM customers")
    insert_ended_customer(telco, customer, dt.date.today() - dt.timedelta(days=10))
    return customer


def insert_ended_customer(telco: TelcoDatabase, customer_id: int, ended_on) -> None:
    """A customer of our own (id >= 100000) with a row in every CRM table and a contract."""
    telco.execute("""
        INSERT INTO customers (customer_id, company_name, cvr, address, email, phone, relationship_ended_on)
        VALUES (%(id)s, 'E2E Test ApS', '12345678', 'Testvej 1, 1000 København K', 'e2e@example.dk',
                '+4570000000', %(ended)s);
        INSERT INTO contacts (customer_id, full_name, email, role)
        VALUES (%(id)s, 'Test Person', 'test@example.dk', 'billing');
        INSERT INTO crm_correspondence (customer_id, sent_at, subject, body)
        VALUES (%(id)s, %(ended)s, 'Opsigelse', 'Vi opsiger aftalen.');
        INSERT INTO phone_numbers (number, customer_id, kind) VALUES (%(number)s, %(id)s, 'main');
        INSERT INTO archived_contracts (customer_id, signed_on, document)
        VALUES (%(id)s, %(ended)s - 1000, 'signed'::bytea);
        """, {"id": customer_id, "ended": ended_on, "number": f"+4599{customer_id:06d}"})


def personal_data_left(telco: TelcoDatabase, rule: Rule, customer_id: int) -> dict[str, int]:
    """Per table of the rule, the customer's rows that still hold what the rule removes."""
    left = {}
    for item in rule.data:
        where = item.subject_filter("%(customer_id)s")
        if item.action == "anonymise":
            where += " AND NOT (" + " AND ".join(f"{col} IS NULL" for col in item.columns) + ")"
        left[item.table] = telco.scalar(f"SELECT count(*) FROM {item.table} WHERE {where}",
                                        {"customer_id": customer_id})
    return left


def assert_run_logged_its_audit_rows(e2e: AirflowE2E, dag_id: str, run_id: str) -> list[tuple]:
    """The audit events in the run's task logs (one per transaction) account for exactly the
    run's audit rows; those rows as (audit_id, action, rule, customer_id, table_name,
    row_count, row_hash)."""
    rows = e2e.telco.rows(f"SELECT {AUDIT_ROW} FROM lifecycle_audit WHERE run_id = %s ORDER BY audit_id", (run_id,))
    events = e2e.run_audit_events(dag_id, run_id)
    assert_events_account_for(events, rows)
    return [row[:7] for row in rows]


# What assert_events_account_for compares of an audit row.
AUDIT_ROW = "audit_id, action, rule, customer_id, table_name, row_count, row_hash, dry_run, details"


def assert_events_account_for(events: list[dict], rows: list[tuple]) -> None:
    """`events` (batch audit events) cover exactly the audit rows `rows` (AUDIT_ROW): the
    same ids and the same counts per action, rule, table and dry run."""
    ids = {row[0] for row in rows}
    covered = {i for e in events for i in ids if e["audit_ids"][0] <= i <= e["audit_ids"][1]}
    assert covered == ids and sum(e["records"] for e in events) == len(rows)
    logged: Counter[tuple] = Counter()
    for e in events:
        for a in e["actions"]:
            logged[(a["action"], a["rule"], a["table_name"], a["dry_run"])] += a["row_count"]
    stored: Counter[tuple] = Counter()
    for _, action, rule, _, table, count, _, dry_run, details in rows:
        for name, n in (tables_of({"table_name": table, "row_count": count, "details": details})
                        or {None: count}).items():
            stored[(action, rule, name, dry_run)] += n
    assert logged == stored


def check_retention_run(e2e: AirflowE2E, dag_id: str, rule_id: str) -> None:
    """A retention DAG (relationship-end clock) triggered with an `as_of` in the past removes
    what was due on that day and keeps what fell due only after it: its clock is `as_of`."""
    rule = load_policy().rule(rule_id)
    e2e.unpause(dag_id)
    e2e.wait_for_scheduled_runs(dag_id)  # unpausing a daily DAG runs its latest interval first
    as_of = dt.date.today() - dt.timedelta(days=30)
    due_end = add_years(as_of, -rule.period_years)
    while rule.deadline(due_end) > as_of:
        due_end -= dt.timedelta(days=1)
    later_end = due_end + dt.timedelta(days=1)
    assert as_of < rule.deadline(later_end) <= dt.date.today()
    due, later = (e2e.telco.scalar("SELECT greatest(max(customer_id), 99999) FROM customers") + n for n in (1, 2))
    insert_ended_customer(e2e.telco, due, due_end)
    insert_ended_customer(e2e.telco, later, later_end)

    run_id = e2e.trigger(dag_id, {"as_of": as_of.isoformat()})

    assert e2e.wait(dag_id, run_id) == "success", e2e.task_states(dag_id, run_id)
    assert personal_data_left(e2e.telco, rule, due) == {item.table: 0 for item in rule.data}
    assert personal_data_left(e2e.telco, rule, later) == {item.table: 1 for item in rule.data}
    rows = assert_run_logged_its_audit_rows(e2e, dag_id, run_id)
    [(_, action, _, _, table, count, _)] = [row for row in rows if row[3] == due]  # one per customer and rule
    assert (action, table, count) == ("purge", None, len(rule.data))
    assert e2e.telco.scalar("SELECT details->'tables' FROM lifecycle_audit WHERE run_id = %s AND customer_id = %s",
                            (run_id, due)) == {item.table: 1 for item in rule.data}
    assert not [row for row in rows if row[3] == later]
