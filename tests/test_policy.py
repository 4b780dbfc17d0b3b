"""The policy file: valid, complete against the live schema, and loud when broken."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap

import pytest

from telco_lifecycle.policy import PolicyError, add_years, default_policy_path, load_policy
from telco_lifecycle.settings import project_dir

CONTRACT_RULES = {"pbx_sip_config", "crm_master_data", "archived_contracts", "accounting"}


def test_policy_has_every_rule_of_the_contract():
    policy = load_policy()
    assert {rule.id for rule in policy.rules} == CONTRACT_RULES
    assert policy.rule("crm_master_data").period_years == 1
    assert policy.rule("archived_contracts").period_years == 5
    assert policy.rule("accounting").period_years == 5
    assert policy.rule("accounting").clock == "fiscal_year_end"
    assert policy.rule("accounting").erasure.on_request is False
    assert set(policy.rule("accounting").tables) == {"invoices", "payments", "cdrs"}
    assert set(policy.rule("pbx_sip_config").tables) == {"pbx_configs", "sip_peers"}
    assert "lifecycle_audit" in policy.exempt_tables
    for rule in policy.rules:
        assert rule.legal_basis.en and rule.legal_basis.da


def test_calendar_year_arithmetic():
    assert add_years(dt.date(2024, 2, 29), 1) == dt.date(2025, 2, 28)
    assert add_years(dt.date(2024, 2, 29), 4) == dt.date(2028, 2, 29)
    assert load_policy().rule("crm_master_data").deadline(dt.date(2023, 5, 31)) == dt.date(2024, 5, 31)
    # accounting is kept *until* fiscal-year end + 5 years: due the day after
    assert load_policy().rule("accounting").deadline(dt.date(2020, 12, 31)) == dt.date(2026, 1, 1)


def test_fiscal_years():
    policy = load_policy()
    assert policy.fiscal_year_of(dt.date(2024, 12, 31)) == 2024
    assert policy.fiscal_year_of(dt.date(2025, 1, 1)) == 2025
    june = policy.model_copy(update={"fiscal_year_end": "06-30"})
    assert june.fiscal_year_of(dt.date(2024, 6, 30)) == 2024
    assert june.fiscal_year_of(dt.date(2024, 7, 1)) == 2025


def changed_year_end(policy, new: str, old: str, last: str):
    from telco_lifecycle.policy import Policy

    return Policy.model_validate({**policy.model_dump(), "fiscal_year_end": new,
                                  "earlier_fiscal_year_ends": [{"fiscal_year_end": old, "last_year_ended_on": last}]})


def test_a_changed_fiscal_year_end_honours_both():
    """31 December until 2021-12-31, then 30 June: a short fiscal 2022 (January-June 2022)."""
    policy = changed_year_end(load_policy(), "06-30", "12-31", "2021-12-31")
    D = dt.date
    assert [policy.fiscal_year_end_of(D(*d)) for d in [(2021, 12, 31), (2022, 1, 1), (2022, 6, 30), (2022, 7, 1)]] \
        == [D(2021, 12, 31), D(2022, 6, 30), D(2022, 6, 30), D(2023, 6, 30)]
    assert policy.latest_year_end(D(2022, 6, 29)) == D(2021, 12, 31)
    assert [policy.fiscal_year_end_date(y) for y in (2021, 2022, 2023)] == [D(2021, 12, 31), D(2022, 6, 30),
                                                                          D(2023, 6, 30)]
    # the other way round two years end in 2021: the name means the later
    back = changed_year_end(load_policy(), "12-31", "06-30", "2021-06-30")
    assert back.fiscal_year_end_of(D(2021, 7, 1)) == D(2021, 12, 31)
    assert back.fiscal_year_end_date(2021) == D(2021, 12, 31)
    assert back.fiscal_year_end_of(D(2021, 6, 30)) == D(2021, 6, 30)
    with pytest.raises(ValueError, match="is not a 06-30 year end"):
        changed_year_end(load_policy(), "12-31", "06-30", "2021-06-29")
    with pytest.raises(ValueError, match="must differ"):
        changed_year_end(load_policy(), "12-31", "12-31", "2021-12-31")


def test_the_rules_table_states_the_units_and_the_derivation():
    from telco_lifecycle.policy import rules_table

    table = rules_table(load_policy())
    for words in ("named after the calendar year in which it ends", "`payments` by `paid_on`",
                  "`invoices` by `issued_on` or a later stored `fiscal_year`", "are one unit",
                  "rows without `invoice_id` by their own year", "defers the PBX/SIP deletion"):
        assert words in table


def broken_copy(tmp_path, old: str, new: str):
    text = default_policy_path().read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "retention.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    line = text[: text.index(old)].count("\n") + 1
    return path, line


def test_broken_policy_names_the_line_and_the_problem(tmp_path):
    path, line = broken_copy(tmp_path,
                             "period_years: 5\n    trigger: schedule\n    legal_basis:\n      en: >-\n        Kept",
                             "period_years: -5\n    trigger: schedule\n    legal_basis:\n      en: >-\n        Kept")
    with pytest.raises(PolicyError) as error:
        load_policy.__wrapped__(path)
    assert f"{path}:{line}:" in str(error.value)
    assert "period_years" in str(error.value)


def test_unknown_key_and_missing_reason_are_errors(tmp_path):
    path, _ = broken_copy(tmp_path, "legal_hold: blocks", "legal_hold: ignored")
    with pytest.raises(PolicyError, match="legal_hold"):
        load_policy.__wrapped__(path)
    path, _ = broken_copy(tmp_path, "  legal_holds: >-", "  # legal_holds removed\n  other: >-")
    assert load_policy.__wrapped__(path)  # still valid YAML/schema: completeness is the schema test's job


def test_broken_policy_fails_dag_import(tmp_path):
    path, line = broken_copy(tmp_path, "clock: fiscal_year_end", "clock: end_of_time")
    code = textwrap.dedent(f"""
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(project_dir() / 'dags')!r})
        print("DAGS", len(bag.dags)); print("ERROR", list(bag.import_errors.values())[0])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "LIFECYCLE_POLICY_FILE": str(path)})
    assert "DAGS 0" in out.stdout
    assert f"retention.yaml:{line}:" in out.stdout and "clock" in out.stdout


