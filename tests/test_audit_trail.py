"""lifecycle_audit is append-only and hash-chained, enforced by the database itself."""

from __future__ import annotations

import psycopg2
import pytest

from telco_lifecycle.database import connect, transaction
from telco_lifecycle.evidence import audit

CHANGES = ["UPDATE lifecycle_audit SET row_count = 0", "DELETE FROM lifecycle_audit", "TRUNCATE lifecycle_audit"]


def write_rows(telco, n: int = 3) -> None:
    conn = connect(telco.url)
    with transaction(conn) as cur:
        for i in range(n):
            audit.record(cur, audit.Action("delete", "pbx_sip_config", 100000 + i, "pbx_configs", i + 1), audit.RunContext())
    conn.close()


@pytest.mark.parametrize("statement", CHANGES)
def test_audit_rows_cannot_be_changed(telco, statement):
    write_rows(telco)
    with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="append-only"):
        telco.execute(statement)
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit") == 3


def test_row_altered_behind_the_triggers_is_a_chain_break(telco):
    """A superuser can disable the triggers; the chain still shows what was done."""
    write_rows(telco, 4)
    telco.execute("ALTER TABLE lifecycle_audit DISABLE TRIGGER lifecycle_audit_no_update_delete")
    telco.execute("UPDATE lifecycle_audit SET row_count = 0 WHERE audit_id = 2")
    telco.execute("DELETE FROM lifecycle_audit WHERE audit_id = 3")
    telco.execute("ALTER TABLE lifecycle_audit ENABLE TRIGGER lifecycle_audit_no_update_delete")

    assert telco.rows("SELECT audit_id, problem FROM lifecycle_audit_chain_breaks ORDER BY 1") == [
        (2, "row content does not match its hash"),
        (4, "previous hash does not match the preceding row"),
    ]
