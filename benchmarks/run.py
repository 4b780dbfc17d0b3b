"""`make bench` (`python -m benchmarks.run [--scale] [--smoke] [--repeat N]`).

Builds one seeded database per size with the demo generator (kept as a template and
reused while its name matches the size), then measures on fresh copies of it
(`CREATE DATABASE ... TEMPLATE`), each figure the median of `--repeat` runs and every
comparison made in the same run:

1. per scheduled rule, `retention.purge` (what the DAG's purge task calls: batches of
   customers, one transaction each with its audit rows, partition drops) against the
   limit: the same rows removed by one set-based statement per table in one transaction;
2. the accounting drop of wholly expired CDR months against a DELETE of the same rows;
3. the same number of due customers purged from databases of two sizes;
4. the GX checks of `retention_verification` against plain `SELECT count(*)` of the
   same predicates;
5. each DAG file's parse time against an empty DAG file's, as DagBag measures it,
   each parse in a process forked from one that has imported Airflow (as the dag
   processor does);
6. peak RSS of a purge task run in its own process;
7. offboarding latency on a running Airflow (trigger -> PBX/SIP deleted) against a
   one-task no-op DAG's trigger -> first task started (benchmarks/latency.py).

Results: benchmarks/results/latest.json, latest.md and scaling.png (or `--out`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import ANCHOR, Server, median, ratio, timed
from benchmarks.latency import offboarding_latency
from telco_lifecycle.settings import project_dir, with_database

SIZES = {  # (customers, CDRs per customer): the two sizes compared for growth with size
    "smoke": [(200, 20), (1000, 20)],
    "default": [(10_000, 100), (100_000, 100)],
    "scale": [(100_000, 100), (1_000_000, 50)],
}
DUE_CUSTOMERS = {"smoke": 50, "default": 1000, "scale": 1000}
SCALING_RULE = "crm_master_data"  # the per-customer path, for figure 3
RSS_RULE = "accounting"  # the largest tables
RESULTS_DIR = Path(__file__).resolve().parent / "results"
LOAD_LIMIT = 1.5  # above this one-minute load average at the start the figures are labelled contended
TARGETS = {
    "purge_vs_limit_evidence": 1.2,
    "purge_vs_limit": 1.5,
    "partition_drop_vs_bare": 1.5,
    "partition_drop_in_run_vs_bare": 1.5,
    "partition_drop_growth": 1.3,
    "cost_vs_size": 1.3,
    "verification_vs_count": 1.5,
    "dag_parse_vs_same_shape": 1.5,
    "offboarding_latency_vs_noop": 2.0,
    "purge_peak_rss_mb": 300,
    "purge_rss_growth": 1.3,
}
# A purge this much faster than the faster form of its limit shows that the limit is not
# the best SQL for those rows at that size, not that the purge meets its target: such a
# figure is reported as not met, with the reason.
LIMIT_SLOWER_BELOW = 0.8
LIMIT_SLOWER = "inconclusive: the limit is slower than the purge, so it is not the best SQL here"
EMPTY_DAG = '''"""An empty DAG: the parse-time baseline."""
from airflow.sdk import dag, task


@dag(dag_id="bench_empty", schedule=None)
def bench_empty():
    @task
    def noop():
        pass

    noop()


bench_empty()
'''


def bench_run():
    """The audit rows' run ids: a benchmark, as the purge task would write them."""
    from telco_lifecycle.evidence import audit

    return audit.RunContext(dag_id="benchmark", run_id="bench", task_id="purge_due")


def worker_logging(path: Path) -> None:
    """Airflow's task logging as a worker's task process has it: structlog's JSON lines
    (there to the supervisor, which writes them to the task's log file; here to `path`),
    stdlib loggers routed through it at Airflow's [logging] levels (INFO)."""
    from airflow.sdk.log import configure_logging, reset_logging

    reset_logging()
    configure_logging(json_output=True, output=path.open("ab", buffering=0), sending_to_supervisor=True)


def in_task_process(action, log_path: Path):
    """(seconds, value) of `action()` timed in a child forked from this process with
    worker logging configured, as Airflow's supervisor forks a task process (so the child
    has what a task process has loaded when its work starts: the supervisor's and the task
    runner's modules, and the Postgres hook and connection lookup through which a
    lifecycle task has connected)."""
    import airflow.providers.postgres.hooks.postgres  # noqa: F401
    import airflow.sdk.execution_time.cache  # noqa: F401
    import airflow.sdk.execution_time.supervisor  # noqa: F401
    import airflow.sdk.execution_time.task_runner  # noqa: F401

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read)
        try:
            worker_logging(log_path)
            payload = {"result": timed(action)}
        except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
            import traceback

            payload = {"error": traceback.format_exc()}
        with os.fdopen(write, "w") as pipe:
            pipe.write(json.dumps(payload, default=str))
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        payload = json.loads(pipe.read() or '{"error": "the task process died"}')
    os.waitpid(pid, 0)
    if "error" in payload:
        raise RuntimeError(f"benchmark task process failed:\n{payload['error']}")
    return tuple(payload["result"])


