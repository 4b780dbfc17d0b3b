"""Retention status: is any customer's data held past its deadline right now, and is
anything about to be? Per rule of the policy, at `as_of`:

- `due_today`: customers with data that becomes due at `as_of` (the day's purge removes it)
- `overdue`: customers with data that was already due before `as_of` and is still there, no hold
  keeping it: should always be 0
- `due_soon`: customers with nothing due yet and something due within the next `window_days`
- `held`: customers with due data kept because a legal hold is in force
- `last_purge`: the last successful, not dry, run of a DAG applying the rule (the DAGs tagged
  with the rule id)
- `last_verification`: the last finished verification task of those DAGs or of
  `retention_verification`

The counts come from `rules.status`; the runs from Airflow's metadata database.

**Requests** (what waits for the data team, from Airflow's metadata database): open access and
erasure requests (runs of `data_subject_access` / `data_subject_erasure` not yet ended) with the
legal deadline, one month after the trigger (GDPR Art. 12(3)), and the days left; approvals
waiting (Airflow's human-in-the-loop tasks) and for whom; the PBX/SIP deletions a legal hold
defers (from the telecom database: customer ids, end dates, hold ids); the last
`restore_reconciliation` run when that DAG exists. `lifecycle status` prints the same in the terminal.

Served inside Airflow's API server by plugins/retention_status.py (`create_app`): the HTML
page at /retention-status/ (shown in the UI as "Retention status") and the same as JSON at
/retention-status/api/status, both behind Airflow's login.
"""

import calendar
import datetime as dt
import html
from zoneinfo import ZoneInfo

from telco_lifecycle.evidence.audit_report import run_label
from telco_lifecycle.policy import Policy, load_policy
from telco_lifecycle.rules.offboarding import deferred_offboardings
from telco_lifecycle.rules.status import WINDOW_DAYS, holds_in_force, rule_counts
from telco_lifecycle.settings import TIMEZONE
from telco_lifecycle.workflows.urls import run_url

VERIFICATION_DAG = "retention_verification"
REQUEST_DAGS = {"data_subject_access": "access", "data_subject_erasure": "erasure"}
RESTORE_DAG = "restore_reconciliation"
URL_PREFIX = "/retention-status"


def today() -> dt.date:
    """The page's default `as_of`: today in Copenhagen (monitoring reads the clock; purges never do)."""
    return dt.datetime.now(ZoneInfo(TIMEZONE)).date()


def rule_runs(session, policy: Policy) -> dict[str, dict]:
    """Per rule: the last successful purge run and the last verification result, from the
    Airflow metadata database. A DAG applies the rules whose ids are among its tags."""
    from airflow.models.dag import DagTag
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    rule_ids = [rule.id for rule in policy.rules]
    dags: dict[str, list[str]] = {rule_id: [] for rule_id in rule_ids}
    for dag_id, tag in session.execute(select(DagTag.dag_id, DagTag.name).where(DagTag.name.in_(rule_ids))):
        dags[tag].append(dag_id)
    result = {}
    for rule_id, dag_ids in dags.items():
        runs = session.scalars(
            select(DagRun).where(DagRun.dag_id.in_(dag_ids), DagRun.state == DagRunState.SUCCESS)
            .order_by(DagRun.end_date.desc().nulls_last()).limit(20))
        purge = next((run for run in runs if not (run.conf or {}).get("dry_run")), None)
        check = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id.in_([*dag_ids, VERIFICATION_DAG]), TaskInstance.task_id.startswith("verify"),
                TaskInstance.state.in_([TaskInstanceState.SUCCESS, TaskInstanceState.FAILED]))
            .order_by(TaskInstance.end_date.desc().nulls_last()).limit(1)).first()
        result[rule_id] = {
            "dags": sorted(dag_ids),
            "last_purge": purge and {
                "dag_id": purge.dag_id, "run_id": purge.run_id, "end_date": _iso(purge.end_date),
                "url": run_url(purge.dag_id, purge.run_id)},
            "last_verification": check and {
                "dag_id": check.dag_id, "run_id": check.run_id, "task_id": check.task_id,
                "result": "passed" if check.state == TaskInstanceState.SUCCESS else "failed",
                "end_date": _iso(check.end_date), "url": run_url(check.dag_id, check.run_id, check.task_id)},
        }
    return result


