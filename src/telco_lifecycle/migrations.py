"""Versioned schema migrations from include/sql/migrations/, applied once each, in order."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from telco_lifecycle.database import transaction
from telco_lifecycle.errors import Refused
from telco_lifecycle.policy import check_schema, load_policy
from telco_lifecycle.settings import sql_dir

log = logging.getLogger(__name__)

MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# CDRs are accepted up to this far ahead of today; daily maintenance keeps it so.
CDR_PARTITIONS_AHEAD = "2 years"


def migration_files() -> list[Path]:
    files = sorted(p for p in (sql_dir() / "migrations").iterdir() if MIGRATION_NAME.match(p.name))
    versions = [p.name[:4] for p in files]  # the version: MIGRATION_NAME's four digits
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
        check_schema(cur)  # a policy naming what the schema lacks is refused now, not mid-purge
        store_policy_settings(cur)
    return applied_now


def store_policy_settings(cur) -> None:
    """What the database itself needs of the policy: lifecycle_drop_cdr_partition refuses a
    month not wholly past the CDR rule's deadline as of today (migration 0012)."""
    policy = load_policy()
    cur.execute("""INSERT INTO lifecycle_policy_settings (fiscal_year_end, accounting_period_years) VALUES (%s, %s)
                   ON CONFLICT (singleton) DO UPDATE SET fiscal_year_end = excluded.fiscal_year_end,
                       accounting_period_years = excluded.accounting_period_years""",
                (policy.fiscal_year_end, policy.rule_for_table("cdrs").period_years))


def ensure_cdr_partitions(cur) -> int:
    """Create the monthly CDR partitions up to today + 2 years (maintenance, not purge logic)."""
    cur.execute(
        "SELECT lifecycle_ensure_cdr_partitions((current_date + %s::interval)::date)", (CDR_PARTITIONS_AHEAD,)
    )
    return cur.fetchone()[0]


APP_ROLE = "lifecycle_app"  # the least-privilege group role of migration 0007


class LoginRefused(Refused):
    """The login cannot be made a least-privilege login; nothing was changed."""


def grant_login(conn, login: str, password: str | None) -> str:
    """(As the owner.) Make `login` a LOGIN role whose only privileges are those of
    lifecycle_app: create it, or set the password of an existing plain role; refuse the
    owner itself and roles that could do more (superuser, create roles or databases)."""
    from psycopg2 import sql

    with transaction(conn) as cur:
        cur.execute("SELECT current_user")
        if cur.fetchone()[0] == login:
            raise LoginRefused(f"the telco_db connection logs in as {login!r}, the owner that runs the migrations;"
                               " give it a login of its own (nothing was changed)")
        # An existing role may be reused only if it can do nothing but what the group grants.
        cur.execute("""
            SELECT r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolbypassrls
                   OR EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                              WHERE m.member = r.oid AND g.rolname <> %(group)s)
                   OR EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner = r.oid)
            FROM pg_roles r WHERE r.rolname = %(login)s""", {"login": login, "group": APP_ROLE})
        found = cur.fetchone()
        if found and found[0]:
            raise LoginRefused(f"role {login!r} may do more than {APP_ROLE} (superuser, CREATEROLE, CREATEDB,"
                               " BYPASSRLS, member of another role or owner of tables); give the telco_db"
                               " connection a login of its own (nothing was changed)")
        password_clause = sql.SQL(" PASSWORD {}").format(sql.Literal(password)) if password else sql.SQL("")
        verb = "ALTER" if found else "CREATE"
        cur.execute(sql.SQL(verb + " ROLE {} LOGIN").format(sql.Identifier(login)) + password_clause)
        cur.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(APP_ROLE), sql.Identifier(login)))
    return "updated" if found else "created"
