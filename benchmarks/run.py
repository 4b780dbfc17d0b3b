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
import json
import os
import platform
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
DUE = "ANY (SELECT due_id FROM bench_due)"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
LOAD_LIMIT = 1.5  # above this one-minute load average at the start the figures are labelled contended
TARGETS = {
    "purge_vs_delete": 1.2,
    "partition_drop_speedup": 100,
    "partition_drop_growth": 1.3,
    "cost_vs_size": 1.3,
    "verification_vs_count": 2.0,
    "dag_parse_vs_empty": 1.5,
    "offboarding_latency_vs_noop": 2.0,
    "purge_peak_rss_mb": 300,
    "purge_rss_growth": 1.3,
}
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


def project_purge(url: str, rule_id: str) -> dict:
    """The DAG's purge task minus the scheduler: `retention.purge` on its own connection."""
    from telco_lifecycle.database import connect
    from telco_lifecycle.rules.retention import purge

    conn = connect(url)
    try:
        result = purge(conn, rule_id, ANCHOR, bench_run())
    finally:
        conn.close()
    return {"rows": sum(result["removed"].values()), "customers": result["customers_purged"]}


def audit_rows_written(url: str) -> int:
    """The audit rows the benchmark's purge wrote (counted after the timing)."""
    from telco_lifecycle.database import connect

    run = bench_run()
    conn = connect(url)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM lifecycle_audit WHERE dag_id = %s AND run_id = %s", (run.dag_id, run.run_id))
        count = cur.fetchone()[0]
    conn.close()
    return count


def limit_statements(rule_id: str) -> list[str]:
    """The limit: the purge's own per-table statements (from the policy), applied to every
    due customer at once, without its per-statement clock and hold re-check (the
    customers under a hold are left out of `bench_due` instead) and without audit rows."""
    from telco_lifecycle.rules.retention import scope

    s = scope(rule_id, ANCHOR)
    return [s.change(item, f"= {DUE}")[0] for item in s.rule.data]


def set_based_delete(url: str, rule_id: str) -> dict:
    """One transaction: the due customers, then one set-based statement per table."""
    from telco_lifecycle.database import connect, transaction
    from telco_lifecycle.rules.retention import scope

    s = scope(rule_id, ANCHOR)
    conn = connect(url)
    rows = 0
    try:
        with transaction(conn) as cur:
            cur.execute(f"CREATE TEMP TABLE bench_due ON COMMIT DROP AS SELECT d.customer_id AS due_id"
                        f" FROM ({s.due_customers_sql()}) d(customer_id, on_hold) WHERE NOT d.on_hold", s.params)
            customers = cur.rowcount
            cur.execute("ANALYZE bench_due")
            for statement in limit_statements(rule_id):
                cur.execute(statement, s.params)
                rows += cur.rowcount
    finally:
        conn.close()
    return {"rows": rows, "customers": customers}


PURGE_VARIANTS = {"purge": project_purge, "delete": set_based_delete}


def purge_vs_delete(server: Server, template: str, repeat: int) -> dict:
    from telco_lifecycle.policy import load_policy

    figures = {}
    for rule in (r for r in load_policy().rules if r.trigger == "schedule"):
        times = {name: [] for name in PURGE_VARIANTS}
        rows, audit_rows = {}, None
        for _ in range(repeat):
            for name, action in PURGE_VARIANTS.items():
                url = server.copy(template)
                seconds, result = timed(action, url, rule.id)
                times[name].append(seconds)
                rows[name] = result["rows"]
                if action is project_purge:
                    audit_rows = audit_rows_written(url)
        purge_s, delete_s = (median(times[name]) for name in PURGE_VARIANTS)
        figures[rule.id] = {
            "rows": rows["purge"], "same_rows": len(set(rows.values())) == 1, "audit_rows": audit_rows,
            "purge_s": purge_s, "delete_s": delete_s,
            "purge_rows_per_s": round(rows["purge"] / purge_s) if purge_s else None,
            "delete_rows_per_s": round(rows["delete"] / delete_s) if delete_s else None,
            "ratio": ratio(purge_s, delete_s), "runs": times}
    return figures


def drop_partitions(conn, s, partitions: list[str]) -> list[dict]:
    """The accounting purge's partition stage: each month dropped with its audit row."""
    from telco_lifecycle.rules.retention import _drop_partition

    return [_drop_partition(conn, s, name, bench_run()) for name in partitions]