def one_month_after(day: dt.date) -> dt.date:
    """The same day of the next month, or its last day (31 January -> 28/29 February)."""
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def requests_status(session, today: dt.date) -> dict:
    """Open data-subject requests with their legal deadline, approvals waiting, the last
    restore reconciliation: identifiers and dates only."""
    from airflow.models.dagrun import DagRun
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    open_runs = session.scalars(
        select(DagRun).where(DagRun.dag_id.in_(REQUEST_DAGS),
                             DagRun.state.in_([DagRunState.QUEUED, DagRunState.RUNNING]))
        .order_by(DagRun.run_after))
    requests = []
    for run in open_runs:
        received = (run.queued_at or run.run_after).astimezone(ZoneInfo(TIMEZONE)).date()
        deadline = one_month_after(received)
        requests.append({"kind": REQUEST_DAGS[run.dag_id], "dag_id": run.dag_id, "run_id": run.run_id,
                         "customer_id": (run.conf or {}).get("customer_id"), "received": received.isoformat(),
                         "deadline": deadline.isoformat(), "days_left": (deadline - today).days,
                         "url": run_url(run.dag_id, run.run_id)})
    waiting = session.execute(
        select(HITLDetail, TaskInstance).join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
        .where(HITLDetail.responded_at.is_(None)).order_by(HITLDetail.created_at))
    approvals = [{"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "subject": detail.subject,
                  "waiting_since": _iso(detail.created_at),
                  "for": [a.get("name") or a.get("id") for a in detail.assignees or []] or ["any approver"],
                  "url": run_url(ti.dag_id, ti.run_id, ti.task_id)}
                 for detail, ti in waiting]
    restore = session.scalars(select(DagRun).where(DagRun.dag_id == RESTORE_DAG)
                              .order_by(DagRun.run_after.desc()).limit(1)).first()
    return {"open_requests": requests, "approvals_waiting": approvals,
            "last_restore_reconciliation": restore and {
                "run_id": restore.run_id, "state": str(restore.state), "end_date": _iso(restore.end_date),
                "url": run_url(restore.dag_id, restore.run_id)}}


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(ZoneInfo(TIMEZONE)).isoformat(timespec="seconds") if moment else None


def retention_status(conn, session, as_of: dt.date, policy: Policy | None = None,
                     window_days: int = WINDOW_DAYS) -> dict:
    """The whole status: counts per rule from the telecom database (`conn`), runs from
    Airflow's metadata database (`session`)."""
    policy = policy or load_policy()
    runs = rule_runs(session, policy)
    rules = [{"rule": rule.id, "category": rule.category.en, "tables": list(rule.tables), "trigger": rule.trigger,
              "period_years": rule.period_years, **rule_counts(conn, rule, as_of, policy, window_days),
              **runs[rule.id]}
             for rule in policy.rules]
    return {"as_of": as_of.isoformat(), "window_days": window_days, "holds_in_force": holds_in_force(conn),
            "overdue_total": sum(rule["overdue"] for rule in rules), "rules": rules,
            "requests": {**requests_status(session, as_of), "deferred_deletions": deferred_offboardings(conn)}}


