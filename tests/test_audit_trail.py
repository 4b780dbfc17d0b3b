"""The audit trail: append-only in the database, chained set-based, witnessed by signed
checkpoints outside it. Every attack of the database owner (triggers disabled, replica
mode) is named by `lifecycle audit verify`."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid

import psycopg2
import pytest

from telco_lifecycle import cli, migrations
from telco_lifecycle.database import connect, transaction
from telco_lifecycle.evidence import audit, checkpoints, integrity, merkle
from telco_lifecycle.evidence.store import ledger_entries
from telco_lifecycle.local.env import drop_database, ensure_database
from telco_lifecycle.settings import with_database

CHANGES = ["UPDATE lifecycle_audit_record SET row_count = 0", "DELETE FROM lifecycle_audit_record",
           "TRUNCATE lifecycle_audit_record", "UPDATE lifecycle_audit SET row_count = 0", "DELETE FROM lifecycle_audit",
           "UPDATE lifecycle_audit_link SET record_count = 0", "UPDATE lifecycle_audit_link SET rule = 'x'",
           "DELETE FROM lifecycle_audit_link"]
# A version-3 record's hash as the writer computes it (its link's statement hash).
REHASHED = ("UPDATE lifecycle_audit_record a SET row_hash = "
            + audit.sha256_sql(audit.record_text_sql(
                "a", "(SELECT l.statement_hash FROM lifecycle_audit_link l WHERE l.link_id = a.link_id)"))
            + " WHERE audit_id = 2")


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
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit WHERE hash_version = 3") == 8
    assert telco.rows("SELECT DISTINCT action, rule, table_name FROM lifecycle_audit") == [
        ("delete", "pbx_sip_config", "pbx_configs")]
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
    as_owner(telco, "UPDATE lifecycle_audit_record SET row_count = 0 WHERE audit_id = 2")
    assert verify(telco.url) == ["audit row 2 was changed: its content does not give its hash"]


def test_changed_and_rehashed_row(telco):
    write_links(telco.url)
    as_owner(telco, "UPDATE lifecycle_audit_record a SET row_count = 0 WHERE audit_id = 2", REHASHED)
    assert verify(telco.url) == ["link 1 (audit rows 1..3): its records do not give its Merkle root: an audit row"
                                 " was changed and re-hashed, or replaced"]


def test_changed_statement(telco):
    """What a link's records share is stored once, on the link: changing it is named, and
    so is changing it with its hash (every record of the link commits to that hash)."""
    write_links(telco.url)
    as_owner(telco, "UPDATE lifecycle_audit_link SET rule = 'crm_master_data' WHERE seq = 2")
    assert verify(telco.url) == ["link 2's statement (what its records share: action, rule, run, details) was"
                                 " changed: it does not give its hash"]
    as_owner(telco, "UPDATE lifecycle_audit_link l SET statement_hash = "
                    f"{audit.sha256_sql(audit.statement_text_sql('l'))} WHERE seq = 2")
    changed = [f"audit row {n} was changed: its content does not give its hash" for n in (4, 5, 6)]
    assert verify(telco.url) == [*changed, "link 2 was changed: its fields do not give its hash"]


def test_moved_row(telco):
    write_links(telco.url)
    as_owner(telco, "UPDATE lifecycle_audit_record SET link_id = 1 WHERE audit_id = 5")
    findings = verify(telco.url)
    assert "audit row 5 was changed: its content does not give its hash" in findings
    assert "link 2 (audit rows 4..6): 2 record(s) in the database, 3 sealed: audit row(s) deleted" in findings


def test_deleted_row(telco, capsys):
    write_links(telco.url)
    as_owner(telco, "DELETE FROM lifecycle_audit_record WHERE audit_id = 5")
    assert verify(telco.url) == ["link 2 (audit rows 4..6): 2 record(s) in the database, 3 sealed:"
                                 " audit row(s) deleted"]
    assert cli.main(["audit", "verify", "--database-url", telco.url]) == 1
    assert "audit row(s) deleted" in capsys.readouterr().out


def test_truncated_tail(telco):
    write_links(telco.url)
    as_owner(telco, "DELETE FROM lifecycle_audit_record WHERE link_id = 3",
             "DELETE FROM lifecycle_audit_link WHERE seq = 3",
             "UPDATE lifecycle_audit_head SET seq = 2, total_records = 6,"
             " link_hash = (SELECT link_hash FROM lifecycle_audit_link WHERE seq = 2)")
    assert verify(telco.url) == ["truncated tail: checkpoint 3 signs link 3 (9 records), the database's chain ends"
                                 " at link 2"]


def rehash_everything(telco) -> None:
    """Rebuild every link from the records as they are now: a consistent chain."""
    shared = ", ".join(f"l.{field}::text" for field in audit.STATEMENT_TYPES)
    links = telco.rows(f"SELECT r.link_id, array_agg(r.row_hash ORDER BY r.audit_id), min(r.audit_id),"
                       f" max(r.audit_id), l.statement_hash, {shared} FROM lifecycle_audit_record r"
                       f" JOIN lifecycle_audit_link l USING (link_id) GROUP BY r.link_id, l.link_id"
                       " ORDER BY min(r.audit_id)")
    as_owner(telco, "DELETE FROM lifecycle_audit_link",
             "UPDATE lifecycle_audit_head SET seq = 0, total_records = 0, link_hash = repeat('0', 64)")
    for link in links:
        casts = ", ".join(f"%s::{kind}" for kind in audit.STATEMENT_TYPES.values())
        telco.scalar(f"SELECT seq FROM lifecycle_audit_seal(%s, %s, %s, %s, %s, {casts})", link)


def test_consistently_rehashed_chain(telco):
    write_links(telco.url)
    as_owner(telco, "UPDATE lifecycle_audit_record a SET row_count = 0 WHERE audit_id = 2", REHASHED)
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
    as_owner(telco, "DELETE FROM lifecycle_audit_record WHERE link_id = 3",
             "DELETE FROM lifecycle_audit_link WHERE seq = 3",
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


def write_version_2_links(url: str, links: int = 2) -> None:
    """Records as the writer before migration 0031 wrote them: every field on the row,
    hashed over its version-2 text, sealed one link per statement."""
    conn = connect(url)
    for _ in range(links):
        with transaction(conn) as cur:
            cur.execute(f"""
                WITH link AS (SELECT nextval('lifecycle_audit_link_id_seq') AS link_id),
                numbered AS (
                    SELECT nextval('lifecycle_audit_id_seq') AS audit_id, clock_timestamp() AS recorded_at,
                           'delete'::text AS action, 'pbx_sip_config'::text AS rule, c::bigint AS customer_id,
                           'pbx_configs'::text AS table_name, 1::bigint AS row_count, NULL::date AS as_of,
                           false AS dry_run, 'customer_offboarding'::text AS dag_id, 'v2'::text AS run_id,
                           'delete'::text AS task_id, 1 AS try_number, '{{"x": "é"}}'::jsonb AS details, link.link_id
                    FROM generate_series(1, 3) c, link),
                written AS (
                    INSERT INTO lifecycle_audit (audit_id, recorded_at, action, rule, customer_id, table_name,
                        row_count, as_of, dry_run, dag_id, run_id, task_id, try_number, details, link_id,
                        hash_version, prev_hash, row_hash)
                    SELECT n.*, 2, '', {audit.sha256_sql(audit.v2_text_sql('n'))} FROM numbered n
                    RETURNING audit_id, row_hash, link_id)
                SELECT seq FROM lifecycle_audit_seal((SELECT link_id FROM link),
                    (SELECT array_agg(row_hash ORDER BY audit_id) FROM written),
                    (SELECT min(audit_id) FROM written), (SELECT max(audit_id) FROM written))""")
    conn.close()


def test_migration_0031_keeps_the_version_2_records_verifiable_and_certified(telco, tmp_path, monkeypatch):
    """A database built by the migrations before 0031, with version-2 records: after it,
    they and the new records verify, and a customer's certificate backs both."""
    from telco_lifecycle.evidence.certificate import build_certificate

    name = f"lifecycle_test_migration_{uuid.uuid4().hex[:8]}"
    url = ensure_database(with_database(telco.url, "postgres"), name)
    every = migrations.migration_files
    try:
        migrations.migration_files = lambda: [p for p in every() if p.name < "0031"]
        conn = connect(url)
        with monkeypatch.context() as before:  # that schema lacks tables today's policy names
            before.setattr(migrations, "check_schema", lambda cur: None)
            migrations.migrate(conn)
        with transaction(conn) as cur:
            cur.execute("INSERT INTO customers (customer_id) SELECT generate_series(1, 3)")
        write_version_2_links(url)
        migrations.migration_files = every
        migrations.migrate(conn)
        assert verify(url) == []
        write_links(url, links=2)
        assert verify(url) == []
        with conn.cursor() as cur:
            cur.execute("SELECT hash_version, count(*) FROM lifecycle_audit GROUP BY 1 ORDER BY 1")
            assert cur.fetchall() == [(2, 6), (3, 6)]
        conn.rollback()
        certificate = build_certificate(conn, 2, out_dir=tmp_path)
        conn.close()
        assert certificate["proof_problems"] == []
        assert [a["hash_version"] for a in certificate["actions"]] == [2, 2, 3, 3]
        assert cli.main(["certificate", "verify", certificate["json"]]) == 0
        with transaction(connect(url)) as cur:
            cur.execute("SET LOCAL session_replication_role = replica")
            cur.execute("UPDATE lifecycle_audit_link SET dag_id = 'other' WHERE seq = 3")
        assert verify(url) == ["link 3's statement (what its records share: action, rule, run, details) was"
                               " changed: it does not give its hash"]
    finally:
        migrations.migration_files = every
        drop_database(with_database(telco.url, "postgres"), name)


