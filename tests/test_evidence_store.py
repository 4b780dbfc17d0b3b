"""The evidence store outside the database: the ledger of committed removals and holds,
and write-once signed checkpoints."""

from __future__ import annotations

import datetime as dt

from retention_helpers import add_customer, at, hold

from telco_lifecycle.database import connect, transaction
from telco_lifecycle.evidence import audit, signing
from telco_lifecycle.evidence.audit import LEDGER_ACTIONS
from telco_lifecycle.evidence.store import canonical, checkpoint_hash, evidence_store

D = dt.date


def test_ledger_is_append_only_in_order(evidence_dir):
    store = evidence_store()
    store.append_ledger('{"audit_id": 1}\n{"audit_id": 2}\n')
    store.append_ledger("")
    store.append_ledger('{"audit_id": 3}\n')
    assert [e["audit_id"] for e in store.ledger()] == [1, 2, 3]
    assert len(list((evidence_dir / "ledger").iterdir())) == 1  # this process's segment


def test_checkpoints_are_numbered_linked_signed_and_never_overwritten(evidence_dir):
    store = evidence_store()
    first = store.write_checkpoint({"head": "a"})
    second = store.write_checkpoint({"head": "b"})
    assert (first.name, second.name) == ("000000000001.json", "000000000002.json")
    one, two = store.checkpoints()
    assert two["previous_checkpoint"] == checkpoint_hash(one) and one["previous_checkpoint"] is None
    body = {k: v for k, v in two.items() if k not in ("signature", "_file")}
    assert signing.verify(signing.public_key(), canonical(body), two["signature"])
    assert not signing.verify(signing.public_key(), canonical({**body, "head": "c"}), two["signature"])


def test_committed_removals_and_holds_reach_the_ledger(telco, run_dag):
    add_customer(telco, 100031, D(2020, 1, 1))
    hold(run_dag, 100031, "place")
    hold(run_dag, 100031, "release")
    run_dag("crm_retention", {"dry_run": True}, at(D(2026, 6, 15)))
    run_dag("crm_retention", {}, at(D(2026, 6, 15), hour=4))

    entries = [e for e in evidence_store().ledger() if e["customer_id"] == 100031]
    assert [e["action"] for e in entries[:2]] == ["place_legal_hold", "release_legal_hold"]
    purged = {table: n for e in entries[2:] for table, n in e["tables"].items()}
    assert purged["contacts"] == 1 and purged["customers"] == 1
    assert {e["rule"] for e in entries[2:]} == {"crm_master_data"} and all(e["dag_id"] == "crm_retention"
                                                                          for e in entries[2:])
    # The ledger agrees with the audit trail, row for row.
    rows = dict(telco.rows("SELECT audit_id, row_hash FROM lifecycle_audit WHERE customer_id = 100031"
                           " AND NOT dry_run AND action = ANY(%s)", (list(LEDGER_ACTIONS),)))
    assert {e["audit_id"]: e["row_hash"] for e in entries} == rows
    # The case reference, free text, is in the ledger (a restore places the hold again), not in the trail.
    assert [e.get("case_reference") for e in entries[:2]] == ["SKP-TEST-1"] * 2 and "SKP" not in str(entries[2:])
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit WHERE details::text LIKE '%%SKP%%'") == 0


def test_a_retry_writes_again_a_hold_committed_without_its_ledger_line_with_its_case_reference(telco):
    """A crash after a hold's commit and before its ledger line: the retry writes the line
    again, with the case reference read from the hold (a restore places the hold again
    under its case, not under a placeholder)."""
    add_customer(telco, 100032, D(2020, 1, 1))
    hold_id = telco.scalar("INSERT INTO legal_holds (customer_id, case_reference, placed_on, placed_by)"
                           " VALUES (100032, 'SKP-RETRY-1', '2026-01-05', 'test') RETURNING legal_hold_id")
    first = audit.RunContext("legal_hold", "crashed", "apply", 1)
    conn = connect(telco.url)
    with transaction(conn) as cur:  # committed; the crash comes before audit.emit
        record = audit.record(cur, audit.Action("place_legal_hold", "legal_hold", 100032, "legal_holds", 1,
                                                D(2026, 1, 5), False, {"legal_hold_id": hold_id},
                                                ledger={"case_reference": "SKP-RETRY-1"}), first)
    assert audit.relog_earlier_tries(conn, audit.RunContext("legal_hold", "crashed", "apply", 2)) == 1
    conn.close()
    entries = [e for e in evidence_store().ledger() if e["audit_id"] == record["audit_id"]]
    assert [(e["action"], e["case_reference"], e["legal_hold_id"]) for e in entries] == [
        ("place_legal_hold", "SKP-RETRY-1", hold_id)]
    assert entries[0]["row_hash"] == record["row_hash"]