def delete_partition_rows(conn, partitions: list[str]) -> None:
    """The limit it is compared with: one DELETE of the same months' rows."""
    from telco_lifecycle.database import transaction

    with transaction(conn) as cur:
        for name in partitions:
            cur.execute(f"DELETE FROM {name} WHERE NOT lifecycle_on_hold(customer_id)")


def partition_drop(server: Server, template: str, repeat: int) -> dict:
    """The accounting purge's partition stage against DELETE of the same months' rows."""
    from telco_lifecycle.database import connect
    from telco_lifecycle.rules.retention import plan, scope

    times = {"drop": [], "delete": []}
    partitions, rows = [], 0
    for _ in range(repeat):
        url = server.copy(template)
        conn = connect(url)
        partitions = plan(conn, "accounting", ANCHOR)["partitions"]
        s = scope("accounting", ANCHOR)
        seconds, dropped = timed(drop_partitions, conn, s, partitions)
        conn.close()
        times["drop"].append(seconds)
        rows = sum(d["rows"] for d in dropped)

        url = server.copy(template)
        conn = connect(url)
        seconds, _ = timed(delete_partition_rows, conn, partitions)
        conn.close()
        times["delete"].append(seconds)
    drop_s, delete_s = median(times["drop"]), median(times["delete"])
    months = max(len(partitions), 1)
    return {"partitions": len(partitions), "rows": rows, "rows_per_month": rows // months,
            "drop_s": drop_s, "delete_s": delete_s, "drop_s_per_month": round(drop_s / months, 6),
            "speedup": ratio(delete_s, drop_s), "runs": times}


def due_customers_purge(server: Server, template: str, due: int, repeat: int) -> dict:
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
            cur.execute(f"UPDATE customers SET relationship_ended_on = %(as_of)s"
                        f" WHERE relationship_ended_on IS NOT NULL AND customer_id NOT IN"
                        f" (SELECT d.customer_id FROM ({s.due_customers_sql()}) d(customer_id, on_hold)"
                        f" WHERE NOT d.on_hold ORDER BY 1 LIMIT %(due)s)",
                        {**s.params, "due": due})
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE customers")
        conn.close()
        seconds, result = timed(project_purge, url, SCALING_RULE)
        times.append(seconds)
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
        gx_times.append(timed(verify, url, ANCHOR, f"bench_{number}")[0])
        count_times.append(timed(count_all)[0])
    conn.close()
    gx_s, count_s = median(gx_times), median(count_times)
    return {"checks": len(counts), "gx_s": gx_s, "count_s": count_s,
            "ratio": ratio(gx_s, count_s), "runs": {"gx": gx_times, "count": count_times}}


def purge_peak_rss(server: Server, template: str) -> dict:
    """Peak RSS of a process that runs one purge, and of one that only imports. Read as
    VmHWM, the high-water mark of the process's own memory: ru_maxrss would carry the
    benchmark's own peak over fork and exec."""
    url = server.copy(template)
    env = {**os.environ, "PYTHONPATH": str(project_dir())}
    peaks = {}
    for name, line in (("purge", f"project_purge({url!r}, {RSS_RULE!r})"), ("imports_only", "")):
        code = (f"from benchmarks.run import project_purge, peak_rss_mb\n{line}\nprint(peak_rss_mb())")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                             cwd=project_dir())
        peaks[name] = float(out.stdout.strip().splitlines()[-1])
    return {"rule": RSS_RULE, "purge_peak_rss_mb": peaks["purge"], "imports_only_rss_mb": peaks["imports_only"]}


def peak_rss_mb() -> float:
    status = Path("/proc/self/status").read_text(encoding="utf-8")
    kilobytes = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return round(kilobytes / 1024, 1)


