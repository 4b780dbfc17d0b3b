"""The limits a purge is compared with: hand-written set-based SQL removing the same rows.

Written by hand per rule, not generated from the policy as the purge is, so that a slip
in the purge's SQL shows as a checksum difference (benchmarks.run compares the removed
rows and the resulting tables after every run). No per-row or per-customer function
calls: a hold in force is an anti-join on `legal_holds`; the due customers are found
once; wholly expired CDR months go by DETACH + DROP, as the purge drops them (held
customers' rows are aside, in cdrs_held). One transaction for the whole rule: its
changes run once for every due customer, or (batched) once per batch of the purge's size,
in id order: whole-table statements are the faster at some sizes, batches at others
(cache), so the harness times both and compares the purge with the faster.

`evidence=True` adds the minimal evidence: one plain INSERT ... SELECT of one row per
due customer and rule into a table without triggers (no chain, no per-row hashing).
"""

from __future__ import annotations

from telco_lifecycle.settings import TIMEZONE

HELD = "EXISTS (SELECT 1 FROM legal_holds h WHERE h.customer_id = {0} AND h.released_on IS NULL)"
CLOCK = ("c.relationship_ended_on <= %(ended_by)s"
         " AND c.relationship_ended_on + make_interval(years => %(period_years)s) <= %(as_of)s")

# The invoices whose whole unit is due by its dates: the invoice (its issue date and stored
# fiscal year), none of its payments and none of the CDRs billed on it after the cutoff.
DUE_UNITS = """SELECT i.invoice_id, i.customer_id FROM invoices i
    WHERE i.issued_on <= %(due_end)s AND i.fiscal_year <= %(due_fiscal_year)s
      AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.invoice_id = i.invoice_id AND p.paid_on > %(due_end)s)
      AND NOT EXISTS (SELECT 1 FROM cdrs r WHERE r.invoice_id = i.invoice_id AND r.started_at >= %(fiscal_cutoff)s)"""
# A CDR month wholly before the cutoff may still hold a CDR billed on a unit that is kept:
# then the month stays (its due rows go with their customers). The first days of those
# months, in one statement (an anti-join of the billed live CDRs with the due units).
MONTHS_KEPT = f"""WITH due AS MATERIALIZED ({DUE_UNITS})
SELECT DISTINCT date_trunc('month', r.started_at AT TIME ZONE '{TIMEZONE}')::date
FROM cdrs r LEFT JOIN due d ON d.invoice_id = r.invoice_id
WHERE NOT r.held AND r.invoice_id IS NOT NULL AND r.started_at < %(fiscal_cutoff)s AND d.invoice_id IS NULL"""

# Per rule: the setup that finds the due customers once (into bench_due; its statements
# begin with SETUP), then the changes, in FK order. `{batch_d}` / `{batch_u}` / `{batch_t}`: where a
# batched limit restricts a change to one batch of the due customers (through the alias
# `d`, `u` or the changed table's `t`).
RULES = {
    "crm_master_data": [
        f"""CREATE TEMP TABLE bench_due ON COMMIT DROP AS
            SELECT c.customer_id FROM customers c
            WHERE {CLOCK} AND NOT {HELD.format('c.customer_id')}
              AND (c.company_name IS NOT NULL OR c.cvr IS NOT NULL OR c.address IS NOT NULL
                   OR c.email IS NOT NULL OR c.phone IS NOT NULL OR c.crm_purged_on IS NULL
                   OR EXISTS (SELECT 1 FROM crm_correspondence t WHERE t.customer_id = c.customer_id)
                   OR EXISTS (SELECT 1 FROM contacts t WHERE t.customer_id = c.customer_id)
                   OR EXISTS (SELECT 1 FROM phone_numbers t WHERE t.customer_id = c.customer_id))""",
        "DELETE FROM crm_correspondence t USING bench_due d WHERE t.customer_id = d.customer_id{batch_d}",
        "DELETE FROM contacts t USING bench_due d WHERE t.customer_id = d.customer_id{batch_d}",
        "DELETE FROM phone_numbers t USING bench_due d WHERE t.customer_id = d.customer_id{batch_d}",
        """UPDATE customers t SET company_name = NULL, cvr = NULL, address = NULL, email = NULL, phone = NULL,
                  crm_purged_on = coalesce(t.crm_purged_on, %(as_of)s)
           FROM bench_due d WHERE t.customer_id = d.customer_id{batch_d}
             AND (t.company_name IS NOT NULL OR t.cvr IS NOT NULL OR t.address IS NOT NULL
                  OR t.email IS NOT NULL OR t.phone IS NOT NULL OR t.crm_purged_on IS NULL)""",
    ],
    "archived_contracts": [
        f"""CREATE TEMP TABLE bench_due ON COMMIT DROP AS
            SELECT DISTINCT c.customer_id FROM customers c JOIN archived_contracts t USING (customer_id)
            WHERE {CLOCK} AND NOT {HELD.format('c.customer_id')}""",
        "DELETE FROM archived_contracts t USING bench_due d WHERE t.customer_id = d.customer_id{batch_d}",
    ],
    "accounting": [
        # The months are dropped first (see partition_statements). An accounting unit (an
        # invoice, its payments, the CDRs billed on it) goes when every row of it is due;
        # unbilled CDRs go by their own date.
        f"""CREATE TEMP TABLE bench_units ON COMMIT DROP AS
            SELECT u.invoice_id, u.customer_id FROM ({DUE_UNITS}) u
            WHERE NOT {HELD.format('u.customer_id')}""",
        """CREATE TEMP TABLE bench_due ON COMMIT DROP AS
            SELECT customer_id FROM bench_units
            UNION SELECT customer_id FROM cdrs WHERE invoice_id IS NULL AND started_at < %(fiscal_cutoff)s
            EXCEPT SELECT customer_id FROM legal_holds WHERE released_on IS NULL""",
        "ANALYZE bench_units",
        # A billed CDR is its unit's customer's, and a due unit's CDRs all began before the
        # cutoff: both said, so that the planner prunes the later months and walks each
        # month's customer index (a batch's id range) instead of hashing every month.
        """DELETE FROM cdrs t USING bench_units u
           WHERE t.invoice_id = u.invoice_id AND t.customer_id = u.customer_id
             AND t.started_at < %(fiscal_cutoff)s{batch_u}{batch_t}""",
        """DELETE FROM cdrs t USING bench_due d
           WHERE t.customer_id = d.customer_id AND t.invoice_id IS NULL
             AND t.started_at < %(fiscal_cutoff)s{batch_d}{batch_t}""",
        "DELETE FROM payments t USING bench_units u WHERE t.invoice_id = u.invoice_id{batch_u}",
        "DELETE FROM invoices t USING bench_units u WHERE t.invoice_id = u.invoice_id{batch_u}",
    ],
}

