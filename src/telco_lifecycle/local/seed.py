"""Deterministic demo data: realistic Danish B2B customers across every core table."""

from __future__ import annotations

import datetime as dt
import logging

from telco_lifecycle.database import transaction
from telco_lifecycle.policy import load_policy
from telco_lifecycle.settings import read_sql

log = logging.getLogger(__name__)

SEEDED_TABLES = ("customers", "contacts", "crm_correspondence", "phone_numbers", "pbx_configs", "sip_peers",
                 "archived_contracts", "invoices", "payments", "cdrs", "legal_holds")


def seed(conn, customers: int, seed: int = 1, anchor: dt.date | None = None, cdrs_per_customer: int = 100) -> dict:
    """Fill an empty database; the same arguments always give the same rows.

    `anchor` is the "today" of the data (default: today in Copenhagen): relationships
    end across the seven years before it.
    """
    if customers < 1 or cdrs_per_customer < 0:
        raise ValueError("--customers must be at least 1 and --cdrs-per-customer not negative")
    anchor = anchor or dt.datetime.now(dt.UTC).astimezone(_copenhagen()).date()
    month, day = (int(p) for p in load_policy().fiscal_year_end.split("-"))
    with transaction(conn) as cur:
        cur.execute("SELECT EXISTS (SELECT 1 FROM customers)")
        if cur.fetchone()[0]:
            raise RuntimeError("the database already holds customers; seed a freshly migrated database")
        cur.execute("SET LOCAL synchronous_commit = off")
        cur.execute(read_sql("seed/demo_data.sql"), {
            "customers": customers, "seed": seed, "anchor": anchor,
            "cdrs_per_customer": cdrs_per_customer, "fy_month": month, "fy_day": day,
        })
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("ANALYZE")
    conn.autocommit = False
    counts = table_counts(conn)
    log.info("seeded %s", counts)
    return counts


def table_counts(conn) -> dict[str, int]:
    with conn.cursor() as cur:
        counts = {}
        for table in SEEDED_TABLES:
            cur.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cur.fetchone()[0]
    conn.rollback()
    return counts


def _copenhagen():
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Copenhagen")