def test_every_table_and_column_with_customer_data_is_governed(telco):
    """Introspect the live schema: a table or column no rule covers is an error."""
    policy = load_policy()
    columns: dict[str, set[str]] = {}
    for table, column in telco.rows("""
            SELECT c.table_name, c.column_name FROM information_schema.columns c
            JOIN pg_class t ON t.relname = c.table_name AND t.relnamespace = 'public'::regnamespace
            WHERE c.table_schema = 'public' AND t.relkind IN ('r', 'p') AND NOT t.relispartition"""):
        columns.setdefault(table, set()).add(column)
    governed = {item.table: item for rule in policy.rules for item in rule.data}
    ungoverned = set(columns) - set(governed) - set(policy.exempt_tables)
    assert not ungoverned, f"tables covered by no rule and not exempt: {sorted(ungoverned)}"
    assert not set(governed) - set(columns), "the policy names tables that do not exist"
    for table, item in governed.items():
        if item.action == "anonymise":
            uncovered = columns[table] - set(item.columns) - set(item.kept_columns)
            assert not uncovered, f"{table}: columns neither cleared nor kept with a reason: {sorted(uncovered)}"
            assert not (set(item.columns) | set(item.kept_columns)) - columns[table]


def test_a_new_customer_table_is_caught(telco):
    telco.execute("CREATE TABLE customer_notes (customer_id bigint, note text)")
    with pytest.raises(AssertionError, match="customer_notes"):
        test_every_table_and_column_with_customer_data_is_governed(telco)


def test_a_new_customer_column_is_caught(telco):
    telco.execute("ALTER TABLE customers ADD COLUMN mobile text")
    with pytest.raises(AssertionError, match="mobile"):
        test_every_table_and_column_with_customer_data_is_governed(telco)


def test_readme_rules_table_is_generated_from_the_policy():
    from telco_lifecycle.policy import rules_table

    readme = (project_dir() / "README.md").read_text(encoding="utf-8")
    assert rules_table(load_policy()) in readme, "regenerate it: lifecycle policy --markdown"