# The limit's transaction's memory for sorts and hashes, as a hand-writer gives a one-off
# whole-table delete: with the default 4 MB, the accounting limit's hash of 5M due units at
# 50M CDRs spilled into 64 batches, so it deleted the payments in hash order, not the
# table's, and rewrote each page many times (100 s for that one statement, 3.3M buffers
# written). The purge's batches set their own (rules.retention.BATCH_WORK_MEM).
WORK_MEM = "1GB"
SETUP = ("CREATE TEMP TABLE", "ANALYZE")  # how a rule's setup statements begin (run once, before the changes)
# What a batched limit adds to them: its batches' units found through their customers'
# range (at 50M CDRs each batch's statements read the whole table of units otherwise).
BATCHED_SETUP = {"accounting": ["CREATE INDEX ON bench_units (customer_id)"]}

EVIDENCE_TABLE = """CREATE TABLE IF NOT EXISTS bench_evidence (
    evidence_id bigserial PRIMARY KEY, rule text NOT NULL, customer_id bigint NOT NULL, as_of date NOT NULL,
    dag_id text NOT NULL, run_id text NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now())"""
EVIDENCE = """INSERT INTO bench_evidence (rule, customer_id, as_of, dag_id, run_id)
              SELECT %(rule)s, customer_id, %(as_of)s, 'benchmark', 'limit' FROM bench_due"""


def partition_statements(month: str) -> list[str]:
    """Drop one CDR month: the held customers' rows are already aside, in cdrs_held (migration 0030)."""
    return [f"ALTER TABLE cdrs_live DETACH PARTITION {month}", f"DROP TABLE {month}"]


# A batched limit's batches: the due customers in id order, `batch_size` a batch, as
# (first id, last id); each change runs once per batch, restricted to its range.
BATCHES = """SELECT min(customer_id), max(customer_id) FROM (SELECT customer_id,
    (row_number() OVER (ORDER BY customer_id) - 1) / %(batch_size)s AS batch FROM bench_due) b
GROUP BY batch ORDER BY batch"""


def setup_statements(rule_id: str, months: list[str], batched: bool) -> list[str]:
    """The expired months dropped, then the due customers (and units) found once."""
    drops = [statement for month in months for statement in partition_statements(month)]
    due = [statement for statement in RULES[rule_id] if statement.startswith(SETUP)]
    return [*drops, *due, *(BATCHED_SETUP.get(rule_id, []) if batched else [])]


def change_statements(rule_id: str, batched: bool) -> list[str]:
    """The rule's changes: for all due customers at once, or (`batched`) for the batch
    whose first and last ids are the parameters `batch_first` and `batch_last`."""
    restrict = {alias: f" AND {alias}.customer_id BETWEEN %(batch_first)s AND %(batch_last)s" if batched else ""
                for alias in ("d", "u", "t")}
    return [statement.replace("{batch_d}", restrict["d"]).replace("{batch_u}", restrict["u"])
            .replace("{batch_t}", restrict["t"]) for statement in RULES[rule_id] if not statement.startswith(SETUP)]
