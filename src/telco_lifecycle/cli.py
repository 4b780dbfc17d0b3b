"""The `lifecycle` command: migrate, seed, local environment, audit reports."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import logging
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
    with_db(sub.add_parser("grant-login", help="(as the owner, --database-url) make the telco_db connection's"
                                               " login a member of lifecycle_app and nothing more (idempotent)"))
    p = with_db(sub.add_parser("seed", help="fill a freshly migrated database with deterministic demo data"))
    p.add_argument("--customers", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cdrs-per-customer", type=int, default=100)
    p.add_argument("--anchor-date", type=dt.date.fromisoformat,
                   help="the data's 'today' (default: today; not after today)")
    sub.add_parser("env", help="start the local PostgreSQL if needed; print the environment as shell exports")
    sub.add_parser("stop-server", help="stop the embedded PostgreSQL under .lifecycle/")
    p = sub.add_parser("policy", help="validate the retention policy and print its rules")
    p.add_argument("--markdown", action="store_true", help="the rules table for the README")

    p = with_db(sub.add_parser("audit-report", help="reconcile the task logs with the audit trail; HTML, CSV, JSON"))
    p.add_argument("--from", dest="period_start", type=dt.date.fromisoformat, required=True, help="first day")
    p.add_argument("--to", dest="period_end", type=dt.date.fromisoformat, required=True, help="last day (inclusive)")
    p = with_db(sub.add_parser("status", help="the Retention status page in the terminal: due and overdue data per"
                                              " rule, open requests and their legal deadline, approvals waiting;"
                                              " exit 1 if data is overdue or a request is past its deadline"))
    p.add_argument("--as-of", type=dt.date.fromisoformat, help="the day to look at (default: today)")
    p = with_db(sub.add_parser("certificate", help="deletion certificate of one customer (HTML + JSON), or"
                                                   " `certificate verify FILE`: check one offline"))
    p.add_argument("verify", nargs="?", choices=["verify"], help="check the certificate FILE")
    p.add_argument("file", nargs="?", help="the certificate's JSON file (with verify)")
    p.add_argument("--customer-id", type=int)
    p.add_argument("--public-key", help="base64 Ed25519 public key (default: LIFECYCLE_SIGNING_PUBLIC_KEY,"
                                        " else the signing key's)")
    audit = sub.add_parser("audit", help="`audit verify`: the audit chain against every signed checkpoint")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    p = with_db(audit_sub.add_parser("verify", help="exit 1 naming any changed, deleted, truncated, re-hashed or"
                                                    " forked part of the audit chain or its checkpoints"))
    p.add_argument("--public-key", help="base64 Ed25519 public key (default: LIFECYCLE_SIGNING_PUBLIC_KEY,"
                                        " else the signing key's)")

    p = with_db(sub.add_parser("restore-reconcile", help="after a restore, re-apply what the deletion ledger"
                                                        " records after the database's last audit row"))
    p.add_argument("--dry-run", action="store_true", help="list what would be re-applied; change nothing")
    p.add_argument("--requested-by", default=getpass.getuser(), help="who asks (default: your login name)")

    args = parser.parse_args(argv)
    if args.command == "certificate" and not (args.file if args.verify else args.customer_id):
        parser.error("certificate needs --customer-id N, or verify FILE")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return COMMANDS[args.command](args) or 0


def _migrate(args) -> None:
    from telco_lifecycle.database import connect
    from telco_lifecycle.migrations import migrate

    conn = connect(settings.telco_database_url(args.database_url))
    applied = migrate(conn)
    print(f"migrations applied: {', '.join(applied) if applied else 'none (schema is up to date)'}")


def _grant_login(args) -> None:
    from psycopg2.extensions import parse_dsn

    from telco_lifecycle.database import connect
    from telco_lifecycle.migrations import LoginRefused, grant_login

    if not args.database_url:
        raise SystemExit("grant-login acts as the owner: pass the owner's --database-url")
    worker = parse_dsn(settings.telco_database_url())  # the connection the DAGs use
    if not worker.get("user"):
        raise SystemExit("the telco_db connection names no login; nothing was changed")
    conn = connect(args.database_url)
    try:
        done = grant_login(conn, worker["user"], worker.get("password"))
    except LoginRefused as refused:
        raise SystemExit(str(refused)) from refused
    print(f"login {worker['user']!r} {done}: member of lifecycle_app only")


def _seed(args) -> None:
    from telco_lifecycle.database import connect
    from telco_lifecycle.guards import FutureDateRefused, refuse_future_dates
    from telco_lifecycle.local.seed import seed

    conn = connect(settings.telco_database_url(args.database_url))
    try:  # data dated after today would be data from the future
        refuse_future_dates(conn, {"--anchor-date": args.anchor_date})
    except FutureDateRefused as refused:
        raise SystemExit(str(refused)) from refused
    counts = seed(conn, args.customers, args.seed, args.anchor_date, args.cdrs_per_customer)
    print(json.dumps(counts, indent=2))


def _env(args) -> None:
    from telco_lifecycle.local.env import local_environment

    for name, value in local_environment().items():
        print(f"export {name}={shlex.quote(value)}")


def _stop_server(args) -> None:
    from telco_lifecycle.local.embedded import stop_embedded_server

    stop_embedded_server(settings.project_dir() / ".lifecycle")


def _policy(args) -> None:
    from telco_lifecycle.policy import load_policy, rules_table

    policy = load_policy()
    if args.markdown:
        print(rules_table(policy))
        return
    for rule in policy.rules:
        print(f"{rule.id}: {', '.join(rule.tables)}; {rule.period_years} year(s) after {rule.clock}")


def _audit_report(args) -> int:
    from telco_lifecycle.database import connect
    from telco_lifecycle.evidence.audit_report import build_report

    conn = connect(settings.telco_database_url(args.database_url))
    summary = build_report(conn, args.period_start, args.period_end, author="cli")
    print(f"audit report: {summary['html']}\n  {summary['audit_rows']} action(s), {summary['customers_removed']}"
          f" customer(s) and {summary['rows_removed']} row(s) removed; {len(summary['mismatches'])} mismatch(es),"
          f" {len(summary['chain_breaks'])} chain break(s)\n  CSV {summary['csv']}\n  JSON {summary['json']}")
    return 0 if summary["ok"] else 1


def _audit_verify(args) -> int:
    from telco_lifecycle.database import connect
    from telco_lifecycle.evidence.integrity import describe, verify

    conn = connect(settings.telco_database_url(args.database_url))
    result = verify(conn, public_key=args.public_key)
    print(describe(result))
    return 0 if result["ok"] else 1


def _certificate(args) -> int:
    if args.verify:
        from telco_lifecycle.evidence.certificate import verify_file

        problems = verify_file(args.file, args.public_key)
        print(f"certificate {args.file}: " + ("verified" if not problems else "DOES NOT VERIFY")
              + "".join(f"\n  - {p}" for p in problems))
        return 1 if problems else 0
    from telco_lifecycle.customers import UnknownCustomer
    from telco_lifecycle.database import connect
    from telco_lifecycle.evidence.certificate import build_certificate

    conn = connect(settings.telco_database_url(args.database_url))
    try:
        certificate = build_certificate(conn, args.customer_id)
    except UnknownCustomer as unknown:
        raise SystemExit(str(unknown)) from unknown
    print(f"deletion certificate: {certificate['html']} (rules applied: {', '.join(certificate['rules_applied'])}"
          f"; backed by the audit trail: {certificate['backed_by_audit_trail']})")
    return 0


def _status(args) -> int:
    from airflow.utils.session import create_session

    from telco_lifecycle.database import connect
    from telco_lifecycle.workflows.status_page import render_text, retention_status, today

    conn = connect(settings.telco_database_url(args.database_url))
    try:
        with create_session() as session:
            status = retention_status(conn, session, args.as_of or today())
    finally:
        conn.close()
    print(render_text(status))
    late = [r for r in status["requests"]["open_requests"] if r["days_left"] < 0]
    return 1 if status["overdue_total"] or late else 0


def _restore_reconcile(args) -> int:
    from telco_lifecycle.database import connect
    from telco_lifecycle.evidence.audit import RunContext
    from telco_lifecycle.evidence.verification import VerificationFailed
    from telco_lifecycle.rules import restore
    from telco_lifecycle.rules.retention import describe_counts

    url = settings.telco_database_url(args.database_url)
    run = RunContext("cli", f"restore-reconcile__{dt.datetime.now(dt.UTC):%Y-%m-%dT%H%M%S.%fZ}", "restore-reconcile")
    conn = connect(url)
    try:
        result = restore.reconcile(conn, run, args.requested_by, dry_run=args.dry_run)
    except restore.ReconciliationRefused as refused:
        print(refused, file=sys.stderr)
        return 1
    finally:
        conn.close()
    print(result["message"])
    for step in result["steps"] if args.dry_run else []:
        print(f"  would re-apply {step['action']} ({step['rule']}) for customer(s) {step['customers']} as of"
              f" {step['as_of']}{' ' + step['partition'] if step['partition'] else ''}: ledger "
              + (describe_counts(step["ledger_tables"]) or "-"))
    try:
        verification = restore.verify(url, result, run.run_id)
    except VerificationFailed as failed:
        print(failed, file=sys.stderr)
        return 1
    print(f"report: {restore.write_report(result, verification, run.run_id)}"
          + (f" ({len(verification)} Great Expectations checks passed)" if verification else ""))
    return 0


COMMANDS = {"migrate": _migrate, "grant-login": _grant_login, "seed": _seed, "env": _env,
            "stop-server": _stop_server, "policy": _policy, "audit-report": _audit_report,
            "certificate": _certificate, "status": _status, "restore-reconcile": _restore_reconcile,
            "audit": _audit_verify}

if __name__ == "__main__":
    sys.exit(main())