def project_purge(url: str, rule_id: str) -> dict:
    """The DAG's purge task minus the scheduler: `retention.purge` on its own connection,
    then what every lifecycle task does at its end (its last checkpoint, the ledger's fsync)."""
    from telco_lifecycle.database import connect
    from telco_lifecycle.rules.retention import purge
    from telco_lifecycle.workflows.alerts import flush_evidence

    conn = connect(url)
    try:
        result = purge(conn, rule_id, ANCHOR, bench_run())
    finally:
        conn.close()
    flush_evidence()
    return {"rows": sum(result["removed"].values()), "customers": result["customers_purged"]}


def audit_rows_written(url: str) -> int:
    """The audit rows the benchmark's purge wrote (counted after the timing)."""
    run = bench_run()
    return query(url, "SELECT count(*) FROM lifecycle_audit WHERE dag_id = %s AND run_id = %s",
                 (run.dag_id, run.run_id))[0][0]


def query(url: str, sql: str, params=None) -> list[tuple]:
    from telco_lifecycle.database import connect

    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        conn.rollback()
    finally:
        conn.close()
    return rows


def table_states(url: str, tables: tuple[str, ...]) -> dict[str, list]:
    """Per table [rows, checksum]: an order-independent sum of every row's hash (of its
    text form), so two databases agree only if they hold the same rows."""
    return {table: [int(n), str(checksum)] for table in tables for n, checksum in
            query(url, f"SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0) FROM {table} t")}


def run_limit(url: str, rule_id: str, months: list[str], evidence: bool, batched: bool = False) -> None:
    """The hand-written set-based SQL of benchmarks.limits, in one transaction: the
    changes for every due customer at once, or (`batched`) per batch of the purge's size."""
    from benchmarks.limits import BATCHES, EVIDENCE, WORK_MEM, change_statements, setup_statements
    from telco_lifecycle.database import connect, transaction
    from telco_lifecycle.rules.retention import BATCH_SIZE, scope

    params = scope(rule_id, ANCHOR).params
    conn = connect(url)
    try:
        with transaction(conn) as cur:
            cur.execute("SELECT set_config('work_mem', %s, true)", (WORK_MEM,))
            for statement in setup_statements(rule_id, months, batched):
                cur.execute(statement, params)
            batches = [(None, None)]
            if batched:
                cur.execute(BATCHES, {"batch_size": BATCH_SIZE})
                batches = cur.fetchall()
            for first, last in batches:
                for statement in change_statements(rule_id, batched):
                    cur.execute(statement, {**params, "batch_first": first, "batch_last": last})
            if evidence:
                cur.execute(EVIDENCE, params)
    finally:
        conn.close()


def expired_months(url: str, rule_id: str) -> list[str]:
    """The CDR months the rule's purge drops at ANCHOR (none for a rule without CDRs):
    wholly before the cutoff, and none of their CDRs billed on a unit that is kept."""
    from benchmarks.limits import MONTHS_KEPT
    from telco_lifecycle.rules.retention import scope
    from telco_lifecycle.settings import read_sql

    s = scope(rule_id, ANCHOR)
    if "cdrs" not in s.rule.tables:
        return []
    kept = {row[0] for row in query(url, MONTHS_KEPT, s.params)}
    return [name for name, first_day in query(url, read_sql("retention/expired_cdr_partitions.sql"), s.params)
            if first_day not in kept]


# The limits in both forms (benchmarks.limits): whole-table statements, and the same per
# batch of the purge's size; each figure takes the faster form's median.
LIMITS = ("limit_evidence", "limit")
PURGE_VARIANTS = ("purge", *LIMITS, *(f"batched_{name}" for name in LIMITS))


def purge_vs_limit(server: Server, template: str, repeat: int, log_dir: Path, rules: list[str] | None = None
                   ) -> dict:
    """Per scheduled rule (or those of `rules`), the purge against the limit with and
    without evidence, runs alternated; after each run the rule's tables are compared with
    the purge's: the same rows removed, the same rows left (the benchmark fails otherwise)."""
    from benchmarks.limits import EVIDENCE_TABLE
    from telco_lifecycle.policy import load_policy

    figures = {}
    for rule in (r for r in load_policy().rules if r.trigger == "schedule" and (rules is None or r.id in rules)):
        times = {name: [] for name in PURGE_VARIANTS}
        before = table_states(with_database(server.url, template), rule.tables)
        months = expired_months(with_database(server.url, template), rule.id)
        after, audit_rows, loads = {}, None, []
        for _ in range(repeat):
            for name in PURGE_VARIANTS:
                url = server.copy(template)
                if name == "purge":
                    action = functools.partial(project_purge, url, rule.id)
                else:
                    setup_evidence(url, EVIDENCE_TABLE)
                    action = functools.partial(run_limit, url, rule.id, months, name.endswith("limit_evidence"),
                                               name.startswith("batched_"))
                loads.append(os.getloadavg()[0])
                seconds, _ = in_task_process(action, log_dir / f"{rule.id}_{name}.log")
                times[name].append(round(seconds, 6))
                state = table_states(url, rule.tables)
                if name == "purge":
                    audit_rows = audit_rows_written(url)
                    after = state
                elif state != after:
                    raise RuntimeError(f"{rule.id}: the {name} left other rows than the purge:"
                                       f" purge {after}, {name} {state}")
        medians = {name: median(times[name]) for name in PURGE_VARIANTS}
        faster = {name: min((name, f"batched_{name}"), key=medians.__getitem__) for name in LIMITS}
        removed = {table: before[table][0] - after[table][0] for table in rule.tables}
        rows = sum(removed.values())
        figures[rule.id] = {
            "rows": rows, "removed": removed, "same_rows": True, "checksums": after, "audit_rows": audit_rows,
            "purge_s": medians["purge"], "limit_evidence_s": medians[faster["limit_evidence"]],
            "limit_s": medians[faster["limit"]],
            "limit_forms": {name: "batched" if form.startswith("batched_") else "whole"
                            for name, form in faster.items()},
            "purge_rows_per_s": round(rows / medians["purge"]) if medians["purge"] else None,
            "ratio_vs_evidence": ratio(medians["purge"], medians[faster["limit_evidence"]]),
            "ratio": ratio(medians["purge"], medians[faster["limit"]]),
            "load_average": [round(min(loads), 2), round(max(loads), 2)], "runs": times}
    return figures


