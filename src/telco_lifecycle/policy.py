"""The retention policy: loaded from include/policy/retention.yaml and validated.

Everything that purges, verifies, exports or documents data asks this module; no
period, table or legal basis is written anywhere else.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from telco_lifecycle.settings import policy_path


class PolicyError(ValueError):
    """The policy file is broken; the message names the file, line and problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bilingual(_Strict):
    en: str = Field(min_length=1)
    da: str = Field(min_length=1)


# Every table and column the policy names goes into SQL: each is a plain lower-case
# identifier (checked at load), and must exist in the live schema (`schema_problems`,
# checked at migrate and at every DAG run), so the file cannot smuggle in an expression.
IDENTIFIER = r"^[a-z_][a-z0-9_]{0,62}$"
Identifier = Annotated[str, Field(pattern=IDENTIFIER)]
# A column of the item's own table, or `<via table>.<column>`.
QUALIFIED_IDENTIFIER = r"^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$"
# A value of a condition: letters, digits, space and _ . : / - only, so it is a plain literal.
CONDITION_VALUE = r"^[A-Za-z0-9 _.:/-]{0,200}$"


class Subject(_Strict):
    """How a row reaches its customer: its own column, or a column of another table."""

    column: str = Field(pattern=IDENTIFIER)
    via: str | None = Field(default=None, pattern=IDENTIFIER)


# Where each accounting unit's latest dates are kept, per unit and per CDR month
# (migration 0026): a column `latest_<table>` per unit member and `latest_<label>` per
# fiscal-year label, so that a unit is looked up, not searched for in every CDR month.
UNIT_DATES = "accounting_units"
MONTH_UNIT_DATES = "cdr_month_units"


class DataItem(_Strict):
    table: str = Field(pattern=IDENTIFIER)
    action: Literal["delete", "anonymise"]
    subject: Subject
    columns: tuple[Identifier, ...] = ()
    kept_columns: dict[Identifier, str] = {}
    dated_by: str | None = Field(default=None, pattern=QUALIFIED_IDENTIFIER)
    # For the data subject's access report: what the table holds, and (for high-volume
    # tables) the column its rows are summarised by instead of listed.
    description: Bilingual | None = None
    summary_by: str | None = Field(default=None, pattern=IDENTIFIER)
    # Accounting units: rows of the rule's items that share a value of `unit_key` (an
    # invoice, its payments, the CDRs billed on it) are kept until the latest of them is
    # due, then go together; a row without one (an unbilled CDR) is dated by itself.
    unit_key: str | None = Field(default=None, pattern=IDENTIFIER)
    # A stored fiscal year (invoices.fiscal_year): where it names a later year than
    # `dated_by` gives, the later applies (and verification reports the row).
    fiscal_year_label: str | None = Field(default=None, pattern=IDENTIFIER)
    # A relationship-clock row's own relationship end (archived_contracts of an earlier
    # relationship of a customer that returned): when set, it starts the row's clock.
    own_clock: str | None = Field(default=None, pattern=IDENTIFIER)

    @model_validator(mode="after")
    def _anonymise_names_columns(self) -> DataItem:
        if self.action == "anonymise" and not self.columns:
            raise ValueError("an 'anonymise' item must list the personal `columns` it clears")
        if self.action == "delete" and (self.columns or self.kept_columns):
            raise ValueError("a 'delete' item removes whole rows; `columns`/`kept_columns` do not apply")
        return self

    @field_validator("dated_by")
    @classmethod
    def _dated_by_reaches_the_row(cls, value: str | None, info: ValidationInfo) -> str | None:
        subject = info.data.get("subject")
        if value and "." in value and (subject is None or value.split(".")[0] != subject.via):
            raise ValueError("`dated_by` names a column of the table itself or of its `subject.via` table")
        return value

    def columns_used(self) -> dict[str, set[str]]:
        """Table -> the columns of it this item names (checked against the live schema)."""
        used = {self.table: {self.subject.column, *self.columns, *self.kept_columns}}
        used[self.table].update(c for c in (self.summary_by, self.unit_key, self.fiscal_year_label, self.own_clock)
                                if c)
        if self.subject.via:
            used[self.subject.via] = {self.subject.column, "customer_id"}
        if self.dated_by:
            table, _, column = self.dated_by.rpartition(".")
            used.setdefault(table or self.table, set()).add(column)
        if self.unit_key:
            latest = {f"latest_{self.table}", *([f"latest_{self.fiscal_year_label}"] if self.fiscal_year_label else [])}
            used[UNIT_DATES] = {self.unit_key, *latest}
            used[MONTH_UNIT_DATES] = {"month", *latest}
        return used

    @property
    def purged_marks(self) -> list[str]:
        """The kept columns named `*_purged_on`: they record the day the rule was applied."""
        return [c for c in self.kept_columns if c.endswith("_purged_on")]

    @property
    def date_column(self) -> str:
        """The column that dates a row (fiscal-year rules): `dated_by` without its table."""
        if self.dated_by is None:
            raise ValueError(f"{self.table} has no `dated_by`")
        return self.dated_by.rsplit(".", 1)[-1]

    @property
    def dated_via_subject(self) -> bool:
        """`dated_by` is a column of the table the row reaches its customer through."""
        return "." in (self.dated_by or "")

    def subject_filter(self, customer: str = "%(customer_id)s") -> str:
        """SQL condition selecting this table's rows of one customer (`customer`: a
        placeholder or a validated integer literal)."""
        if self.subject.via:
            return (f"({self.subject.column} IN (SELECT {self.subject.column} FROM {self.subject.via}"
                    f" WHERE customer_id = {customer}))")
        return f"({self.subject.column} = {customer})"


