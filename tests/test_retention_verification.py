"""retention_verification: the GX checks catch what is overdue and a purge pointed at the
wrong date, name rule, table and count, and leave Data Docs as evidence."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from retention_helpers import at

from telco_lifecycle.database import connect
from telco_lifecycle.evidence import audit
from telco_lifecycle.evidence.retention_checks import snapshot, verify
from telco_lifecycle.evidence.verification import VerificationFailed
from telco_lifecycle.policy import load_policy
from telco_lifecycle.rules.retention import plan, purge
from telco_lifecycle.settings import reports_dir

AS_OF = dt.date(2026, 6, 15)
RUN = audit.RunContext("test", "test_run", "purge")
SCHEDULED = [rule.id for rule in load_policy().rules if rule.trigger == "schedule"]


def with_period(rule_id: str, years: int):
    """The policy with one rule pointed at the wrong date."""
    policy = load_policy()
    rules = tuple(r.model_copy(update={"period_years": years}) if r.id == rule_id else r for r in policy.rules)
    return policy.model_copy(update={"rules": rules})


def test_verification_dag_fails_while_overdue_data_remains_and_passes_after_the_purges(telco, run_dag):
    with pytest.raises(VerificationFailed) as failed:
        verify(telco.url, AS_OF, "before_purges")
    named = {(f.rule, f.table) for f in failed.value.failures}
    assert {("crm_master_data", "customers"), ("archived_contracts", "archived_contracts"),
            ("accounting", "invoices"), ("accounting", "cdrs")} <= named
    assert all(f.offending_rows > 0 for f in failed.value.failures)
    assert "offending row(s)" in str(failed.value)
    dag_run, _ = run_dag("retention_verification", {"as_of": AS_OF.isoformat()})
    assert dag_run.state == "failed"

    conn = connect(telco.url)
    for rule_id in SCHEDULED:
        purge(conn, rule_id, AS_OF, RUN)
    conn.close()
    started = time.time()
    dag_run, xcom = run_dag("retention_verification", {}, at(AS_OF))

    assert dag_run.state == "success"
    assert xcom["verify_all_rules"]["verification"] == "passed" and xcom["verify_all_rules"]["checks"] > 10
    docs = reports_dir() / "data_docs"
    assert (docs / "index.html").stat().st_mtime >= started
    assert [page for page in (docs / "validations").rglob("*.html") if page.stat().st_mtime >= started]


@pytest.mark.parametrize("years, broken_check", [
    (4, "not yet due"),          # too early: deletes contracts that must still be kept
    (6, "past its deadline"),    # too late: keeps contracts that are due
])
def test_purge_pointed_at_the_wrong_date_is_caught(telco, years, broken_check):
    conn = connect(telco.url)
    rule = "archived_contracts"
    due = plan(conn, rule, AS_OF)["due"]
    before = snapshot(conn, rule, AS_OF)
    removed = purge(conn, rule, AS_OF, RUN, policy=with_period(rule, years))["removed"]
    conn.close()
    assert removed != due

    with pytest.raises(VerificationFailed) as failed:
        verify(telco.url, AS_OF, f"broken_{years}", rule_ids=[rule],
               expected={"rule": rule, "before": before, "due": due})

    failures = failed.value.failures
    assert {f.table for f in failures} == {"archived_contracts"} and {f.rule for f in failures} == {rule}
    wrong = abs(removed["archived_contracts"] - due["archived_contracts"])
    assert any(broken_check in f.name and f.offending_rows == wrong for f in failures), failed.value