def dag_parse_times(repeat: int) -> dict:
    """Per DAG file, DagBag's own parse duration (median), each parse in a child forked
    from a process that has imported Airflow and parsed the empty DAG once."""
    with tempfile.TemporaryDirectory(prefix="bench-dagparse-") as tmp:
        empty = Path(tmp) / "bench_empty.py"
        empty.write_text(EMPTY_DAG, encoding="utf-8")
        files = [str(empty)] + sorted(str(p) for p in (project_dir() / "dags").glob("*.py"))
        env = {**os.environ, "AIRFLOW_HOME": str(Path(tmp) / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "AIRFLOW__CORE__DAGS_FOLDER": str(project_dir() / "dags"), "PYTHONPATH": str(project_dir())}
        out = subprocess.run([sys.executable, "-m", "benchmarks.run", "--parse-child", str(repeat), *files],
                             capture_output=True, text=True, check=True, env=env, cwd=project_dir())
    per_file = json.loads(out.stdout.strip().splitlines()[-1])
    baseline = per_file.pop(str(empty))
    return {"empty_dag_s": baseline, "files": {
        Path(f).name: {"parse_s": s, "ratio": round(s / baseline, 2)} for f, s in per_file.items()}}


def parse_child(repeat: int, files: list[str]) -> None:
    """(In its own process.) Print {file: median DagBag duration in seconds}."""
    from airflow.dag_processing.dagbag import DagBag

    DagBag(dag_folder=files[0])  # Airflow itself is imported and warm
    result = {}
    for path in files:
        times = []
        for _ in range(repeat):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read)
                bag = DagBag(dag_folder=path)
                seconds = sum(s.duration.total_seconds() if hasattr(s.duration, "total_seconds") else s.duration
                              for s in bag.dagbag_stats)
                os.write(write, json.dumps([seconds, len(bag.import_errors)]).encode())
                os._exit(0)
            os.close(write)
            with os.fdopen(read) as pipe:
                seconds, errors = json.loads(pipe.read())
            os.waitpid(pid, 0)
            if errors:
                raise SystemExit(f"{path} has import errors")
            times.append(seconds)
        result[path] = median(times)
    print(json.dumps(result))


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
    """Each target: figure, limit, met."""
    rows = []

    def add(name: str, figure, limit, at_most: bool = True):
        met = None if figure is None else (figure <= limit if at_most else figure >= limit)
        rows.append({"name": name, "figure": figure, "target": f"{'<=' if at_most else '>='} {limit}", "met": met})
    scales = results["scales"]
    for scale in scales:
        label = scale["label"]
        for rule, f in scale["purge_vs_delete"].items():
            add(f"{label}: purge / set-based DELETE, {rule}", f["ratio"], TARGETS["purge_vs_delete"])
        add(f"{label}: partition drop speed-up over DELETE", scale["partition_drop"]["speedup"],
            TARGETS["partition_drop_speedup"], at_most=False)
        add(f"{label}: GX checks / SELECT count(*)", scale["verification"]["ratio"], TARGETS["verification_vs_count"])
        add(f"{label}: purge peak RSS (MB)", scale["rss"]["purge_peak_rss_mb"], TARGETS["purge_peak_rss_mb"])
    small, large = scales[0], scales[-1]
    growth = results["growth"]
    add(f"partition drop time per month, {large['label']} / {small['label']}", growth["partition_drop_per_month"],
        TARGETS["partition_drop_growth"])
    add(f"{growth['due_customers']} due customers purged, {large['label']} / {small['label']}",
        growth["cost_vs_size"], TARGETS["cost_vs_size"])
    add(f"purge peak RSS, {large['label']} / {small['label']}", growth["rss"], TARGETS["purge_rss_growth"])
    for name, f in results["dag_parse"]["files"].items():
        add(f"DAG parse time / empty DAG, {name}", f["ratio"], TARGETS["dag_parse_vs_empty"])
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
             f"{m['load_average_at_start']}, at end {results['load_average_at_end']}.", ""]
    if results["contended"]:
        lines += [f"**Contended machine** (load average above {LOAD_LIMIT} on {m['cpus']} CPUs at the start): "
                  "timings are not representative; ratios measured side by side are the more telling figures.", ""]
    if results["mode"] == "smoke":
        lines += ["**Smoke scale**: tiny databases that prove the harness works; fixed costs (connections, "
                  "GX start-up, audit rows) dominate, so the targets, set for telecom scale, are not expected "
                  "to be met here.", ""]
    lines += ["Sizes: " + ", ".join(f"{s['label']} ({s['rows']['customers']} customers, {s['rows']['cdrs']} CDRs)"
                                    for s in results["scales"]) + f"; median of {results['repeat']} run(s).", "",
              "| Figure | Measured | Target | Met |", "|---|---|---|---|"]
    for t in results["targets"]:
        met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
        lines.append(f"| {t['name']} | {t['figure']} | {t['target']} | {met} |")
    lines += ["", "## Purge against the set-based limit", "",
              "Audit rows: what the purge wrote besides the deletion (one hash-chained row per customer and "
              "table, and one per partition drop); the limit writes none.", "",
              "| Size | Rule | Rows | Audit rows | Purge s | DELETE s | Purge rows/s | DELETE rows/s | Ratio |",
              "|---|---|---|---|---|---|---|---|---|"]
    for s in results["scales"]:
        for rule, f in s["purge_vs_delete"].items():
            lines.append(f"| {s['label']} | {rule} | {f['rows']} | {f['audit_rows']} | {f['purge_s']} | "
                         f"{f['delete_s']} | {f['purge_rows_per_s']} | {f['delete_rows_per_s']} | {f['ratio']} |")
    lines += ["", "## Scaling", "", "| Size | Partitions | Rows/month | Drop s/month | DELETE s | Speed-up | "
              "Due-customer purge s | GX s | count s | Peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in results["scales"]:
        p, v = s["partition_drop"], s["verification"]
        lines.append(f"| {s['label']} | {p['partitions']} | {p['rows_per_month']} | {p['drop_s_per_month']} | "
                     f"{p['delete_s']} | {p['speedup']} | {s['due_customers']['purge_s']} | {v['gx_s']} | "
                     f"{v['count_s']} | {s['rss']['purge_peak_rss_mb']} |")
    latency = results["offboarding_latency"]["runs"]
    lines += ["", f"DAG parsing: empty DAG {results['dag_parse']['empty_dag_s']} s.", "",
              f"Offboarding latency runs (s): trigger -> PBX/SIP deleted {latency['offboarding']}; no-op DAG,"
              f" trigger -> first task started {latency['noop']}.", ""]
    return "\n".join(lines)


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales = results["scales"]
    cdrs = [s["rows"]["cdrs"] for s in scales]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for rule in scales[0]["purge_vs_delete"]:
        line = axes[0].plot(cdrs, [s["purge_vs_delete"][rule]["purge_s"] for s in scales], marker="o",
                            label=f"{rule}: purge")
        axes[0].plot(cdrs, [s["purge_vs_delete"][rule]["delete_s"] for s in scales], marker="x", linestyle="--",
                     color=line[0].get_color(), label=f"{rule}: set-based DELETE")
    axes[0].set_title("Purge vs the set-based limit")
    axes[1].plot(cdrs, [s["partition_drop"]["drop_s_per_month"] for s in scales], marker="o",
                 label="partition drop, per month")
    axes[1].plot(cdrs, [s["partition_drop"]["delete_s"] / max(s["partition_drop"]["partitions"], 1) for s in scales],
                 marker="x", linestyle="--", label="DELETE, per month")
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
    from telco_lifecycle.local.env import server_url
    from telco_lifecycle.local.seed import table_counts

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
            results["scales"].append({
                "label": label, "customers": customers, "cdrs_per_customer": cdrs, "rows": rows,
                "purge_vs_delete": purge_vs_delete(server, template, repeat),
                "partition_drop": partition_drop(server, template, repeat),
                "due_customers": due_customers_purge(server, template, due_customers, repeat),
                "verification": verification(server, template, repeat),
                "rss": purge_peak_rss(server, template),
            })
        print("measuring offboarding latency on a running Airflow ...", flush=True)
        results["offboarding_latency"] = offboarding_latency(server.url, templates[0], prefix, repeat)
    finally:
        server.drop(f"{prefix}_work")
        for template in [] if keep_templates else templates:
            server.drop(template)
    print("measuring DAG parse times ...", flush=True)
    results["dag_parse"] = dag_parse_times(repeat)
    small, large = results["scales"][0], results["scales"][-1]
    results["growth"] = {
        "due_customers": due_customers,
        "cost_vs_size": ratio(large["due_customers"]["purge_s"], small["due_customers"]["purge_s"]),
        "partition_drop_per_month": ratio(large["partition_drop"]["drop_s_per_month"],
                                          small["partition_drop"]["drop_s_per_month"]),
        "rss": ratio(large["rss"]["purge_peak_rss_mb"], small["rss"]["purge_peak_rss_mb"]),
    }
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    # Judged by the load before the run: at its end the load is the benchmark's own
    # (figure 7 runs a whole Airflow).
    results["contended"] = results["machine"]["load_average_at_start"][0] > LOAD_LIMIT
    results["targets"] = targets(results)
    write_results(results, out)
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--parse-child"]:
        parse_child(int(argv[1]), argv[2:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--scale", action="store_true", help="100k and 1M customers (10M and 50M CDRs)")
    size.add_argument("--smoke", action="store_true", help="tiny databases: proves the harness, not the targets")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (the median is reported)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where latest.json/.md and scaling.png go")
    parser.add_argument("--db-prefix", default="bench", help="name prefix of the benchmark databases")
    parser.add_argument("--rebuild", action="store_true", help="re-seed the templates even if they exist")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    mode = "scale" if args.scale else "smoke" if args.smoke else "default"
    results = measure(mode, args.repeat, args.out, args.db_prefix, args.rebuild)
    print((args.out / "latest.md").read_text(encoding="utf-8"))
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
