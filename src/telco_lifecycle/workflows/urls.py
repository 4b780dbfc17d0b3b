"""Links into the Airflow UI (alerts and the status page point at runs)."""

from urllib.parse import quote


def run_url(dag_id: str, run_id: str, task_id: str | None = None) -> str:
    """The run (or task instance) in the Airflow UI, relative to the UI's root."""
    url = f"/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"
    return url + f"/tasks/{quote(task_id)}" if task_id else url