class Condition(_Strict):
    """A structured row condition (no free SQL): `column` `op` `values`. The values are
    plain literals (CONDITION_VALUE or integers), so the rendered SQL cannot be anything else."""

    column: Identifier
    op: Literal["in", "not_in", "equals", "not_equals", "is_null", "is_not_null"]
    values: tuple[Annotated[str, Field(pattern=CONDITION_VALUE)] | int, ...] = ()

    @model_validator(mode="after")
    def _values_fit_the_operator(self) -> Condition:
        wanted = {"in": "at least one", "not_in": "at least one", "equals": "exactly one",
                  "not_equals": "exactly one", "is_null": "no", "is_not_null": "no"}[self.op]
        if {"at least one": not self.values, "exactly one": len(self.values) != 1,
                "no": bool(self.values)}[wanted]:
            raise ValueError(f"operator {self.op!r} takes {wanted} value(s)")
        return self

    def sql(self) -> str:
        """The condition, parenthesised."""
        literals = ", ".join(str(v) if isinstance(v, int) else f"'{v}'" for v in self.values)
        return "(" + {"in": f"{self.column} IN ({literals})", "not_in": f"{self.column} NOT IN ({literals})",
                      "equals": f"{self.column} = {literals}", "not_equals": f"{self.column} <> {literals}",
                      "is_null": f"{self.column} IS NULL", "is_not_null": f"{self.column} IS NOT NULL"}[self.op] + ")"


class KeptWhileActive(_Strict):
    table: str = Field(pattern=IDENTIFIER)
    where: Condition | None = None
    reason: Bilingual


class Erasure(_Strict):
    on_request: bool
    while_active: Literal[True, False, "partial"] = False
    reason: Bilingual | None = None
    reason_kept_while_active: Bilingual | None = None
    kept_while_active: tuple[KeptWhileActive, ...] = ()

    @model_validator(mode="after")
    def _reasons_given(self) -> Erasure:
        if not self.on_request and self.reason is None:
            raise ValueError("data exempt from erasure needs a `reason`")
        if self.while_active is False and self.on_request and self.reason_kept_while_active is None:
            raise ValueError("data kept while the relationship lasts needs `reason_kept_while_active`")
        if self.while_active == "partial" and not self.kept_while_active:
            raise ValueError("partial erasure while active needs `kept_while_active`")
        return self

    @property
    def exempt_reason(self) -> Bilingual:
        """Why data exempt from erasure is kept (given whenever `on_request` is false)."""
        if self.reason is None:
            raise ValueError("data that can be erased on request has no exemption `reason`")
        return self.reason


