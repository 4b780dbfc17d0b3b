"""Faults: a purge whose worker is killed (SIGKILL) or whose database connection is
dropped at random points, and a purge blocked by a competing lock. After the retry
the database is exactly what one clean run leaves, and at every crash point no
customer is half-purged for a rule and every committed step has its audit row once.

Scale: LIFECYCLE_FAULT_TRIALS crash points (default 20; more for a longer hunt),
LIFECYCLE_FAULT_SEED for the random points (default: a fresh seed, printed so
a failure can be replayed)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import psycopg2
import pytest
from conftest import LATEST, SERVER, TelcoDatabase
from retention_helpers import cdr_partitions

from telco_lifecycle.database import ROLE_ENV, connect
from telco_lifecycle.evidence import audit
from telco_lifecycle.local.env import drop_database
from telco_lifecycle.policy import load_policy
from telco_lifecycle.rules import retention

POLICY = load_policy()
RULES = [rule.id for rule in POLICY.rules if rule.trigger == "schedule"]
AS_OF = LATEST  # every scheduled rule has much to do in the seeded data
TRIALS = int(os.environ.get("LIFECYCLE_FAULT_TRIALS", "20"))
KILLS_PER_COPY = 10
VICTIM = "fault_victim"
BATCH = 10  # customers per batch: many transactions to crash between and inside
# The worker: every scheduled rule in turn, in small batches, as the least-privilege role.
WORKER = f"""
import datetime as dt, sys
from telco_lifecycle.evidence import audit
from telco_lifecycle.rules import retention
from telco_lifecycle.database import connect
conn = connect(sys.argv[1], application_name={VICTIM!r})
for rule in {RULES!r}:
    retention.purge(conn, rule, dt.date.fromisoformat({AS_OF.isoformat()!r}),
                    audit.RunContext('fault_test', 'run', 'purge'), batch_size={BATCH})
