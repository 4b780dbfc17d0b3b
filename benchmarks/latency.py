"""Figure 6 of `make bench`: offboarding latency on a real, running Airflow.

Trigger -> the PBX/SIP deletion committed (the `pbx_sip_config` audit row's
`recorded_at`, written by the deleting transaction just before its commit), against
trigger -> first task started (the task instance's `start_date`) of a one-task no-op
DAG on the same Airflow (LocalExecutor, its components as separate processes, as
`make airflow` runs them). Both are triggered through the REST API with the official
client, one after the other, each figure the median of the runs; one unmeasured run of
each first, so that neither pays for the first parse or the first task process.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import Server, ratio

NOOP_DAG = '''"""A one-task no-op DAG: the scheduling baseline of the offboarding latency benchmark."""
from airflow.sdk import dag, task


@dag(dag_id="bench_noop", schedule=None, doc_md=__doc__)
def bench_noop():
    @task
    def noop():
        pass

    noop()


bench_noop()
'''
OFFBOARDING = "customer_offboarding"
RUN_TIMEOUT = 300


def offboarding_latency(server_url: str, template: str, prefix: str, repeat: int) -> dict:
    """Median latencies (seconds) and their ratio; a fresh copy of `template` as the
    telecom database and a fresh metadata database, both dropped afterwards."""
    from telco_lifecycle.local.components import LocalAirflow, free_port
    from telco_lifecycle.local.env import airflow_environment, drop_database, ensure_database
    from telco_lifecycle.settings import project_dir

    server, airflow_name = Server(server_url, f"{prefix}_latency"), f"{prefix}_latency_airflow"
    drop_database(server_url, airflow_name)
    telco_url = server.copy(template)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
            dags = Path(tmp) / "dags"
            dags.mkdir()
            (dags / f"{OFFBOARDING}.py").symlink_to(project_dir() / "dags" / f"{OFFBOARDING}.py")
            (dags / "bench_noop.py").write_text(NOOP_DAG, encoding="utf-8")
            env = airflow_environment(telco_url, ensure_database(server_url, airflow_name), str(Path(tmp) / "airflow"))
            env |= {"AIRFLOW__CORE__DAGS_FOLDER": str(dags), "LIFECYCLE_REPORTS_DIR": str(Path(tmp) / "reports")}
            airflow = LocalAirflow(env, api_port=free_port())
            airflow.prepare()
            with airflow:
                noop, offboarding = _measure(airflow, telco_url, repeat)
    finally:
        server.drop(f"{server.prefix}_work")
        drop_database(server_url, airflow_name)
    noop_s, offboarding_s = statistics.median(noop), statistics.median(offboarding)
    return {"noop_first_task_s": round(noop_s, 3), "offboarding_deletion_s": round(offboarding_s, 3),
            "ratio": ratio(offboarding_s, noop_s), "runs": {"noop": noop, "offboarding": offboarding}}


def _measure(airflow, telco_url: str, repeat: int) -> tuple[list[float], list[float]]:
    import airflow_client.client as client
    import psycopg2

    from telco_lifecycle.local.components import wait_for_dag

    api = client.ApiClient(client.Configuration(host=airflow.url, access_token=airflow.token()))
    dags, runs, tasks = client.DAGApi(api), client.DagRunApi(api), client.TaskInstanceApi(api)
    for dag_id in ("bench_noop", OFFBOARDING):
        wait_for_dag(dags, dag_id, timeout=180)
        dags.patch_dag(dag_id, client.DAGPatchBody(is_paused=False))
    telco = psycopg2.connect(telco_url)
    telco.autocommit = True
    with telco.cursor() as cur:  # active customers with PBX/SIP configuration, one per offboarding
        cur.execute("SELECT customer_id FROM customers c WHERE relationship_ended_on IS NULL"
                    " AND EXISTS (SELECT 1 FROM pbx_configs p WHERE p.customer_id = c.customer_id)"
                    " AND NOT lifecycle_on_hold(customer_id) ORDER BY customer_id LIMIT %s", (repeat + 1,))
        customers = [row[0] for row in cur.fetchall()]

    def trigger(dag_id: str, conf: dict) -> tuple[str, float]:
        started = time.time()
        run = runs.trigger_dag_run(dag_id, client.TriggerDAGRunPostBody(logical_date=None, conf=conf))
        deadline = time.monotonic() + RUN_TIMEOUT
        while (state := str(runs.get_dag_run(dag_id, run.dag_run_id).state.value)) not in ("success", "failed"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} still {state} after {RUN_TIMEOUT} s\n{airflow.log_tails()}")
            time.sleep(0.5)
        if state != "success":
            raise RuntimeError(f"{dag_id} run {run.dag_run_id} failed\n{airflow.log_tails()}")
        return run.dag_run_id, started

    def noop_latency() -> float:
        run_id, started = trigger("bench_noop", {})
        return tasks.get_task_instance("bench_noop", run_id, "noop").start_date.timestamp() - started

    def offboarding_latency(customer_id: int) -> float:
        run_id, started = trigger(OFFBOARDING, {"customer_id": customer_id, "requested_by": "benchmark"})
        with telco.cursor() as cur:
            cur.execute("SELECT max(recorded_at) FROM lifecycle_audit WHERE run_id = %s AND rule = 'pbx_sip_config'",
                        (run_id,))
            return cur.fetchone()[0].timestamp() - started

    noop_latency(), offboarding_latency(customers[0])  # warm-up, not measured
    noop, offboarding = [], []
    for customer_id in customers[1:]:
        noop.append(round(noop_latency(), 3))
        offboarding.append(round(offboarding_latency(customer_id), 3))
    telco.close()
    return noop, offboarding
