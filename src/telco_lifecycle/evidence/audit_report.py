"""The audit report: what the task logs say happened, reconciled with `lifecycle_audit`,
the evidence store's ledger, and the signed checkpoints.

The audit events (`audit.emit`: one per committed transaction, naming its chain links)
are collected from the Airflow task logs - through the REST API when
LIFECYCLE_AIRFLOW_API_URL (+ _USERNAME, _PASSWORD) is set and the API server is
reachable, else from the log folder (AIRFLOW__LOGGING__BASE_LOG_FOLDER, else
$AIRFLOW_HOME/logs; Airflow 3 task logs are JSON lines). Every chain link sealed in the
period must have its event with the same hash, and every event its link; a link whose
own try logged nothing is "logged by the retry" when a later try re-logged it, a
"console-only run" when its run left no task log at all and its removals are in the
ledger, else missing. The whole chain is verified against every checkpoint
(`lifecycle audit verify`) and the head checkpointed. The same logs give the
verification results and the failed task tries.

The period is [start, end] in Copenhagen dates of `recorded_at` (when the action
happened); the chart shows rows removed by the day each rule was applied for (`as_of`).
Output under LIFECYCLE_REPORTS_DIR/audit/: HTML, a CSV of every action, a JSON summary.
Nothing personal: ids, tables, counts, run ids, hashes.
"""

from __future__ import annotations

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

from telco_lifecycle.database import int_array, transaction
from telco_lifecycle.errors import Refused
from telco_lifecycle.evidence import checkpoints, integrity
from telco_lifecycle.evidence.audit import LEDGER_ACTIONS, REMOVING_ACTIONS, parse_event
from telco_lifecycle.evidence.store import evidence_store
from telco_lifecycle.policy import load_policy
from telco_lifecycle.report_files import ReportFile, private_dir, report_folder, write_report
from telco_lifecycle.settings import TIMEZONE, VERIFICATION_LOGGER, read_sql

log = logging.getLogger("telco_lifecycle.evidence.audit_report")

LOCAL_TZ = ZoneInfo(TIMEZONE)
METADATA_CLEANED = "airflow_metadata_cleaned"  # the audit action of airflow_metadata_retention
VERIFICATION = re.compile(r"^verification \[(?P<rule>[^ /]+) / (?P<table>[^\]]+)\] (?P<check>.*):"
                          r" (?P<verdict>passed|FAILED)")


class AuditReportFailed(Refused):
    """The logs and the audit trail disagree, or the chain is broken; the report says where."""

    recorded = False  # a finding of the report, not a refused request


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
    reasons: dict[TaskTry, str] = dataclasses.field(default_factory=dict)  # why a failed try failed

    def failure_reason(self, dag_id: str, run_id: str) -> str:
        """The reason of the run's last failed try, as its log gives it."""
        tries = [t for t in self.failed_tries if (t.dag_id, t.run_id) == (dag_id, run_id)]
        return next((f"{t.task_id}: {self.reasons[t]}" for t in reversed(tries) if t in self.reasons),
                    f"{tries[-1].task_id}: no reason in its log" if tries else "")

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
        last_error = ""
        for record in records:
            message = str(record.get("event", ""))
            event = parse_event(message) if "AUDIT {" in message else None
            if event is not None:
                if _within(dt.datetime.fromisoformat(str(event["recorded_at"])), start, end):
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
                reason = failure_reason(record) or last_error
                if reason:
                    findings.reasons[task_try] = reason
            if record.get("level") in ("error", "critical") and str(record.get("logger")).startswith("telco_lifecycle"):
                last_error = _own_words(message)  # the lifecycle's own words only
    return findings


# Exceptions whose message is the lifecycle's own (a refusal, a failed check): written without
# personal data. Any other error (a database error can quote a row) is named by its type only.
OWN_MESSAGES = ("AirflowFailException", "VerificationFailed", "AuditReportFailed")


