"""Alerts and metrics of the lifecycle DAGs.

**Alerts** tell the data team when a lifecycle task fails (a failed verification names
its rules, tables and offending row counts; overdue data fails `retention_verification`;
a purge or `retention_verification` on a database restored from a backup, behind the deletion
ledger, is the event "restored database: deletions stopped until restore_reconciliation")
and when a run misses its deadline:

- `customer_offboarding`: not finished `LIFECYCLE_OFFBOARDING_DEADLINE_MINUTES` (default 30)
  after the run was queued (the trigger): PBX/SIP deletion and its verification not done;
- each daily purge: not finished by `LIFECYCLE_PURGE_DEADLINE` local time (default 06:00) on the
  day of its scheduled time (logical date, 02:00);
- `data_subject_access`, `data_subject_erasure`: not answered 28 days after the run was queued
  (the request): before the one-month limit of GDPR Art. 12(3) in every month.

Failures reach the team through `LifecycleNotifier` (every task's `on_failure_callback`,
via `workflows.common.DEFAULT_ARGS`); deadlines through Airflow's `DeadlineAlert` with an
`AsyncCallback` (`deadline_missed`) that runs in the triggerer. Both deliver through the
channel in `LIFECYCLE_ALERT_CHANNEL` (unset: `smtp` when its connection exists, else `log`):

- `smtp`: e-mail through the Airflow SMTP connection `LIFECYCLE_ALERT_SMTP_CONN_ID`
  (default `smtp_default`) to `LIFECYCLE_ALERT_TO`, from `LIFECYCLE_ALERT_FROM`;
- `log`: a warning in the log of the task or the triggerer;
- `package.module:function`: any callable taking the `Alert` (sync or async), e.g. a chat webhook.

A message holds the DAG, run, task, rules, counts, `as_of` and internal customer id, and a
link to the run; never personal data, never a task's free-text params or an error's text
other than the lifecycle's own (verification failures, refusals).

**Metrics** (Airflow's StatsD/OpenTelemetry `Stats`, from every task's `on_success_callback`
and the failure callback), named with the rule so plain StatsD keeps it, tagged for OTel:
`lifecycle.rows_removed.<rule>.<table>`, `lifecycle.subjects_removed.<rule>`,
`lifecycle.verification.passed.<rule>` / `lifecycle.verification.failed.<rule>`.
They come from the tasks' return values: `removed`/`deleted` (rows per table),
`customers_purged` or `customer_id` (subjects), `verification` or a list of check results.

Imported at DAG-parse time: nothing heavy at top level.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import importlib
import inspect
import logging
import os

from airflow.sdk import DAG
from airflow.sdk.bases.notifier import BaseNotifier

# From their modules: airflow.sdk's type stub does not list them (Airflow 3.3.2).
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from telco_lifecycle.settings import TIMEZONE

log = logging.getLogger("telco_lifecycle.workflows.alerts")

ALL_RULES = "all"  # the rule tag of retention_verification's checks, which cover every rule


def setting(name: str) -> str:
    defaults = {
        "LIFECYCLE_ALERT_SMTP_CONN_ID": "smtp_default",
        "LIFECYCLE_ALERT_TO": "data-team@localhost",
        "LIFECYCLE_ALERT_FROM": "airflow-lifecycle@localhost",
        "LIFECYCLE_OFFBOARDING_DEADLINE_MINUTES": "30",
        "LIFECYCLE_PURGE_DEADLINE": "06:00",
    }
    return os.environ.get(name) or defaults[name]


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
        smtp_configured = bool(Connection.get(setting("LIFECYCLE_ALERT_SMTP_CONN_ID")))
    except AirflowNotFoundException:
        smtp_configured = False
    channel = _channel(smtp_configured)
    if channel == "smtp":
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        with SmtpHook(setting("LIFECYCLE_ALERT_SMTP_CONN_ID")) as smtp:
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
        smtp_configured = bool(await Connection.async_get(setting("LIFECYCLE_ALERT_SMTP_CONN_ID")))
    except AirflowNotFoundException:
        smtp_configured = False
    channel = _channel(smtp_configured)
    if channel == "smtp":
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        async with SmtpHook(setting("LIFECYCLE_ALERT_SMTP_CONN_ID")) as smtp:
            await smtp.asend_email_smtp(**_email(alert))
    elif channel == "log":
        log.warning("ALERT %s\n%s", alert.subject, alert.text())
    else:
        result = channel(alert)
        if inspect.isawaitable(result):
            await result
    log.info("alert sent: %s", alert.subject)


def _email(alert: Alert) -> dict:
    return {"to": [a.strip() for a in setting("LIFECYCLE_ALERT_TO").split(",")],
            "from_email": setting("LIFECYCLE_ALERT_FROM"), "subject": alert.subject,
            "html_content": alert.html(), "mime_subtype": "alternative"}


# --- Failures --------------------------------------------------------------------------

def _rules_of_dag(dag) -> tuple[str, ...]:
    """A lifecycle DAG carries the ids of the rules it applies among its tags."""
    from telco_lifecycle.policy import load_policy

    rule_ids = [rule.id for rule in load_policy().rules]
    return tuple(tag for tag in rule_ids if dag is not None and tag in (dag.tags or ()))


def _run_facts(params: dict) -> dict[str, str]:
    """The run's params that identify what it acted on: never free text."""
    return {key: str(params[key]) for key in ("as_of", "customer_id", "dry_run") if params.get(key) is not None}


