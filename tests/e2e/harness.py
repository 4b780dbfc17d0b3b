"""Driving a real Airflow from the outside: starting one on its own databases, and the
official Python client (`apache-airflow-client`) with a few helpers around it."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from telco_lifecycle.airflow_local import LocalAirflow, free_port
from telco_lifecycle.audit import parse_event
from telco_lifecycle.localenv import airflow_environment, drop_database, ensure_database
from telco_lifecycle.settings import AUDIT_LOGGER, project_dir, with_database
from conftest import SERVER, TelcoDatabase

USERNAME, PASSWORD = "admin", "admin"
RUN_TIMEOUT = 240  # seconds a DAG run may take on a busy 2-core machine
FINISHED = {"success", "failed"}


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
        airflow = LocalAirflow(
            airflow_environment(telco_url, ensure_database(SERVER, airflow_name),
                                str(tmp_path_factory.mktemp(f"airflow-{name}"))),
            api_port=free_port(), username=USERNAME, password=PASSWORD, broker_url=broker_url)
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
        """POST /auth/token (outside /api/v2, so not in the client)."""
        request = urllib.request.Request(
            self.url + "/auth/token", data=json.dumps({"username": username, "password": password}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)["access_token"]

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        """Until the dag-processor has parsed the file and the API knows the DAG."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.dags.get_dag(dag_id)
                return
            except self.client.ApiException as error:
                if error.status != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(1)

    def unpause(self, dag_id: str) -> None:
        self.wait_for_dag(dag_id)
        self.dags.patch_dag(dag_id, self.client.DAGPatchBody(is_paused=False))

    def trigger(self, dag_id: str, conf: dict) -> str:
        run = self.runs.trigger_dag_run(dag_id, self.client.TriggerDAGRunPostBody(logical_date=None, conf=conf))
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

    def audit_events(self, dag_id: str, run_id: str, task_id: str) -> list[dict]:
        """The audit events a task logged (logger telco_lifecycle.audit, message prefix `AUDIT `)."""
        return [parse_event(m["event"]) for m in self.log_messages(dag_id, run_id, task_id)
                if m.get("logger") == AUDIT_LOGGER and parse_event(m["event"])]

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