def failure_reason(record: dict) -> str | None:
    """The one-line reason of a worker's `Task failed with exception` record (its exception
    as structlog renders it: a list of {exc_type, exc_value})."""
    chain = record.get("error_detail") or record.get("exception")
    if not isinstance(chain, list) or not chain or not isinstance(chain[-1], dict):
        return None
    error = chain[-1]
    kind, value = str(error.get("exc_type", "")), str(error.get("exc_value", ""))
    if kind in OWN_MESSAGES or kind.endswith("Refused") or kind in ("LegalHoldInForce", "UnknownCustomer"):
        return f"{kind}: {_own_words(value)}"
    return kind or None


def _own_words(message: str) -> str:
    return message.strip().splitlines()[0][:300] if message.strip() else ""


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


# The links sealed in the period, with the run that wrote them (from their records).
PERIOD_LINKS = """
SELECT l.link_id, l.seq, l.link_hash, r.dag_id, r.run_id, r.task_id, r.try_number,
       array_agg(r.audit_id ORDER BY r.audit_id) FILTER (WHERE r.action = ANY (%(ledger_actions)s) AND NOT r.dry_run),
       l.sealed_at
FROM lifecycle_audit_link l JOIN lifecycle_audit r ON r.link_id = l.link_id
WHERE l.sealed_at >= %(start)s AND l.sealed_at < %(end)s
GROUP BY 1, 2, 3, 4, 5, 6, 7, 9
ORDER BY l.seq
"""


def reconcile(cur, params: dict, findings: LogFindings, logs_gone: dt.datetime | None = None
              ) -> tuple[list[dict], list[dict]]:
    """Every link of the period against the task logs' events and the ledger: the
    mismatches (problems), and the links explained without their own try's event:
    "logged by the retry" (a later try of the task logged it: the crash came between
    commit and log), "console-only run" (the run left no task log at all, as
    `airflow dags test` does), "task log removed by the policy" (sealed before
    `logs_gone`, when airflow_metadata_retention removed the logs). The last two only
    when their removals are in the ledger, the witness outside the database."""
    logged: dict[int, list[tuple[TaskTry, dict]]] = defaultdict(list)
    for task_try, event in findings.events:
        for link in event.get("links", []):
            logged[link["link_id"]].append((task_try, link))
    runs_with_logs = {(t.dag_id, t.run_id) for t in findings.tries}
    in_ledger = {entry["audit_id"] for entry in evidence_store().ledger()}
    cur.execute(PERIOD_LINKS, {**params, "ledger_actions": sorted(LEDGER_ACTIONS)})
    mismatches, explained, seen = [], [], set()
    for link_id, seq, link_hash, dag_id, run_id, task_id, try_number, removals, sealed_at in cur.fetchall():
        seen.add(link_id)
        row = {"audit_id": seq, "link_id": link_id, "dag_id": dag_id, "run_id": run_id, "task_id": task_id}
        events = logged.get(link_id, [])
        if any(e["link_hash"] != link_hash for _, e in events):
            mismatches.append({**row, "problem": "event in the task log differs from its chain link"})
        elif any(t.try_number == try_number and t.task_id == task_id for t, _ in events):
            continue
        elif events:
            explained.append({**row, "explanation": "logged by the retry"})
        elif why := _without_log(set(removals or ()) <= in_ledger, logs_gone is not None and sealed_at < logs_gone,
                                 (dag_id, run_id) in runs_with_logs):
            explained.append({**row, "explanation": why})
        else:
            mismatches.append({**row, "problem": "chain link has no event in the task logs (missing)"})
    for link_id, entries in logged.items():
        if link_id not in seen and not _sealed_elsewhen(cur, link_id):
            task_try = entries[0][0]
            mismatches.append({"audit_id": entries[0][1].get("seq"), "link_id": link_id, "dag_id": task_try.dag_id,
                               "run_id": task_try.run_id, "task_id": task_try.task_id,
                               "problem": "event in the task log has no chain link"})
    return mismatches, explained


def _without_log(in_ledger: bool, before_removal: bool, run_logged: bool) -> str | None:
    """Why a link may have no event in the task logs; None: it is missing."""
    if not in_ledger:
        return None
    if before_removal:
        return "task log removed by the policy"
    return None if run_logged else "console-only run"