def failure_alert(context) -> Alert:
    from airflow.sdk.exceptions import AirflowFailException

    from telco_lifecycle.evidence.restore_detection import RestoredDatabase
    from telco_lifecycle.evidence.verification import VerificationFailed

    ti, error = context["ti"], context.get("exception")
    common = {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id,
              "facts": {**_run_facts(context.get("params") or {}), "try": str(ti.try_number)}}
    if isinstance(error, VerificationFailed):
        return Alert("verification failed", rules=tuple(dict.fromkeys(f.rule for f in error.failures)),
                     counts={f"offending rows [{f.rule} / {f.table}] {f.name}": f.offending_rows
                             for f in error.failures}, **common)
    # The lifecycle's own refusals are written without personal data; other errors (a
    # database error can quote a row) are named by their type only: the log has the rest.
    detail = str(error) if isinstance(error, AirflowFailException) else type(error).__name__ if error else ""
    event = ("restored database: deletions stopped until restore_reconciliation"
             if isinstance(getattr(error, "__cause__", None), RestoredDatabase) else "task failed")
    return Alert(event, rules=_rules_of_dag(context.get("dag")), detail=detail, **common)


def flush_evidence() -> None:
    """The end of every lifecycle task: its last checkpoint written, its ledger fsync'd."""
    from telco_lifecycle.evidence import checkpoints

    checkpoints.flush()


class LifecycleNotifier(BaseNotifier):
    """`on_failure_callback` of every lifecycle task: an alert and the verification metrics."""

    def notify(self, context) -> None:
        flush_evidence()
        alert = failure_alert(context)
        if alert.event == "verification failed":
            for rule in alert.rules:
                _incr(f"lifecycle.verification.failed.{rule}", 1, {"rule": rule})
        deliver(alert)


# --- Deadlines -------------------------------------------------------------------------

class DeadlineDag(DAG):
    """A DAG with `DeadlineAlert`s whose `test()` (`airflow dags test`, the demo, the tests)
    runs without them. Airflow 3.3.2's `dag.test()` runs the scheduler's code on a DAG it
    serialised and deserialised itself, so `dag.deadline` holds the encoded alerts (dicts);
    the metadata database's copy holds the `deadline_alert` ids that `SerializedDagModel`
    puts in their place. When the run succeeds, `DagRun.update_state` looks each entry up
    as an id (`DeadlineAlert.get_by_id`) and the query cannot bind a dict (apache/airflow#73428).
    Deadlines are the scheduler's business: the DAG the scheduler runs (parsed by the dag
    processor, and the copy `dag.test()` itself writes to the metadata database) keeps them."""

    def test(self, *args, **kwargs):
        deadline, self.deadline = self.deadline, None
        try:
            return super().test(*args, **kwargs)
        finally:
            self.deadline = deadline


async def deadline_missed(context: dict, event: str, rules: list[str], done_by_rows_of: str | None = None) -> None:
    """The `AsyncCallback` of the lifecycle's `DeadlineAlert`s (runs in the triggerer).
    `context` is what Airflow gives a deadline callback: the run (as the REST API shows it)
    and the deadline. A run that has already ended (failed, or succeeded before Airflow
    pruned its deadline) is past the point where the alert helps: nothing is sent. Nor when
    the run has committed what the deadline is about (`done_by_rows_of`: its audit rows of
    that rule, e.g. the PBX/SIP deletion) and still runs for another reason (an approval)."""
    from asgiref.sync import sync_to_async

    run = context["dag_run"]
    if run.get("state") in ("success", "failed"):
        log.info("deadline of %s %s passed after the run ended (%s): no alert", run["dag_id"], run["dag_run_id"],
                 run["state"])
        return
    if done_by_rows_of and await sync_to_async(_committed)(run["dag_id"], run["dag_run_id"], done_by_rows_of):
        log.info("deadline of %s %s passed; the run has committed its %s work and waits for something else"
                 " (an approval): no alert", run["dag_id"], run["dag_run_id"], done_by_rows_of)
        return
    await adeliver(Alert(event, run["dag_id"], run["dag_run_id"], rules=tuple(rules),
                         facts={**_run_facts(run.get("conf") or {}),
                                "deadline": str(context["deadline"]["deadline_time"])}))