class Rule(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    category: Bilingual
    clock: Literal["relationship_end", "fiscal_year_end"]
    period_years: int = Field(ge=0, le=30)
    trigger: Literal["offboarding", "schedule"]
    legal_basis: Bilingual
    erasure: Erasure
    legal_hold: Literal["blocks"]
    data: tuple[DataItem, ...] = Field(min_length=1)

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(item.table for item in self.data)

    def in_words(self) -> Bilingual:
        """The rule as the access report states it."""
        years = self.period_years
        if self.clock == "relationship_end" and years == 0:
            return Bilingual(en="deleted immediately when the customer relationship ends",
                             da="slettes straks, når kundeforholdet ophører")
        if self.clock == "relationship_end":
            return Bilingual(en=f"deleted {years} year{'s' * (years != 1)} after the customer relationship ends",
                             da=f"slettes {years} år efter kundeforholdets ophør")
        return Bilingual(
            en=f"kept until {years} years after the end of the fiscal year it belongs to, deleted the day after;"
               " an invoice, its payments and the call detail records billed on it are kept together until the"
               " latest of them is due",
            da=f"opbevares til {years} år efter udgangen af det regnskabsår, det hører til, og slettes dagen efter;"
               " en faktura, dens betalinger og de trafikdata, den bygger på, opbevares samlet, til den seneste af"
               " dem skal slettes")

    def deadline(self, clock_start: dt.date) -> dt.date:
        """The first `as_of` on which data whose clock started on `clock_start` is due.

        Relationship clocks: on the anniversary (end + 1 year). Accounting is *kept
        until* fiscal-year end + 5 years, so it is due the day after."""
        due = add_years(clock_start, self.period_years)
        return due + dt.timedelta(days=1) if self.clock == "fiscal_year_end" else due


class ReportFolder(_Strict):
    """A folder under LIFECYCLE_REPORTS_DIR whose files the reports_retention DAG removes.

    `written`: a file is due `period_days` after the Copenhagen date it was written (its
    modification time); `superseded`: `period_days` after a newer file of the folder was
    written (the next delivery). `files`: which files of the folder (shell patterns on the
    path inside the folder; `*` also crosses sub-folders)."""

    folder: str = Field(pattern=IDENTIFIER)
    description: Bilingual
    clock: Literal["written", "superseded"]
    period_days: int = Field(ge=1, le=3660)
    files: tuple[str, ...] = ("*",)
    legal_basis: Bilingual
    erased_with_customer: bool = False


class AirflowMetadata(_Strict):
    """How long Airflow keeps its own records (runs and their conf, task instances, XCom,
    HITL records, the action log) and the task-log files."""

    period_days: int = Field(ge=30, le=3660)
    legal_basis: Bilingual


def _month_day(value: str) -> str:
    if not re.fullmatch(r"\d{2}-\d{2}", value):
        raise ValueError("a fiscal-year end must be MM-DD, for example '12-31'")
    month, day = (int(part) for part in value.split("-"))
    dt.date(2023, month, day)  # raises for 02-30 and the like; 02-29 is not allowed
    return value


class EarlierYearEnd(_Strict):
    """A fiscal-year end the company used before: the year ends on `fiscal_year_end`
    (MM-DD) up to and including the one on `last_year_ended_on`."""

    fiscal_year_end: str
    last_year_ended_on: dt.date

    @field_validator("fiscal_year_end")
    @classmethod
    def _month_day(cls, value: str) -> str:
        return _month_day(value)

    @model_validator(mode="after")
    def _ends_on_its_day(self) -> EarlierYearEnd:
        if self.last_year_ended_on.strftime("%m-%d") != self.fiscal_year_end:
            raise ValueError(f"last_year_ended_on {self.last_year_ended_on} is not a {self.fiscal_year_end} year end")
        return self


class Recipient(_Strict):
    """Whom the policy says a category's data is passed to."""

    id: str = Field(pattern=IDENTIFIER)
    name: Bilingual
    rules: tuple[str, ...] = Field(min_length=1)


class Policy(_Strict):
    version: Literal[1]
    timezone: Literal["Europe/Copenhagen"]
    fiscal_year_end: str
    earlier_fiscal_year_ends: tuple[EarlierYearEnd, ...] = ()
    rules: tuple[Rule, ...] = Field(min_length=1)
    exempt_tables: dict[Identifier, str]
    recipients: tuple[Recipient, ...] = ()
    report_files: tuple[ReportFolder, ...] = Field(min_length=1)
    exempt_report_folders: dict[str, str]
    airflow_metadata: AirflowMetadata

    @field_validator("fiscal_year_end")
    @classmethod
    def _month_day(cls, value: str) -> str:
        return _month_day(value)

    @model_validator(mode="after")
    def _year_ends_in_order(self) -> Policy:
        ends = [*(e.fiscal_year_end for e in self.earlier_fiscal_year_ends), self.fiscal_year_end]
        if any(a == b for a, b in zip(ends, ends[1:], strict=False)):
            raise ValueError(f"consecutive fiscal-year ends must differ: {ends}")
        days = [e.last_year_ended_on for e in self.earlier_fiscal_year_ends]
        if days != sorted(set(days)):
            raise ValueError("earlier_fiscal_year_ends must be in order, oldest first")
        return self

    @model_validator(mode="after")
    def _recipients_of_known_rules(self) -> Policy:
        ids = {rule.id for rule in self.rules}
        for recipient in self.recipients:
            if unknown := set(recipient.rules) - ids:
                raise ValueError(f"recipient {recipient.id!r} names unknown rules {sorted(unknown)}")
        return self

    def recipients_of(self, rule_id: str) -> list[Recipient]:
        return [r for r in self.recipients if rule_id in r.rules]

    @model_validator(mode="after")
    def _tables_governed_once(self) -> Policy:
        seen: dict[str, str] = {}
        ids = [rule.id for rule in self.rules]
        if len(set(ids)) != len(ids):
            raise ValueError(f"rule ids must be unique: {ids}")
        for rule in self.rules:
            for table in rule.tables:
                if table in seen:
                    raise ValueError(f"table {table!r} is governed by both {seen[table]!r} and {rule.id!r}")
                if table in self.exempt_tables:
                    raise ValueError(f"table {table!r} is both governed by {rule.id!r} and exempt")
                seen[table] = rule.id
        folders = [f.folder for f in self.report_files]
        if len(set(folders)) != len(folders) or set(folders) & set(self.exempt_report_folders):
            raise ValueError(f"a report folder is governed twice, or both governed and exempt: {folders}")
        return self

    def columns_used(self) -> dict[str, set[str]]:
        """Every table the policy names -> the columns of it that it names."""
        used: dict[str, set[str]] = {table: set() for table in self.exempt_tables}
        for rule in self.rules:
            for item in rule.data:
                for table, columns in item.columns_used().items():
                    used.setdefault(table, set()).update(columns)
            for kept in rule.erasure.kept_while_active:
                used.setdefault(kept.table, set()).update({kept.where.column} if kept.where else set())
        return used

    def report_folder(self, name: str) -> ReportFolder | None:
        """The rule of a folder under the reports directory; None when it is exempt.
        KeyError when it is neither: nothing may be written there."""
        for folder in self.report_files:
            if folder.folder == name:
                return folder
        if name in self.exempt_report_folders:
            return None
        raise KeyError(f"the reports folder {name!r} is neither governed by a rule of the policy nor exempt")

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(f"no rule {rule_id!r} in the policy")

    def rule_for_table(self, table: str) -> Rule:
        for rule in self.rules:
            if table in rule.tables:
                return rule
        raise KeyError(f"no rule governs table {table!r}")

    def year_end_periods(self) -> list[tuple[str, dt.date | None, dt.date | None]]:
        """(MM-DD, the last year end before the period or None, its own last or None), oldest first."""
        periods: list[tuple[str, dt.date | None, dt.date | None]] = []
        previous: dt.date | None = None
        for earlier in self.earlier_fiscal_year_ends:
            periods.append((earlier.fiscal_year_end, previous, earlier.last_year_ended_on))
            previous = earlier.last_year_ended_on
        return [*periods, (self.fiscal_year_end, previous, None)]

    def year_ends_record(self) -> list[list[str | None]]:
        """The fiscal-year ends as the accounting purge records them: [MM-DD, last year end]."""
        return [[month_day, last.isoformat() if last else None] for month_day, _, last in self.year_end_periods()]

    def fiscal_year_end_of(self, day: dt.date) -> dt.date:
        """The last day of the fiscal year a Copenhagen date belongs to."""
        for month_day, _, last in self.year_end_periods():
            if last is None or day <= last:
                month, dom = (int(part) for part in month_day.split("-"))
                end = dt.date(day.year, month, dom)
                return end if end >= day else dt.date(day.year + 1, month, dom)
        raise AssertionError("the last period is open")

    def latest_year_end(self, day: dt.date) -> dt.date | None:
        """The last fiscal-year end on or before `day`."""
        found = []
        for month_day, after, last in self.year_end_periods():
            month, dom = (int(part) for part in month_day.split("-"))
            end = dt.date(day.year, month, dom)
            end = end if end <= day else dt.date(day.year - 1, month, dom)
            end = min(end, last) if last else end
            if after is None or end > after:
                found.append(end)
        return max(found, default=None)

    def fiscal_year_end_date(self, fiscal_year: int) -> dt.date:
        """Last day of the fiscal year named `fiscal_year` (a fiscal year is named after the
        calendar year in which it ends; where a change of year end made two years end in
        one calendar year, the later)."""
        end = self.latest_year_end(dt.date(fiscal_year, 12, 31))
        if end is None:
            raise ValueError(f"the policy's fiscal years begin after {fiscal_year}")
        return end

    def fiscal_year_of(self, day: dt.date) -> int:
        """The fiscal year a Copenhagen date belongs to (named after the year it ends in)."""
        return self.fiscal_year_end_of(day).year


def rules_table(policy: Policy) -> str:
    """The README's rules table, generated from the policy."""
    lines = ["| rule | data | clock starts | deleted | erasure on request |", "| --- | --- | --- | --- | --- |"]
    for rule in policy.rules:
        clock, when = "relationship end", (
            "immediately, by the offboarding run" if rule.period_years == 0
            else f"on the first run with `as_of` >= clock + {rule.period_years} year(s)")
        if rule.clock == "fiscal_year_end":
            clock, when = _fiscal_clock(policy, rule)
        erasure = ("no: " + rule.erasure.exempt_reason.en) if not rule.erasure.on_request else (
            "yes" if rule.erasure.while_active is True else
            "after the relationship ends" + (" (partly before)" if rule.erasure.while_active == "partial" else ""))
        tables = ", ".join(f"`{t}`" for t in rule.tables)
        lines.append(f"| `{rule.id}` | {rule.category.en} ({tables}) | {clock} | {when} | {erasure} |")
    lines.append("| legal hold | all of a customer's data | - | never while a hold is in force (offboarding records"
                 " the end and defers the PBX/SIP deletion until the last hold is released) | no |")
    lines += ["", "What the lifecycle itself writes under `LIFECYCLE_REPORTS_DIR`, and Airflow's own records:", "",
              "| folder | files | removed | legal basis / reason kept |", "| --- | --- | --- | --- |"]
    for folder in policy.report_files:
        when = (f"{folder.period_days} days after it was written" if folder.clock == "written"
                else f"{folder.period_days} days after the next file was delivered")
        if folder.erased_with_customer:
            when += "; at once by the customer's erasure"
        lines.append(f"| `{folder.folder}/` | {folder.description.en} | {when} | {folder.legal_basis.en} |")
    for name, reason in policy.exempt_report_folders.items():
        lines.append(f"| `{name}/` | exempt | never | {reason} |")
    meta = policy.airflow_metadata
    lines.append("| Airflow metadata and task logs | runs and their conf, task instances, XCom, HITL records,"
                 f" the action log; task-log files | {meta.period_days} days after the run | {meta.legal_basis.en} |")
    return "\n".join(lines)


def _fiscal_clock(policy: Policy, rule: Rule) -> tuple[str, str]:
    """The clock and deletion cells of a fiscal-year rule: the year end, how each table's
    row is dated, the accounting units."""
    dated = ", ".join(
        f"`{i.table}` by `{i.dated_by}`" + (" (its Copenhagen date)" if i.date_column.endswith("_at") else "")
        + (f" or a later stored `{i.fiscal_year_label}`" if i.fiscal_year_label else "") for i in rule.data)
    earlier = "".join(f"; until {e.last_year_ended_on}: {e.fiscal_year_end}" for e in policy.earlier_fiscal_year_ends)
    clock = (f"end of the fiscal year the row belongs to (year end {policy.fiscal_year_end}{earlier}; a fiscal year"
             f" is named after the calendar year in which it ends): {dated}")
    units = [i for i in rule.data if i.unit_key]
    when = f"kept until clock + {rule.period_years} years, deleted on the first run after"
    if units:
        key = units[0].unit_key
        when += (f"; rows sharing `{key}` ({', '.join(f'`{i.table}`' for i in units)}: an invoice, its payments"
                 f" and the CDRs billed on it) are one unit, kept until the latest of them is due and deleted"
                 f" together; rows without `{key}` by their own year")
    return clock, when


def schema_problems(cur, policy: Policy) -> list[str]:
    """What the policy names that the live schema (schema public) lacks; empty when all is there.
    Read from pg_catalog, which every role sees whole (information_schema hides the tables
    a role holds no privilege on, such as schema_migrations for lifecycle_app)."""
    cur.execute("SELECT c.relname, a.attname FROM pg_catalog.pg_attribute a"
                " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
                " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
                " AND a.attnum > 0 AND NOT a.attisdropped")
    live: dict[str, set[str]] = {}
    for table, column in cur.fetchall():
        live.setdefault(table, set()).add(column)
    problems = []
    for table, columns in sorted(policy.columns_used().items()):
        if table not in live:
            problems.append(f"table {table!r} does not exist")
        elif missing := sorted(columns - live[table]):
            problems.append(f"table {table!r} has no column {', '.join(map(repr, missing))}")
    return problems


def check_schema(cur, policy: Policy | None = None) -> None:
    """Refuse to act on a policy naming tables or columns the database does not have."""
    policy = policy or load_policy()
    if problems := schema_problems(cur, policy):
        raise PolicyError(f"{default_policy_path()}: the policy does not match the database: {'; '.join(problems)}")


def add_years(day: dt.date, years: int) -> dt.date:
    """Calendar arithmetic as PostgreSQL does it: 29 February + 1 year = 28 February."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def default_policy_path() -> Path:
    return policy_path()


@functools.cache
def load_policy(path: Path | None = None) -> Policy:
    """Load and validate the policy; a broken file raises PolicyError naming the line."""
    path = Path(path or default_policy_path())
    text = path.read_text(encoding="utf-8")
    try:  # libyaml when available: every DAG file loads the policy at parse time
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        root = yaml.compose(text)  # the nodes' line numbers, for the message only
        problems = [
            f"{path}:{_line_of(root, err['loc'])}: {'.'.join(map(str, err['loc'])) or '<top>'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise PolicyError("invalid retention policy:\n  " + "\n  ".join(problems)) from None


def _line_of(node: yaml.Node | None, loc: tuple) -> int:
    """1-based line of the deepest YAML node on the path `loc` of a validation error."""
    line = node.start_mark.line + 1 if node is not None else 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            match = node.value[key]
        else:
            match = None
        if match is None:
            break
        node, line = match, match.start_mark.line + 1
    return line
