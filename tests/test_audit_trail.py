"""The audit trail: append-only in the database, chained set-based, witnessed by signed
checkpoints outside it. Every attack of the database owner (triggers disabled, replica
mode) is named by `lifecycle audit verify`."""

from __future__ import annotations

import hashlib
import json
import uuid

import psycopg2
import pytest

from telco_lifecycle import cli, migrations
from telco_lifecycle.database import connect, transaction
from telco_lifecycle.evidence import audit, checkpoints, integrity, merkle
from telco_lifecycle.local.env import drop_database, ensure_database
from telco_lifecycle.settings import with_database

CHANGES = ["UPDATE lifecycle_audit SET row_count = 0", "DELETE FROM lifecycle_audit", "TRUNCATE lifecycle_audit",
           "UPDATE lifecycle_audit_link SET record_count = 0", "DELETE FROM lifecycle_audit_link"]


def write_links(url: str, links: int = 3, per_link: int = 3) -> None:
    """`links` committed transactions of `per_link` records each, emitted and checkpointed."""
    conn = connect(url)
    for link in range(links):
        with transaction(conn) as cur:
            events = audit.record_per_customer(
                cur, "UPDATE customers t SET email = t.email WHERE t.customer_id <= %(n)s", "t.customer_id",
                {"n": per_link},
                audit.Action("delete", "pbx_sip_config", None, "pbx_configs"), audit.RunContext(run_id=f"r{link}"))
        audit.emit(events)
        checkpoints.flush()
    conn.close()


def verify(url: str) -> list[str]:
    conn = connect(url)
    try:
        return integrity.verify(conn)["findings"]
    finally:
        conn.close()


def as_owner(telco, *statements: str) -> None:
    """What the database owner can do behind the triggers."""
    telco.execute("SET session_replication_role = replica")
    for statement in statements:
        telco.execute(statement)
    telco.execute("SET session_replication_role = origin")


def test_a_record_per_customer_and_one_link_per_statement(telco):
    write_links(telco.url, links=2, per_link=4)
    assert telco.rows("SELECT seq, record_count, total_records FROM lifecycle_audit_link ORDER BY seq") == [
        (1, 4, 4), (2, 4, 8)]
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit WHERE hash_version = 2") == 8
    assert verify(telco.url) == []
    assert cli.main(["audit", "verify", "--database-url", telco.url]) == 0


@pytest.mark.parametrize("statement", CHANGES)
def test_audit_rows_and_links_cannot_be_changed(telco, statement):
    write_links(telco.url, links=1)
    with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="append-only"):
        telco.execute(statement)
    assert verify(telco.url) == []


def test_changed_row(telco):
    write_links(telco.url)
    as_owner(telco, "UPDATE lifecycle_audit SET row_count = 0 WHERE audit_id = 2")
    assert verify(telco.url) == ["audit row 2 was changed: its content does not give its hash"]


def test_changed_and_rehashed_row(telco):
    write_links(telco.url)
    as_owner(telco, "UPDATE lifecycle_audit a SET row_count = 0 WHERE audit_id = 2",
             f"UPDATE lifecycle_audit a SET row_hash = {audit.leaf_sql('a')} WHERE audit_id = 2")
    assert verify(telco.url) == ["link 1 (audit rows 1..3): its records do not give its Merkle root: an audit row"
                                 " was changed and re-hashed, or replaced"]


def test_deleted_row(telco, capsys):
    write_links(telco.url)
    as_owner(telco, "DELETE FROM lifecycle_audit WHERE audit_id = 5")
    assert verify(telco.url) == ["link 2 (audit rows 4..6): 2 record(s) in the database, 3 sealed:"
                                 " audit row(s) deleted"]
    assert cli.main(["audit", "verify", "--database-url", telco.url]) == 1
    assert "audit row(s) deleted" in capsys.readouterr().out


def test_truncated_tail(telco):
    write_links(telco.url)
    as_owner(telco, "DELETE FROM lifecycle_audit WHERE link_id = 3", "DELETE FROM lifecycle_audit_link WHERE seq = 3",
             "UPDATE lifecycle_audit_head SET seq = 2, total_records = 6,"
             " link_hash = (SELECT link_hash FROM lifecycle_audit_link WHERE seq = 2)")
    assert verify(telco.url) == ["truncated tail: checkpoint 3 signs link 3 (9 records), the database's chain ends"
                                 " at link 2"]


def rehash_everything(telco) -> None:
    """Rebuild every link from the records as they are now: a consistent chain."""
    links = telco.rows("SELECT link_id, array_agg(row_hash ORDER BY audit_id), min(audit_id), max(audit_id)"
                       " FROM lifecycle_audit GROUP BY link_id ORDER BY min(audit_id)")
    as_owner(telco, "DELETE FROM lifecycle_audit_link",
             "UPDATE lifecycle_audit_head SET seq = 0, total_records = 0, link_hash = repeat('0', 64)")
    for link in links:
        telco.scalar("SELECT seq FROM lifecycle_audit_seal(%s, %s, %s, %s)", link)


def test_consistently_rehashed_chain(telco):
    write_links(telco.url)
    as_owner(telco, "UPDATE lifecycle_audit a SET row_count = 0 WHERE audit_id = 2",
             f"UPDATE lifecycle_audit a SET row_hash = {audit.leaf_sql('a')} WHERE audit_id = 2")
    rehash_everything(telco)
    findings = verify(telco.url)
    assert findings and all(f.startswith("the chain was rewritten: link ") for f in findings)


