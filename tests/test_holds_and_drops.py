"""A CDR month drop and a legal-hold placement serialise (migration 0012): the drop waits
for a hold being placed and keeps that customer's CDRs; the database function itself
refuses a month not wholly past its accounting deadline as of its own today."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest
from conftest import LATEST
from retention_helpers import cdr_partitions

from telco_lifecycle.database import connect

EXPIRED_MONTH = "cdrs_y2020m03"  # FY 2020: due since 2026-01-01


def drop(url: str, partition: str) -> tuple[int, int]:
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT total, kept FROM lifecycle_drop_cdr_partition(%s)", (partition,))
            result = cur.fetchone()
        conn.commit()
        return result
    finally:
        conn.close()


def test_a_hold_placed_while_a_month_is_dropped_keeps_the_customers_cdrs(telco):
    customer, rows = telco.rows(f"SELECT customer_id, count(*) FROM {EXPIRED_MONTH}"
                                " WHERE NOT lifecycle_on_hold(customer_id) GROUP BY 1 ORDER BY 2 DESC LIMIT 1")[0]
    placer = connect(telco.url)  # another system places a hold, and has not committed yet
    with placer.cursor() as cur:
        cur.execute("INSERT INTO legal_holds (customer_id, case_reference, placed_on) VALUES (%s, 'RACE-1', %s)",
                    (customer, LATEST))
    with ThreadPoolExecutor(1) as pool:
        dropping = pool.submit(drop, telco.url, EXPIRED_MONTH)
        deadline = time.monotonic() + 30
        while not telco.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                               " AND wait_event = 'advisory'"):
            assert not dropping.done(), dropping.result()  # the drop did not wait for the hold
            assert time.monotonic() < deadline
            time.sleep(0.05)
        placer.commit()
        total, kept = dropping.result(timeout=60)
    placer.close()
    assert kept >= rows and total > kept
    assert EXPIRED_MONTH not in cdr_partitions(telco)
    assert telco.scalar("SELECT count(*) FROM cdrs WHERE customer_id = %s AND started_at >= '2020-03-01'"
                        " AND started_at < '2020-04-01'", (customer,)) == rows


def test_the_drop_refuses_a_month_not_past_its_deadline(telco):
    month = f"cdrs_y{LATEST.year}m01"  # this fiscal year: kept for years yet
    with pytest.raises(psycopg2.errors.RaiseException, match=f"{LATEST.year}-01 is not wholly past"):
        drop(telco.url, month)
    with pytest.raises(psycopg2.errors.RaiseException, match="2021-01 is not wholly past"):
        drop(telco.url, "cdrs_y2021m01")  # FY 2021: due on 2027-01-01
    assert {month, "cdrs_y2021m01"} <= set(cdr_partitions(telco))


def test_the_drop_refuses_a_snapshot_that_cannot_see_new_holds(telco):
    conn = connect(telco.url)
    conn.set_session(isolation_level="REPEATABLE READ")
    with pytest.raises(psycopg2.errors.RaiseException, match="needs READ COMMITTED"), conn.cursor() as cur:
        cur.execute("SELECT * FROM lifecycle_drop_cdr_partition(%s)", (EXPIRED_MONTH,))
    conn.close()
    assert EXPIRED_MONTH in cdr_partitions(telco)
