"""directory_118_export through dag.test(): the customers' wishes (a number opted in or out,
the whole company opted out), active customers only."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from pathlib import Path

import pytest
from conftest import ANCHOR

RUN_DATE = dt.datetime(2026, 6, 15, 12, tzinfo=dt.UTC)


def test_export_lists_only_main_numbers_of_active_customers_not_opted_out(telco, run_dag):
    # a customer that ends the day after as_of is still listed; one ending on as_of is not
    telco.execute("""INSERT INTO customers (customer_id, company_name, relationship_ended_on) VALUES
                     (100001, 'Ends tomorrow ApS', %(next)s), (100002, 'Ends today ApS', %(today)s)""",
                  {"next": ANCHOR + dt.timedelta(days=1), "today": ANCHOR})
    telco.execute("""INSERT INTO phone_numbers (number, customer_id, kind) VALUES
                     ('+4599000001', 100001, 'main'), ('+4599000002', 100002, 'main')""")
    # wishes: a company unlisted altogether, a mobile listed on request, a main number unlisted
    telco.execute("""INSERT INTO customers (customer_id, company_name, directory_opt_out) VALUES
                     (100003, 'Unlisted ApS', true), (100004, 'Mobile ApS', DEFAULT)""")
    telco.execute("""INSERT INTO phone_numbers (number, customer_id, kind, directory_opt_in, directory_opt_out) VALUES
                     ('+4599000003', 100003, 'main', true, false), ('+4599000004', 100004, 'mobile', true, false),
                     ('+4599000005', 100004, 'main', false, true), ('+4599000006', 100004, 'landline', false, false)""")

    dag_run, xcom = run_dag("directory_118_export", {"as_of": ANCHOR.isoformat()}, RUN_DATE)

    assert dag_run.state == "success"
    result = xcom["write_export"]
    path = Path(result["file"])
    assert path.name == f"directory_118_{ANCHOR}.csv"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == result["sha256"]
    with path.open(encoding="utf-8") as f:
        listed = list(csv.DictReader(f))
    numbers = {row["number"] for row in listed}
    expected = {n for (n,) in telco.rows("""
        SELECT p.number FROM phone_numbers p JOIN customers c USING (customer_id)
        WHERE (p.kind = 'main' OR p.directory_opt_in) AND NOT p.directory_opt_out AND NOT c.directory_opt_out
          AND (c.relationship_ended_on IS NULL OR c.relationship_ended_on > %s)""", (ANCHOR,))}
    assert numbers == expected and len(listed) == len(expected) == result["rows"] > 0
    assert "+4599000001" in numbers and "+4599000002" not in numbers
    assert "+4599000004" in numbers and not numbers & {"+4599000003", "+4599000005", "+4599000006"}
    kinds = dict(telco.rows("SELECT number, kind FROM phone_numbers WHERE NOT directory_opt_in"))
    assert {kinds[n] for n in numbers if n in kinds} == {"main"}
    opted_out = {n for (n,) in telco.rows("SELECT number FROM phone_numbers WHERE directory_opt_out")}
    assert opted_out and not numbers & opted_out
    ended = {n for (n,) in telco.rows("""SELECT p.number FROM phone_numbers p JOIN customers c USING (customer_id)
                                         WHERE c.relationship_ended_on <= %s""", (ANCHOR,))}
    assert ended and not numbers & ended
    assert result["checks"] == 6
    assert telco.scalar("SELECT row_count FROM lifecycle_audit WHERE action = 'directory_export'") == len(listed)


def test_verification_catches_a_mobile_number(telco):
    """The GX checks are independent of the export query: a query that lets a mobile through fails."""
    from telco_lifecycle.evidence.verification import VerificationFailed, run_checks
    from telco_lifecycle.subjects.directory_118 import verification_checks

    leaky = "SELECT number FROM phone_numbers WHERE kind IN ('main', 'mobile')"
    with pytest.raises(VerificationFailed, match="only main numbers and numbers opted in"):
        run_checks(telco.url, "directory_leak", verification_checks(leaky, ANCHOR))


def test_future_as_of_is_refused(telco, run_dag):
    dag_run, _ = run_dag("directory_118_export", {"as_of": "2999-01-01"}, RUN_DATE)
    assert dag_run.state == "failed"
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit WHERE action = 'directory_export'") == 0


def test_malformed_as_of_is_rejected(telco, run_dag):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match="as_of"):
        run_dag("directory_118_export", {"as_of": "2026-02-30"}, RUN_DATE)