def setup_evidence(url: str, ddl: str) -> None:
    from telco_lifecycle.database import connect, transaction

    conn = connect(url)
    with transaction(conn) as cur:
        cur.execute(ddl)
    conn.close()


def partition_drop(server: Server, template: str, repeat: int, log_dir: Path) -> dict:
    """The accounting purge's drop (`_drop_partitions`: held rows aside, exact count, unit
    check, audit row, the run's ledger lines and checkpoint) against a bare DETACH + DROP
    of the same months, each in a task process of its own on a fresh copy, runs
    alternated: of the largest expired CDR month alone, and of every expired month that
    holds rows in one run, as the purge drops them (per month: the run / its months; the
    empty months are left out of both)."""
    from telco_lifecycle.database import connect, transaction
    from telco_lifecycle.rules.retention import _drop_partitions, scope
    from telco_lifecycle.settings import read_sql

    template_url = with_database(server.url, template)
    months = expired_months(template_url, "accounting")
    sizes = dict(query(template_url, " UNION ALL ".join(f"SELECT '{name}', count(*) FROM {name}" for name in months)))
    month = min(months, key=lambda name: (-sizes[name], name))  # the largest
    filled = sorted(name for name in months if sizes[name])
    accounting = scope("accounting", ANCHOR)
    bounds = {row[0]: row for row in query(template_url, read_sql("retention/expired_cdr_partitions.sql"),
                                           accounting.params)}  # name: (name, first day)

    def product(url, names):
        from telco_lifecycle.workflows.alerts import flush_evidence

        conn = connect(url)
        try:
            return _drop_partitions(conn, accounting, [bounds[name] for name in names], bench_run())
        finally:
            conn.close()
            flush_evidence()

    def bare(url, names):
        from benchmarks.limits import partition_statements

        conn = connect(url)
        try:
            with transaction(conn) as cur:
                for name in names:
                    for statement in partition_statements(name):
                        cur.execute(statement)
        finally:
            conn.close()

    figures = {}
    for figure, names in (("largest", [month]), ("in_run", filled)):
        times, loads, dropped = {"drop": [], "bare": []}, [], []
        for _ in range(repeat):
            for name, action in (("drop", product), ("bare", bare)):
                url = server.copy(template)
                loads.append(os.getloadavg()[0])
                seconds, value = in_task_process(functools.partial(action, url, names),
                                                 log_dir / f"partition_{figure}_{name}.log")
                times[name].append(round(seconds, 6))
                dropped = value or dropped
        if len(dropped) != len(names):
            raise RuntimeError(f"the purge dropped {len(dropped)} of the {len(names)} expired months {names}")
        figures[figure] = {"times": times, "loads": loads, "dropped": dropped}
    largest, in_run = figures["largest"], figures["in_run"]
    drop_s, bare_s = median(largest["times"]["drop"]), median(largest["times"]["bare"])
    run_drop_s, run_bare_s = median(in_run["times"]["drop"]), median(in_run["times"]["bare"])
    loads = largest["loads"] + in_run["loads"]
    return {"partitions": len(months), "month": month, "month_rows": sizes[month],
            "rows": largest["dropped"][0]["rows"], "kept_for_legal_hold": largest["dropped"][0]["kept_for_legal_hold"],
            "drop_s": drop_s, "bare_s": bare_s, "ratio": ratio(drop_s, bare_s),
            "in_run": {"months": len(filled), "month_rows": [min(sizes[n] for n in filled), sizes[month]],
                       "drop_s": run_drop_s, "bare_s": run_bare_s,
                       "drop_per_month_s": round(run_drop_s / len(filled), 6),
                       "bare_per_month_s": round(run_bare_s / len(filled), 6),
                       "ratio": ratio(run_drop_s, run_bare_s), "runs": in_run["times"]},
            "load_average": [round(min(loads), 2), round(max(loads), 2)], "runs": largest["times"]}


