"""The audit report: what the task logs say happened, reconciled with `lifecycle_audit`.

The audit events (`audit.emit`) are collected from the Airflow task logs - through the
REST API when LIFECYCLE_AIRFLOW_API_URL (+ _USERNAME, _PASSWORD) is set and the API
server is reachable, else from the log folder (AIRFLOW__LOGGING__BASE_LOG_FOLDER, else $AIRFLOW_HOME/logs; Airflow 3 task
logs are JSON lines) - and loaded into a temporary table, where PostgreSQL checks that
every event has its row (the row's hash recomputed from the event's own fields), every
row of the period its event, and that the hash chain is intact. The same logs give
the verification results and the failed task tries.

The period is [start, end] in Copenhagen dates of `recorded_at` (when the action
happened); the chart shows rows removed by the day each rule was applied for (`as_of`).
Output under LIFECYCLE_REPORTS_DIR/audit/: HTML, a CSV of every action, a JSON summary.
Nothing personal: ids, tables, counts, run ids, hashes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import html
import json
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

from telco_lifecycle.database import transaction
from telco_lifecycle.evidence.audit import parse_event
from telco_lifecycle.settings import TIMEZONE, read_sql, reports_dir

log = logging.getLogger("telco_lifecycle.evidence.audit_report")

LOCAL_TZ = ZoneInfo(TIMEZONE)
VERIFICATION_LOGGER = "telco_lifecycle.evidence.verification"
VERIFICATION = re.compile(r"^verification \[(?P<rule>[^ /]+) / (?P<table>[^\]]+)\] (?P<check>.*): (?P<verdict>passed|FAILED)")
BATCH = 1000  # events per INSERT into the temporary table


class AuditReportFailed(RuntimeError):
    """The logs and the audit trail disagree, or the chain is broken; the report says where."""


# --- Reading task logs ---------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TaskTry:
    dag_id: str
    run_id: str
    task_id: str
    try_number: int


def log_folder() -> Path:
    """Airflow's local task log folder."""
    explicit = os.environ.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow") / "logs"


class FolderLogs:
    """Task logs in the log folder: dag_id=D/run_id=R/task_id=T/[map_index=M/]attempt=N.log."""

    def __init__(self, base: Path | None = None):
        self.base = base or log_folder()

    def describe(self) -> str:
        return f"log folder {self.base}"

    def task_logs(self, since: dt.datetime | None = None,
                  runs: set[tuple[str, str]] | None = None) -> Iterator[tuple[TaskTry, Iterable[dict]]]:
        for path in sorted(self.base.glob("dag_id=*/run_id=*/task_id=*/**/attempt=*.log")):
            parts = dict(p.split("=", 1) for p in path.relative_to(self.base).with_suffix("").parts if "=" in p)
            if runs is not None and (parts["dag_id"], parts["run_id"]) not in runs:
                continue
            if since is not None and dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC) < since:
                continue  # last written before the period began
            yield (TaskTry(parts["dag_id"], parts["run_id"], parts["task_id"], int(parts["attempt"])),
                   _json_lines(path.open(encoding="utf-8", errors="replace")))


class ApiLogs:
    """Task logs through the Airflow REST API (v2), for workers whose logs are not local."""

    def __init__(self, url: str, username: str, password: str):
        self.url = url.rstrip("/")
        body = json.dumps({"username": username, "password": password}).encode()
        request = urllib.request.Request(f"{self.url}/auth/token", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            self.token = json.load(response)["access_token"]

    def describe(self) -> str:
        return f"Airflow REST API {self.url}"

    def _get(self, path: str, accept: str = "application/json", **query):
        url = f"{self.url}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}", "Accept": accept})
        return urllib.request.urlopen(request, timeout=120)

    def _pages(self, path: str, key: str, **query) -> Iterator[dict]:
        offset = 0
        while True:
            with self._get(path, limit=100, offset=offset, **query) as response:
                page = json.load(response)[key]
            yield from page
            if len(page) < 100:
                return
            offset += 100

    def task_logs(self, since: dt.datetime | None = None,
                  runs: set[tuple[str, str]] | None = None) -> Iterator[tuple[TaskTry, Iterable[dict]]]:
        if runs is None:
            query = {"end_date_gte": since.isoformat()} if since else {}
            runs = {(r["dag_id"], r["dag_run_id"]) for r in self._pages("/api/v2/dags/~/dagRuns", "dag_runs", **query)}
        for dag_id, run_id in sorted(runs):
            run_path = f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}"
            for ti in self._pages(f"{run_path}/taskInstances", "task_instances"):
                for number in range(1, (ti.get("try_number") or 0) + 1):
                    path = f"{run_path}/taskInstances/{_quote(ti['task_id'])}/logs/{number}"
                    query = {"map_index": ti["map_index"]} if ti.get("map_index", -1) >= 0 else {}
                    with self._get(path, "application/x-ndjson", **query) as response:
                        records = list(_json_lines(line.decode("utf-8", "replace") for line in response))
                    yield TaskTry(dag_id, run_id, ti["task_id"], number), records


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _json_lines(lines: Iterable[str]) -> Iterator[dict]:
    """The JSON records of a task log; lines that are not JSON (plain-text logs) as events."""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = {"event": line}
        if isinstance(record, dict):
            yield record


