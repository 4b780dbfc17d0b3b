"""Migration 0021: every CDR month's row count kept exact as rows come, go and move, so
that a month's drop reads its count instead of counting; held rows kept by the drop."""

from __future__ import annotations

import datetime as dt

from retention_helpers import CPH, add_customer

T = dt.datetime


def counts_agree(telco) -> bool:
    """The maintained counts equal count(*) per month partition."""
    return telco.scalar("""
        SELECT bool_and(coalesce(c.row_count, 0) = coalesce(p.n, 0)) FROM (
            SELECT lifecycle_cdr_month(started_at) AS month, count(*) AS n FROM cdrs
            WHERE tableoid <> 'cdrs_default'::regclass GROUP BY 1) p
        FULL JOIN cdr_month_counts c USING (month)""")


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
    telco.execute("INSERT INTO legal_holds (customer_id, case_reference, placed_on)"
                  " VALUES (100062, 'SKP-C', '2018-01-01')")
    month_rows = telco.scalar("SELECT count(*) FROM cdrs_y2018m05")
    held_rows = telco.scalar("SELECT count(*) FROM cdrs_y2018m05 p WHERE lifecycle_on_hold(p.customer_id)")
    # a count that no longer matched the month would show in the drop's total
    assert telco.scalar("SELECT row_count FROM cdr_month_counts WHERE month = '2018-05-01'") == month_rows

    total, kept = telco.rows("SELECT total, kept FROM lifecycle_drop_cdr_partition('cdrs_y2018m05')")[0]

    assert (total, kept) == (month_rows, held_rows) and kept >= 2
    assert telco.scalar("SELECT to_regclass('cdrs_y2018m05')") is None
    assert telco.scalar("SELECT count(*) FROM cdrs_default WHERE customer_id = 100062") == 2
    assert telco.scalar("SELECT count(*) FROM cdrs WHERE customer_id = 100063") == 0
    assert telco.scalar("SELECT count(*) FROM cdr_month_counts WHERE month = '2018-05-01'") == 0
    assert counts_agree(telco)


def test_a_month_without_a_count_is_counted_at_its_drop(telco):
    rows = telco.scalar("SELECT count(*) FROM cdrs_y2018m06")
    telco.execute("DELETE FROM cdr_month_counts WHERE month = '2018-06-01'")  # as after a TRUNCATE
    assert telco.rows("SELECT total FROM lifecycle_drop_cdr_partition('cdrs_y2018m06')") == [(rows,)]
