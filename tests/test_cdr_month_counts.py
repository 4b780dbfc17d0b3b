"""Migrations 0021 and 0030: every CDR month's row count, per held flag, kept exact as rows
come, go and move, so that a month's drop reads its counts instead of counting; the held
customers' rows set aside in cdrs_held as holds are placed, and kept by the drop."""

from __future__ import annotations

import datetime as dt

from retention_helpers import CPH, add_customer

T = dt.datetime


def counts_agree(telco) -> bool:
    """The maintained counts equal count(*) per month and held flag (a month's rows in
    cdrs_default too: released after the month was dropped)."""
    return telco.scalar("""
        SELECT bool_and(coalesce(c.row_count, 0) = coalesce(p.n, 0)) FROM (
            SELECT lifecycle_cdr_month(started_at) AS month, held, count(*) AS n FROM cdrs GROUP BY 1, 2) p
        FULL JOIN cdr_month_counts c USING (month, held)""")


def flags_follow_holds(telco) -> bool:
    """Every CDR is in cdrs_held exactly when its customer is under a hold in force."""
    return telco.scalar("SELECT bool_and(held = lifecycle_on_hold(customer_id)"
                        " AND (tableoid = 'cdrs_held'::regclass) = held) FROM cdrs")


def test_counts_follow_inserts_deletes_and_moves(telco):
    assert counts_agree(telco)  # the seeded rows, counted once by the migration
    add_customer(telco, 100061, None, cdrs=[T(2019, 3, 31, 23, 30), T(2019, 4, 1, 0, 30), T(2019, 4, 2, 12)])
    assert telco.scalar("SELECT count(*) FROM cdrs WHERE customer_id = 100061") == 3
    assert counts_agree(telco)
    telco.execute("UPDATE cdrs SET started_at = started_at - interval '1 day' WHERE customer_id = 100061"
                  " AND started_at = %s", (T(2019, 4, 1, 0, 30, tzinfo=CPH),))  # April -> March
    assert counts_agree(telco)
    telco.execute("DELETE FROM cdrs WHERE customer_id = 100061")
    assert counts_agree(telco)


def test_drop_reads_the_count_and_keeps_held_rows(telco):
    add_customer(telco, 100062, None, cdrs=[T(2018, 5, 3, 10), T(2018, 5, 4, 10)])
    add_customer(telco, 100063, None, cdrs=[T(2018, 5, 5, 10)])
    assert telco.scalar("SELECT count(*) FROM cdrs_y2018m05 WHERE customer_id = 100062") == 2
    telco.execute("INSERT INTO legal_holds (customer_id, case_reference, placed_on)"
                  " VALUES (100062, 'SKP-C', '2018-01-01')")
    # placing the hold set the customer's rows aside: out of the month, into cdrs_held
    assert telco.scalar("SELECT count(*) FROM cdrs_y2018m05 WHERE customer_id = 100062") == 0
    assert telco.scalar("SELECT count(*) FROM cdrs_held WHERE customer_id = 100062") == 2
    assert flags_follow_holds(telco) and counts_agree(telco)
    live_rows = telco.scalar("SELECT count(*) FROM cdrs_y2018m05")
    held_rows = telco.scalar("SELECT count(*) FROM cdrs_held WHERE lifecycle_cdr_month(started_at) = '2018-05-01'")

    total, kept = telco.rows("SELECT total, kept FROM lifecycle_drop_cdr_partition('cdrs_y2018m05')")[0]

    assert (total, kept) == (live_rows + held_rows, held_rows) and kept >= 2
    assert telco.scalar("SELECT to_regclass('cdrs_y2018m05')") is None
    assert telco.scalar("SELECT count(*) FROM cdrs_held WHERE customer_id = 100062") == 2
    assert telco.scalar("SELECT count(*) FROM cdrs WHERE customer_id = 100063") == 0
    assert telco.scalar("SELECT count(*) FROM cdr_month_counts WHERE month = '2018-05-01' AND NOT held") == 0
    assert counts_agree(telco)


def test_the_rows_follow_the_holds_in_force(telco):
    """Placed, ingested under, released: a held customer's CDRs are in cdrs_held exactly
    while a hold is in force; released after their month was dropped, into cdrs_default."""
    add_customer(telco, 100064, None, cdrs=[T(2018, 7, 3, 10), T(2024, 7, 3, 10)])
    telco.execute("INSERT INTO legal_holds (customer_id, case_reference, placed_on) VALUES"
                  " (100064, 'SKP-D', '2018-01-01'), (100064, 'SKP-E', '2018-01-01')")
    telco.execute("INSERT INTO cdrs (customer_id, a_number, b_number, started_at, kind)"
                  " VALUES (100064, '+4511', '+4522', '2024-07-04 10:00+02', 'sms')")  # ingested under the hold
    assert telco.scalar("SELECT count(*) FROM cdrs_held WHERE customer_id = 100064") == 3
    assert flags_follow_holds(telco) and counts_agree(telco)
    telco.rows("SELECT total FROM lifecycle_drop_cdr_partition('cdrs_y2018m07')")

    telco.execute("UPDATE legal_holds SET released_on = '2025-01-01' WHERE case_reference = 'SKP-D'")
    assert telco.scalar("SELECT count(*) FROM cdrs_held WHERE customer_id = 100064") == 3  # SKP-E in force
    telco.execute("UPDATE legal_holds SET released_on = '2025-01-01' WHERE case_reference = 'SKP-E'")

    assert telco.rows("SELECT tableoid::regclass::text FROM cdrs WHERE customer_id = 100064 ORDER BY started_at") == [
        ("cdrs_default",), ("cdrs_y2024m07",), ("cdrs_y2024m07",)]
    assert flags_follow_holds(telco) and counts_agree(telco)


def test_a_month_without_a_count_is_counted_at_its_drop(telco):
    rows = telco.scalar("SELECT count(*) FROM cdrs_y2018m06")
    telco.execute("DELETE FROM cdr_month_counts WHERE month = '2018-06-01'")  # as after a TRUNCATE
    assert telco.rows("SELECT total FROM lifecycle_drop_cdr_partition('cdrs_y2018m06')") == [(rows,)]
