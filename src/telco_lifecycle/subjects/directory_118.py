"""The daily file for the 118 directory service, honouring the customers' wishes: the
numbers of active customers that have not opted out as a company, that are the main
number or opted in, and that have not opted out themselves; never an ended customer.

The export query's result set is verified with Great Expectations (a GX query asset)
against the source tables before the file is written; a failing check writes nothing.
The CSV goes to LIFECYCLE_REPORTS_DIR/directory_118/, written under a temporary name
and renamed when complete; an audit row records the row count and the file's SHA-256.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from telco_lifecycle.database import transaction
from telco_lifecycle.evidence import audit
from telco_lifecycle.report_files import ReportFile, report_folder
from telco_lifecycle.settings import read_sql

SQL = "subject/directory_118_export.sql"
RULE = "directory_118"
CHUNK_ROWS = 2000
COLUMNS = ("number", "company_name", "address")


def export_query(as_of: dt.date) -> str:
    """The export statement with `as_of` as a date literal (GX query assets take no parameters
    and must start with SELECT, so the file's leading comment goes)."""
    statement = "\n".join(line for line in read_sql(SQL).splitlines() if not line.startswith("--"))
    return statement.replace("%(as_of)s", f"DATE '{as_of.isoformat()}'")


def verification_checks(query: str, as_of: dt.date):
    """Offending rows of the export (`{batch}` is its result set), re-checked against the source tables."""
    from telco_lifecycle.evidence.verification import Check

    day = f"DATE '{as_of.isoformat()}'"

    def check(name: str, offending: str):
        return Check(name, RULE, "directory_118_export", offending, query=query)

    return [
        check("only main numbers and numbers opted in",
              "SELECT e.number FROM {batch} e LEFT JOIN phone_numbers p ON p.number = e.number"
              " WHERE p.kind IS DISTINCT FROM 'main' AND p.directory_opt_in IS NOT TRUE"),
        check("no number that opted out of the directory",
              "SELECT e.number FROM {batch} e JOIN phone_numbers p ON p.number = e.number WHERE p.directory_opt_out"),
        check("no number of a company that opted out of the directory",
              "SELECT e.number FROM {batch} e JOIN phone_numbers p ON p.number = e.number"
              " JOIN customers c ON c.customer_id = p.customer_id WHERE c.directory_opt_out"),
        check("every number the customers' wishes list is listed",
              "SELECT p.number FROM phone_numbers p JOIN customers c ON c.customer_id = p.customer_id"
              " WHERE (p.kind = 'main' OR p.directory_opt_in) AND p.directory_opt_out IS NOT TRUE"
              f" AND c.directory_opt_out IS NOT TRUE AND (c.relationship_ended_on IS NULL"
              f" OR c.relationship_ended_on > {day}) AND p.number NOT IN (SELECT number FROM {{batch}} e)"),
        check("no customer whose relationship has ended",
              "SELECT e.number FROM {batch} e JOIN phone_numbers p ON p.number = e.number"
              f" JOIN customers c ON c.customer_id = p.customer_id WHERE c.relationship_ended_on <= {day}"),
        check("each number listed once", "SELECT number FROM {batch} GROUP BY number HAVING count(*) > 1"),
    ]


def output_path(as_of: dt.date) -> Path:
    return report_folder("directory_118") / f"directory_118_{as_of.isoformat()}.csv"


def write(conn, as_of: dt.date, run: audit.RunContext) -> dict:
    """Stream the export to its CSV (server-side cursor) and record it in the audit trail."""
    path = output_path(as_of)
    rows = 0
    with ReportFile(path, newline="") as out, transaction(conn) as cur:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        with conn.cursor(name="directory_118") as listing:
            listing.itersize = CHUNK_ROWS
            listing.execute(read_sql(SQL), {"as_of": as_of})
            for row in listing:
                writer.writerow(row)
                rows += 1
        sha256 = out.sha256()
        event = audit.record(cur, audit.Action("directory_export", RULE, None, "phone_numbers", rows, as_of,
                                               False, {"file": path.name, "sha256": sha256}), run)
        out.commit()
    audit.emit([event])
    return {"as_of": as_of.isoformat(), "rows": rows, "file": str(path), "sha256": sha256}
