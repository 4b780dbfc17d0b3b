"""Least privilege: the lifecycle acts as `lifecycle_app` (migration 0007), which can do
the lifecycle's work and nothing else. Every refusal the role is for is proved here."""

from __future__ import annotations

import os

import psycopg2
import pytest
from conftest import ANCHOR, LATEST
from retention_helpers import at

from telco_lifecycle.database import ROLE_ENV, connect
from telco_lifecycle.evidence import audit
from telco_lifecycle.policy import load_policy
from telco_lifecycle.rules import legal_holds, retention

ROLE = "lifecycle_app"


@pytest.fixture
def as_app(telco, monkeypatch):
    """The environment the lifecycle runs in: every connection acts as the role."""
    monkeypatch.setenv(ROLE_ENV, ROLE)
    return telco


@pytest.fixture
def app_conn(as_app):
    conn = connect(as_app.url)
    yield conn
    conn.close()


def test_connections_act_as_the_role(app_conn):
    with app_conn.cursor() as cur:
        cur.execute("SELECT current_user, current_setting('lock_timeout'), current_setting('statement_timeout')")
        assert cur.fetchone() == (ROLE, "10s", "15min")


def test_update_grants_are_exactly_the_columns_the_lifecycle_updates(telco):
    policy = load_policy()
    governed = {item.table for rule in policy.rules for item in rule.data}
    for table in governed:
        for privilege in ("SELECT", "DELETE"):
            assert telco.scalar("SELECT has_table_privilege(%s, %s, %s)", (ROLE, table, privilege)), (table, privilege)
        for privilege in ("INSERT", "TRUNCATE", "REFERENCES", "TRIGGER"):
            assert not telco.scalar("SELECT has_table_privilege(%s, %s, %s)", (ROLE, table, privilege))
    updated = {(item.table, column) for rule in policy.rules for item in rule.data if item.action == "anonymise"
               for column in [*item.columns, *item.purged_marks]}
    updated |= {(item.table, item.own_clock) for rule in policy.rules for item in rule.data if item.own_clock}
    updated |= {("customers", "relationship_ended_on"),  # offboarding, customer_return
                ("legal_holds", "released_on"), ("legal_holds", "released_by")}  # releasing a hold
    granted = set(telco.rows("SELECT table_name::text, column_name::text FROM information_schema.column_privileges"
                             " WHERE grantee = %s AND privilege_type = 'UPDATE'", (ROLE,)))
    assert granted == updated


def test_the_dags_work_as_the_role(as_app, run_dag):
    """Offboarding, a legal hold placed and released, and purges that delete, anonymise
    and drop CDR months."""
    customer = as_app.scalar("SELECT min(customer_id) FROM customers WHERE relationship_ended_on IS NULL")
    dag_run, _ = run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "test"}, at(ANCHOR))
    assert dag_run.state == "success"
    dag_run, values = run_dag("crm_retention", {}, at(ANCHOR))
    assert dag_run.state == "success" and sum(values["purge_due"]["removed"].values()) > 0
    conn = connect(as_app.url)
    try:
        for action in ("place", "release"):  # what the legal_hold DAG calls
            legal_holds.apply(conn, legal_holds.HoldRequest(customer, action, "SKP-1", "test", ANCHOR),
                              audit.RunContext())
        result = retention.purge(conn, "accounting", LATEST, audit.RunContext())
    finally:
        conn.close()
    assert result["partitions_dropped"] and sum(result["removed"].values()) > 0
    assert as_app.scalar("SELECT count(*) FROM lifecycle_audit_chain_breaks") == 0


