"""The evidence store outside the database: the ledger of committed removals and holds,
and write-once signed checkpoints."""

from __future__ import annotations

import datetime as dt

from retention_helpers import add_customer, at, hold

from telco_lifecycle.evidence import signing
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