def log_source() -> FolderLogs | ApiLogs:
    """The REST API when configured (LIFECYCLE_AIRFLOW_API_URL) and reachable, else the
    local log folder; the report names the source it used."""
    url = os.environ.get("LIFECYCLE_AIRFLOW_API_URL")
    if url:
        try:
            return ApiLogs(url, os.environ.get("LIFECYCLE_AIRFLOW_API_USERNAME", ""),
                           os.environ.get("LIFECYCLE_AIRFLOW_API_PASSWORD", ""))
        except urllib.error.HTTPError:
            raise  # reachable, but the login was refused: a configuration error, not a fallback
        except OSError as unreachable:
            log.warning("Airflow REST API %s not reachable (%s); reading the log folder instead", url, unreachable)
    return FolderLogs()


@dataclasses.dataclass
class LogFindings:
    """What the task logs of a period say: audit events, verification results, failed tries."""

    events: list[tuple[TaskTry, dict]] = dataclasses.field(default_factory=list)
    verifications: list[dict] = dataclasses.field(default_factory=list)
    failed_tries: list[TaskTry] = dataclasses.field(default_factory=list)
    tries: list[TaskTry] = dataclasses.field(default_factory=list)

    def failed_runs(self) -> set[tuple[str, str]]:
        """Runs where a task's last try failed (a failure a retry repaired fails no run)."""
        last: dict[tuple[str, str, str], int] = {}
        for t in self.tries:
            key = (t.dag_id, t.run_id, t.task_id)
            last[key] = max(last.get(key, 0), t.try_number)
        return {(t.dag_id, t.run_id) for t in self.failed_tries
                if last[(t.dag_id, t.run_id, t.task_id)] == t.try_number}


def read_logs(source, start: dt.datetime | None = None, end: dt.datetime | None = None,
              runs: set[tuple[str, str]] | None = None) -> LogFindings:
    """Scan the task logs; keep what happened in [start, end)."""
    findings = LogFindings()
    for task_try, records in source.task_logs(start, runs):
        findings.tries.append(task_try)
        for record in records:
            message = str(record.get("event", ""))
            event = parse_event(message) if "AUDIT {" in message else None
            if event is not None:
                if _within(dt.datetime.fromisoformat(event["recorded_at"]), start, end):
                    findings.events.append((task_try, event))
                continue
            moment = _timestamp(record)
            if moment is not None and not _within(moment, start, end):
                continue
            verdict = VERIFICATION.match(message) if record.get("logger") == VERIFICATION_LOGGER else None
            if verdict:
                findings.verifications.append({**dataclasses.asdict(task_try), **verdict.groupdict()})
            elif record.get("logger") == "task" and record.get("level") in ("error", "critical"):
                findings.failed_tries.append(task_try)
    return findings


def _timestamp(record: dict) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None


def _within(moment: dt.datetime, start: dt.datetime | None, end: dt.datetime | None) -> bool:
    return (start is None or moment >= start) and (end is None or moment < end)


# --- The report ------------------------------------------------------------------------

