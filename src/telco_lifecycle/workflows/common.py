"""What every lifecycle DAG shares. Imported at DAG-parse time, so it imports nothing
heavy at top level: the database driver, GX and pandas load inside the tasks, and so does
every module only the tasks use (each module imported costs every parse ~0.3 ms)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import pendulum
from airflow.sdk import Context, Param, dag
from airflow.sdk.exceptions import AirflowFailException

from telco_lifecycle.errors import Refused
from telco_lifecycle.policy_check import validate_policy
from telco_lifecycle.settings import TELCO_CONN_ID, TIMEZONE
from telco_lifecycle.workflows.alerts import DeadlineDag, LifecycleNotifier, task_succeeded

if TYPE_CHECKING:
    from telco_lifecycle.database import Connection
    from telco_lifecycle.evidence.audit import RunContext

# Validated at parse time (cached by the files' status: policy_check), so a broken policy file
# is an import error in the UI that names the line and the problem, and no DAG runs on a
# policy nobody could read.
validate_policy()

# Pendulum's zone, the one Airflow converts start_date and the timetables to: one tz file
# read per parse, not two.
LOCAL_TZ = pendulum.timezone(TIMEZONE)
# As early as the data goes (CDRs from 2015): Airflow runs no task of a run dated before
# start_date, and backfills of past days must work. Catch-up stays off.
START_DATE = dt.datetime(2015, 1, 1, tzinfo=LOCAL_TZ)
TAGS = ["data-lifecycle"]
# The dates a run may carry: none of them may be after today (`guard_task`).
DATE_PARAMS = ("as_of", "relationship_end", "returned_on", "period_start", "period_end")


def guard_task(context) -> None:
    """Before every lifecycle task reads or changes anything (its `pre_execute`, so no task
    can leave it out): a trigger key the DAG does not declare, a run date or date param
    after today (the database server's date, `guards`), or a policy naming what the live
    schema lacks fails the task at once, without retries, with the one-line reason, recorded
    as the run's outcome (`refuse`)."""
    from telco_lifecycle.errors import Refused
    from telco_lifecycle.guards import refuse_future_dates, refuse_unknown_keys
    from telco_lifecycle.policy import PolicyError, check_schema
    from telco_lifecycle.workflows.telco_db import telco_connection

    params = context.get("params") or {}
    try:
        refuse_unknown_keys(context["dag_run"].conf or {}, context["dag"].params.keys())
        dates = {"the run's date": run_date(context)} | {name: _date(params.get(name)) for name in DATE_PARAMS}
        conn = telco_connection()
        try:
            refuse_future_dates(conn, dates)
            with conn.cursor() as cur:
                check_schema(cur)
            conn.rollback()
        finally:
            conn.close()
    except (Refused, PolicyError) as refused:
        refuse(context, refused)


def _date(value) -> dt.date | None:
    """A date param's value (the Param schema refuses malformed ones before the run starts)."""
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


# Every task: the guards first; a failure alerts the data team, a success reports its
# metrics (alerts.py). The callbacks as lists: Airflow's `isinstance(callback, Collection)`
# of a bare callable walks every registered Collection type once per parse (~1.5 ms).
DEFAULT_ARGS = {"owner": "data-team", "retries": 2, "retry_delay": dt.timedelta(minutes=1),
                "pre_execute": guard_task,
                "on_failure_callback": [LifecycleNotifier()], "on_success_callback": [task_succeeded]}


def lifecycle_dag(dag_id: str, doc_md: str | None, tags: list[str], params: dict[str, Any], **options: Any):
    """The `@dag(...)` of every lifecycle DAG: shared start date, tag, default args (retries,
    alerts), no catch-up; manual unless `schedule` is among the options. A DeadlineDag (through
    Airflow's own hook for the class), so that a `deadline` among the options works with
    `dag.test()` too."""
    dag_class: dict[str, Any] = {"__DAG_class": DeadlineDag}  # the hook is not in dag()'s typed signature
    return dag(dag_id=dag_id, schedule=options.pop("schedule", None), start_date=START_DATE, catchup=False,
               doc_md=doc_md, tags=TAGS + tags, default_args=DEFAULT_ARGS, params=params, **options, **dag_class)


@contextmanager
def lifecycle_task(context: Context) -> Iterator[None]:
    """Every task's body runs inside this (or `telco_task`): the one place that checks what all
    runs must respect, and turns a domain refusal into a failure without retries whose message
    is the refusal's one line; a refused request is recorded as the run's outcome first."""
    try:
        yield
    except Refused as refused:
        if refused.recorded:
            refuse(context, refused)
        raise AirflowFailException(str(refused)) from refused


@contextmanager
def telco_task(context: Context) -> Iterator[Connection]:
    """`lifecycle_task` with a connection to the telecom database, closed at the end."""
    from telco_lifecycle.workflows.telco_db import telco_connection

    with lifecycle_task(context):
        conn = telco_connection()
        try:
            yield conn
        finally:
            conn.close()


def run_date(context: Context) -> dt.date:
    """The run's date in Copenhagen: its logical date, or run_after for a manual run."""
    moment = context.get("logical_date") or context["dag_run"].run_after
    return moment.astimezone(LOCAL_TZ).date()


def as_of_date(context: Context, params: dict[str, Any]) -> dt.date:
    """`as_of` param if given, else the run's date: no purge reads the wall clock."""
    given = params.get("as_of")
    return dt.date.fromisoformat(given) if given else run_date(context)


def run_context(context: Context) -> RunContext:
    """The run's ids for the audit trail; in a retry, first re-log what the earlier tries
    committed (a crash between commit and log leaves no unexplained record)."""
    from telco_lifecycle.evidence.audit import RunContext, relog_earlier_tries
    from telco_lifecycle.workflows.telco_db import telco_connection

    ti = context["ti"]
    run = RunContext(ti.dag_id, ti.run_id, ti.task_id, int(ti.try_number or 1))
    if run.try_number > 1:
        conn = telco_connection()
        try:
            relog_earlier_tries(conn, run)
        finally:
            conn.close()
    return run


def telco_url() -> str:
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from telco_lifecycle.settings import connection_to_url

    return connection_to_url(PostgresHook(postgres_conn_id=TELCO_CONN_ID).get_uri())


# --- Trigger-form params shared by the DAGs: one definition each, described per DAG ---

def customer_id_param(whose: str) -> Param:
    return Param(type="integer", minimum=1, maximum=9223372036854775807, title="Customer id",
                 description=f"Internal customer id (customers.customer_id) {whose}.")


def requested_by_param(kept_where: str) -> Param:
    return Param(type="string", minLength=1, maxLength=200, pattern=r"^\S.*$", title="Requested by",
                 description=f"Who asks: your user name or initials, kept in {kept_where}. No customer's"
                             " or other personal data.")


def dry_run_param(what: str) -> Param:
    return Param(False, type="boolean", title="Dry run", description=f"Only count {what}; change nothing.")


def as_of_param(what: str = "The day the rules are applied for") -> Param:
    return Param(None, type=["null", "string"], format="date", title="As of",
                 description=f"{what} (YYYY-MM-DD). Empty: the run's logical date. Not after the run's date.")


def refuse(context, refused: Exception, rule: str | None = None) -> NoReturn:
    """A refused request ends the task as an outcome (evidence.refusals): the audit row
    `refused` with the rule and the one-line reason, the DPO's statement for a data-subject
    request, then the task fails with the reason (AirflowFailException, not retried).
    `rule`: the rule the request concerned; default the policy rule among the DAG's tags."""
    from telco_lifecycle.evidence.refusals import one_line, record_refusal
    from telco_lifecycle.policy import load_policy
    from telco_lifecycle.workflows.telco_db import telco_connection

    params = context.get("params") or {}
    running = context.get("dag")
    rule_ids = {r.id for r in load_policy().rules}
    rule = rule or next((tag for tag in (running.tags if running else ()) if tag in rule_ids), None)
    conn = telco_connection()
    try:
        event = record_refusal(conn, run_context(context), str(refused), rule,
                               int(params["customer_id"]) if params.get("customer_id") is not None else None,
                               run_date(context), {"refusal": type(refused).__name__}, params.get("requested_by"))
    finally:
        conn.close()
    statement = f" (statement for the DPO: {event['statement']})" if "statement" in event else ""
    raise AirflowFailException(f"refused: {one_line(str(refused))}{statement}") from refused