def _sealed_elsewhen(cur, link_id: int) -> bool:
    """A logged link outside the period (an event read from a log also written in it)."""
    cur.execute("SELECT 1 FROM lifecycle_audit_link WHERE link_id = %s", (link_id,))
    return cur.fetchone() is not None


def logs_removed_before(cur) -> dt.datetime | None:
    """Task logs from before this moment were removed by the policy (None: never)."""
    cur.execute("SELECT max((details->>'logs_removed_before')::timestamptz) FROM lifecycle_audit"
                " WHERE action = %s AND NOT dry_run", (METADATA_CLEANED,))
    return cur.fetchone()[0]


def build_report(conn, start: dt.date, end: dt.date, source=None, out_dir: Path | None = None,
                 author: str = "") -> dict:
    """Reconcile the task logs of [start, end] with the audit trail and the ledger, verify
    the whole chain against the signed checkpoints, and checkpoint the head; write HTML,
    CSV, JSON. Returns the summary (with the paths); its `ok` is False on any mismatch or
    verification finding. `author` (e.g. "cli") goes into the file names, so that a report
    made by hand does not overwrite the `audit_report` DAG's report of the same period."""
    source = source or log_source()
    lower, upper = period_bounds(start, end)
    findings = read_logs(source, lower, upper)
    out_dir = private_dir(out_dir) if out_dir else report_folder("audit")
    stem = out_dir / f"audit_report_{start.isoformat()}_{end.isoformat()}{'_' + author if author else ''}"
    params = {"start": lower, "end": upper, "removing": list(REMOVING_ACTIONS)}
    with transaction(conn) as cur:
        logs_gone = logs_removed_before(cur)
        mismatches, explained = reconcile(cur, params, findings, logs_gone)
        cur.execute(read_sql("audit/rule_summary.sql"), params)
        columns = [d[0] for d in cur.description]
        rules = {r[0]: dict(zip(columns, r, strict=True)) for r in cur.fetchall()}
        cur.execute(read_sql("audit/subject_requests.sql"), params)
        answered = cur.fetchall()
        cur.execute(read_sql("audit/deletions_over_time.sql"), params)
        over_time = [(rule, as_of.isoformat(), n) for rule, as_of, n in cur.fetchall()]
        logged_links = sorted({link["link_id"] for _, e in findings.events for link in e.get("links", [])})
        with ReportFile(stem.with_suffix(".csv"), newline="") as csv_file:
            cur.copy_expert(cur.mogrify(read_sql("audit/actions_csv.sql"),
                                        {**params, "logged_links": int_array(logged_links)}).decode(), csv_file.file)
    verification = integrity.verify(conn)
    checkpoints.write_current(conn, {"report": f"audit_report {start.isoformat()}..{end.isoformat()}"})
    breaks = [{"audit_id": None, "problem": finding} for finding in verification["findings"]]
    _add_log_findings(rules, findings)
    summary = {
        "period_start": start.isoformat(), "period_end": end.isoformat(),
        "ok": not mismatches and not breaks,
        "log_source": source.describe(), "task_logs_read": len(findings.tries),
        "events_in_logs": len(findings.events),
        "task_logs_removed_before": logs_gone.isoformat() if logs_gone and logs_gone > lower else None,
        "audit_rows": sum(r["actions"] for r in rules.values()),
        "customers_removed": sum(r["customers"] for r in rules.values()),
        "rows_removed": sum(r["rows_removed"] for r in rules.values()),
        "mismatches": mismatches, "explained": explained, "chain_breaks": breaks,
        "chain": {k: verification[k] for k in ("records", "links", "checkpoints", "links_after_last_checkpoint")},
        "failed_runs": [{"dag_id": d, "run_id": r, "reason": findings.failure_reason(d, r)}
                        for d, r in sorted(findings.failed_runs())],
        "subject_requests": subject_requests(findings, answered),
        "rules": sorted(rules.values(), key=lambda r: r["rule"]), "deletions_over_time": over_time,
        "html": str(stem.with_suffix(".html")), "csv": str(stem.with_suffix(".csv")),
        "json": str(stem.with_suffix(".json")),
    }
    write_report(stem.with_suffix(".json"), json.dumps(summary, indent=2, default=str))
    write_report(stem.with_suffix(".html"), render_html(summary))
    return summary