"""
AUDIT_KEY = "action, rule, customer_id, table_name, row_count, details::text"


def start_worker(db: TelcoDatabase) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, db.url],
                            env={**os.environ, **db.evidence_env(), ROLE_ENV: "lifecycle_app"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run_to_completion(db: TelcoDatabase) -> None:
    """The retry: as Airflow would, until the run succeeds (a dead worker's backend may
    hold the run lock for a moment)."""
    for _ in range(50):
        worker = start_worker(db)
        _, stderr = worker.communicate(timeout=300)
        if worker.returncode == 0:
            return
        assert "waiting for it to finish" in stderr, stderr
        time.sleep(0.2)
    pytest.fail("the retry never got the run lock")


def customer_states(db: TelcoDatabase) -> dict[tuple[int, str], tuple]:
    """Per customer and rule, the customer's rows in each table of the rule (anonymised
    tables: rows still holding personal data). CDRs are left out: whole months go by
    partition, checked on their own."""
    states: dict[tuple[int, str], list] = {}
    for rule in POLICY.rules:
        for item in rule.data:
            if item.table == "cdrs":
                continue
            personal = " AND (" + " OR ".join(f"{c} IS NOT NULL" for c in item.columns) + ")" \
                if item.action == "anonymise" else ""
            for customer_id, n in db.rows(f"SELECT c.customer_id, (SELECT count(*) FROM {item.table}"
                                          f" WHERE {item.subject_filter('c.customer_id')}{personal}) FROM customers c"):
                states.setdefault((customer_id, rule.id), []).append(n)
    return {key: tuple(value) for key, value in states.items()}


def audit_rows(db: TelcoDatabase) -> list[tuple]:
    return db.rows(f"SELECT {AUDIT_KEY} FROM lifecycle_audit WHERE NOT dry_run ORDER BY {AUDIT_KEY}")


def final_state(db: TelcoDatabase) -> tuple:
    return db.fingerprint(), cdr_partitions(db), audit_rows(db)


def assert_consistent(db: TelcoDatabase, initial: dict, clean: dict, clean_audit: list[tuple],
                      months: list[str]) -> None:
    """At a crash point: each customer is wholly before or wholly after each rule, each
    CDR month wholly there or gone, with audit rows exactly for what was committed,
    none twice; the chain is intact."""
    recorded = audit_rows(db)
    remaining = list(clean_audit)
    for row in recorded:
        assert row in remaining, f"audit row not in a clean run, or twice: {row}"
        remaining.remove(row)
    audited = {(row[2], row[1]) for row in recorded if row[2] is not None and row[0] != "skipped_legal_hold"}
    for key, state in customer_states(db).items():
        assert state in (initial[key], clean[key]), f"customer {key[0]} is half-purged for rule {key[1]}"
        if initial[key] != clean[key]:
            assert (state == clean[key]) == (key in audited), f"customer {key[0]}, rule {key[1]}: audit mismatch"
    dropped = {json.loads(row[5])["partition"] for row in recorded if row[0] == "drop_partition"}
    assert set(months) - set(cdr_partitions(db)) == dropped
    assert db.scalar("SELECT count(*) FROM lifecycle_audit_chain_breaks") == 0


def test_killed_and_disconnected_purges_retry_to_the_clean_result(copies):
    seed = int(os.environ.get("LIFECYCLE_FAULT_SEED", random.randrange(10**6)))
    print(f"fault injection: {TRIALS} crash points, LIFECYCLE_FAULT_SEED={seed}")
    rng = random.Random(seed)
    reference = copies()
    initial, months = customer_states(reference), cdr_partitions(reference)
    run_to_completion(reference)
    clean, clean_final, clean_audit = customer_states(reference), final_state(reference), audit_rows(reference)
    assert len(clean_audit) > 100 and clean != initial

    crashes = 0
    while crashes < TRIALS:
        db = copies()
        for _ in range(min(KILLS_PER_COPY, TRIALS - crashes)):
            done = len(audit_rows(db))
            target = rng.randint(done + 1, max(done + 1, len(clean_audit) - 1))
            worker = start_worker(db)
            while worker.poll() is None and db.scalar("SELECT count(*) FROM lifecycle_audit") < target:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.02))  # land somewhere inside the next batch's transaction
            if rng.random() < 0.5:
                worker.send_signal(signal.SIGKILL)
            else:  # the database connection drops mid-transaction
                db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                           (VICTIM,))
            worker.wait(timeout=60)
            crashes += 1
            assert_consistent(db, initial, clean, clean_audit, months)
        run_to_completion(db)
        assert final_state(db) == clean_final
        db.conn.close()
        drop_database(SERVER, db.name)


@pytest.mark.parametrize("timeout", ["lock_timeout", "statement_timeout"])
def test_a_blocked_purge_fails_clearly_and_the_retry_completes(telco, monkeypatch, timeout):
    monkeypatch.setenv("LIFECYCLE_LOCK_TIMEOUT", "1s" if timeout == "lock_timeout" else "0")
    monkeypatch.setenv("LIFECYCLE_STATEMENT_TIMEOUT", "1s" if timeout == "statement_timeout" else "15min")
    conn = connect(telco.url)
    due = retention.plan(conn, "crm_master_data", AS_OF)["customers"]
    scope = retention.scope("crm_master_data", AS_OF)
    blocked = telco.scalar(  # a customer in the middle of the purge: its row is locked by someone else
        f"SELECT customer_id FROM ({scope.due_customers_sql()}) d ORDER BY 1 OFFSET %(n)s LIMIT 1",
        {**scope.params, "n": due // 2})
    competitor = connect(telco.url)
    with competitor.cursor() as cur:
        cur.execute("SELECT 1 FROM customers WHERE customer_id = %s FOR UPDATE", (blocked,))
    started = time.monotonic()
    cancelled = (psycopg2.errors.LockNotAvailable, psycopg2.errors.QueryCanceled)
    with pytest.raises(cancelled, match=f"canceling statement due to {timeout.replace('_', ' ')}"):
        retention.purge(conn, "crm_master_data", AS_OF, audit.RunContext(), batch_size=BATCH)
    assert time.monotonic() - started < 30
    assert telco.scalar("SELECT count(*) FROM lifecycle_audit WHERE customer_id = %s", (blocked,)) == 0
    assert telco.scalar("SELECT company_name IS NOT NULL FROM customers WHERE customer_id = %s", (blocked,))
    competitor.rollback()  # the competing transaction ends; Airflow's retry now completes
    result = retention.purge(conn, "crm_master_data", AS_OF, audit.RunContext())
    assert 0 < result["customers_purged"] < due  # the batches before the blocked one's were done already
    assert telco.scalar("SELECT count(DISTINCT customer_id) FROM lifecycle_audit WHERE rule = 'crm_master_data'"
                        " AND action <> 'skipped_legal_hold'") == due
    assert retention.plan(conn, "crm_master_data", AS_OF)["customers"] == 0
    assert telco.rows("SELECT customer_id, table_name FROM lifecycle_audit WHERE rule = 'crm_master_data'"
                      " GROUP BY 1, 2 HAVING count(*) > 1") == []
    conn.close()
    competitor.close()
