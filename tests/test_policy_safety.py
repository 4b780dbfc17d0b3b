"""Hostile policy files: every table and column the policy names is a plain identifier
(checked at load, naming the file, line and reason) that exists in the live schema
(checked at migrate and at every DAG run), and a kept `where` is a structured condition.
A refused policy runs no statement."""

from __future__ import annotations

import pytest
from test_policy import broken_copy

from telco_lifecycle.database import connect
from telco_lifecycle.migrations import migrate
from telco_lifecycle.policy import PolicyError, check_schema, load_policy, schema_problems

HOSTILE = {
    # the injection: held CDRs deleted while the log said they were skipped
    "dated_by expression": ("dated_by: started_at", 'dated_by: "started_at IS NOT NULL OR started_at"', "dated_by"),
    "dated_by through a table it does not reach": ("dated_by: paid_on",
                                                   "dated_by: customers.relationship_ended_on", "dated_by"),
    "cleared column expression": ("columns: [company_name, cvr, address, email, phone]",
                                  'columns: [company_name, "cvr = NULL, relationship_ended_on"]', "columns"),
    "kept column expression": ("crm_purged_on: Records", '"crm_purged_on = now(), cvr": Records', "kept_columns"),
    "free SQL where": ("where: {column: role, op: in, values: [billing, technical]}",
                       "where: role IN ('billing', 'technical') OR TRUE", "where"),
    "where value breaking out of its quotes": ("values: [billing, technical]",
                                               "values: [\"billing') OR TRUE --\"]", "values"),
    "where operator outside the fixed set": ("op: in,", "op: 'IN (SELECT 1) OR',", "op"),
    "where column expression": ("where: {column: role,", "where: {column: 'role OR TRUE',", "column"),
    "table with a statement": ("- table: cdrs", '- table: "cdrs; DROP TABLE invoices"', "table"),
    "subject column expression": ("subject: {column: customer_id}", 'subject: {column: "customer_id OR TRUE"}',
                                  "column"),
    "quoted identifier": ("- table: cdrs", '- table: \'"cdrs"\'', "table"),
    "exempt table expression": ("  lifecycle_audit: >-", '  "lifecycle_audit, customers": >-', "exempt_tables"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_policy_is_refused_at_load_naming_file_line_and_reason(tmp_path, name):
    old, new, field = HOSTILE[name]
    path, line = broken_copy(tmp_path, old, new)
    with pytest.raises(PolicyError) as error:
        load_policy.__wrapped__(path)
    message = str(error.value)
    assert f"{path}:{line}:" in message, message
    assert field in message, message


def test_structured_conditions_render_parenthesised():
    contacts = next(k for k in load_policy().rule("crm_master_data").erasure.kept_while_active if k.where)
    assert contacts.where.sql() == "(role IN ('billing', 'technical'))"
    assert load_policy().rule("accounting").data[0].subject_filter("7").startswith("(")


def test_a_policy_naming_what_the_schema_lacks_is_refused_and_runs_nothing(tmp_path, telco, monkeypatch):
    path, _ = broken_copy(tmp_path, "columns: [company_name, cvr, address, email, phone]",
                          "columns: [company_name, cvr, address, email, phone, fax]")
    policy = load_policy.__wrapped__(path)  # a valid identifier, but not a column of customers
    with telco.conn.cursor() as cur:
        assert schema_problems(cur, load_policy()) == []
        assert schema_problems(cur, policy) == ["table 'customers' has no column 'fax'"]
    before = telco.fingerprint(exclude=())
    monkeypatch.setenv("LIFECYCLE_POLICY_FILE", str(path))
    load_policy.cache_clear()
    try:
        conn = connect(telco.url)
        with pytest.raises(PolicyError, match="has no column 'fax'"):
            migrate(conn)  # the migration runner checks it (already migrated: nothing else to do)
        with pytest.raises(PolicyError, match="has no column 'fax'"), conn.cursor() as cur:
            check_schema(cur)
        conn.close()
    finally:
        monkeypatch.delenv("LIFECYCLE_POLICY_FILE")
        load_policy.cache_clear()
    assert telco.fingerprint(exclude=()) == before
