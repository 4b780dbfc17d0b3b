"""The `verify_audit_chain` task of retention_verification (daily) and audit_report:
checkpoint the chain's head, then `lifecycle audit verify`; fails naming each finding."""

from __future__ import annotations


def verify_audit_chain_task():
    from airflow.sdk import get_current_context, task
    from airflow.sdk.exceptions import AirflowFailException

    @task(retries=0)
    def verify_audit_chain() -> dict:
        """The whole audit chain against every signed checkpoint (after writing one of the head)."""
        from telco_lifecycle.database import connect
        from telco_lifecycle.evidence import checkpoints, integrity
        from telco_lifecycle.workflows.common import telco_url

        ti = get_current_context()["ti"]
        conn = connect(telco_url())
        try:
            checkpoints.write_current(conn, {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id})
            result = integrity.verify(conn)
        finally:
            conn.close()
        if not result["ok"]:
            raise AirflowFailException("audit chain does not verify:\n  " + "\n  ".join(result["findings"]))
        return {k: result[k] for k in ("ok", "records", "links", "checkpoints")}

    return verify_audit_chain()