def due_customers_purge(server: Server, template: str, due: int, repeat: int, log_dir: Path) -> dict:
    """The same number of due customers purged, whatever the size: all other ended
    relationships are moved to `as_of` (not yet due) before the timed purge."""
    from telco_lifecycle.database import connect, transaction
    from telco_lifecycle.rules.retention import scope

    s = scope(SCALING_RULE, ANCHOR)
    times, customers = [], 0
    for _ in range(repeat):
        url = server.copy(template)
        conn = connect(url)
        with transaction(conn) as cur:
            cur.execute("UPDATE customers SET relationship_ended_on = %(as_of)s WHERE relationship_ended_on IS NOT NULL"
                        f" AND customer_id NOT IN (SELECT d.customer_id FROM ({s.due_customers_sql()})"
                        f" d(customer_id, on_hold) WHERE NOT d.on_hold ORDER BY 1 LIMIT %(due)s)",
                        {**s.params, "due": due})
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE customers")
        conn.close()
        seconds, result = in_task_process(functools.partial(project_purge, url, SCALING_RULE),
                                          log_dir / "due_customers.log")
        times.append(round(seconds, 6))
        customers = result["customers"]
    return {"rule": SCALING_RULE, "customers": customers, "purge_s": median(times), "runs": times}


def verification(server: Server, template: str, repeat: int) -> dict:
    """`retention_verification`'s checks after every scheduled rule was purged, against
    a plain count of each check's offending rows."""
    from telco_lifecycle.database import connect
    from telco_lifecycle.evidence.retention_checks import checks, verify
    from telco_lifecycle.policy import load_policy

    url = server.copy(template)
    for rule in (r for r in load_policy().rules if r.trigger == "schedule"):
        project_purge(url, rule.id)
    counts = [f"SELECT count(*) FROM ({c.unexpected_rows_query.replace('{batch}', c.table)}) q"
              for c in checks(ANCHOR)]
    conn = connect(url)

    def count_all():
        with conn.cursor() as cur:
            for sql in counts:
                cur.execute(sql)
                cur.fetchone()
        conn.rollback()
    gx_times, count_times = [], []
    for number in range(repeat):
        gx_times.append(timed(functools.partial(verify, url, ANCHOR, f"bench_{number}"))[0])
        count_times.append(timed(count_all)[0])
    conn.close()
    gx_s, count_s = median(gx_times), median(count_times)
    return {"checks": len(counts), "gx_s": gx_s, "count_s": count_s,
            "ratio": ratio(gx_s, count_s), "runs": {"gx": gx_times, "count": count_times}}


def purge_peak_rss(server: Server, template: str) -> dict:
    """Peak RSS of a process that runs one purge, and of one that only imports, both with
    worker logging configured (Airflow's logging stack imported). Read as
    VmHWM, the high-water mark of the process's own memory: ru_maxrss would carry the
    benchmark's own peak over fork and exec."""
    url = server.copy(template)
    env = {**os.environ, "PYTHONPATH": python_path()}
    peaks = {}
    log = Path(tempfile.gettempdir()) / f"bench-rss-{os.getpid()}.log"
    for name, line in (("purge", f"project_purge({url!r}, {RSS_RULE!r})"), ("imports_only", "")):
        code = (f"from pathlib import Path\nfrom benchmarks.run import project_purge, peak_rss_mb, worker_logging\n"
                f"worker_logging(Path({str(log)!r}))\n{line}\nprint(peak_rss_mb())")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                             cwd=project_dir())
        peaks[name] = float(out.stdout.strip().splitlines()[-1])
    log.unlink(missing_ok=True)
    return {"rule": RSS_RULE, "purge_peak_rss_mb": peaks["purge"], "imports_only_rss_mb": peaks["imports_only"]}


def python_path() -> str:
    """PYTHONPATH for the benchmark's own subprocesses: this checkout, then what was set."""
    return os.pathsep.join(filter(None, [str(project_dir()), os.environ.get("PYTHONPATH")]))


def peak_rss_mb() -> float:
    status = Path("/proc/self/status").read_text(encoding="utf-8")
    kilobytes = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return round(kilobytes / 1024, 1)


