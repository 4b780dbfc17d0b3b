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

This module holds what the DAG objects carry and is imported at DAG-parse time: the
callbacks, the deadlines, `DeadlineDag`. What a callback does when it fires loads inside it:
`alert_delivery` (what an alert says, how it is sent) and `metrics` (what a task reports).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG
from airflow.sdk.bases.notifier import BaseNotifier

# From their modules: airflow.sdk's type stub does not list them (Airflow 3.3.2).
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from telco_lifecycle.settings import TIMEZONE, alert_setting


def flush_evidence() -> None:
    """The end of every lifecycle task: its last checkpoint written, its ledger fsync'd."""
    from telco_lifecycle.evidence import checkpoints

    checkpoints.flush()


# --- Failures and successes ------------------------------------------------------------

class LifecycleNotifier(BaseNotifier):
    """`on_failure_callback` of every lifecycle task: an alert and the verification metrics."""

    def notify(self, context) -> None:
        from telco_lifecycle.workflows.alert_delivery import deliver, failure_alert
        from telco_lifecycle.workflows.metrics import incr

        flush_evidence()
        alert = failure_alert(context)
        if alert.event == "verification failed":
            for rule in alert.rules:
                incr(f"lifecycle.verification.failed.{rule}", 1, {"rule": rule})
        deliver(alert)


def task_succeeded(context) -> None:
    """`on_success_callback` of every lifecycle task: the metrics its return value reports."""
    from telco_lifecycle.workflows.metrics import incr, metrics_of, rules_of_dag

    flush_evidence()
    ti = context["ti"]
    result = ti.xcom_pull(task_ids=ti.task_id)
    for name, count, tags in metrics_of(ti.task_id, result, rules_of_dag(context.get("dag"))):
        incr(name, count, tags)


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

    from telco_lifecycle.workflows.alert_delivery import Alert, adeliver, committed, log, run_facts

    run = context["dag_run"]
    if run.get("state") in ("success", "failed"):
        log.info("deadline of %s %s passed after the run ended (%s): no alert", run["dag_id"], run["dag_run_id"],
                 run["state"])
        return
    if done_by_rows_of and await sync_to_async(committed)(run["dag_id"], run["dag_run_id"], done_by_rows_of):
        log.info("deadline of %s %s passed; the run has committed its %s work and waits for something else"
                 " (an approval): no alert", run["dag_id"], run["dag_run_id"], done_by_rows_of)
        return
    await adeliver(Alert(event, run["dag_id"], run["dag_run_id"], rules=tuple(rules),
                         facts={**run_facts(run.get("conf") or {}),
                                "deadline": str(context["deadline"]["deadline_time"])}))


def offboarding_deadline():
    """customer_offboarding must have deleted the PBX/SIP configuration this long after the
    trigger (a run that waits longer for a back-dated end's approval has done so)."""
    minutes = int(alert_setting("LIFECYCLE_OFFBOARDING_DEADLINE_MINUTES"))
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
    import pendulum  # the zone the DAG's timetable has loaded already

    minute, hour = (int(part) for part in schedule.split()[:2])
    until = dt.time.fromisoformat(alert_setting("LIFECYCLE_PURGE_DEADLINE"))
    day, zone = dt.date(2001, 1, 15), pendulum.timezone(TIMEZONE)  # any day without a DST change
    interval = dt.datetime.combine(day, until, zone) - dt.datetime.combine(day, dt.time(hour, minute), zone)
    if interval <= dt.timedelta(0):
        raise ValueError(f"LIFECYCLE_PURGE_DEADLINE {until} is not after the purge's start {hour:02}:{minute:02}")
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE, interval=interval, name="purge_finished",
        callback=AsyncCallback(deadline_missed, kwargs={
            "event": f"daily purge not finished by {until:%H:%M} {TIMEZONE}", "rules": [rule_id]}))