def requests_html(requests: dict) -> str:
    """The "Requests" section: what waits for the data team, with its legal deadline."""
    def link(item: dict, label: str) -> str:
        return f'<a href="{html.escape(item["url"])}" target="_top">{html.escape(label)}</a>'

    open_rows = "".join(
        f"<tr><td>{r['kind']}</td><td class=num>{r['customer_id']}</td><td>{r['received']}</td>"
        f"<td>{r['deadline']}</td><td class='num {'bad' if r['days_left'] < 7 else ''}'>{r['days_left']}</td>"
        f"<td>{link(r, run_label(r['run_id']))}</td></tr>" for r in requests["open_requests"])
    approval_rows = "".join(
        f"<tr><td>{html.escape(a['subject'])}</td><td>{html.escape(', '.join(a['for']))}</td>"
        f"<td>{html.escape(a['waiting_since'] or '')}</td><td>{link(a, a['dag_id'])}</td></tr>"
        for a in requests["approvals_waiting"])
    deferred_rows = "".join(
        f"<tr><td class=num>{d['customer_id']}</td><td>{d['ended_on']}</td>"
        f"<td>{html.escape(', '.join(map(str, d['hold_ids'])))}</td></tr>" for d in requests["deferred_deletions"])
    restore = requests["last_restore_reconciliation"]
    restore_line = (f"Last restore reconciliation: {link(restore, restore['state'])}"
                    f" <span class=muted>{html.escape(restore['end_date'] or 'not ended')}</span>" if restore
                    else "<span class=muted>No restore reconciliation has run.</span>")
    return f"""<h2 id=requests>Requests</h2>
<table class=requests>
<tr><th>open request</th><th>customer</th><th>received</th><th>legal deadline (one month)</th><th>days left</th>
<th>run</th></tr>
{open_rows or '<tr><td colspan=6 class=muted>No open access or erasure request.</td></tr>'}
</table>
<table class=approvals>
<tr><th>approval waiting</th><th>for</th><th>since</th><th>DAG</th></tr>
{approval_rows or '<tr><td colspan=4 class=muted>No approval waiting.</td></tr>'}
</table>
<table class=deferred>
<tr><th>deferred PBX/SIP deletion: customer</th><th>relationship ended</th><th>legal hold id(s) in force</th></tr>
{deferred_rows or '<tr><td colspan=3 class=muted>No deletion deferred by a legal hold.</td></tr>'}
</table>
<p>{restore_line}</p>"""