def test_missing_checkpoint_and_bad_signature(telco, evidence_dir):
    write_links(telco.url)
    (evidence_dir / "checkpoints" / "000000000002.json").unlink()
    assert verify(telco.url) == ["checkpoint sequence number(s) 2..2 are missing: checkpoints were removed"]
    third = evidence_dir / "checkpoints" / "000000000003.json"
    third.write_text(json.dumps({**json.loads(third.read_text()), "total_records": 1}))
    assert verify(telco.url) == [
        "checkpoint sequence number(s) 2..2 are missing: checkpoints were removed",
        "checkpoint 3 (000000000003.json): its signature does not verify with the public key"]


def test_forked_chain(telco):
    """The database put back to an earlier state and continued: two histories, both signed."""
    write_links(telco.url)
    as_owner(telco, "DELETE FROM lifecycle_audit WHERE link_id = 3", "DELETE FROM lifecycle_audit_link WHERE seq = 3",
             "UPDATE lifecycle_audit_head SET seq = 2, total_records = 6,"
             " link_hash = (SELECT link_hash FROM lifecycle_audit_link WHERE seq = 2)")
    write_links(telco.url, links=1, per_link=3)
    assert "forked chain: checkpoints 3 and 4 sign different links at link 3" in verify(telco.url)


def test_lifecycle_functions_have_a_fixed_search_path_and_the_app_no_temp(telco, seeded_template):
    conn = connect(with_database(telco.url, seeded_template))  # as migrated (a copy has no database grants)
    with conn.cursor() as cur:
        cur.execute("SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                    " WHERE n.nspname = 'public' AND p.proname LIKE 'lifecycle%%'"
                    " AND NOT coalesce(p.proconfig::text ~ 'search_path=[a-z_, ]*pg_temp\"', false)")
        # lifecycle_cdr_month (0021) is one expression of built-ins, inlined into the per-row
        # CDR counting: a SET clause would make every call a function call.
        assert [r[0] for r in cur.fetchall()] == ["lifecycle_cdr_month"]
        cur.execute("SELECT has_database_privilege('lifecycle_app', current_database(), 'TEMPORARY')")
        assert cur.fetchone() == (False,)
    conn.close()


def test_migration_keeps_the_old_rows_verifiable(telco, monkeypatch):
    """A database built by the migrations before 0015, with rows chained by its trigger."""
    name = f"lifecycle_test_migration_{uuid.uuid4().hex[:8]}"
    url = ensure_database(with_database(telco.url, "postgres"), name)
    every = migrations.migration_files
    try:
        migrations.migration_files = lambda: [p for p in every() if p.name < "0015"]
        with monkeypatch.context() as before:  # that schema lacks tables today's policy names
            before.setattr(migrations, "check_schema", lambda cur: None)
            conn = connect(url)
            migrations.migrate(conn)
        with transaction(conn) as cur:
            cur.execute("INSERT INTO customers (customer_id) SELECT generate_series(1, 3)")
            for i in range(3):
                cur.execute("INSERT INTO lifecycle_audit (action, customer_id, row_count, prev_hash, row_hash)"
                            " VALUES ('delete', %s, 1, '', '')", (i,))
        migrations.migration_files = every
        migrations.migrate(conn)
        conn.close()
        assert verify(url) == []
        write_links(url, links=1)
        assert verify(url) == []
        conn = connect(url)
        with conn.cursor() as cur:
            cur.execute("SELECT seq, link_id, record_count FROM lifecycle_audit_link ORDER BY seq")
            assert cur.fetchall() == [(1, 0, 3), (2, 1, 3)]
        conn.close()
    finally:
        migrations.migration_files = every
        drop_database(with_database(telco.url, "postgres"), name)


def test_the_databases_merkle_root_is_the_verifiers_for_every_size(telco):
    """Migration 0029 computes the root in a loop: the same root as the Python verifier
    (and the GROUP BY per level it replaced) for even and odd counts at every level."""
    leaves = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(70)]
    for n in range(1, len(leaves) + 1):
        assert telco.scalar("SELECT lifecycle_merkle_root(ARRAY(SELECT decode(h, 'hex') FROM unnest(%s::text[]) h))",
                            (leaves[:n],)) == merkle.root(leaves[:n]), n


def test_the_hashed_text_is_that_of_the_records_written_before_json_build_array(telco):
    """Records were hashed over jsonb_build_array(...)::text; json_build_array gives the same
    text (details is jsonb, normalised either way), so their hashes still verify."""
    details = ['{}', '{"b": 1, "a": [1.50, 1e3, null, true]}', '{"q": "\\"quoted\\" \\\\ ø \\u0001 tab\\t"}',
               '{"tables": {"contacts": 3}, "fiscal_year_ends": [["06-30", null]]}']
    conn = connect(telco.url)
    with transaction(conn) as cur:
        cur.execute("INSERT INTO customers (customer_id) VALUES (1) ON CONFLICT DO NOTHING")
        for i, text in enumerate(details):
            audit.record(cur, audit.Action("purge", "crm_master_data", 1, "contacts", i, None, False, json.loads(text)),
                         audit.RunContext(run_id=f'r "{i}" ø'))
        cur.execute(f"SELECT count(*), count(*) FILTER (WHERE {audit.canonical_sql('a')}"
                    f" = {audit.canonical_sql('a').replace('json_build_array(', 'jsonb_build_array(', 1)})"
                    " FROM lifecycle_audit a WHERE hash_version = 2")
        assert cur.fetchone() == (len(details), len(details))
    conn.close()
