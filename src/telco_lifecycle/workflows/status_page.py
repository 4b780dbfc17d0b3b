"""Retention status: is any customer's data held past its deadline right now, and is
anything about to be? Per rule of the policy, at `as_of`:

| field | meaning |
| --- | --- |
| `due_today` | customers with data that becomes due at `as_of` (the day's purge removes it) |
| `overdue` | customers with data that was already due before `as_of` and is still there, no hold keeping it: should always be 0 |
| `due_soon` | customers with nothing due yet and something due within the next `window_days` |
| `held` | customers with due data kept because a legal hold is in force |
| `last_purge` | the last successful, not dry, run of a DAG applying the rule (the DAGs tagged with the rule id) |
| `last_verification` | the last finished verification task of those DAGs or of `retention_verification` |

The counts come from `rules.status`; the runs from Airflow's metadata database.

Served inside Airflow's API server by plugins/retention_status.py (`create_app`): the HTML
page at /retention-status/ (shown in the UI as "Retention status") and the same as JSON at
/retention-status/api/status, both behind Airflow's login.
"""

import datetime as dt
import html
from zoneinfo import ZoneInfo

from telco_lifecycle.policy import Policy, load_policy
from telco_lifecycle.rules.status import WINDOW_DAYS, holds_in_force, rule_counts
from telco_lifecycle.settings import TIMEZONE
from telco_lifecycle.workflows.urls import run_url

VERIFICATION_DAG = "retention_verification"
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
            "overdue_total": sum(rule["overdue"] for rule in rules), "rules": rules}


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
            f"<tr><td><b>{html.escape(rule['rule'])}</b><br><span class=muted>{html.escape(rule['category'])}</span></td>"
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
 .good {{ color: #1b7f3b; }} .bad {{ color: #c62828; font-weight: 600; }} .muted {{ color: #7b8794; font-size: .85rem; }}
 .headline {{ font-size: 1.15rem; }}
</style></head><body>
<h1>Retention status</h1>
<form method="get">As of <input type="date" name="as_of" value="{status['as_of']}"> <button>Show</button>
 <a href="{URL_PREFIX}/api/status?as_of={status['as_of']}">JSON</a></form>
{headline}
<p>Legal holds in force: <b>{holds['holds']}</b> (customers: {holds['customers']}).</p>
<table>
<tr><th>rule</th><th>due today</th><th>overdue</th><th>due in the next {status['window_days']} days</th>
<th>kept by a legal hold</th><th>last successful purge</th><th>last verification</th></tr>
{''.join(rows)}
</table>
<p class=muted>Counts are customers. "Due" is what the purge DAGs act on, from include/policy/retention.yaml.</p>
</body></html>"""


def create_app():
    """The FastAPI app the plugin mounts in the API server; every route needs Airflow's login.
    (This module has no `from __future__ import annotations`: FastAPI reads these local annotations.)"""
    from typing import Annotated

    from airflow.api_fastapi.common.db.common import SessionDep
    from airflow.api_fastapi.core_api.security import requires_authenticated
    from fastapi import Depends, FastAPI, Query
    from fastapi.responses import HTMLResponse

    from telco_lifecycle.workflows.common import telco_connection

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
