"""What an alert says and how it reaches the data team (see `alerts` for when one is sent
and the channels). Loaded by the callbacks and tasks that send alerts, never at DAG-parse
time: a DAG file only carries the callbacks."""

from __future__ import annotations

import dataclasses
import html
import importlib
import inspect
import logging
import os

from telco_lifecycle.settings import alert_setting
from telco_lifecycle.workflows.metrics import rules_of_dag

# Named as before the split from `alerts`: the name the log's readers filter by.
log = logging.getLogger("telco_lifecycle.workflows.alerts")


@dataclasses.dataclass(frozen=True)
class Alert:
    """What the data team is told: identifiers and counts only."""

    event: str
    dag_id: str
    run_id: str
    task_id: str | None = None
    rules: tuple[str, ...] = ()
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    facts: dict[str, str] = dataclasses.field(default_factory=dict)
    detail: str = ""

    @property
    def subject(self) -> str:
        where = self.dag_id + (f".{self.task_id}" if self.task_id else "")
        return f"[data lifecycle] {self.event}: {where}" + (f" ({', '.join(self.rules)})" if self.rules else "")

    @property
    def url(self) -> str:
        from telco_lifecycle.workflows.urls import run_url

        return _base_url() + run_url(self.dag_id, self.run_id, self.task_id)

    def lines(self) -> list[tuple[str, str]]:
        return ([("event", self.event), ("DAG", self.dag_id), ("run", self.run_id)]
                + ([("task", self.task_id)] if self.task_id else [])
                + [("rules", ", ".join(self.rules) or "-")] + list(self.facts.items())
                + [(name, str(n)) for name, n in self.counts.items()]
                + ([("detail", self.detail)] if self.detail else []) + [("link", self.url)])

    def text(self) -> str:
        return "\n".join(f"{key}: {value}" for key, value in self.lines())

    def html(self) -> str:
        rows = "".join(f"<tr><th align=left>{html.escape(k)}</th>"
                       f"<td><pre style='margin:0'>{html.escape(v)}</pre></td></tr>" for k, v in self.lines())
        return f"<p>{html.escape(self.subject)}</p><table>{rows}</table>"


def _base_url() -> str:
    from airflow.configuration import conf

    return (conf.get("api", "base_url", fallback="") or "").rstrip("/")


def _channel(smtp_configured: bool):
    channel = os.environ.get("LIFECYCLE_ALERT_CHANNEL") or ("smtp" if smtp_configured else "log")
    if channel in ("smtp", "log"):
        return channel
    module, _, name = channel.partition(":")
    return getattr(importlib.import_module(module), name)


def deliver(alert: Alert) -> None:
    """Send `alert` through the configured channel (from a task or the dag processor)."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        smtp_configured = bool(Connection.get(alert_setting("LIFECYCLE_ALERT_SMTP_CONN_ID")))
    except AirflowNotFoundException:
        smtp_configured = False
    channel = _channel(smtp_configured)
    if channel == "smtp":
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        with SmtpHook(alert_setting("LIFECYCLE_ALERT_SMTP_CONN_ID")) as smtp:
            smtp.send_email_smtp(**_email(alert))
    elif channel == "log":
        log.warning("ALERT %s\n%s", alert.subject, alert.text())
    else:
        channel(alert)
    log.info("alert sent: %s", alert.subject)


async def adeliver(alert: Alert) -> None:
    """Send `alert` through the configured channel without blocking (from the triggerer)."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        smtp_configured = bool(await Connection.async_get(alert_setting("LIFECYCLE_ALERT_SMTP_CONN_ID")))
    except AirflowNotFoundException:
        smtp_configured = False
    channel = _channel(smtp_configured)
    if channel == "smtp":
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        async with SmtpHook(alert_setting("LIFECYCLE_ALERT_SMTP_CONN_ID")) as smtp:
            await smtp.asend_email_smtp(**_email(alert))
    elif channel == "log":
        log.warning("ALERT %s\n%s", alert.subject, alert.text())
    else:
        result = channel(alert)
        if inspect.isawaitable(result):
            await result
    log.info("alert sent: %s", alert.subject)


def _email(alert: Alert) -> dict:
    return {"to": [a.strip() for a in alert_setting("LIFECYCLE_ALERT_TO").split(",")],
            "from_email": alert_setting("LIFECYCLE_ALERT_FROM"), "subject": alert.subject,
            "html_content": alert.html(), "mime_subtype": "alternative"}


def run_facts(params: dict) -> dict[str, str]:
    """The run's params that identify what it acted on: never free text."""
    return {key: str(params[key]) for key in ("as_of", "customer_id", "dry_run") if params.get(key) is not None}


def failure_alert(context) -> Alert:
    from airflow.sdk.exceptions import AirflowFailException

    from telco_lifecycle.evidence.restore_detection import RestoredDatabase
    from telco_lifecycle.evidence.verification import VerificationFailed

    ti, error = context["ti"], context.get("exception")
    common = {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id,
              "facts": {**run_facts(context.get("params") or {}), "try": str(ti.try_number)}}
    if isinstance(error, VerificationFailed):
        return Alert("verification failed", rules=tuple(dict.fromkeys(f.rule for f in error.failures)),
                     counts={f"offending rows [{f.rule} / {f.table}] {f.name}": f.offending_rows
                             for f in error.failures}, **common)
    # The lifecycle's own refusals are written without personal data; other errors (a
    # database error can quote a row) are named by their type only: the log has the rest.
    detail = str(error) if isinstance(error, AirflowFailException) else type(error).__name__ if error else ""
    event = ("restored database: deletions stopped until restore_reconciliation"
             if isinstance(getattr(error, "__cause__", None), RestoredDatabase) else "task failed")
    return Alert(event, rules=rules_of_dag(context.get("dag")), detail=detail, **common)


def committed(dag_id: str, run_id: str, rule: str) -> bool:
    """Whether the run has committed audit rows of `rule` (done or, under a hold, deferred).
    When the database cannot tell, the alert goes out: a check must never silence it."""
    from telco_lifecycle.workflows.telco_db import telco_connection

    try:
        conn = telco_connection()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT EXISTS (SELECT 1 FROM lifecycle_audit WHERE dag_id = %s AND run_id = %s"
                            " AND rule = %s AND NOT dry_run)", (dag_id, run_id, rule))
                return bool(cur.fetchone()[0])
        finally:
            conn.close()
    except Exception:
        log.warning("could not tell whether %s %s committed its %s work; alerting", dag_id, run_id, rule,
                    exc_info=True)
        return False