# What a version-2 record's hash covered: jsonb_build_array's text (json_build_array's
# is the same, and so was the text joined from the fields, which the writer used last).
BUILT_V2 = ("jsonb_build_array('lifecycle_audit/2', a.audit_id,"
            " to_char(a.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), a.action, a.rule,"
            " a.customer_id, a.table_name, a.row_count, a.as_of, a.dry_run, a.dag_id, a.run_id, a.task_id,"
            " a.try_number, a.details, a.link_id)::text")
BUILT_V3 = ("json_build_array('lifecycle_audit/3', a.audit_id, a.customer_id, a.row_count, a.counts, a.details,"
            " l.statement_hash)::text")
BUILT_STATEMENT = (f"jsonb_build_array('lifecycle_audit_statement/3',"
                   f" {', '.join('l.' + field for field in audit.STATEMENT_FIELDS)})::text")
DETAILS = ['{}', '{"b": 1, "a": [1.50, 1e3, null, true]}', '{"q": "\\"quoted\\" \\\\ ø \\u0001 tab\\t"}',
           '{"tables": {"contacts": 3}, "fiscal_year_ends": [["06-30", null]]}', '{"partition": "cdrs_y2019m07"}']
ODD_RUN = audit.RunContext(run_id='r "1" ø \\ \x01')


