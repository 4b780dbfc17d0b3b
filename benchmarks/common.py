"""What the benchmark's figures share: the PostgreSQL server with its seeded templates and
working copies, the generated data's "today", and timing."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from telco_lifecycle.migrations import migration_files
from telco_lifecycle.settings import sql_dir, with_database

ANCHOR = dt.date(2026, 6, 15)  # the "today" of the generated data; every rule is applied as of it
SEED = 11


def timed(action: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """Seconds `action(*args)` took, and what it returned."""
    start = time.perf_counter()
    value = action(*args)
    return time.perf_counter() - start, value


def median(values: list[float]) -> float:
    return round(statistics.median(values), 6)


def ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def seed_version() -> str:
    """A short digest of the demo generator's SQL (the templates' data)."""
    return hashlib.sha256((sql_dir() / "seed" / "demo_data.sql").read_bytes()).hexdigest()[:8]


def migration_digests() -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in migration_files()}


class Server:
    """The PostgreSQL server of the benchmark: templates and working copies."""

    def __init__(self, url: str, prefix: str):
        self.url, self.prefix, self.evidence = url, prefix, None

    def admin(self, sql: str) -> None:
        import psycopg2

        conn = psycopg2.connect(with_database(self.url, "postgres"))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.close()

    def exists(self, name: str) -> bool:
        import psycopg2

        conn = psycopg2.connect(with_database(self.url, "postgres"))
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            found = cur.fetchone() is not None
        conn.close()
        return found

    def template(self, customers: int, cdrs: int, rebuild: bool) -> str:
        """The seeded template of this size: seeded once per version of the generator (the
        seed is deterministic), then brought up to the current migrations as a database in
        service would be; re-seeded if a migration it has applied was changed since."""
        from telco_lifecycle.database import connect, transaction
        from telco_lifecycle.local.seed import seed
        from telco_lifecycle.migrations import migrate

        name = f"{self.prefix}_tpl_{customers}x{cdrs}_{seed_version()}"
        digests = migration_digests()
        if not rebuild and self.exists(name):
            conn = connect(with_database(self.url, name))
            no_statement_timeout(conn)
            with transaction(conn) as cur:
                cur.execute("SELECT name, sha256 FROM bench_migrations")
                applied = dict(cur.fetchall())
            stale = any(digests.get(migration) != sha for migration, sha in applied.items())
            if not stale and applied.keys() != digests.keys():
                print(f"migrating template {name} ...", flush=True)
                migrate(conn)
                self._record_migrations(conn, digests)
            conn.close()
            if not stale:
                return name
        building = f"{name}_building"  # renamed when complete: an interrupted seed is never reused
        self.drop(building)
        self.admin(f'CREATE DATABASE "{building}"')
        conn = connect(with_database(self.url, building))
        no_statement_timeout(conn)
        migrate(conn)
        self._record_migrations(conn, digests)
        print(f"seeding {customers} customers x {cdrs} CDRs ...", flush=True)
        seed(conn, customers, seed=SEED, anchor=ANCHOR, cdrs_per_customer=cdrs)
        conn.close()
        self.drop(name)
        self.admin(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        return name

    @staticmethod
    def _record_migrations(conn, digests: dict[str, str]) -> None:
        """Which migrations (by content) the template has: a changed one means re-seeding."""
        from telco_lifecycle.database import transaction

        with transaction(conn) as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS bench_migrations (name text PRIMARY KEY, sha256 text NOT NULL)")
            cur.execute("TRUNCATE bench_migrations")
            cur.executemany("INSERT INTO bench_migrations VALUES (%s, %s)", list(digests.items()))

    def copy(self, template: str) -> str:
        """A fresh working copy of `template` (the state every timed run starts from), with
        an empty evidence store of its own (LIFECYCLE_EVIDENCE_DIR, inherited by the task
        processes): to the deletion ledger of an earlier copy it would look restored.
        Copied file by file, which checkpoints before and after: the default strategy
        (WAL_LOG) writes the whole template (GBs) to the WAL, and the checkpoints that
        forces overlapped the timed run that followed, whichever it was (purge or limit)."""
        from telco_lifecycle.evidence.store import EVIDENCE_DIR_ENV

        name = f"{self.prefix}_work"
        self.drop(name)
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        if self.evidence:
            shutil.rmtree(self.evidence, ignore_errors=True)
        self.evidence = tempfile.mkdtemp(prefix="bench-evidence-")
        os.environ[EVIDENCE_DIR_ENV] = self.evidence
        return with_database(self.url, name)

    def drop(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def no_statement_timeout(conn) -> None:
    """Seeding and migrating a large template take longer than the lifecycle's statement timeout."""
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = 0")
    conn.commit()


