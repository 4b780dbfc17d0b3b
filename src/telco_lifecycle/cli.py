"""The `lifecycle` command: migrate, seed, local environment, audit reports."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shlex
import sys

from telco_lifecycle import settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lifecycle", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_db(p):
        p.add_argument("--database-url", help="libpq URL; default: the telco_db connection (AIRFLOW_CONN_TELCO_DB)")
        return p

    with_db(sub.add_parser("migrate", help="apply the schema migrations (idempotent)"))
    p = with_db(sub.add_parser("seed", help="fill a freshly migrated database with deterministic demo data"))
    p.add_argument("--customers", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cdrs-per-customer", type=int, default=100)
    p.add_argument("--anchor-date", type=dt.date.fromisoformat, help="the data's 'today' (default: today)")
    sub.add_parser("env", help="start the local PostgreSQL if needed; print the environment as shell exports")
    sub.add_parser("stop-server", help="stop the embedded PostgreSQL under .lifecycle/")
    p = sub.add_parser("policy", help="validate the retention policy and print its rules")
    p.add_argument("--markdown", action="store_true", help="the rules table for the README")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return COMMANDS[args.command](args) or 0


def _migrate(args) -> None:
    from telco_lifecycle.database import connect
    from telco_lifecycle.migrations import migrate

    conn = connect(settings.telco_database_url(args.database_url))
    applied = migrate(conn)
    print(f"migrations applied: {', '.join(applied) if applied else 'none (schema is up to date)'}")


def _seed(args) -> None:
    from telco_lifecycle.database import connect
    from telco_lifecycle.seed import seed

    conn = connect(settings.telco_database_url(args.database_url))
    counts = seed(conn, args.customers, args.seed, args.anchor_date, args.cdrs_per_customer)
    print(json.dumps(counts, indent=2))


def _env(args) -> None:
    from telco_lifecycle.localenv import local_environment

    for name, value in local_environment().items():
        print(f"export {name}={shlex.quote(value)}")


def _stop_server(args) -> None:
    from telco_lifecycle.embedded import stop_embedded_server

    stop_embedded_server(settings.project_dir() / ".lifecycle")


def _policy(args) -> None:
    from telco_lifecycle.policy import load_policy, rules_table

    policy = load_policy()
    if args.markdown:
        print(rules_table(policy))
        return
    for rule in policy.rules:
        print(f"{rule.id}: {', '.join(rule.tables)}; {rule.period_years} year(s) after {rule.clock}")


COMMANDS = {"migrate": _migrate, "seed": _seed, "env": _env, "stop-server": _stop_server, "policy": _policy}

if __name__ == "__main__":
    sys.exit(main())
