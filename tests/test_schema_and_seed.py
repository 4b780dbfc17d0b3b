"""Migrations are idempotent and complete; the demo data is deterministic and covers every table."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from conftest import SERVER

from telco_lifecycle.database import connect
from telco_lifecycle.local.env import drop_database, ensure_database
from telco_lifecycle.local.seed import SEEDED_TABLES, seed
from telco_lifecycle.migrations import migrate


@pytest.fixture
def empty_db():
    name = f"lifecycle_test_empty_{uuid.uuid4().hex[:8]}"
    conn = connect(ensure_database(SERVER, name))
    yield conn
    conn.close()
    drop_database(SERVER, name)


def test_migrate_is_idempotent_and_creates_partitions(empty_db):
    assert len(migrate(empty_db)) >= 3
    assert migrate(empty_db) == []
    with empty_db.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'cdrs_live'::regclass")
        partitions = cur.fetchone()[0]
        # every CDR from 2015-01-01 up to two years ahead has a month partition
        cur.execute("INSERT INTO customers (customer_id) VALUES (1)")
        ahead = dt.date.today().replace(day=1) + dt.timedelta(days=700)
        for moment in (dt.datetime(2015, 1, 1, 0, 0), dt.datetime(ahead.year, ahead.month, 1, 12, 0)):
            cur.execute("INSERT INTO cdrs (customer_id, a_number, b_number, started_at, kind)"
                        " VALUES (1, '+4530000000', '+4540000000', %s::timestamp AT TIME ZONE 'Europe/Copenhagen',"
                        " 'call') RETURNING tableoid::regclass::text", (moment,))
            assert cur.fetchone()[0] == f"cdrs_y{moment:%Y}m{moment:%m}"
    empty_db.rollback()
    assert partitions > 12 * 12


def test_cdr_partitions_follow_copenhagen_months(empty_db):
    migrate(empty_db)
    with empty_db.cursor() as cur:
        cur.execute("INSERT INTO customers (customer_id) VALUES (1)")
        # 00:30 on 1 January in Copenhagen is still 31 December in UTC: it is January's row
        cur.execute("INSERT INTO cdrs (customer_id, a_number, b_number, started_at, kind)"
                    " VALUES (1, '+4530000000', '+4540000000', '2025-01-01 00:30 Europe/Copenhagen', 'sms')"
                    " RETURNING tableoid::regclass::text")
        assert cur.fetchone()[0] == "cdrs_y2025m01"
    empty_db.rollback()


def test_seed_is_deterministic_and_fills_every_table(empty_db):
    migrate(empty_db)
    counts = seed(empty_db, 50, seed=3, anchor=dt.date(2026, 1, 15), cdrs_per_customer=5)
    assert set(counts) == set(SEEDED_TABLES)
    assert all(counts[t] > 0 for t in SEEDED_TABLES), counts
    with empty_db.cursor() as cur:
        cur.execute("SELECT md5(string_agg(c::text, '|' ORDER BY customer_id)) FROM customers c")
        first = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM customers WHERE cvr !~ '^[0-9]{8}$'")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(DISTINCT kind) FROM cdrs")
        assert cur.fetchone()[0] == 4
        cur.execute("SELECT count(*) FROM pbx_configs p JOIN customers c USING (customer_id)"
                    " WHERE c.relationship_ended_on IS NOT NULL")
        assert cur.fetchone()[0] == 0, "ended customers were offboarded: no configuration left"
    empty_db.rollback()
    with pytest.raises(RuntimeError, match="already holds customers"):
        seed(empty_db, 50, seed=3, anchor=dt.date(2026, 1, 15), cdrs_per_customer=5)

    other = f"lifecycle_test_empty_{uuid.uuid4().hex[:8]}"
    conn = connect(ensure_database(SERVER, other))
    try:
        migrate(conn)
        seed(conn, 50, seed=3, anchor=dt.date(2026, 1, 15), cdrs_per_customer=5)
        with conn.cursor() as cur:
            cur.execute("SELECT md5(string_agg(c::text, '|' ORDER BY customer_id)) FROM customers c")
            assert cur.fetchone()[0] == first
    finally:
        conn.close()
        drop_database(SERVER, other)


def test_embedded_server_refuses_a_port_in_use_clearly(tmp_path):
    """A second checkout's embedded server cannot take the port of a running one: a clear error."""
    import socket

    import pytest

    from telco_lifecycle.local.embedded import PortInUse, ensure_embedded_server

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse, match=f"127.0.0.1:{port} is in use.*LIFECYCLE_EMBEDDED_PORT"):
            ensure_embedded_server(tmp_path / "lifecycle", port=port)


def test_embedded_server_of_another_checkout_is_refused_with_its_owner(tmp_path):
    """`lifecycle env` in checkout B does not use checkout A's server on B's port: it names A."""
    import pytest

    from telco_lifecycle.local.components import free_port
    from telco_lifecycle.local.embedded import PortInUse, checkout_port, ensure_embedded_server, stop_embedded_server

    first, second = tmp_path / "a" / ".lifecycle", tmp_path / "b" / ".lifecycle"
    assert checkout_port(first) != checkout_port(second)
    port = free_port()
    url = ensure_embedded_server(first, port=port)
    try:
        assert ensure_embedded_server(first) == url  # the running server's own port, found again
        with pytest.raises(PortInUse, match=f"in use by the server of {first.resolve() / 'pgdata'}"):
            ensure_embedded_server(second, port=port)
    finally:
        stop_embedded_server(first)
