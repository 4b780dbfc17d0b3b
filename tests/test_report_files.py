"""The lifecycle's own files obey the policy: every folder under the reports directory is
governed or exempt, files are private on disk, and reports_retention removes exactly the
due files with one audit row each (dates in the past, runs at dates <= today)."""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from telco_lifecycle.policy import load_policy
from telco_lifecycle.report_files import report_folder, restrict, ungoverned_folders, write_report
from telco_lifecycle.settings import project_dir, reports_dir

AS_OF = dt.date(2026, 6, 15)
RUN_DATE = dt.datetime(2026, 6, 15, 12, tzinfo=dt.UTC)


@pytest.fixture
def reports(tmp_path, monkeypatch) -> Path:
    """A reports directory of this test's own."""
    monkeypatch.setenv("LIFECYCLE_REPORTS_DIR", str(tmp_path / "reports"))
    return reports_dir()


def put(root: Path, relative: str, written: dt.date, text: str = "x") -> Path:
    """A file with the given content, written (mtime) at noon of `written`, Copenhagen time."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    moment = dt.datetime(written.year, written.month, written.day, 12, tzinfo=dt.UTC).timestamp()
    os.utime(path, (moment, moment))
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def folders_written_by_the_code() -> set[str]:
    """Every literal `report_folder("...")` in src/."""
    names = set()
    for source in (project_dir() / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "report_folder"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                names.add(node.args[0].value)
    return names


def test_every_folder_the_code_writes_is_governed_or_exempt():
    policy = load_policy()
    written = folders_written_by_the_code()
    assert {"subject_access", "erasure", "directory_118", "data_docs", "audit", "certificates"} <= written
    known = {f.folder for f in policy.report_files} | set(policy.exempt_report_folders)
    assert written <= known, f"folders written but neither governed nor exempt: {sorted(written - known)}"
    for folder in policy.report_files:
        assert folder.legal_basis.en and folder.legal_basis.da and folder.period_days > 0


def test_the_session_reports_directory_holds_no_unknown_folder():
    assert not ungoverned_folders(reports_dir(), load_policy())


def test_an_unknown_folder_is_refused_and_found(reports):
    with pytest.raises(KeyError, match="neither governed"):
        report_folder("notes")
    (reports / "notes").mkdir()
    assert ungoverned_folders(reports, load_policy()) == ["notes"]


def test_report_files_are_private_on_disk(reports, telco):
    from telco_lifecycle.database import connect
    from telco_lifecycle.evidence.audit import RunContext
    from telco_lifecycle.subjects import access, directory_118

    old, conn = os.umask(0o022), connect(telco.url)
    try:
        customer = telco.scalar("SELECT min(customer_id) FROM customers")
        exported = access.export(conn, customer, "test", AS_OF, RunContext())
        listing = directory_118.write(conn, AS_OF, RunContext())
        statement = report_folder("erasure") / "x.json"
        sha = write_report(statement, "{}")
    finally:
        os.umask(old)
        conn.close()
    assert sha == hashlib.sha256(b"{}").hexdigest()
    assert mode(reports) == 0o700
    for name in ("subject_access", "directory_118", "erasure"):
        assert mode(reports / name) == 0o700
    for file in (exported["json_file"], exported["html_file"], listing["file"], statement):
        assert mode(Path(file)) == 0o600
    assert not list(reports.rglob("*.part"))
    docs = reports / "data_docs" / "validations"
    put(reports, "data_docs/validations/a/b.html", AS_OF).chmod(0o644)
    restrict(reports / "data_docs")
    assert mode(docs) == 0o700 and mode(docs / "a" / "b.html") == 0o600


def seed_files(root: Path) -> dict[str, bool]:
    """Files dated in the past; True for those due on AS_OF."""
    d = dt.date
    files = {
        "subject_access/customer_5_manual__run1.json": (d(2026, 5, 1), True),       # 30 days passed
        "subject_access/customer_5_manual__run1.html": (d(2026, 5, 1), True),
        "subject_access/customer_5_manual__run1_files/archived_contracts_3_document.pdf": (d(2026, 5, 1), True),
        "subject_access/customer_6_manual__run2.json": (d(2026, 6, 10), False),     # 5 days old
        "erasure/customer_7_manual__run3.json": (d(2023, 1, 1), True),              # 3 years passed
        "erasure/customer_8_manual__run4.json": (d(2025, 1, 1), False),
        "directory_118/directory_118_2026-06-01.csv": (d(2026, 6, 1), True),        # next one 10 days ago
        "directory_118/directory_118_2026-06-05.csv": (d(2026, 6, 5), False),       # next one yesterday
        "directory_118/directory_118_2026-06-14.csv": (d(2026, 6, 14), False),      # the latest
        "data_docs/validations/suite_a/run/batch.html": (d(2025, 1, 1), True),     # 400 days passed
        "data_docs/validations/suite_b/run/batch.html": (d(2026, 1, 1), False),
        "data_docs/index.html": (d(2024, 1, 1), False),                             # not covered: rebuilt
        "audit/audit_report_2024-01-01_2024-01-31.json": (d(2024, 2, 1), False),    # exempt
        "certificates/deletion_certificate_customer_5.json": (d(2023, 1, 1), False),  # exempt
    }
    for relative, (written, _) in files.items():
        put(root, relative, written, text=f"content of {relative}")
    return {relative: is_due for relative, (_, is_due) in files.items()}


def removal_rows(telco, dry_run: bool) -> list[tuple]:
    return telco.rows("SELECT customer_id, row_count, details FROM lifecycle_audit"
                      " WHERE action = 'report_file_removed' AND dry_run = %s ORDER BY audit_id", (dry_run,))


def test_reports_retention_removes_exactly_the_due_files(reports, telco, run_dag):
    expected = seed_files(reports)
    before = {p: (reports / p).read_bytes() for p in expected}

    dag_run, xcom = run_dag("reports_retention", {"as_of": AS_OF.isoformat(), "dry_run": True}, RUN_DATE)
    assert dag_run.state == "success"
    assert {p: (reports / p).read_bytes() for p in expected} == before, "a dry run changed nothing"
    assert xcom["plan_removal"]["due"] == {"subject_access": 3, "erasure": 1, "directory_118": 1, "data_docs": 1}
    assert len(removal_rows(telco, dry_run=True)) == 6 and not removal_rows(telco, dry_run=False)

    dag_run, xcom = run_dag("reports_retention", {"as_of": AS_OF.isoformat()}, RUN_DATE)
    assert dag_run.state == "success"
    for relative, is_due in expected.items():
        assert (reports / relative).exists() != is_due, relative
    assert xcom["verify_removal"]["verification"] == "passed"
    assert xcom["verify_removal"]["removed"] == xcom["plan_removal"]["due"]
    rows = removal_rows(telco, dry_run=False)
    assert len(rows) == 6
    by_hash = {hashlib.sha256(before[p]).hexdigest(): p for p, is_due in expected.items() if is_due}
    for customer_id, count, details in rows:
        relative = by_hash[details["sha256"]]
        assert count == 1 and details["kind"] == relative.split("/")[0]
        assert details["size"] == len(before[relative])
        assert customer_id == {"subject_access": 5, "erasure": 7}.get(details["kind"])
        assert set(details) == {"kind", "customer_id", "size", "written_on", "sha256", "cause"}
        assert "manual__" not in json.dumps(details) and ".json" not in json.dumps(details)
    assert not json.dumps(xcom).count("manual__"), "no file name in the run's XCom"

    dag_run, xcom = run_dag("reports_retention", {"as_of": AS_OF.isoformat()}, RUN_DATE)
    assert dag_run.state == "success" and xcom["verify_removal"]["removed"] == {}
    assert len(removal_rows(telco, dry_run=False)) == 6, "a re-run is a no-op"


def test_an_unknown_folder_fails_the_run_and_nothing_goes(reports, telco, run_dag):
    expected = seed_files(reports)
    put(reports, "notes/customer_5.txt", dt.date(2024, 1, 1))
    dag_run, _ = run_dag("reports_retention", {"as_of": AS_OF.isoformat()}, RUN_DATE)
    assert dag_run.state == "failed"
    assert all((reports / p).exists() for p in expected)
    assert not removal_rows(telco, dry_run=False)


def test_a_future_as_of_is_refused(reports, telco, run_dag):
    seed_files(reports)
    dag_run, _ = run_dag("reports_retention", {"as_of": "2026-06-16"}, RUN_DATE)
    assert dag_run.state == "failed"
    assert not removal_rows(telco, dry_run=False)


def test_erasure_removes_the_customers_earlier_access_exports(reports, telco, run_dag, monkeypatch):
    monkeypatch.setenv("LIFECYCLE_REQUIRE_ERASURE_APPROVAL", "false")
    customer, other = (r[0] for r in telco.rows(
        "SELECT customer_id FROM customers WHERE relationship_ended_on IS NOT NULL"
        " AND NOT lifecycle_on_hold(customer_id) ORDER BY customer_id LIMIT 2"))
    for minutes, who in enumerate((customer, customer, other)):  # distinct logical dates: separate runs
        dag_run, _ = run_dag("data_subject_access", {"customer_id": who, "requested_by": "test"},
                             RUN_DATE + dt.timedelta(minutes=minutes))
        assert dag_run.state == "success"
    def files_of(who: int) -> list[Path]:  # the reports, and the documents beside them
        return [p for p in (reports / "subject_access").rglob("*") if p.is_file()
                and p.relative_to(reports / "subject_access").as_posix().startswith(f"customer_{who}_")]

    assert len([p for p in files_of(customer) if p.suffix == ".json"]) == 2
    held, others = len(files_of(customer)), len(files_of(other))

    dag_run, xcom = run_dag("data_subject_erasure", {"customer_id": customer, "requested_by": "test"}, RUN_DATE)
    assert dag_run.state == "success"
    assert not files_of(customer) and len(files_of(other)) == others
    statement = json.loads(Path(xcom["write_statement"]["json_file"]).read_text(encoding="utf-8"))
    assert statement["files_removed"]["subject_access"]["files"] == held
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit WHERE action = 'report_file_removed'"
                        " AND customer_id = %s AND details->>'cause' = 'erasure'", (customer,)) == held