def period_bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start 00:00, end + 1 day 00:00) in Copenhagen."""
    if end < start:
        raise ValueError(f"period end {end} is before its start {start}")
    return (dt.datetime.combine(start, dt.time(), LOCAL_TZ),
            dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), LOCAL_TZ))


def previous_month(day: dt.date) -> tuple[dt.date, dt.date]:
    last = day.replace(day=1) - dt.timedelta(days=1)
    return last.replace(day=1), last


@contextlib.contextmanager
def logged_events_table(cur, events: list[tuple[TaskTry, dict]]) -> Iterator[None]:
    """The events in the temporary table `audit_logged_events` for this transaction."""
    from psycopg2.extras import execute_values

    cur.execute(read_sql("audit/create_logged_events.sql"))
    rows = [(e["audit_id"], e["row_hash"], json.dumps(e, default=str), t.dag_id, t.run_id, t.task_id, t.try_number)
            for t, e in events]
    for i in range(0, len(rows), BATCH):
        execute_values(cur, "INSERT INTO audit_logged_events VALUES %s", rows[i:i + BATCH])
    yield


def build_report(conn, start: dt.date, end: dt.date, source=None, out_dir: Path | None = None) -> dict:
    """Reconcile the task logs of [start, end] with the audit trail; write HTML, CSV, JSON.
    Returns the summary (with the paths); its `ok` is False on any mismatch or chain break."""
    source = source or log_source()
    lower, upper = period_bounds(start, end)
    findings = read_logs(source, lower, upper)
    out_dir = out_dir or reports_dir() / "audit"
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"audit_report_{start.isoformat()}_{end.isoformat()}"
    params = {"start": lower, "end": upper}
    with transaction(conn) as cur, logged_events_table(cur, findings.events):
        cur.execute(read_sql("audit/mismatches.sql"), params)
        mismatches = [dict(zip(("audit_id", "problem", "dag_id", "run_id", "task_id"), r)) for r in cur.fetchall()]
        cur.execute(read_sql("audit/chain_breaks.sql"))
        breaks = [{"audit_id": r[0], "problem": r[1]} for r in cur.fetchall()]
        cur.execute(read_sql("audit/rule_summary.sql"), params)
        columns = [d[0] for d in cur.description]
        rules = {r[0]: dict(zip(columns, r)) for r in cur.fetchall()}
        cur.execute(read_sql("audit/deletions_over_time.sql"), params)
        over_time = [(rule, as_of.isoformat(), n) for rule, as_of, n in cur.fetchall()]
        with stem.with_suffix(".csv").open("w", encoding="utf-8", newline="") as csv_file:
            cur.copy_expert(cur.mogrify(read_sql("audit/actions_csv.sql"), params).decode(), csv_file)
    _add_log_findings(rules, findings)
    summary = {
        "period_start": start.isoformat(), "period_end": end.isoformat(),
        "ok": not mismatches and not breaks,
        "log_source": source.describe(), "task_logs_read": len(findings.tries),
        "events_in_logs": len({(e["audit_id"], e["row_hash"]) for _, e in findings.events}),
        "audit_rows": sum(r["actions"] for r in rules.values()),
        "customers_removed": sum(r["customers"] for r in rules.values()),
        "rows_removed": sum(r["rows_removed"] for r in rules.values()),
        "mismatches": mismatches, "chain_breaks": breaks,
        "failed_runs": [{"dag_id": d, "run_id": r} for d, r in sorted(findings.failed_runs())],
        "rules": sorted(rules.values(), key=lambda r: r["rule"]), "deletions_over_time": over_time,
        "html": str(stem.with_suffix(".html")), "csv": str(stem.with_suffix(".csv")),
        "json": str(stem.with_suffix(".json")),
    }
    stem.with_suffix(".json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    stem.with_suffix(".html").write_text(render_html(summary), encoding="utf-8")
    return summary


def _add_log_findings(rules: dict[str, dict], findings: LogFindings) -> None:
    """Per rule: verification checks passed/failed, and failed runs, from the task logs."""
    runs_of_rule: dict[str, set] = defaultdict(set)
    for task_try, event in findings.events:
        runs_of_rule[event.get("rule") or "-"].add((task_try.dag_id, task_try.run_id))
    for check in findings.verifications:
        runs_of_rule[check["rule"]].add((check["dag_id"], check["run_id"]))
    failed = findings.failed_runs()
    for rule in sorted(runs_of_rule.keys() | rules.keys()):
        entry = rules.setdefault(rule, {"rule": rule, "customers": 0, "rows_removed": 0, "runs": 0,
                                        "dry_run_actions": 0, "legal_hold_skips": 0, "actions": 0})
        checks = [c for c in findings.verifications if c["rule"] == rule]
        entry["verification_passed"] = sum(c["verdict"] == "passed" for c in checks)
        entry["verification_failed"] = [f"{c['table']}: {c['check']} ({c['dag_id']} {c['run_id']})"
                                        for c in checks if c["verdict"] != "passed"]
        entry["failed_runs"] = len(runs_of_rule[rule] & failed)


def require_ok(summary: dict) -> None:
    if not summary["ok"]:
        raise AuditReportFailed(
            f"audit report {summary['period_start']}..{summary['period_end']}: "
            f"{len(summary['mismatches'])} mismatch(es) between task logs and audit trail, "
            f"{len(summary['chain_breaks'])} hash chain break(s); see {summary['html']}")


# --- HTML ------------------------------------------------------------------------------

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
STYLE = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #bbb;padding:.3em .6em;text-align:left}td.n{text-align:right}
.bad{background:#fdd;border:2px solid #c00;padding:1em}.good{background:#dfd;padding:1em}"""