REFUSED = {
    "update an audit row": "UPDATE lifecycle_audit_record SET row_count = 0",
    "update an audit row through the view": "UPDATE lifecycle_audit SET row_count = 0",
    "delete an audit row": "DELETE FROM lifecycle_audit_record",
    "truncate the audit trail": "TRUNCATE lifecycle_audit_record",
    "write an audit row of the old format": "INSERT INTO lifecycle_audit_before_v3"
                                            " SELECT * FROM lifecycle_audit_before_v3",
    "write an audit chain link": "INSERT INTO lifecycle_audit_link SELECT * FROM lifecycle_audit_link",
    "change what a link's records share": "UPDATE lifecycle_audit_link SET rule = 'x'",
    "move the audit chain head": "UPDATE lifecycle_audit_head SET seq = 0",
    "drop a table": "DROP TABLE invoices",
    "alter a table": "ALTER TABLE customers ADD COLUMN note text",
    "disable the audit trigger": "ALTER TABLE lifecycle_audit_record DISABLE TRIGGER"
                                 " lifecycle_audit_record_no_update_delete",
    "detach a CDR month": "ALTER TABLE cdrs_live DETACH PARTITION cdrs_y2020m01",
    "truncate a governed table": "TRUNCATE payments",
    "create a table": "CREATE TABLE stash (x text)",
    "insert a customer": "INSERT INTO customers (customer_id) VALUES (999999)",
    "change an invoice": "UPDATE invoices SET amount_dkk = 0",
    "change a customer id": "UPDATE customers SET customer_id = customer_id + 1000000",
    "read the migration history": "SELECT * FROM schema_migrations",
    "read another table": "SELECT * FROM payroll",
    "create partitions": "SELECT lifecycle_ensure_cdr_partitions('2040-01-01')",
}


@pytest.mark.parametrize("sql", REFUSED.values(), ids=REFUSED.keys())
def test_refusals(telco, app_conn, sql):
    telco.execute("CREATE TABLE IF NOT EXISTS payroll (employee text, salary numeric)")  # not the lifecycle's
    before = telco.fingerprint(exclude=())
    with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="permission denied|must be owner"):
        with app_conn.cursor() as cur:
            cur.execute(sql)
    app_conn.rollback()
    assert telco.fingerprint(exclude=()) == before


def test_the_partition_drop_cannot_be_pointed_elsewhere(app_conn):
    """The owner's function takes only month partitions of cdrs, whatever the caller's search_path."""
    with app_conn.cursor() as cur:
        cur.execute("SET search_path = pg_temp, public")
        with pytest.raises(psycopg2.errors.RaiseException, match="not a month partition of cdrs"):
            cur.execute("SELECT * FROM lifecycle_drop_cdr_partition('invoices')")
    app_conn.rollback()


def test_grant_login_gives_the_dags_connection_the_role_and_nothing_more(telco, monkeypatch):
    """`lifecycle grant-login` (docker-compose's airflow-init runs it as the owner) turns the
    telco_db connection's login into a member of the role; run again, it changes nothing."""
    from urllib.parse import urlsplit, urlunsplit

    from telco_lifecycle import cli

    login = f"lifecycle_worker_{os.getpid()}"  # roles are cluster-wide: unique per test run
    reader = f"lifecycle_reader_{os.getpid()}"
    owner = urlsplit(telco.url)
    worker_url = urlunsplit(owner._replace(netloc=f"{login}:s3cret@{owner.hostname}:{owner.port}"))
    monkeypatch.setenv("AIRFLOW_CONN_TELCO_DB", worker_url)
    try:
        for _ in range(2):
            assert cli.main(["grant-login", "--database-url", telco.url]) == 0
        assert telco.rows("SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, pg_has_role(rolname, %s, 'MEMBER')"
                          " FROM pg_roles WHERE rolname = %s", (ROLE, login)) == [(True, False, False, False, True)]
        worker = connect(worker_url)  # the machine's test server trusts loopback; the password is set all the same
        with worker.cursor() as cur:
            cur.execute("SELECT current_user, count(*) FROM customers")
            assert cur.fetchone()[0] == login
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("UPDATE lifecycle_audit SET row_count = 0")
        worker.close()
        monkeypatch.setenv("AIRFLOW_CONN_TELCO_DB", telco.url)  # the DAGs' connection is the owner itself
        with pytest.raises(SystemExit, match="owner"):
            cli.main(["grant-login", "--database-url", telco.url])
        # An existing login that can read more than the group grants is not reused.
        telco.execute(f'CREATE ROLE "{reader}" LOGIN IN ROLE pg_read_all_data')
        monkeypatch.setenv("AIRFLOW_CONN_TELCO_DB", worker_url.replace(login, reader))
        with pytest.raises(SystemExit, match="may do more than lifecycle_app"):
            cli.main(["grant-login", "--database-url", telco.url])
        assert telco.scalar("SELECT pg_has_role(%s, %s, 'MEMBER')", (reader, ROLE)) is False
    finally:
        telco.execute(f'DROP ROLE IF EXISTS "{login}"')
        telco.execute(f'DROP ROLE IF EXISTS "{reader}"')