REQUEST_DAGS = {"data_subject_access": "access", "data_subject_erasure": "erasure"}


def run_label(run_id: str) -> str:
    """A run id in words with its time in Copenhagen ("manual run 2026-12-02 00:23:05"); Airflow's
    run ids carry the UTC time they were made for."""
    moment = _trigger_time(run_id)
    if moment is None:
        return run_id
    return f"{run_id.split('__', 1)[0]} run {moment.astimezone(LOCAL_TZ):%Y-%m-%d %H:%M:%S}"


def _trigger_time(run_id: str) -> dt.datetime | None:
    """When a manual or API run was triggered: Airflow puts it in the run id (manual__<ISO time>)."""
    try:
        return dt.datetime.fromisoformat(run_id.split("__", 1)[1])
    except (IndexError, ValueError):
        return None


def subject_requests(findings: LogFindings, answered: list[tuple]) -> dict:
    """Data-subject requests of the period: every run of the two request DAGs in the task logs
    or the audit trail, its outcome (answered, rejected, refused, failed, open) and time to answer."""
    requests: dict[tuple[str, str], dict] = {}
    for t in findings.tries:
        if t.dag_id in REQUEST_DAGS:
            requests.setdefault((t.dag_id, t.run_id), {
                "kind": REQUEST_DAGS[t.dag_id], "dag_id": t.dag_id, "run_id": t.run_id, "customer_id": None,
                "outcome": "open", "answered_at": None})
    failed = findings.failed_runs()
    for key, request in requests.items():
        if key in failed:
            request["outcome"] = "failed"
    for dag_id, run_id, customer_id, kind, outcome, recorded_at in answered:
        request = requests.setdefault((dag_id, run_id), {"kind": kind, "dag_id": dag_id, "run_id": run_id})
        request.update(customer_id=customer_id, outcome=outcome,
                       answered_at=recorded_at.astimezone(LOCAL_TZ).isoformat(timespec="seconds"))
    for request in requests.values():
        received = _trigger_time(request["run_id"])
        request["received_at"] = received.astimezone(LOCAL_TZ).isoformat(timespec="seconds") if received else None
        request["hours_to_answer"] = (
            round((dt.datetime.fromisoformat(request["answered_at"]) - received).total_seconds() / 3600, 2)
            if received and request["answered_at"] else None)
    rows = sorted(requests.values(), key=lambda r: (r["received_at"] or r["answered_at"] or "", r["run_id"]))
    totals = {}
    for kind in REQUEST_DAGS.values():
        mine = [r for r in rows if r["kind"] == kind]
        times = [r["hours_to_answer"] for r in mine if r["hours_to_answer"] is not None and r["outcome"] == "answered"]
        totals[kind] = {"received": len(mine), **{o: sum(r["outcome"] == o for r in mine)
                                                  for o in ("answered", "rejected", "refused", "failed", "open")},
                        "longest_hours_to_answer": max(times) if times else None}
    return {"totals": totals, "requests": rows}