def render_html(status: dict) -> str:
    """The status as a self-contained page (shown in an iframe of the Airflow UI; links open in the UI)."""
    def link(run: dict | None, label: str) -> str:
        if not run:
            return "<span class=muted>none yet</span>"
        return (f'<a href="{html.escape(run["url"])}" target="_top">{html.escape(label)}</a>'
                f'<br><span class=muted>{html.escape(run["dag_id"])} · {html.escape(run["end_date"] or "")}</span>')

    rows = []
    for rule in status["rules"]:
        check = rule["last_verification"]
        rows.append(
            f"<tr><td><b>{html.escape(rule['rule'])}</b>"
            f"<br><span class=muted>{html.escape(rule['category'])}</span></td>"
            f"<td class=num>{rule['due_today']}</td>"
            f"<td class='num {'bad' if rule['overdue'] else 'good'}'>{rule['overdue']}</td>"
            f"<td class=num>{rule['due_soon']}</td><td class=num>{rule['held']}</td>"
            f"<td>{link(rule['last_purge'], 'succeeded')}</td>"
            f"<td class={'good' if check and check['result'] == 'passed' else 'bad' if check else ''}>"
            f"{link(check, check['result'] if check else '')}</td></tr>")
    overdue = status["overdue_total"]
    headline = (f"<p class='headline bad'>Data held past its deadline: {overdue} (customers, summed over the rules)."
                "</p>" if overdue else
                "<p class='headline good'>No customer's data is held past its deadline.</p>")
    holds = status["holds_in_force"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Retention status</title>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #1f2933; }}
 table {{ border-collapse: collapse; width: 100%; }}
 th, td {{ border-bottom: 1px solid #d9e2ec; padding: .5rem .75rem; text-align: left; vertical-align: top; }}
 th {{ background: #f0f4f8; font-weight: 600; }}
 td.num {{ text-align: right; font-variant-numeric: tabular-nums; font-size: 1.1rem; }}
 .good {{ color: #1b7f3b; }} .bad {{ color: #c62828; font-weight: 600; }}
 .muted {{ color: #7b8794; font-size: .85rem; }}
 .headline {{ font-size: 1.15rem; }} table + table {{ margin-top: 1rem; }}
</style></head><body>
<h1>Retention status</h1>
<form method="get">As of <input type="date" name="as_of" value="{status['as_of']}"> <button>Show</button>
 <a href="{URL_PREFIX}/api/status?as_of={status['as_of']}">JSON</a></form>
{headline}
<p>Legal holds in force: <b>{holds['holds']}</b> (customers: {holds['customers']}).
 Ended customers whose PBX/SIP deletion a hold defers: <b>{holds['deferred_offboarding']}</b>
 <span class="muted">(deleted when their last hold is released)</span>.</p>
<table class=rules>
<tr><th>rule</th><th>due today</th><th>overdue</th><th>due in the next {status['window_days']} days</th>
<th>kept by a legal hold</th><th>last successful purge</th><th>last verification</th></tr>
{''.join(rows)}
</table>
<p class=muted>Counts are customers. "Due" is what the purge DAGs act on, from include/policy/retention.yaml.</p>
{requests_html(status["requests"])}
</body></html>"""


def render_text(status: dict) -> str:
    """The page as plain text for `lifecycle status`."""
    lines = [f"Retention status as of {status['as_of']}: "
             + (f"{status['overdue_total']} customer(s) with data past its deadline"
                if status["overdue_total"] else "no customer's data is held past its deadline"),
             f"Legal holds in force: {status['holds_in_force']['holds']}"
             f" (customers: {status['holds_in_force']['customers']})",
             f"{'rule':<20} {'due today':>9} {'overdue':>7} {'due <' + str(status['window_days']) + 'd':>8}"
             f" {'held':>5}  last purge / last verification"]
    for rule in status["rules"]:
        purge, check = rule["last_purge"], rule["last_verification"]
        lines.append(f"{rule['rule']:<20} {rule['due_today']:>9} {rule['overdue']:>7} {rule['due_soon']:>8}"
                     f" {rule['held']:>5}  {purge['end_date'] if purge else 'none yet'}"
                     f" / {check['result'] + ' ' + (check['end_date'] or '') if check else 'none yet'}")
    requests = status["requests"]
    lines.append(f"Requests: {len(requests['open_requests'])} open, {len(requests['approvals_waiting'])}"
                 " approval(s) waiting")
    lines += [f"  {r['kind']:<8} customer {r['customer_id']}: received {r['received']}, legal deadline"
              f" {r['deadline']} ({r['days_left']} day(s) left)  {r['run_id']}" for r in requests["open_requests"]]
    lines += [f"  approval: {a['subject']} - for {', '.join(a['for'])}, waiting since {a['waiting_since']}"
              for a in requests["approvals_waiting"]]
    lines += [f"  deferred PBX/SIP deletion: customer {d['customer_id']} (ended {d['ended_on']}), held by hold"
              f" id(s) {', '.join(map(str, d['hold_ids']))}" for d in requests["deferred_deletions"]]
    restore = requests["last_restore_reconciliation"]
    lines.append(f"Last restore reconciliation: {restore['state']} {restore['end_date'] or ''}" if restore
                 else "Last restore reconciliation: none")
    return "\n".join(lines)


def create_app():
    """The FastAPI app the plugin mounts in the API server; every route needs Airflow's login.
    (This module has no `from __future__ import annotations`: FastAPI reads these local annotations.)"""
    from typing import Annotated

    from airflow.api_fastapi.common.db.common import SessionDep
    from airflow.api_fastapi.core_api.security import requires_authenticated
    from fastapi import Depends, FastAPI, Query
    from fastapi.responses import HTMLResponse

    from telco_lifecycle.workflows.telco_db import telco_connection

    app = FastAPI(title="Retention status", dependencies=[Depends(requires_authenticated())])
    AsOf = Annotated[dt.date | None, Query(description="The day to look at (YYYY-MM-DD); default today")]

    def current(session, as_of: dt.date | None) -> dict:
        conn = telco_connection()
        try:
            return retention_status(conn, session, as_of or today())
        finally:
            conn.close()

    @app.get("/api/status")
    def status_json(session: SessionDep, as_of: AsOf = None) -> dict:
        """Per rule: due today, overdue, due soon, held, last purge and verification."""
        return current(session, as_of)

    @app.get("/", response_class=HTMLResponse)
    def status_page(session: SessionDep, as_of: AsOf = None) -> str:
        return render_html(current(session, as_of))

    return app