def changed_rows(customers: list[int]) -> str:
    """A stand-in for a purge's change: one row per row changed, its customer."""
    return f"SELECT unnest('{{{','.join(map(str, customers))}}}'::bigint[]) AS customer_id"


def test_the_hashed_texts_are_those_the_build_functions_give(telco):
    """A version-3 record's text is joined from its fields, for speed: the very text
    json_build_array gives (quotes, backslashes, non-ASCII and control characters, nulls,
    nested details, counts); its statement's is json_build_array's, which means what
    jsonb_build_array's does; a version-2 record's (verified as it was written) is
    jsonb_build_array's."""
    conn = connect(telco.url)
    with transaction(conn) as cur:
        cur.execute("INSERT INTO customers (customer_id) VALUES (1) ON CONFLICT DO NOTHING")
        audit.record_each(cur, [(1 if i % 2 else None, i, json.loads(text)) for i, text in enumerate(DETAILS)],
                          audit.Action("drop_partition", "accounting", details={"é": '"\\'}), ODD_RUN)
        audit.record_changes(cur, {"contacts": changed_rows([1, 1]), "customers": changed_rows([1])}, {},
                             audit.Action("purge", "crm_master_data"), audit.RunContext())
        cur.execute(f"SELECT {audit.record_text_sql('a', 'l.statement_hash')}, {BUILT_V3},"
                    f" {audit.statement_text_sql('l')}, {BUILT_STATEMENT}"
                    " FROM lifecycle_audit_record a JOIN lifecycle_audit_link l USING (link_id) ORDER BY a.audit_id")
        v3 = cur.fetchall()
        cur.execute("INSERT INTO lifecycle_audit_before_v3 (audit_id, action, rule, customer_id, table_name,"
                    " row_count, dag_id, run_id, details, link_id, hash_version, prev_hash, row_hash)"
                    " SELECT -n, 'purge', 'crm_master_data', n, 'contacts', n, 'cli', %s, d::jsonb, 7, 2, '', ''"
                    " FROM unnest(%s::text[]) WITH ORDINALITY t(d, n)", (ODD_RUN.run_id, DETAILS))
        cur.execute(f"SELECT {audit.v2_text_sql('a')}, {BUILT_V2} FROM lifecycle_audit_before_v3 a WHERE audit_id < 0")
        v2 = cur.fetchall()
        conn.rollback()
    conn.close()
    assert len(v3) == len(DETAILS) + 1 and all(joined == built for joined, built, _, _ in v3)
    assert all(json.loads(text) == json.loads(jsonb) for _, _, text, jsonb in v3)
    assert len(v2) == len(DETAILS) and all(text == built for text, built in v2)


