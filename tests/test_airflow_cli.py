"""The standard way to debug a DAG works: `airflow dags test <dag> <date> -c '{...}'`, the
real command in a subprocess, exits 0 for a successful run of every DAG and 1 for a
failed one (DAGs with deadline alerts included: see alerts.DeadlineDag)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ANCHOR, load_dagbag

LOGICAL_DATE = f"{ANCHOR.isoformat()}T12:00:00+00:00"  # the seeded data's "today", in the past


def conf_for(dag_id: str, customer: int) -> dict:
    """A valid conf of each DAG that needs one; the daily DAGs run on their defaults."""
    confs = {
        "customer_offboarding": {"customer_id": customer, "requested_by": "cli test"},
        "customer_return": {"customer_id": customer, "requested_by": "cli test"},
        "legal_hold": {"customer_id": customer, "action": "place", "case_reference": "CLI-1",
                       "requested_by": "cli test"},
        "data_subject_access": {"customer_id": customer, "requested_by": "cli test"},
        "data_subject_erasure": {"customer_id": customer, "requested_by": "cli test"},
        "restore_reconciliation": {"requested_by": "cli test"},
    }
    return confs.get(dag_id, {})


def airflow_dags_test(dag_id: str, conf: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "dags", "test", dag_id, LOGICAL_DATE, "-c", json.dumps(conf)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "LIFECYCLE_REQUIRE_ERASURE_APPROVAL": "false"})


@pytest.mark.parametrize("dag_id", sorted(load_dagbag().dag_ids))
def test_airflow_dags_test_exits_0_for_a_successful_run(telco, run_dag, dag_id):
    if dag_id == "retention_verification":  # it verifies what the day's purges did: run them first
        for purge in ("crm_retention", "contract_archive_retention", "accounting_retention"):
            assert run_dag(purge, {}, logical_date=dt.datetime.fromisoformat(LOGICAL_DATE))[0].state == "success"
    ended = dag_id == "customer_return"  # a return needs an ended customer whose CRM data is still there
    customer = telco.scalar(
        "SELECT customer_id FROM customers c WHERE NOT lifecycle_on_hold(customer_id) AND crm_purged_on IS NULL"
        f" AND relationship_ended_on IS {'NOT ' if ended else ''}NULL ORDER BY customer_id LIMIT 1")

    done = airflow_dags_test(dag_id, conf_for(dag_id, customer))

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("dag_id", ["customer_offboarding", "legal_hold"])
def test_airflow_dags_test_exits_1_for_a_failed_run(telco, airflow_db, dag_id):
    unknown = telco.scalar("SELECT max(customer_id) + 1 FROM customers")

    done = airflow_dags_test(dag_id, conf_for(dag_id, unknown))

    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "DagRun failed" in done.stdout + done.stderr