def _committed(dag_id: str, run_id: str, rule: str) -> bool:
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


def offboarding_deadline():
    """customer_offboarding must have deleted the PBX/SIP configuration this long after the
    trigger (a run that waits longer for a back-dated end's approval has done so)."""
    minutes = int(setting("LIFECYCLE_OFFBOARDING_DEADLINE_MINUTES"))
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=dt.timedelta(minutes=minutes),
        name="pbx_sip_deletion",
        callback=AsyncCallback(deadline_missed, kwargs={
            "event": f"PBX/SIP deletion not finished within {minutes} min of the trigger",
            "rules": ["pbx_sip_config"], "done_by_rows_of": "pbx_sip_config"}))


REQUEST_ALERT_DAYS = 28  # a fixed interval never later than one calendar month after the request


def request_deadline(kind: str):
    """A data-subject request must be answered within one month (GDPR Art. 12(3)); Airflow's
    interval is fixed, so the alert comes after 28 days, before the limit in every month."""
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=dt.timedelta(days=REQUEST_ALERT_DAYS),
        name="answer_within_one_month",
        callback=AsyncCallback(deadline_missed, kwargs={
            "event": f"{kind} request not answered {REQUEST_ALERT_DAYS} days after it came in"
                     " (legal limit: one month)", "rules": []}))


def purge_deadline(rule_id: str, schedule: str):
    """A daily purge scheduled by the cron `schedule` ("M H * * *", Copenhagen time) must
    have finished by the local time LIFECYCLE_PURGE_DEADLINE of the same day."""
    from zoneinfo import ZoneInfo

    minute, hour = (int(part) for part in schedule.split()[:2])
    until = dt.time.fromisoformat(setting("LIFECYCLE_PURGE_DEADLINE"))
    day, zone = dt.date(2001, 1, 15), ZoneInfo(TIMEZONE)  # any day without a DST change
    interval = dt.datetime.combine(day, until, zone) - dt.datetime.combine(day, dt.time(hour, minute), zone)
    if interval <= dt.timedelta(0):
        raise ValueError(f"LIFECYCLE_PURGE_DEADLINE {until} is not after the purge's start {hour:02}:{minute:02}")
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE, interval=interval, name="purge_finished",
        callback=AsyncCallback(deadline_missed, kwargs={
            "event": f"daily purge not finished by {until:%H:%M} {TIMEZONE}", "rules": [rule_id]}))


# --- Metrics ---------------------------------------------------------------------------

def metrics_of(task_id: str, result, dag_rules: tuple[str, ...] = ()) -> list[tuple[str, int, dict]]:
    """(name, count, tags) of the metrics a task's return value reports. Verification
    outcomes come from `verify*` tasks (the status page's convention too); rows and
    subjects from the task that removed them (a summary restating them, with a
    `verification` key, is not counted again)."""
    metrics = []
    if task_id.startswith("verify"):
        if isinstance(result, dict) and result.get("verification") in ("passed", "failed"):
            for rule in [result["rule"]] if result.get("rule") else dag_rules or [ALL_RULES]:
                metrics.append((f"lifecycle.verification.{result['verification']}.{rule}", 1, {"rule": rule}))
        elif isinstance(result, list) and all(isinstance(r, dict) and "success" in r for r in result):
            for rule in dict.fromkeys(r["rule"] for r in result):
                outcome = "passed" if all(r["success"] for r in result if r["rule"] == rule) else "failed"
                metrics.append((f"lifecycle.verification.{outcome}.{rule}", 1, {"rule": rule}))
    elif isinstance(result, dict) and not result.get("dry_run") and "verification" not in result:
        from telco_lifecycle.policy import load_policy

        policy = load_policy()
        rules = []
        for table, rows in (result.get("removed") or result.get("deleted") or {}).items():
            if rows:
                rule = policy.rule_for_table(table).id
                metrics.append((f"lifecycle.rows_removed.{rule}.{table}", rows, {"rule": rule, "table": table}))
                rules.append(rule)
        subjects = result.get("customers_purged", 1 if result.get("customer_id") else 0)
        metrics += [(f"lifecycle.subjects_removed.{rule}", subjects, {"rule": rule})
                    for rule in dict.fromkeys(rules) if subjects]
    return metrics


def _incr(name: str, count: int, tags: dict) -> None:
    from airflow.sdk.observability import stats

    stats.incr(name, count=count, tags=tags)


def task_succeeded(context) -> None:
    """`on_success_callback` of every lifecycle task: the metrics its return value reports."""
    flush_evidence()
    ti = context["ti"]
    result = ti.xcom_pull(task_ids=ti.task_id)
    for name, count, tags in metrics_of(ti.task_id, result, _rules_of_dag(context.get("dag"))):
        _incr(name, count, tags)
