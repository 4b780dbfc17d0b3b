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


# What the records' hashed text and the ledger's lines were built with before they were
# joined as text (audit.canonical_sql, audit.ledger_line_sql): the reference texts.
BUILT_ARRAY = ("jsonb_build_array('lifecycle_audit/2', a.audit_id,"
               " to_char(a.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), a.action, a.rule,"
               " a.customer_id, a.table_name, a.row_count, a.as_of, a.dry_run, a.dag_id, a.run_id, a.task_id,"
               " a.try_number, a.details, a.link_id)::text")
BUILT_LINE = ("json_build_object('audit_id', a.audit_id, 'row_hash', a.row_hash, 'action', a.action, 'rule', a.rule,"
              " 'customer_id', a.customer_id, 'tables', coalesce(a.details->'tables',"
              " CASE WHEN a.table_name IS NOT NULL THEN jsonb_build_object(a.table_name, a.row_count)"
              " ELSE '{}'::jsonb END), 'as_of', a.as_of,"
              " 'dag_id', a.dag_id, 'run_id', a.run_id, 'partition', a.details->'partition',"
              " 'recorded_at', a.recorded_at)::text")


def test_the_hashed_text_and_ledger_lines_are_those_the_build_functions_gave(telco):
    """Records were hashed over jsonb_build_array(...)::text, then json_build_array's (the
    same text); their text is now joined from the fields, statement-wide ones rendered
    once: the same text, so every record still verifies (also quotes, backslashes,
    non-ASCII and control characters in the run's ids, nulls, nested details). The same
    for the ledger's lines and json_build_object."""
    details = ['{}', '{"b": 1, "a": [1.50, 1e3, null, true]}', '{"q": "\\"quoted\\" \\\\ ø \\u0001 tab\\t"}',
               '{"tables": {"contacts": 3}, "fiscal_year_ends": [["06-30", null]]}', '{"partition": "cdrs_y2019m07"}']
    conn = connect(telco.url)
    lines = []
    with transaction(conn) as cur:
        cur.execute("INSERT INTO customers (customer_id) VALUES (1) ON CONFLICT DO NOTHING")
        for i, text in enumerate(details):
            event = audit.record(cur, audit.Action("purge", "crm_master_data", 1 if i % 2 else None,
                                                   "contacts" if i % 3 else None, i, None, False, json.loads(text)),
                                 audit.RunContext(run_id=f'r "{i}" ø \\ \x01', task_id=f"t{i}"))
            lines.append(event["ledger_line"])
        cur.execute(f"SELECT {audit.canonical_sql('a')}, {BUILT_ARRAY}, {BUILT_ARRAY.replace('jsonb_', 'json_', 1)},"
                    f" {audit.leaf_sql('a')} = a.row_hash, {BUILT_LINE} FROM lifecycle_audit a"
                    " WHERE hash_version = 2 AND dag_id = 'cli' ORDER BY audit_id DESC LIMIT %s", (len(details),))
        rows = cur.fetchall()[::-1]
    conn.close()
    assert [(text, text, text, True) for text, *_ in rows] == [tuple(row[:4]) for row in rows]
    assert [row[4] for row in rows] == lines
