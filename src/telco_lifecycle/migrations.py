"""Versioned schema migrations from include/sql/migrations/, applied once each, in order."""

from __future__ import annotations

import logging
import re

from telco_lifecycle.database import transaction
from telco_lifecycle.settings import sql_dir

log = logging.getLogger(__name__)

MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# CDRs are accepted up to this far ahead of today; daily maintenance keeps it so.
CDR_PARTITIONS_AHEAD = "2 years"


def migration_files():
    files = sorted(p for p in (sql_dir() / "migrations").iterdir() if MIGRATION_NAME.match(p.name))
    versions = [MIGRATION_NAME.match(p.name).group(1) for p in files]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version number: {versions}")
    return files


def migrate(conn) -> list[str]:
    """Apply the pending migrations; safe to run again and from two processes at once."""
    applied_now = []
    with transaction(conn) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('telco_lifecycle_migrate'))")
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in cur.fetchall()}
        for path in migration_files():
            version = path.name[:4]
            if version in done:
                continue
            log.info("applying migration %s", path.name)
            cur.execute(path.read_text(encoding="utf-8"))
            cur.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, path.name))
            applied_now.append(path.name)
        ensure_cdr_partitions(cur)
    return applied_now


def ensure_cdr_partitions(cur) -> int:
    """Create the monthly CDR partitions up to today + 2 years (maintenance, not purge logic)."""
    cur.execute(
        "SELECT lifecycle_ensure_cdr_partitions((current_date + %s::interval)::date)", (CDR_PARTITIONS_AHEAD,)
    )
    return cur.fetchone()[0]
