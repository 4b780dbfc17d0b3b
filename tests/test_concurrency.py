"""Concurrency: what the DAG tasks call, started at the same instant from many threads,
each with its own connection (as separate workers have). Exactly one effective
deletion and one audit entry per action, no deadlock, no error but a clear one."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import ANCHOR, LATEST

from telco_lifecycle.customers import row_counts
from telco_lifecycle.database import connect
from telco_lifecycle.evidence import audit
from telco_lifecycle.policy import load_policy
from telco_lifecycle.rules import offboarding, retention
from telco_lifecycle.subjects import erasure

AS_OF = LATEST
ANONYMISED = {item.table for rule in load_policy().rules for item in rule.data if item.action == "anonymise"}


def simultaneously(telco, calls) -> list:
    """Run each call(conn) in its own thread and connection, released together; return
    each result or the exception it raised."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        conn = connect(telco.url)
        try:
            barrier.wait()
            return call(conn)
        except Exception as error:  # noqa: BLE001 - the test inspects every outcome
            return error
        finally:
            conn.close()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_ten_simultaneous_offboardings_of_one_customer(telco):
    customer = telco.scalar("SELECT min(customer_id) FROM customers c WHERE relationship_ended_on IS NULL"
                            " AND EXISTS (SELECT 1 FROM pbx_configs p WHERE p.customer_id = c.customer_id)")
    before = {t: n for t, n in _counts(telco, customer).items() if t in ("pbx_configs", "sip_peers")}
    request = offboarding.OffboardingRequest(customer, ANCHOR, "test")
    results = simultaneously(telco, [
        lambda conn, i=i: offboarding.offboard(conn, request, audit.RunContext("customer_offboarding", f"trigger{i}"))
        for i in range(10)])

    assert not [r for r in results if isinstance(r, Exception)], results
    done = [r for r in results if not r["no_op"]]
    assert len(done) == 1
    assert all("already offboarded" in r["message"] for r in results if r["no_op"])
    audited = telco.rows("SELECT action, table_name, row_count, count(*) FROM lifecycle_audit"
                         " WHERE customer_id = %s GROUP BY 1, 2, 3 ORDER BY 2", (customer,))
    assert audited == [("end_relationship", "customers", 1, 1)] + [
        ("delete", table, n, 1) for table, n in sorted(before.items())]
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit_chain_breaks") == 0


# The audit records' rows per table: a purge's record (one per customer and rule) lists
# its tables in details.tables, every other record names its one table.
PER_TABLE = ("lifecycle_audit a CROSS JOIN LATERAL (SELECT key AS table_name, value::bigint AS rows"
             " FROM jsonb_each_text(coalesce(a.details->'tables', jsonb_build_object(a.table_name, a.row_count)))) t"
             " WHERE (a.table_name IS NOT NULL OR a.details ? 'tables')")


