"""The partition figure alone, at a size the demo generator takes too long to reach:
`python -m benchmarks.partitions [--cdrs 100000000] [--repeat N]`.

The data is generated directly in SQL into a template database (kept and reused while
its name matches the size and the migrations): customers with only an id and a name,
1 % of them under a hold in force, and the CDRs spread evenly over the months of
mid-2019 to mid-2026, one INSERT per month. Then, as in `make bench`, the accounting
purge's drop of the largest expired month against a bare DETACH + DROP of it
(benchmarks.run.partition_drop). Results: results/partitions-<cdrs>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from benchmarks.common import Server, migration_digests, no_statement_timeout
from benchmarks.run import RESULTS_DIR, partition_drop
from telco_lifecycle.settings import with_database

CUSTOMERS_PER_CDR = 1 / 50  # as the --scale size: 1M customers for 50M CDRs
FIRST_MONTH, MONTHS = "2019-07-01", 84

GENERATE = """
INSERT INTO customers (customer_id, company_name) SELECT g, 'Kunde ' || g FROM generate_series(1, %(customers)s) g;
INSERT INTO legal_holds (customer_id, case_reference, placed_on)
SELECT g, 'SKP-' || g, '2019-01-01' FROM generate_series(1, %(customers)s, 100) g;
"""
MONTH = """
INSERT INTO cdrs (customer_id, a_number, b_number, started_at, duration_s, kind)
SELECT 1 + (hashint8(g) & 2147483647) %% %(customers)s, '+4511111111', '+4522222222',
       lifecycle_month_start(%(month)s::date) + (g %% 2419200) * interval '1 second', g %% 600, 'call'
FROM generate_series(1, %(rows)s) g
"""


def template(server: Server, cdrs: int) -> str:
    from telco_lifecycle.database import connect, transaction
    from telco_lifecycle.migrations import migrate

    version = hashlib.sha256("".join(migration_digests().values()).encode()).hexdigest()[:8]
    name = f"{server.prefix}_tpl_partitions_{cdrs}_{version}"
    if server.exists(name):
        return name
    building = f"{name}_building"
    server.drop(building)
    server.admin(f'CREATE DATABASE "{building}"')
    conn = connect(with_database(server.url, building))
    no_statement_timeout(conn)
    migrate(conn)
    customers = max(int(cdrs * CUSTOMERS_PER_CDR), 100)
    with transaction(conn) as cur:
        cur.execute(GENERATE, {"customers": customers})
    for number in range(MONTHS):
        with transaction(conn) as cur:
            cur.execute("SELECT (%s::date + make_interval(months => %s))::date", (FIRST_MONTH, number))
            month = cur.fetchone()[0]
            cur.execute(MONTH, {"customers": customers, "month": month, "rows": cdrs // MONTHS})
        print(f"generated {month}", flush=True)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    conn.close()
    server.admin(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    return name


def main(argv: list[str] | None = None) -> int:
    from telco_lifecycle.local.env import server_url

    parser = argparse.ArgumentParser(prog="python -m benchmarks.partitions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cdrs", type=int, default=100_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db-prefix", default="benchp", help="name prefix of its databases (not make bench's)")
    args = parser.parse_args(argv)
    server = Server(server_url(), args.db_prefix)
    name = template(server, args.cdrs)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-task-logs-") as logs:
            result = {"cdrs": args.cdrs, "partition_drop": partition_drop(server, name, args.repeat, Path(logs))}
    finally:
        server.drop(f"{server.prefix}_work")
    out = RESULTS_DIR / f"partitions-{args.cdrs}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
