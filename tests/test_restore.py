"""Restore-safe deletions: what an operator does after restoring a backup of the telecom
database, through the real DAGs (dag.test()) on a real PostgreSQL.

Backups are template copies (CREATE DATABASE ... TEMPLATE) of the database the lifecycle
uses; a restore re-creates that database from the copy."""

from __future__ import annotations

import datetime as dt
import json
import os
from zoneinfo import ZoneInfo

import psycopg2
import pytest
from conftest import SERVER, copy_of, respond_to_approval

from telco_lifecycle.cli import main as lifecycle
from telco_lifecycle.local.env import drop_database
from telco_lifecycle.policy import load_policy
from telco_lifecycle.settings import with_database

TZ = ZoneInfo("Europe/Copenhagen")
DAY = dt.date(2026, 6, 15)  # the purges' date: the seeded data's "today", before the real one
ALERTS: list = []  # what the data team was told (LIFECYCLE_ALERT_CHANNEL=test_restore:collect)
GOVERNED = tuple(sorted({t for rule in load_policy().rules for t in rule.tables}))


def collect(alert) -> None:
    ALERTS.append(alert)


def moment(day: dt.date, hour: int = 2) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=TZ)


def backup(telco, name: str) -> str:
    """A copy of the telecom database as it is now (its connections closed for the copy)."""
    telco.conn.close()
    admin = psycopg2.connect(with_database(SERVER, "postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:  # pooled connections of earlier runs (GX's engines)
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (telco.name,))
    admin.close()
    copy_of(telco.name, name).conn.close()
    telco.__init__(telco.name)
    return name


def restore(telco, name: str) -> None:
    """The operator restores backup `name` into the database the lifecycle uses."""
    telco.conn.close()
    drop_database(SERVER, telco.name)
    admin = psycopg2.connect(with_database(SERVER, "postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{telco.name}" TEMPLATE "{name}"')
    admin.close()
    telco.__init__(telco.name)


def state(telco) -> dict:
    """The governed tables' full contents, the CDR months, and the holds (who entered them aside)."""
    return {**{table: fingerprint for table, fingerprint in telco.fingerprint().items() if table in GOVERNED},
            "cdr_months": telco.rows("SELECT relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                                     " WHERE i.inhparent = 'cdrs_live'::regclass ORDER BY 1"),
            "legal_holds": telco.rows("SELECT customer_id, case_reference, placed_on, released_on FROM legal_holds"
                                      " ORDER BY 1, 2, 3")}


def customer(telco, where: str) -> int:
    return telco.scalar(f"SELECT c.customer_id FROM customers c WHERE NOT lifecycle_on_hold(c.customer_id)"
                        f" AND {where} ORDER BY c.customer_id LIMIT 1")


def offboard_and_erase(telco, run_dag) -> tuple[int, int]:
    """An offboarding and an erasure of two active customers with PBX configuration."""
    with_config = ("c.relationship_ended_on IS NULL"
                   " AND EXISTS (SELECT 1 FROM pbx_configs p WHERE p.customer_id = c.customer_id)")
    leaving = customer(telco, with_config)
    dag_run, _ = run_dag("customer_offboarding", {"customer_id": leaving, "requested_by": "test",
                                                  "relationship_end": "2026-05-31"}, logical_date=moment(DAY, 9))
    assert dag_run.state == "success"
    erased = customer(telco, with_config)
    dag_run, _ = run_dag("data_subject_erasure", {"customer_id": erased, "requested_by": "test"},
                         logical_date=moment(DAY, 10))
    assert dag_run.state == "success"
    return leaving, erased


def purges(run_dag, day: dt.date, hour: int = 2) -> None:
    for dag_id in ("crm_retention", "contract_archive_retention", "accounting_retention"):
        dag_run, _ = run_dag(dag_id, {"as_of": day.isoformat()}, logical_date=moment(day, hour))
        assert dag_run.state == "success", dag_id


def audit_verify(telco) -> int:
    return lifecycle(["audit", "verify", "--database-url", telco.url])


@pytest.fixture
def operator(telco, run_dag, monkeypatch):
    monkeypatch.setenv("LIFECYCLE_REQUIRE_ERASURE_APPROVAL", "false")
    monkeypatch.setenv("LIFECYCLE_ALERT_CHANNEL", "test_restore:collect")
    backups = []

    def take(suffix: str) -> str:
        backups.append(backup(telco, f"{telco.name}_backup_{suffix}"))
        return backups[-1]

    yield take
    for name in backups:
        drop_database(SERVER, name)


def test_a_restored_backup_gets_its_deletions_again(telco, run_dag, operator):
    before_backup = state(telco)
    taken = operator("before")
    leaving, erased = offboard_and_erase(telco, run_dag)
    purges(run_dag, DAY)
    # A customer the CRM purge reduced is put under a hold afterwards.
    held = telco.scalar("SELECT customer_id FROM customers WHERE crm_purged_on = %s AND customer_id <> %s"
                        " ORDER BY customer_id LIMIT 1", (DAY, erased))
    dag_run, _ = run_dag("legal_hold", {"customer_id": held, "action": "place", "case_reference": "C-2026-17",
                                        "requested_by": "test"}, logical_date=moment(DAY, 12))
    assert dag_run.state == "success"
    before_restore = state(telco)
    assert before_restore != before_backup

    restore(telco, taken)
    assert state(telco) == before_backup

    # The purge refuses, naming the gap and the next step, and the data team is alerted.
    ALERTS.clear()
    dag_run, _ = run_dag("crm_retention", {"as_of": DAY.isoformat()}, logical_date=moment(DAY, 13))
    assert dag_run.state == "failed"
    [alert] = ALERTS
    assert alert.event.startswith("restored database") and alert.task_id == "plan_purge"
    assert "behind the deletion ledger" in alert.detail and "restore_reconciliation" in alert.detail
    assert state(telco) == before_backup
    dag_run, _ = run_dag("retention_verification", {"as_of": DAY.isoformat()}, logical_date=moment(DAY, 13))
    assert dag_run.state == "failed"

    # A dry run lists what it would re-apply and changes nothing.
    audit_rows = telco.scalar("SELECT count(*) FROM lifecycle_audit")
    dag_run, xcom = run_dag("restore_reconciliation", {"requested_by": "test", "dry_run": True})
    assert dag_run.state == "success"
    listed = xcom["reconcile"]["steps"]
    assert {(s["kind"], c) for s in listed for c in s["customers"]} >= {("offboard", leaving), ("erase", erased),
                                                                        ("hold", held), ("purge", held)}
    assert {s["rule"] for s in listed if s["kind"] == "purge"} >= {"crm_master_data"}
    assert state(telco) == before_backup
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit") == audit_rows

    dag_run, xcom = run_dag("restore_reconciliation", {"requested_by": "test"})
    assert dag_run.state == "success"
    assert state(telco) == before_restore
    report = xcom["write_report"]
    assert report["checks"] > 0
    later_hold = report["deleted_before_later_hold"]
    assert {h["customer_id"] for h in later_hold} == {held}
    assert "crm_master_data" in {h["rule"] for h in later_hold}
    assert report["holds_without_case_reference"] == []  # the ledger had the hold's case reference
    assert report["per_rule"]["crm_master_data"]["removed_again"]
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit_chain_breaks") == 0
    assert audit_verify(telco) == 0
    purges(run_dag, DAY, hour=14)  # the purges run again (nothing is due)
    assert state(telco) == before_restore

    # A second reconciliation finds nothing to re-apply and changes nothing.
    audit_rows = telco.scalar("SELECT count(*) FROM lifecycle_audit")
    dag_run, xcom = run_dag("restore_reconciliation", {"requested_by": "test"})
    assert dag_run.state == "success"
    assert xcom["reconcile"]["steps"] == [] and "nothing to re-apply" in xcom["reconcile"]["message"]
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit") == audit_rows
    assert state(telco) == before_restore


def test_an_approved_back_dated_end_comes_back_with_the_restore(telco, run_dag, operator, monkeypatch):
    """The ledger holds the approved back-dating, so the reconciliation moves the end back again
    instead of leaving the offboarding's provisional date (the clocks would start late)."""
    monkeypatch.delenv("LIFECYCLE_REQUIRE_ERASURE_APPROVAL")
    taken = operator("before_backdate")
    leaving = customer(telco, "c.relationship_ended_on IS NULL")
    backdated = DAY - dt.timedelta(days=90)
    responder = respond_to_approval("customer_offboarding", "approve_backdate", "Approve")
    dag_run, _ = run_dag("customer_offboarding", {"customer_id": leaving, "requested_by": "test",
                                                  "relationship_end": backdated.isoformat()}, moment(DAY, 9))
    responder.join(timeout=5)
    assert dag_run.state == "success"
    after = state(telco)

    restore(telco, taken)
    dag_run, xcom = run_dag("restore_reconciliation", {"requested_by": "test"})

    assert dag_run.state == "success"
    assert [(s["kind"], s["customers"]) for s in xcom["reconcile"]["steps"]] == [
        ("offboard", [leaving]), ("backdate", [leaving])]
    assert telco.scalar("SELECT relationship_ended_on FROM customers WHERE customer_id = %s", (leaving,)) == backdated
    assert state(telco) == after


def test_a_restore_that_is_not_the_latest(telco, run_dag, operator, capsys):
    """Backup 1, a purge, backup 2, an offboarding and an erasure; restore backup 1 and
    reconcile; a later purge; then restore backup 2 (older than that history): the
    command line reconciles it to the state before the second restore."""
    first = operator("first")
    purges(run_dag, DAY)
    second = operator("second")
    offboard_and_erase(telco, run_dag)
    restore(telco, first)
    assert lifecycle(["restore-reconcile", "--database-url", telco.url]) == 0
    purges(run_dag, dt.date(2026, 11, 20))
    expected = state(telco)
    restore(telco, second)
    assert state(telco) != expected

    assert lifecycle(["restore-reconcile", "--dry-run", "--database-url", telco.url]) == 0
    assert "would re-apply" in capsys.readouterr().out
    assert state(telco) != expected
    assert lifecycle(["restore-reconcile", "--database-url", telco.url]) == 0
    assert state(telco) == expected
    assert audit_verify(telco) == 0
    assert lifecycle(["restore-reconcile", "--database-url", telco.url]) == 0
    assert "nothing to re-apply" in capsys.readouterr().out
    assert state(telco) == expected


def test_a_hold_placed_again_without_its_case_reference_is_listed_for_the_dpo():
    """A ledger entry of a hold placement without a case reference (written before the
    ledger kept them): the hold is placed again under a placeholder, and the report lists it."""
    from telco_lifecycle.evidence.restore_detection import Gap
    from telco_lifecycle.rules.restore import summary

    entry = {"audit_id": 41, "recorded_at": dt.datetime(2026, 6, 1, tzinfo=dt.UTC), "dag_id": "legal_hold"}
    step = {"kind": "hold", "action": "place_legal_hold", "rule": "legal_hold", "customers": [7],
            "as_of": "2026-06-01", "entries": [entry], "ledger_tables": {}}

    report = summary(Gap([entry], None), [step], dry_run=True)

    assert report["holds_without_case_reference"] == [
        {"customer_id": 7, "hold_ledger_audit_id": 41, "case_reference": "restored hold, ledger audit #41"}]


def test_the_restore_check_compares_only_what_the_ledger_gained_since_a_clean_one(telco, operator):
    """A clean check is remembered by the chain link it saw; later checks compare only the
    ledger segments appended to since, unless the database no longer holds that link."""
    from telco_lifecycle.evidence import audit
    from telco_lifecycle.evidence.restore_detection import check_memory_path, find_gap
    from telco_lifecycle.evidence.store import evidence_store

    def removal(customer_id: int) -> None:  # a committed removal: its audit row, then its ledger entry
        with telco.conn.cursor() as cur:
            events = [audit.record(cur, audit.Action("delete", "pbx_sip_config", customer_id, "pbx_configs", 1),
                                   audit.RunContext())]
        telco.conn.commit()
        audit.emit(events)

    def written_before_the_remembered_check() -> None:  # as if every segment were that old
        store = evidence_store()
        since = json.loads(check_memory_path(store).read_text())["since"]
        for segment in store.ledger_dir.glob("*.jsonl"):
            os.utime(segment, (since - 60, since - 60))

    older = operator("older")
    removal(1)
    gap = find_gap(telco.conn)
    assert (gap.compared, gap.entries) == (1, [])
    written_before_the_remembered_check()
    assert find_gap(telco.conn).compared == 0  # nothing appended since the clean check

    # Restored from a backup that holds the remembered link: the segments appended to since are compared.
    newer = operator("newer")
    removal(2)
    restore(telco, newer)
    gap = find_gap(telco.conn)
    assert gap.compared == 2 and [e["customer_id"] for e in gap.entries] == [2]

    # From a backup older than the remembered link: the whole ledger, however old its segments.
    written_before_the_remembered_check()
    restore(telco, older)
    gap = find_gap(telco.conn)
    assert gap.compared == 2 and [e["customer_id"] for e in gap.entries] == [1, 2]