def test_changes_that_touch_nothing_write_nothing(telco):
    """A purge batch whose changes find no row (its customers' rows went meanwhile): no
    record, no link, no ledger line, the head unchanged; the rows per table are zeros."""
    conn = connect(telco.url)
    with transaction(conn) as cur:
        trail = ("SELECT h.seq, (SELECT count(*) FROM lifecycle_audit_link), (SELECT count(*) FROM"
                 " lifecycle_audit_record) FROM lifecycle_audit_head h")
        cur.execute(trail)
        before = cur.fetchone()
        written, changed = audit.record_changes(
            cur, {"contacts": changed_rows([]), "customers": "UPDATE customers t SET email = t.email"
                  " WHERE false RETURNING t.customer_id"}, {}, audit.Action("purge", "crm_master_data"),
            audit.RunContext())
        cur.execute(trail)
        after = cur.fetchone()
        conn.rollback()
    conn.close()
    assert written is None and changed == {"contacts": 0, "customers": 0}
    assert after == before


# The ledger line each record had before migration 0031 (a hold's with its case reference).
OWN_LINE = audit.ledger_line_sql("a", "CASE WHEN a.action = 'place_legal_hold'"
                                      " THEN jsonb_build_object('case_reference', 'SKP-1') ELSE '{}'::jsonb END")


def test_a_statements_ledger_line_gives_each_record_as_its_own_line_did(telco):
    """One ledger line per statement (what its records share once, per record its id,
    hash, customer and rows per table): read back, one entry per record, as the line each
    record had before migration 0031 (replay details and case reference included)."""
    conn = connect(telco.url)
    with transaction(conn) as cur:
        cur.execute("INSERT INTO customers (customer_id) VALUES (1), (2) ON CONFLICT DO NOTHING")
        written = [
            audit.record_changes(cur, {"contacts": changed_rows([1, 1, 2]), "customers": changed_rows([2])}, {},
                                 audit.Action("purge", "crm_master_data", as_of=dt.date(2026, 1, 2)), ODD_RUN)[0],
            *audit.written(audit.record_each(
                cur, [(None, 5, {"partition": "cdrs_y2019m07", "kept_for_legal_hold": 1})],
                audit.Action("drop_partition", "accounting", None, "cdrs"), audit.RunContext())),
            *audit.written([audit.record(cur, audit.Action(
                "place_legal_hold", "legal_hold", 1, "legal_holds", 1, None, False, {"legal_hold_id": 9},
                ledger={"case_reference": "SKP-1"}), audit.RunContext())]),
            *audit.written([audit.record(cur, audit.Action("access_request", None, 1), audit.RunContext())])]
        cur.execute(f"SELECT {OWN_LINE} FROM lifecycle_audit a ORDER BY a.audit_id")
        own_lines = [json.loads(line) for (line,) in cur.fetchall() if line]
        conn.rollback()
    conn.close()
    assert [w.ledger.count("\n") for w in written] == [1, 1, 1, 0]  # an access request is not a ledger action
    entries = [entry for w in written for line in w.ledger.splitlines() for entry in ledger_entries(json.loads(line))]
    assert len(entries) == 4 and entries == own_lines
    assert [e["tables"] for e in entries[:2]] == [{"contacts": 2}, {"contacts": 1, "customers": 1}]


def test_a_transactions_log_sentence_gives_its_totals_apart_from_its_last_action():
    batch = {"records": 3, "customers": 3, "actions": [
        {"action": "purge", "rule": "crm_master_data", "table_name": "contacts", "dry_run": False, "row_count": 5},
        {"action": "skipped_legal_hold", "rule": "crm_master_data", "table_name": None, "dry_run": False,
         "row_count": 0}]}
    assert audit.sentence(batch) == ("rule crm_master_data: purge 5 row(s) of contacts;"
                                     " rule crm_master_data: skipped_legal_hold;"
                                     " in all 3 audit record(s) of 3 customer(s)")