def byte_compiled_env() -> dict[str, str]:
    """Byte-compile the package, as `pip install .` leaves it in the image: an editable
    install under PYTHONDONTWRITEBYTECODE (set on this machine) would compile its source
    in every task process and every parse (about 15 ms of a purge task). The environment
    for child interpreters, which then read those files."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(project_dir() / "src")], check=True, env=env)
    return env


def dag_parse_times(repeat: int) -> dict:
    """Per DAG file, DagBag's own parse duration (median) against an empty DAG's and a
    same-shape DAG's without the package (see parse_child)."""
    with tempfile.TemporaryDirectory(prefix="bench-dagparse-") as tmp:
        files = sorted(str(p) for p in (project_dir() / "dags").glob("*.py"))
        env = byte_compiled_env()
        env.update({"AIRFLOW_HOME": str(Path(tmp) / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                    "AIRFLOW__CORE__DAGS_FOLDER": str(project_dir() / "dags"), "PYTHONPATH": python_path()})
        loads = os.getloadavg()[0]
        out = subprocess.run([sys.executable, "-m", "benchmarks.run", "--parse-child", str(repeat), tmp, *files],
                             capture_output=True, text=True, check=True, env=env, cwd=project_dir())
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    return {"empty_dag_s": measured["empty"], "load_average": round(loads, 2), "files": {
        Path(f).name: {"parse_s": m["file"], "same_shape_s": m["same_shape"],
                       "ratio": ratio(m["file"], m["same_shape"]),
                       "ratio_vs_empty": ratio(m["file"], measured["empty"])}
        for f, m in measured["files"].items()}}


def same_shape_source(dag) -> str:
    """A DAG file of `dag`'s shape (its id, schedule, params, docs, tags, tasks and their
    dependencies, retries) that imports nothing but Airflow: what a file of this shape
    costs to parse without the package."""
    from airflow.sdk.definitions._internal.types import NOTSET

    timetable = dag.timetable
    schedule = (f"CronTriggerTimetable({timetable.expression!r}, timezone={str(timetable.timezone)!r})"
                if hasattr(timetable, "expression") else "None")
    params = {key: dag.params.get_param(key) for key in dag.params}
    params_src = ", ".join(f"{key!r}: Param({'' if p.value is NOTSET else repr(p.value) + ', '}"
                           f"description={p.description!r}, **{p.schema!r})" for key, p in params.items())
    lines = ["import datetime", "", "from airflow.sdk import CronTriggerTimetable, Param, dag, task", "",
             "START = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)", "",
             f"@dag(dag_id={dag.dag_id + '_shape'!r}, schedule={schedule}, start_date=START,"
             f" catchup=False, doc_md={dag.doc_md!r}, tags={sorted(dag.tags)!r},"
             f" default_args={{'owner': 'data-team', 'retries': 2}}, params={{{params_src}}})",
             "def shape():"]
    for t in dag.tasks:
        lines += ["    @task", f"    def {t.task_id}():", f"        {t.doc_md or t.task_id!r}", ""]
    lines += [f"    {t.task_id}_ = {t.task_id}()" for t in dag.tasks]
    lines += [f"    {up}_ >> {t.task_id}_" for t in dag.tasks for up in sorted(t.upstream_task_ids)]
    return "\n".join([*lines, "", "", "shape()", ""])


def _forked(action):
    """`action()`'s JSON result, computed in a forked child (which leaves this process as it was)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        with os.fdopen(write, "w") as pipe:
            pipe.write(json.dumps(action()))
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        value = json.loads(pipe.read())
    os.waitpid(pid, 0)
    return value


def parse_child(repeat: int, tmp: str, files: list[str]) -> None:
    """(In its own process, as the dag processor's manager.) Print the median parse times
    {"empty": s, "files": {file: {"file": s, "same_shape": s}}}: Airflow imported and warm,
    the same-shape files written (each from its DAG, in a child: the package never enters
    this process), the Airflow modules each file names pre-imported and `gc.freeze()`, as
    the dag processor does before it forks a parse, and every parse in a child forked from
    here, the three kinds alternated."""
    import gc

    import structlog
    from airflow.dag_processing.dagbag import DagBag
    from airflow.dag_processing.processor import _pre_import_airflow_modules

    def parse(path: str):
        def once():
            bag = DagBag(dag_folder=path)
            return [sum(getattr(s.duration, "total_seconds", lambda d=s.duration: d)() for s in bag.dagbag_stats),
                    len(bag.import_errors)]
        return once

    empty = Path(tmp) / "bench_empty.py"
    empty.write_text(EMPTY_DAG, encoding="utf-8")
    DagBag(dag_folder=str(empty))  # Airflow itself is imported and warm
    shapes = {}
    for path in files:
        def shape(path=path):
            bag = DagBag(dag_folder=path)
            return same_shape_source(next(iter(bag.dags.values())))
        shapes[path] = Path(tmp) / f"shape_{Path(path).name}"
        shapes[path].write_text(_forked(shape), encoding="utf-8")
    for path in [*files, *map(str, shapes.values())]:
        _pre_import_airflow_modules(path, structlog.get_logger())
    gc.freeze()
    times = {"empty": [], **{path: {"file": [], "same_shape": []} for path in files}}
    for _ in range(repeat):
        for path in files:
            for kind, parsed in (("empty", str(empty)), ("same_shape", str(shapes[path])), ("file", path)):
                seconds, errors = _forked(parse(parsed))
                if errors:
                    raise SystemExit(f"{parsed} has import errors")
                (times["empty"] if kind == "empty" else times[path][kind]).append(seconds)
    print(json.dumps({"empty": median(times["empty"]), "files": {
        path: {kind: median(values) for kind, values in times[path].items()} for path in files}}))


def machine(server_url: str) -> dict:
    import psycopg2

    conn = psycopg2.connect(with_database(server_url, "postgres"))
    with conn.cursor() as cur:
        cur.execute("SHOW server_version")
        version = cur.fetchone()[0]
    conn.close()
    memory = subprocess.run(["free", "-m"], capture_output=True, text=True).stdout.splitlines()[1].split()[1]
    return {"cpus": os.cpu_count(), "memory_mb": int(memory), "postgresql": version,
            "python": platform.python_version(), "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def targets(results: dict) -> list[dict]:
    """Each target: name, measured, target, met."""
    rows = []

    def add(name: str, figure, limit, inconclusive: bool = False):
        rows.append({"name": name, "measured": figure, "target": f"<= {limit}",
                     "met": None if figure is None else figure <= limit and not inconclusive,
                     **({"note": LIMIT_SLOWER} if inconclusive else {})})
    scales = results["scales"]
    for scale in scales:
        label = scale["label"]
        for rule, f in scale["purge_vs_limit"].items():
            slower = f["ratio"] is not None and f["ratio"] < LIMIT_SLOWER_BELOW
            add(f"{label}: purge / limit with evidence, {rule}", f["ratio_vs_evidence"],
                TARGETS["purge_vs_limit_evidence"], slower)
            add(f"{label}: purge / bare limit, {rule}", f["ratio"], TARGETS["purge_vs_limit"], slower)
        p = scale["partition_drop"]
        add(f"{label}: drop of the largest expired CDR month ({p['month_rows']} rows) / bare DETACH + DROP",
            p["ratio"], TARGETS["partition_drop_vs_bare"])
        run = p["in_run"]
        add(f"{label}: drop of the {run['months']} expired CDR months that hold rows ({run['month_rows'][0]}-"
            f"{run['month_rows'][1]} rows each) in one run, per month / bare DETACH + DROP",
            run["ratio"], TARGETS["partition_drop_in_run_vs_bare"])
        add(f"{label}: GX checks / SELECT count(*)", scale["verification"]["ratio"], TARGETS["verification_vs_count"])
        add(f"{label}: purge peak RSS (MB)", scale["rss"]["purge_peak_rss_mb"], TARGETS["purge_peak_rss_mb"])
    small, large = scales[0], scales[-1]
    growth = results["growth"]
    add(f"drop of the largest expired month, {large['label']} / {small['label']}", growth["partition_drop"],
        TARGETS["partition_drop_growth"])
    add(f"{growth['due_customers']} due customers purged, {large['label']} / {small['label']}",
        growth["cost_vs_size"], TARGETS["cost_vs_size"])
    add(f"purge peak RSS, {large['label']} / {small['label']}", growth["rss"], TARGETS["purge_rss_growth"])
    for name, f in results["dag_parse"]["files"].items():
        add(f"DAG parse time / same-shape DAG without the package, {name}", f["ratio"],
            TARGETS["dag_parse_vs_same_shape"])
    latency = results["offboarding_latency"]
    add(f"offboarding: trigger -> PBX/SIP deleted ({latency['offboarding_deletion_s']} s) / no-op DAG: trigger"
        f" -> first task started ({latency['noop_first_task_s']} s)", latency["ratio"],
        TARGETS["offboarding_latency_vs_noop"])
    return rows


def write_results(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "latest.md").write_text(markdown(results), encoding="utf-8")
    chart(results, out / "scaling.png")


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [f"# Benchmark results ({results['mode']})", "",
             f"Date: {results['date']}. Machine: {m['cpus']} CPUs, {m['memory_mb']} MB RAM, PostgreSQL "
             f"{m['postgresql']}, Python {m['python']}, {m['platform']}. Load average at start "
             f"{m['load_average_at_start']}, at end {results['load_average_at_end']}; per figure in the tables.", ""]
    if results["contended"]:
        lines += [f"**Contended machine** (one-minute load average above {LOAD_LIMIT} on {m['cpus']} CPUs during the "
                  "runs): absolute timings are not representative; the ratios, measured with the runs alternated, "
                  "are the more telling figures.", ""]
    if results["mode"] == "smoke":
        lines += ["**Smoke scale**: tiny databases that prove the harness works; fixed costs (connections, "
                  "GX start-up, audit rows) dominate, so the targets, set for telecom scale, are not expected "
                  "to be met here.", ""]
    lines += ["Sizes: " + ", ".join(f"{s['label']} ({s['rows']['customers']} customers, {s['rows']['cdrs']} CDRs)"
                                    for s in results["scales"]) + f"; median of {results['repeat']} run(s).", "",
              "| Figure | Measured | Target | Met |", "|---|---|---|---|"]
    for t in results["targets"]:
        met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]] + (f" ({t['note']})" if "note" in t else "")
        lines.append(f"| {t['name']} | {t['measured']} | {t['target']} | {met} |")
    lines += ["", "## Purge against the limits", "",
              "Each timed run in a process forked from the harness with Airflow's task logging configured as in a "
              "worker's task process (JSON lines to a file, INFO). Limit: hand-written set-based SQL "
              "(benchmarks/limits.py) removing the same rows in one transaction, timed in two forms (whole-table "
              "statements; the same per batch of the purge's 10,000 customers), the faster taken (form: with "
              "evidence / bare); with evidence: plus one plain INSERT ... SELECT of one row per customer. After "
              "every run the rule's tables (rows and checksum) are compared with the purge's; the benchmark fails "
              "if they differ. Audit rows: what the purge wrote.",
              "", "| Size | Rule | Rows | Audit rows | Purge s | Limit+evidence s | Limit s | Limit form | / evidence |"
              " / limit | Load |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in results["scales"]:
        for rule, f in s["purge_vs_limit"].items():
            forms = f.get("limit_forms", {})  # results written before the batched form: whole-table
            form = f"{forms.get('limit_evidence', 'whole')} / {forms.get('limit', 'whole')}"
            lines.append(f"| {s['label']} | {rule} | {f['rows']} | {f['audit_rows']} | {f['purge_s']} | "
                         f"{f['limit_evidence_s']} | {f['limit_s']} | {form} | {f['ratio_vs_evidence']} | "
                         f"{f['ratio']} | {f['load_average']} |")
    lines += ["", "## Partition drop, verification, work against size, memory", "",
              "| Size | Expired months | Largest month | Rows | Kept (hold) | Drop s | Bare DETACH+DROP s | Ratio |"
              " Load | Due-customer purge s | GX s | count s | Peak RSS MB |", "|" + "---|" * 13]
    for s in results["scales"]:
        p, v = s["partition_drop"], s["verification"]
        lines.append(f"| {s['label']} | {p['partitions']} | {p['month']} | {p['month_rows']} | "
                     f"{p['kept_for_legal_hold']} | {p['drop_s']} | {p['bare_s']} | {p['ratio']} | "
                     f"{p['load_average']} | {s['due_customers']['purge_s']} | {v['gx_s']} | {v['count_s']} | "
                     f"{s['rss']['purge_peak_rss_mb']} |")
    lines += ["", "The drop in one run, as the accounting purge drops (every expired month that holds rows; the "
              "empty ones left out): a task process's fixed costs (its connection, the first statements' plans, "
              "the ledger segment, the run's signed checkpoint) paid once, as in production.", "",
              "| Size | Months | Rows a month | Drop s | Bare s | Drop per month s | Bare per month s | Ratio |",
              "|" + "---|" * 8]
    for s in results["scales"]:
        r = s["partition_drop"]["in_run"]
        lines.append(f"| {s['label']} | {r['months']} | {r['month_rows'][0]}-{r['month_rows'][1]} | {r['drop_s']} | "
                     f"{r['bare_s']} | {r['drop_per_month_s']} | {r['bare_per_month_s']} | {r['ratio']} |")
    parse = results["dag_parse"]
    lines += ["", f"## DAG parsing (load average {parse['load_average']})", "",
              "DagBag's own duration, each parse in a child forked after `gc.freeze()` from a process with Airflow "
              "imported (as the dag processor), the three kinds alternated. Same shape: a generated file with the "
              "DAG's id, schedule, params, docs, tags, tasks and dependencies, importing only Airflow.", "",
              f"Empty DAG: {parse['empty_dag_s']} s.", "",
              "| File | Parse s | Same shape s | / same shape | / empty |", "|---|---|---|---|---|"]
    for name, f in parse["files"].items():
        lines.append(f"| {name} | {f['parse_s']} | {f['same_shape_s']} | {f['ratio']} | {f['ratio_vs_empty']} |")
    latency = results["offboarding_latency"]["runs"]
    lines += ["", f"Offboarding latency runs (s): trigger -> PBX/SIP deleted {latency['offboarding']}; no-op DAG,"
              f" trigger -> first task started {latency['noop']}.", ""]
    return "\n".join(lines)


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales = results["scales"]
    cdrs = [s["rows"]["cdrs"] for s in scales]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for rule in scales[0]["purge_vs_limit"]:
        line = axes[0].plot(cdrs, [s["purge_vs_limit"][rule]["purge_s"] for s in scales], marker="o",
                            label=f"{rule}: purge")
        axes[0].plot(cdrs, [s["purge_vs_limit"][rule]["limit_evidence_s"] for s in scales], marker="x",
                     linestyle="--", color=line[0].get_color(), label=f"{rule}: limit with evidence")
    axes[0].set_title("Purge vs the set-based limit")
    axes[1].plot(cdrs, [s["partition_drop"]["drop_s"] for s in scales], marker="o", label="drop, largest month")
    axes[1].plot(cdrs, [s["partition_drop"]["bare_s"] for s in scales], marker="x", linestyle="--",
                 label="bare DETACH + DROP, same month")
    axes[1].plot(cdrs, [s["due_customers"]["purge_s"] for s in scales], marker="s",
                 label=f"{results['growth']['due_customers']} due customers purged")
    axes[1].set_title("Cost with work, not size")
    axes[2].plot(cdrs, [s["rss"]["purge_peak_rss_mb"] for s in scales], marker="o", label="purge task peak RSS")
    axes[2].axhline(TARGETS["purge_peak_rss_mb"], color="red", linestyle=":", label="target")
    axes[2].set_title("Memory (MB)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("CDRs in the database")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("seconds (median)")
    fig.suptitle(f"telco_lifecycle benchmarks, {results['mode']}, {results['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def measure(mode: str, repeat: int, out: Path, prefix: str = "bench", rebuild: bool = False,
            sizes: list[tuple[int, int]] | None = None, due_customers: int | None = None,
            keep_templates: bool = True) -> dict:
    """Measure every figure at each size (default: the mode's `SIZES`, `DUE_CUSTOMERS`);
    write the results to `out`. The seeded templates are kept for the next run unless
    `keep_templates` is false."""
    due_customers = due_customers or DUE_CUSTOMERS[mode]
    from telco_lifecycle.database import connect
    from telco_lifecycle.evidence.store import EVIDENCE_DIR_ENV
    from telco_lifecycle.local.env import server_url
    from telco_lifecycle.local.seed import table_counts

    evidence_dir = os.environ.get(EVIDENCE_DIR_ENV)  # restored at the end (copies set their own)
    server = Server(server_url(), prefix)
    results = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "mode": mode,
               "repeat": repeat, "anchor": ANCHOR.isoformat(), "machine": machine(server.url), "scales": []}
    templates = []
    try:
        for customers, cdrs in sizes or SIZES[mode]:
            template = server.template(customers, cdrs, rebuild)
            templates.append(template)
            conn = connect(with_database(server.url, template))
            rows = table_counts(conn)
            conn.close()
            label = f"{customers // 1000}k" if customers >= 1000 else str(customers)
            label = f"{label} customers / {rows['cdrs'] / 1e6:g}M CDRs"
            print(f"measuring {label} ...", flush=True)
            with tempfile.TemporaryDirectory(prefix="bench-task-logs-") as logs:
                results["scales"].append({
                    "label": label, "customers": customers, "cdrs_per_customer": cdrs, "rows": rows,
                    "purge_vs_limit": purge_vs_limit(server, template, repeat, Path(logs)),
                    "partition_drop": partition_drop(server, template, repeat, Path(logs)),
                    "due_customers": due_customers_purge(server, template, due_customers, repeat, Path(logs)),
                    "verification": verification(server, template, repeat),
                    "rss": purge_peak_rss(server, template),
                })
        print("measuring offboarding latency on a running Airflow ...", flush=True)
        results["offboarding_latency"] = offboarding_latency(server.url, templates[0], prefix, repeat)
    finally:
        clean_up(server, [] if keep_templates else templates, evidence_dir)
    print("measuring DAG parse times ...", flush=True)
    results["dag_parse"] = dag_parse_times(repeat)
    small, large = results["scales"][0], results["scales"][-1]
    results["growth"] = {
        "due_customers": due_customers,
        "cost_vs_size": ratio(large["due_customers"]["purge_s"], small["due_customers"]["purge_s"]),
        "partition_drop": ratio(large["partition_drop"]["drop_s"], small["partition_drop"]["drop_s"]),
        "rss": ratio(large["rss"]["purge_peak_rss_mb"], small["rss"]["purge_peak_rss_mb"]),
    }
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    # Judged by the load before each figure (at the end it is the benchmark's own: the
    # latency figure runs a whole Airflow).
    loads = [results["machine"]["load_average_at_start"][0], results["dag_parse"]["load_average"]]
    for scale in results["scales"]:
        loads += [f["load_average"][1] for f in scale["purge_vs_limit"].values()]
        loads.append(scale["partition_drop"]["load_average"][1])
    results["contended"] = max(loads) > LOAD_LIMIT
    results["targets"] = targets(results)
    write_results(results, out)
    return results


def clean_up(server: Server, templates: list[str], evidence_dir: str | None) -> None:
    """Drop the working copy and `templates`, remove the copies' evidence, restore the
    evidence folder the process had (`evidence_dir`)."""
    from telco_lifecycle.evidence.store import EVIDENCE_DIR_ENV

    server.drop(f"{server.prefix}_work")
    for template in templates:
        server.drop(template)
    if server.evidence:
        shutil.rmtree(server.evidence, ignore_errors=True)
    if evidence_dir is None:
        os.environ.pop(EVIDENCE_DIR_ENV, None)
    else:
        os.environ[EVIDENCE_DIR_ENV] = evidence_dir


def purge_only(mode: str, rules: list[str], repeat: int, out: Path, prefix: str = "bench") -> Path:
    """Figure 1 alone, for `rules`, at the mode's larger size (a whole `--scale` run takes
    over an hour): written to `purge-vs-limit-<customers>x<CDRs per customer>.json` in `out`."""
    from telco_lifecycle.evidence.store import EVIDENCE_DIR_ENV
    from telco_lifecycle.local.env import server_url

    customers, cdrs = SIZES[mode][-1]
    evidence_dir = os.environ.get(EVIDENCE_DIR_ENV)
    server = Server(server_url(), prefix)
    results = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "mode": mode, "customers": customers,
               "cdrs_per_customer": cdrs, "repeat": repeat, "anchor": ANCHOR.isoformat(),
               "machine": machine(server.url)}
    try:
        template = server.template(customers, cdrs, False)
        with tempfile.TemporaryDirectory(prefix="bench-task-logs-") as logs:
            results["purge_vs_limit"] = purge_vs_limit(server, template, repeat, Path(logs), rules)
    finally:
        clean_up(server, [], evidence_dir)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"purge-vs-limit-{customers}x{cdrs}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--parse-child"]:
        parse_child(int(argv[1]), argv[2], argv[3:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--scale", action="store_true", help="100k and 1M customers (10M and 50M CDRs)")
    size.add_argument("--smoke", action="store_true", help="tiny databases: proves the harness, not the targets")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (the median is reported)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where latest.json/.md and scaling.png go")
    parser.add_argument("--db-prefix", default="bench", help="name prefix of the benchmark databases")
    parser.add_argument("--rebuild", action="store_true", help="re-seed the templates even if they exist")
    parser.add_argument("--purge-only", metavar="RULES", help="comma-separated scheduled rules: the purge against "
                        "its limits alone, at the larger size, into purge-vs-limit-<size>.json")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    mode = "scale" if args.scale else "smoke" if args.smoke else "default"
    byte_compiled_env()  # the task processes forked from here import the package as a worker does
    if args.purge_only:
        print(purge_only(mode, args.purge_only.split(","), args.repeat, args.out, args.db_prefix).read_text())
        return 0
    results = measure(mode, args.repeat, args.out, args.db_prefix, args.rebuild)
    print((args.out / "latest.md").read_text(encoding="utf-8"))
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