def _add_log_findings(rules: dict[str, dict], findings: LogFindings) -> None:
    """Per rule: verification checks passed/failed, and failed runs, from the task logs."""
    runs_of_rule: dict[str, set] = defaultdict(set)
    for task_try, event in findings.events:
        for action in event.get("actions", []):
            runs_of_rule[action.get("rule") or "-"].add((task_try.dag_id, task_try.run_id))
    for check in findings.verifications:
        runs_of_rule[check["rule"]].add((check["dag_id"], check["run_id"]))
    failed = findings.failed_runs()
    for rule in sorted(runs_of_rule.keys() | rules.keys()):
        entry = rules.setdefault(rule, {"rule": rule, "customers": 0, "rows_removed": 0, "runs": 0,
                                        "dry_run_actions": 0, "legal_hold_skips": 0, "actions": 0,
                                        "action_names": ""})
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
            f"{len(summary['chain_breaks'])} audit chain finding(s); see {summary['html']}")


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
    """Inline SVG: rows removed per rule by the day it was applied for (per month beyond 62
    days); one panel per rule with its own scale and every bar labelled with its value, so a
    rule that removed 1 row is as visible as one that removed a million."""
    if not series:
        return "<p>No deletions in the period.</p>"
    days = sorted({d for _, d, _ in series})
    monthly = (dt.date.fromisoformat(days[-1]) - dt.date.fromisoformat(days[0])).days > 62
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for rule, day, n in series:
        totals[rule or "-"][day[:7] if monthly else day] += n
    buckets = sorted({b for per_rule in totals.values() for b in per_rule})
    rules = sorted(totals)
    left, panel, gap, step = 170, 70, 18, max(56, min(110, 900 // len(buckets)))
    width = left + step * len(buckets) + 20
    height = 30 + len(rules) * (panel + gap) + 60
    axis = "month" if monthly else "day"
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-size='11' "
             f"role='img' aria-label='rows removed per rule and {axis}'>",
             f"<text x='{left}' y='14' font-size='12'>rows removed (each rule on its own scale;"
             " the number on each bar is the count)</text>"]
    for j, rule in enumerate(rules):
        top = 30 + j * (panel + gap)
        base = top + panel
        peak = max(totals[rule].values()) or 1
        color = PALETTE[j % len(PALETTE)]
        parts.append(f"<text x='{left - 8}' y='{top + panel / 2}' text-anchor='end' font-size='12'"
                     f" font-weight='bold'>{html.escape(rule)}</text>"
                     f"<text x='{left - 8}' y='{top + panel / 2 + 14}' text-anchor='end' fill='#555'>"
                     f"max {peak:,}</text>"
                     f"<line x1='{left}' y1='{base}' x2='{width - 10}' y2='{base}' stroke='#333'/>")
        for i, bucket in enumerate(buckets):
            n = totals[rule].get(bucket, 0)
            x = left + i * step
            if n:
                h = max(2.0, n / peak * (panel - 16))
                parts.append(f"<rect x='{x + 6}' y='{base - h:.1f}' width='{step - 12}' height='{h:.1f}'"
                             f" fill='{color}'><title>{html.escape(rule)} {bucket}: {n}</title></rect>"
                             f"<text x='{x + step / 2}' y='{base - h - 3:.1f}' text-anchor='middle'>{n:,}</text>")
    axis_y = 30 + len(rules) * (panel + gap)
    for i, bucket in enumerate(buckets):
        middle = left + i * step + step / 2
        parts.append(f"<text x='{middle}' y='{axis_y}' text-anchor='end' transform='rotate(-35 {middle} {axis_y})'>"
                     f"{bucket}</text>")
    parts.append(f"<text x='{left}' y='{height - 4}' font-size='12'>{axis} the rule was applied for (as_of)</text>")
    return "".join(parts) + "</svg>"


RULE_FREE = "no retention rule"
# Audit rows name these besides the policy's rules.
OTHER_RULES = {"legal_hold": "legal holds placed and released, and the checks of held data",
               "offboarding": "the end of a customer relationship (recorded by the offboarding run)"}


def rule_label(rule: dict) -> str:
    """A rule row's name in words: the policy's category, or what the rule-free actions were."""
    if rule["rule"] == "-":
        return f"{RULE_FREE} ({rule.get('action_names') or 'other actions'})"
    known = {**OTHER_RULES, **{r.id: r.category.en for r in load_policy().rules}}
    return f"{rule['rule']}: {known[rule['rule']]}" if rule["rule"] in known else rule["rule"]


def _duration(hours: float | None) -> str:
    if hours is None:
        return "-"
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _moment(iso: str | None) -> str:
    return iso[:16].replace("T", " ") if iso else "-"


def requests_html(requests: dict) -> str:
    totals = requests["totals"]
    summary = html_table(
        ["request", "received", "answered", "rejected", "refused", "failed", "still open",
         "longest time to answer"],
        [[kind, t["received"], t["answered"], t["rejected"], t["refused"], t["failed"], t["open"],
          _duration(t["longest_hours_to_answer"])] for kind, t in totals.items()])
    rows = html_table(
        ["request", "customer id", "received", "outcome", "recorded", "time to answer", "run"],
        [[r["kind"], "-" if r.get("customer_id") is None else r["customer_id"], _moment(r["received_at"]),
          r["outcome"], _moment(r.get("answered_at")), _duration(r["hours_to_answer"]), run_label(r["run_id"])]
         for r in requests["requests"]]) if requests["requests"] else "<p>None in the period.</p>"
    return (f"<h2>Data-subject requests</h2>{summary}{rows}<p>The legal limit is one month from the request"
            " (GDPR Art. 12(3)). Received: when the run was triggered; recorded: its answer in the audit trail.</p>")


def _logs_gone_note(s: dict) -> str:
    if not s["task_logs_removed_before"]:
        return ""
    return (f"<p class='bad'>The task logs from before {html.escape(s['task_logs_removed_before'])} have been removed"
            " as the retention policy requires (airflow_metadata_retention): actions recorded before then have no"
            " task-log events to be reconciled with.</p>")


def render_html(s: dict) -> str:
    title = f"Lifecycle audit report {s['period_start']} to {s['period_end']}"
    if s["ok"]:
        verdict = (f"<div class='good'>Reconciled: every chain link of the period ({s['audit_rows']} audit row(s))"
                   f" has its event in the task logs or is explained below, and every event its link; the whole"
                   f" audit chain ({s['chain']['records']} records, {s['chain']['links']} links) verifies against"
                   f" its {s['chain']['checkpoints']} signed checkpoint(s).</div>")
    else:
        verdict = ("<div class='bad'><h2>Problems: the task logs and the audit trail disagree</h2>"
                   + html_table(["chain link", "problem", "dag", "run", "task"],
                            [[m["audit_id"], m["problem"], m["dag_id"], m["run_id"], m["task_id"]]
                             for m in s["mismatches"]])
                   + "<h3>Audit chain and checkpoints (lifecycle audit verify)</h3>"
                   + html_table(["finding"], [[b["problem"]] for b in s["chain_breaks"]])
                   + "</div>")
    rules = html_table(
        ["rule", "customers", "rows removed", "runs", "failed runs", "skips for legal hold", "dry-run actions",
         "verification checks passed", "verification checks failed"],
        [[rule_label(r), r["customers"], r["rows_removed"], r["runs"], r["failed_runs"], r["legal_hold_skips"],
          r["dry_run_actions"], r["verification_passed"], len(r["verification_failed"])] for r in s["rules"]])
    failed_checks = [[r["rule"], c] for r in s["rules"] for c in r["verification_failed"]]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>
{verdict}
<p>{s['audit_rows']} action(s); {s['customers_removed']} customer(s) and {s['rows_removed']} row(s) removed.
Events read from {html.escape(s['log_source'])} ({s['task_logs_read']} task log(s), {s['events_in_logs']} event(s)).
Period in Europe/Copenhagen dates of when the action was recorded.</p>
{_logs_gone_note(s)}
<h2>Links without their own try's event, explained</h2>{html_table(
    ["link", "dag", "run", "task", "explanation"],
    [[e["audit_id"], e["dag_id"], e["run_id"], e["task_id"], e["explanation"]] for e in s["explained"]])
    if s["explained"] else "<p>None.</p>"}
<h2>Per rule</h2>{rules}
<h2>Rows removed per rule, by the day the rule was applied for</h2>{deletions_chart(s['deletions_over_time'])}
<h2>Failed verification checks</h2>{html_table(["rule", "check"], failed_checks) if failed_checks else "<p>None.</p>"}
<h2>Failed runs</h2>{html_table(["dag", "run", "reason"],
                                [[f["dag_id"], run_label(f["run_id"]), f["reason"]] for f in s["failed_runs"]])
                     if s["failed_runs"] else "<p>None.</p>"}
{requests_html(s["subject_requests"])}
<p>Every action: <a href="{html.escape(Path(s['csv']).name)}">{html.escape(Path(s['csv']).name)}</a>;
summary: <a href="{html.escape(Path(s['json']).name)}">{html.escape(Path(s['json']).name)}</a>.</p>
</body></html>
"""
