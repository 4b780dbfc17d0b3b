"""Migration 0026: each accounting unit's latest dates, per unit and per CDR month, kept as
the rows come and change, so that the accounting rule looks a unit up instead of searching
every CDR month for it. Never earlier than the rows say (a unit is never let go early);
a unit's rows go with its invoice, a month's with its drop."""

from __future__ import annotations

import datetime as dt

from retention_helpers import CPH, add_customer, at
from test_retention_accounting import add_invoice

D, T = dt.date, dt.datetime

# The units' latest dates as the rows give them, and as kept; per CDR month partition the
# same over the units billed in it (held rows of a dropped month, in cdrs_held or, once
# released, cdrs_default, raise their month's row only when their unit changes again).
TRUTH = """
    WITH members AS (
        SELECT invoice_id, issued_on AS latest_invoices, fiscal_year AS latest_fiscal_year,
               NULL::date AS latest_payments, NULL::timestamptz AS latest_cdrs FROM invoices
        UNION ALL SELECT invoice_id, NULL, NULL, paid_on, NULL FROM payments
        UNION ALL SELECT invoice_id, NULL, NULL, NULL, started_at FROM cdrs WHERE invoice_id IS NOT NULL)
    SELECT invoice_id, max(latest_cdrs) AS latest_cdrs, max(latest_payments) AS latest_payments,
           max(latest_invoices) AS latest_invoices, max(latest_fiscal_year) AS latest_fiscal_year
    FROM members GROUP BY invoice_id"""
KEPT = ("SELECT invoice_id, latest_cdrs, latest_payments, latest_invoices, latest_fiscal_year"
        " FROM accounting_units")
MONTH_TRUTH = f"""
    SELECT lifecycle_cdr_month(c.started_at) AS month, max(t.latest_cdrs), max(t.latest_payments),
           max(t.latest_invoices), max(t.latest_fiscal_year)
    FROM (SELECT DISTINCT invoice_id, started_at FROM cdrs
          WHERE invoice_id IS NOT NULL
            AND to_regclass(to_char(lifecycle_cdr_month(started_at), '"cdrs_y"YYYY"m"MM')) IS NOT NULL) c
    JOIN ({TRUTH}) t USING (invoice_id)
    GROUP BY 1"""
MONTH_KEPT = "SELECT month, latest_cdrs, latest_payments, latest_invoices, latest_fiscal_year FROM cdr_month_units"


def kept_equals_truth(telco) -> bool:
    return (set(telco.rows(KEPT)) == set(telco.rows(TRUTH))
            and set(telco.rows(MONTH_KEPT)) == set(telco.rows(MONTH_TRUTH)))


def test_the_latest_dates_follow_new_and_changed_rows(telco):
    assert kept_equals_truth(telco)  # the seeded rows, taken in once by the migration
    add_customer(telco, 100071, None)
    invoice = add_invoice(telco, 100071, D(2019, 12, 31), 2019, paid_on=D(2020, 1, 10),
                          cdrs=[T(2019, 11, 20, 12), T(2019, 12, 3, 12)])
    assert kept_equals_truth(telco)
    telco.execute("INSERT INTO cdrs (customer_id, a_number, b_number, started_at, kind)"
                  " VALUES (100071, '+4511111111', '+4522222222', %s, 'call')", (T(2019, 10, 2, 9, tzinfo=CPH),))
    telco.execute("UPDATE cdrs SET invoice_id = %s WHERE customer_id = 100071 AND invoice_id IS NULL",
                  (invoice,))  # billed later: October now holds the unit too
    telco.execute("INSERT INTO payments (invoice_id, paid_on, amount_dkk) VALUES (%s, '2020-03-01', 5)", (invoice,))
    telco.execute("UPDATE invoices SET fiscal_year = 2020 WHERE invoice_id = %s", (invoice,))
    assert kept_equals_truth(telco)
    assert telco.scalar("SELECT latest_payments FROM cdr_month_units WHERE month = '2019-10-01'") >= D(2020, 3, 1)


def test_a_row_deleted_alone_never_makes_a_unit_due_earlier(telco):
    """The billing deletes the latest payment of a unit: the unit is kept as long as that
    payment would have kept it (later, never earlier)."""
    add_customer(telco, 100072, None)
    invoice = add_invoice(telco, 100072, D(2019, 12, 31), 2019, paid_on=D(2021, 2, 1), cdrs=[T(2019, 12, 3, 12)])
    telco.execute("DELETE FROM payments WHERE invoice_id = %s", (invoice,))
    kept = telco.scalar("SELECT latest_payments FROM accounting_units WHERE invoice_id = %s", (invoice,))
    assert kept == D(2021, 2, 1)
    assert telco.scalar("SELECT latest_payments FROM cdr_month_units WHERE month = '2019-12-01'") >= D(2021, 2, 1)


