"""What the benchmark's figures share: the PostgreSQL server with its seeded templates and
working copies, the generated data's "today", and timing."""

from __future__ import annotations

import datetime as dt
import hashlib
import statistics
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


def schema_and_seed_version() -> str:
    """A short digest of the migrations and the demo generator's SQL."""
    digest = hashlib.sha256()
    for path in [*migration_files(), sql_dir() / "seed" / "demo_data.sql"]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:8]


class Server:
    """The PostgreSQL server of the benchmark: templates and working copies."""

    def __init__(self, url: str, prefix: str):
        self.url, self.prefix = url, prefix

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
        """The seeded template of this size (built once per version of the migrations and
        the generator; the seed is deterministic)."""
        from telco_lifecycle.database import connect
        from telco_lifecycle.local.seed import seed
        from telco_lifecycle.migrations import migrate

        name = f"{self.prefix}_tpl_{customers}x{cdrs}_{schema_and_seed_version()}"
        if rebuild or not self.exists(name):
            building = f"{name}_building"  # renamed when complete: an interrupted seed is never reused
            self.drop(building)
            self.admin(f'CREATE DATABASE "{building}"')
            conn = connect(with_database(self.url, building))
            migrate(conn)
            print(f"seeding {customers} customers x {cdrs} CDRs ...", flush=True)
            seed(conn, customers, seed=SEED, anchor=ANCHOR, cdrs_per_customer=cdrs)
            conn.close()
            self.drop(name)
            self.admin(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        return name

    def copy(self, template: str) -> str:
        """A fresh working copy of `template` (the state every timed run starts from)."""
        name = f"{self.prefix}_work"
        self.drop(name)
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return with_database(self.url, name)

    def drop(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
