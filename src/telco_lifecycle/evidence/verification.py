"""Independent verification with Great Expectations (GX Core), run as SQL in PostgreSQL.

Every check is a query for *offending* rows that must come back empty, so a check
reads the database afresh after the change it verifies and never depends on the
code that made it. Offending rows are reported by count (and customer id), never
by content. Results are kept as GX Data Docs under the reports folder.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from pathlib import Path

from telco_lifecycle.report_files import private_dir, report_folder, restrict
from telco_lifecycle.settings import VERIFICATION_LOGGER, sqlalchemy_url

log = logging.getLogger(VERIFICATION_LOGGER)


@dataclasses.dataclass(frozen=True)
class Check:
    """`unexpected_rows_query` selects offending rows of `table` (as `{batch}`); with
    `query`, `{batch}` is that query's result set (a GX query asset named `table`)."""

    name: str
    rule: str
    table: str
    unexpected_rows_query: str
    query: str | None = None
    finding: bool = False  # a data-quality finding: reported, never failing the run


@dataclasses.dataclass(frozen=True)
class CheckResult:
    name: str
    rule: str
    table: str
    success: bool
    offending_rows: int
    finding: bool = False

    def describe(self) -> str:
        verdict = ("passed" if self.success else f"FINDING: {self.offending_rows} row(s)" if self.finding
                   else f"FAILED: {self.offending_rows} offending row(s)")
        return f"[{self.rule} / {self.table}] {self.name}: {verdict}"


class VerificationFailed(AssertionError):
    def __init__(self, failures: list[CheckResult]):
        self.failures = failures
        super().__init__("verification failed:\n  " + "\n  ".join(f.describe() for f in failures))


@functools.cache
def _offending_rows_expectation():
    """GX's UnexpectedRowsExpectation, counting the offending rows only. GX's own also
    fetches up to 200 of them for its result details, which the checks never report
    (rows are reported by count): a second run of each check's query, on a database that
    passes a second full scan. Defined on first use, so that GX loads only in the task."""
    import great_expectations as gx

    class ExpectNoOffendingRows(gx.expectations.UnexpectedRowsExpectation):
        metric_dependencies = ("unexpected_rows_query.row_count",)

        def _validate(self, metrics: dict, runtime_configuration: dict | None = None,
                      execution_engine=None) -> dict:
            count = metrics["unexpected_rows_query.row_count"]
            return {"success": count == 0, "result": {"observed_value": count}}

    return ExpectNoOffendingRows


def run_checks(database_url: str, suite_name: str, checks: list[Check],
               docs_dir: Path | None = None) -> list[CheckResult]:
    """Run `checks` through GX; raise VerificationFailed listing every failing one."""
    # GX logs its import and configuration at INFO and draws tqdm progress bars on stderr
    # (which task logs record at ERROR): both only when the task log is at DEBUG.
    debug = logging.getLogger().isEnabledFor(logging.DEBUG)
    logging.getLogger("great_expectations").setLevel(logging.DEBUG if debug else logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # (this one module sets its own level to INFO when imported)
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.NOTSET)

    docs_dir = private_dir(docs_dir) if docs_dir else report_folder("data_docs")
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=debug)
    context.add_data_docs_site(
        site_name="lifecycle",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    source = context.data_sources.add_postgres("telco_db", connection_string=sqlalchemy_url(database_url))
    slug = re.sub(r"[^A-Za-z0-9_]+", "_", suite_name)
    definitions = []
    for table in sorted({check.table for check in checks}):
        query = next((c.query for c in checks if c.table == table and c.query), None)
        asset = (source.add_query_asset(table, query=query) if query
                 else source.add_table_asset(table, table_name=table, schema_name="public"))
        suite = context.suites.add(gx.ExpectationSuite(name=f"{slug}.{table}"))
        for check in (c for c in checks if c.table == table):
            suite.add_expectation(
                _offending_rows_expectation()(
                    unexpected_rows_query=check.unexpected_rows_query,
                    description=f"{check.rule}: {check.name}",
                )
            )
        batch = asset.add_batch_definition_whole_table("whole_table")
        definitions.append(context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{slug}.{table}", data=batch, suite=suite)))
    checkpoint = context.checkpoints.add(gx.Checkpoint(name=slug, validation_definitions=definitions))
    outcome = checkpoint.run()
    # The validation results' pages and the index, built once (GX's UpdateDataDocsAction
    # rebuilds the index and renders the suite after every validation: 3.5 of 5.8 s).
    context.build_data_docs(site_names=["lifecycle"], resource_identifiers=list(outcome.run_results))
    restrict(docs_dir)  # GX writes with the process umask
    by_description = {f"{c.rule}: {c.name}": c for c in checks}
    results = []
    for validation in outcome.run_results.values():
        for expectation in validation.results:
            config = expectation.expectation_config
            if config is None or config.description is None:
                raise RuntimeError("a GX result without its expectation's description: not a lifecycle check")
            check = by_description[config.description]
            results.append(CheckResult(check.name, check.rule, check.table, bool(expectation.success),
                                       int(expectation.result.get("observed_value") or 0), check.finding))
    for result in results:
        (log.warning if result.finding and not result.success else log.info)("verification %s", result.describe())
    failures = [r for r in results if not r.success and not r.finding]
    if failures:
        raise VerificationFailed(failures)
    return results