def html_table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f"<td class='n'>{v}</td>" if isinstance(v, int) else f"<td>{html.escape(str(v))}</td>" for v in row)
        + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def deletions_chart(series: list[tuple[str, str, int]]) -> str:
    """Inline SVG: rows removed per rule, stacked per day (per month beyond 62 days)."""
    if not series:
        return "<p>No deletions in the period.</p>"
    days = sorted({d for _, d, _ in series})
    monthly = (dt.date.fromisoformat(days[-1]) - dt.date.fromisoformat(days[0])).days > 62
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for rule, day, n in series:
        totals[day[:7] if monthly else day][rule] += n
    buckets, rules = sorted(totals), sorted({r for r, _, _ in series})
    width, height, left, bottom = max(400, 60 + 40 * len(buckets)), 260, 60, 60
    top = max(sum(b.values()) for b in totals.values()) or 1
    step = (width - left - 10) / len(buckets)
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width + 180}' height='{height}' "
             f"role='img' aria-label='rows removed per rule'>",
             f"<line x1='{left}' y1='10' x2='{left}' y2='{height - bottom}' stroke='#333'/>",
             f"<line x1='{left}' y1='{height - bottom}' x2='{width}' y2='{height - bottom}' stroke='#333'/>",
             f"<text x='5' y='20' font-size='11'>{top}</text>",
             f"<text x='5' y='{height - bottom}' font-size='11'>0</text>"]
    scale = (height - bottom - 10) / top
    for i, bucket in enumerate(buckets):
        y = height - bottom
        for rule in rules:
            n = totals[bucket].get(rule, 0)
            if n:
                h = n * scale
                y -= h
                parts.append(f"<rect x='{left + i * step + 4:.1f}' y='{y:.1f}' width='{max(step - 8, 2):.1f}' "
                             f"height='{h:.1f}' fill='{PALETTE[rules.index(rule) % len(PALETTE)]}'>"
                             f"<title>{html.escape(rule)} {bucket}: {n}</title></rect>")
        parts.append(f"<text x='{left + i * step + step / 2:.1f}' y='{height - bottom + 14}' font-size='10' "
                     f"text-anchor='end' transform='rotate(-45 {left + i * step + step / 2:.1f} "
                     f"{height - bottom + 14})'>{bucket}</text>")
    for j, rule in enumerate(rules):
        parts.append(f"<rect x='{width + 10}' y='{20 + j * 18}' width='12' height='12' "
                     f"fill='{PALETTE[j % len(PALETTE)]}'/><text x='{width + 28}' y='{30 + j * 18}' "
                     f"font-size='12'>{html.escape(rule)}</text>")
    return "".join(parts) + "</svg>"


def render_html(s: dict) -> str:
    title = f"Lifecycle audit report {s['period_start']} to {s['period_end']}"
    if s["ok"]:
        verdict = (f"<div class='good'>Reconciled: all {s['audit_rows']} audit row(s) of the period have their "
                   f"event in the task logs and every event its row; the hash chain is intact.</div>")
    else:
        verdict = ("<div class='bad'><h2>Problems: the task logs and the audit trail disagree</h2>"
                   + html_table(["audit id", "problem", "dag", "run", "task"],
                            [[m["audit_id"], m["problem"], m["dag_id"], m["run_id"], m["task_id"]]
                             for m in s["mismatches"]])
                   + "<h3>Hash chain breaks</h3>"
                   + html_table(["audit id", "problem"], [[b["audit_id"], b["problem"]] for b in s["chain_breaks"]])
                   + "</div>")
    rules = html_table(
        ["rule", "customers", "rows removed", "runs", "failed runs", "skips for legal hold", "dry-run actions",
         "verification checks passed", "verification checks failed"],
        [[r["rule"], r["customers"], r["rows_removed"], r["runs"], r["failed_runs"], r["legal_hold_skips"],
          r["dry_run_actions"], r["verification_passed"], len(r["verification_failed"])] for r in s["rules"]])
    failed_checks = [[r["rule"], c] for r in s["rules"] for c in r["verification_failed"]]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>
{verdict}
<p>{s['audit_rows']} action(s); {s['customers_removed']} customer(s) and {s['rows_removed']} row(s) removed.
Events read from {html.escape(s['log_source'])} ({s['task_logs_read']} task log(s), {s['events_in_logs']} event(s)).
Period in Europe/Copenhagen dates of when the action was recorded.</p>
<h2>Per rule</h2>{rules}
<h2>Rows removed per rule, by the day the rule was applied for</h2>{deletions_chart(s['deletions_over_time'])}
<h2>Failed verification checks</h2>{html_table(["rule", "check"], failed_checks) if failed_checks else "<p>None.</p>"}
<h2>Failed runs</h2>{html_table(["dag", "run"], [[f["dag_id"], f["run_id"]] for f in s["failed_runs"]])
                     if s["failed_runs"] else "<p>None.</p>"}
<p>Every action: <a href="{html.escape(Path(s['csv']).name)}">{html.escape(Path(s['csv']).name)}</a>;
summary: <a href="{html.escape(Path(s['json']).name)}">{html.escape(Path(s['json']).name)}</a>.</p>
</body></html>
"""
