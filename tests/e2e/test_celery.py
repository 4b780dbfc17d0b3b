"""The same DAGs, unchanged, on the CeleryExecutor: tasks run in a Celery worker (a separate
process) fed through Redis, as docker-compose.yml deploys them."""

from __future__ import annotations

import pytest

from e2e.harness import active_customer, check_retention_run, requires_dag, running_airflow

pytestmark = pytest.mark.e2e
DAG = "customer_offboarding"


@pytest.fixture(scope="module")
def celery_e2e(tmp_path_factory, seeded_template, redis_url):
    with running_airflow(tmp_path_factory, seeded_template, "celery", broker_url=redis_url) as airflow:
        yield airflow


def test_offboarding_runs_on_a_celery_worker(celery_e2e):
    customer = active_customer(celery_e2e.telco)

    run_id, state = celery_e2e.run(DAG, {"customer_id": customer, "requested_by": "e2e-celery"})

    assert state == "success", celery_e2e.task_states(DAG, run_id)
    assert celery_e2e.telco.scalar("SELECT count(*) FROM pbx_configs WHERE customer_id = %s", (customer,)) == 0
    # Every task that ran was received and executed by the Celery worker process (the
    # back-dating approval's tasks are skipped: the run's end is its own date).
    worker_log = (celery_e2e.airflow.home / "celery-worker.log").read_text()
    ran = {task_id for task_id, state in celery_e2e.task_states(DAG, run_id).items() if state != "skipped"}
    assert "offboard_customer" in ran
    for task_id in ran:
        assert f"run_id={run_id}/task_id={task_id}/" in worker_log, task_id

@requires_dag("crm_retention")
def test_retention_runs_on_a_celery_worker(celery_e2e):
    check_retention_run(celery_e2e, "crm_retention", "crm_master_data")