def test_a_retention_run_overlapping_erasures_of_its_customers(telco):
    """The crm purge walks every due customer while five of them ask for erasure: each
    deleted row goes once, by one of the two, with one audit row; neither fails. (An
    anonymised customer row may be recorded by both: erasure clears the columns, the
    purge then stamps crm_purged_on, as it does after any erasure.)"""
    scope = retention.scope("crm_master_data", AS_OF)
    due = [r[0] for r in telco.rows(f"{scope.due_customers_sql()} AND NOT lifecycle_on_hold(c.customer_id)"
                                    " ORDER BY 1", scope.params)]
    erased = due[::len(due) // 5][:5]
    before = {customer: _counts(telco, customer) for customer in erased}

    def erase(customer):
        def call(conn):
            planned = erasure.plan(conn, customer, AS_OF)
            return erasure.erase(conn, planned, "test", {"required": False}, False,
                                 audit.RunContext("data_subject_erasure", f"erase{customer}"))
        return call

    results = simultaneously(telco, [
        lambda conn: retention.purge(conn, "crm_master_data", AS_OF, audit.RunContext("crm_retention", "run")),
        *(erase(customer) for customer in erased)])

    assert not [r for r in results if isinstance(r, Exception)], results
    for customer in erased:
        removed = dict(telco.rows(f"SELECT t.table_name, sum(t.rows) FROM {PER_TABLE} AND a.customer_id = %s"
                                  " GROUP BY 1", (customer,)))
        gone = {t: n for t, n in before[customer].items() if n and not _counts(telco, customer)[t]
                and t not in ANONYMISED}
        assert {t: removed.get(t, 0) for t in gone} == gone, customer
    assert telco.rows(f"SELECT a.customer_id, t.table_name FROM {PER_TABLE}"
                      " GROUP BY 1, 2, a.action HAVING count(*) > 1") == []
    conn = connect(telco.url)
    assert retention.plan(conn, "crm_master_data", AS_OF)["customers"] == 0
    conn.close()
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit_chain_breaks") == 0


def _counts(telco, customer: int) -> dict[str, int]:
    """Rows per governed table (customers: whether personal data is left)."""
    with telco.conn.cursor() as cur:
        counts = row_counts(cur, load_policy(), customer)
    counts["customers"] = telco.scalar("SELECT count(*) FROM customers WHERE customer_id = %s"
                                       " AND company_name IS NOT NULL", (customer,))
    return counts


def test_a_purge_and_an_erasure_of_the_same_customer_take_locks_in_one_order(telco):
    """Staged so that the purge has deleted the customer's correspondence while an
    erasure of the same customer starts: both finish, neither is a deadlock victim."""
    scope = retention.scope("crm_master_data", AS_OF)
    customer = telco.scalar(f"{scope.due_customers_sql()} AND NOT lifecycle_on_hold(c.customer_id)"
                            " AND EXISTS (SELECT 1 FROM crm_correspondence r WHERE r.customer_id = c.customer_id)"
                            " AND EXISTS (SELECT 1 FROM contacts k WHERE k.customer_id = c.customer_id)"
                            " ORDER BY 1 LIMIT 1", scope.params)
    blocker = connect(telco.url)  # someone else holds the customer's contacts for a moment
    with blocker.cursor() as cur:
        cur.execute("SELECT 1 FROM contacts WHERE customer_id = %s FOR UPDATE", (customer,))

    def waiting(n):
        while telco.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                           " AND wait_event_type = 'Lock'") < n:
            time.sleep(0.05)

    def erase(conn):
        waiting(1)  # the purge is inside the customer's transaction, past its correspondence
        planned = erasure.plan(conn, customer, AS_OF)
        return erasure.erase(conn, planned, "test", {"required": False}, False, audit.RunContext())

    def release():
        waiting(2)
        blocker.rollback()

    with ThreadPoolExecutor(1) as releaser:
        released = releaser.submit(release)
        results = simultaneously(telco, [
            lambda conn: retention.purge(conn, "crm_master_data", AS_OF, audit.RunContext()), erase])
        released.result()
    blocker.close()
    assert not [r for r in results if isinstance(r, Exception)], results


def test_the_chain_stays_whole_under_exports_holds_offboardings_and_purges_at_once(telco):
    """Access exports (REPEATABLE READ snapshots), holds placed and released, offboardings
    and a purge, all at once: every writer extends the latest head (lifecycle_audit_seal
    locks it), so `lifecycle audit verify` finds nothing."""
    from telco_lifecycle.evidence import checkpoints, integrity
    from telco_lifecycle.rules import legal_holds
    from telco_lifecycle.subjects import access

    active = [r[0] for r in telco.rows("SELECT customer_id FROM customers WHERE relationship_ended_on IS NULL"
                                       " AND NOT lifecycle_on_hold(customer_id) ORDER BY 1 LIMIT 8")]

    def hold(customer):
        def call(conn):
            for action in ("place", "release"):
                legal_holds.apply(conn, legal_holds.HoldRequest(customer, action, "SKP-C", "test", ANCHOR),
                                  audit.RunContext("legal_hold", f"hold{customer}{action}"))
        return call

    results = simultaneously(telco, [
        lambda conn: retention.purge(conn, "crm_master_data", AS_OF, audit.RunContext("crm_retention", "run")),
        *(lambda conn, c=c: access.export(conn, c, "test", ANCHOR, audit.RunContext("data_subject_access", f"a{c}"))
          for c in active[:3]),
        *(hold(c) for c in active[3:5]),
        *(lambda conn, c=c: offboarding.offboard(conn, offboarding.OffboardingRequest(c, ANCHOR, "test"),
                                                 audit.RunContext("customer_offboarding", f"o{c}"))
          for c in active[5:8])])

    assert not [r for r in results if isinstance(r, Exception)], results
    checkpoints.flush()
    conn = connect(telco.url)
    result = integrity.verify(conn)
    conn.close()
    assert result["ok"], result["findings"]
    assert result["links"] > 10 and result["checkpoints"] >= 1