def test_a_purged_unit_and_a_dropped_month_leave_no_dates_behind(telco, run_dag):
    dag_run, xcom = run_dag("accounting_retention", {}, at(D(2026, 1, 1)))
    assert dag_run.state == "success" and xcom["verify_retention"]["verification"] == "passed"
    summary = xcom["verify_retention"]
    assert summary["partitions_dropped"]
    assert not telco.scalar("SELECT count(*) FROM accounting_units u"
                            " WHERE NOT EXISTS (SELECT 1 FROM invoices i WHERE i.invoice_id = u.invoice_id)")
    assert not telco.scalar("SELECT count(*) FROM accounting_unit_months m"
                            " WHERE NOT EXISTS (SELECT 1 FROM invoices i WHERE i.invoice_id = m.invoice_id)")
    months = [D(int(name[6:10]), int(name[11:13]), 1) for name in summary["partitions_dropped"]]
    assert not telco.scalar("SELECT count(*) FROM cdr_month_units WHERE month = ANY (%s)", (months,))
    # only the units kept for a hold still name a dropped month (their CDRs are in cdrs_held)
    assert not telco.scalar("SELECT count(*) FROM accounting_unit_months m JOIN invoices i USING (invoice_id)"
                            " WHERE m.month = ANY (%s) AND NOT lifecycle_on_hold(i.customer_id)", (months,))
    assert kept_equals_truth(telco)  # what is left: nothing was deleted alone


def test_a_unit_without_kept_dates_is_kept(telco, run_dag):
    """Rows that came round the triggers (the owner, replica mode) leave a unit without
    kept dates: the purge keeps it whole rather than judge it by its rows' own dates."""
    add_customer(telco, 100073, None)
    invoice = add_invoice(telco, 100073, D(2019, 12, 31), 2019, paid_on=D(2021, 2, 1), cdrs=[T(2019, 12, 3, 12)])
    telco.execute("DELETE FROM accounting_units WHERE invoice_id = %s", (invoice,))
    dag_run, _ = run_dag("accounting_retention", {}, at(D(2026, 1, 1)))
    assert dag_run.state == "success"
    assert telco.scalar("SELECT count(*) FROM invoices WHERE invoice_id = %s", (invoice,)) == 1
    assert telco.scalar("SELECT count(*) FROM payments WHERE invoice_id = %s", (invoice,)) == 1


def test_a_month_is_written_through_cdrs_only(telco):
    """Migration 0028: a statement on a month partition itself would bypass the triggers
    that keep the month's count and units; it is refused, in every month, new ones too."""
    import psycopg2
    import pytest

    add_customer(telco, 100074, None)
    row = ("(customer_id, a_number, b_number, started_at, kind) VALUES"
           " (100074, '+4511111111', '+4522222222', '2019-03-05 12:00+01', 'call')")
    for statement in (f"INSERT INTO cdrs_y2019m03 {row}", "UPDATE cdrs_y2019m03 SET duration_s = 1",
                      "DELETE FROM cdrs_y2019m03", "TRUNCATE cdrs_y2019m03"):
        with pytest.raises(psycopg2.errors.RaiseException, match="written through cdrs only"):
            telco.execute(statement)
    telco.execute(f"INSERT INTO cdrs {row}")  # routed to the month, counted, as always
    assert telco.scalar("SELECT count(*) FROM cdrs_y2019m03 WHERE customer_id = 100074") == 1
    assert kept_equals_truth(telco)
    newest = telco.scalar("SELECT max(c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                          " WHERE i.inhparent = 'cdrs_live'::regclass AND c.relname ~ '^cdrs_y'")
    # months up to December of the year after the newest: how many depends on today's month
    assert telco.scalar("SELECT lifecycle_ensure_cdr_partitions(%s)", (D(int(newest[6:10]) + 1, 12, 1),)) >= 12
    unguarded = telco.scalar("""
        SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'cdrs_live'::regclass AND c.relname ~ '^cdrs_y' AND NOT EXISTS (
            SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'cdrs_month_written_through_cdrs')""")
    assert unguarded == 0


def test_a_month_whose_billed_cdrs_have_no_unit_dates_is_kept(telco, run_dag):
    """A month whose units' dates are missing (its rows came round the triggers, as the
    owner can still make them) is not judged droppable for want of them: it is kept."""
    add_customer(telco, 100075, None)
    billed_late = add_invoice(telco, 100075, D(2020, 1, 15), 2020, paid_on=D(2020, 1, 20),
                              cdrs=[T(2019, 12, 20, 12)])  # a fiscal-2020 unit billed in December 2019
    telco.execute("DELETE FROM cdr_month_units WHERE month = '2019-12-01'")

    dag_run, _ = run_dag("accounting_retention", {}, at(D(2025, 6, 1)))  # fiscal 2019 is due, 2020 is not

    assert dag_run.state == "success"
    assert telco.scalar("SELECT to_regclass('cdrs_y2019m12') IS NOT NULL")
    assert telco.scalar("SELECT count(*) FROM cdrs WHERE invoice_id = %s", (billed_late,)) == 1
