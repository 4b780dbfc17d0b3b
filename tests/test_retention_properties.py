"""Property-based tests: random customer histories and `as_of` dates; after the scheduled
purges every row is there exactly when the policy says it must still be kept.

The oracle is the policy itself (`Rule.deadline`, `Policy.fiscal_year_of`) evaluated in
Python, independent of the SQL the purges generate."""

from __future__ import annotations

import datetime as dt
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from retention_helpers import CPH, add_customer

from telco_lifecycle.database import connect
from telco_lifecycle.evidence import audit
from telco_lifecycle.policy import load_policy
from telco_lifecycle.rules.retention import purge

RUN = audit.RunContext("test", "property", "purge")
SCHEDULED = [rule.id for rule in load_policy().rules if rule.trigger == "schedule"]
IDS = itertools.count(200000)

# Histories and `as_of` dates up to today: no purge acts for a date after today.
TODAY = dt.date.today()
days = st.one_of(st.dates(dt.date(2015, 1, 1), TODAY),
                 st.sampled_from([dt.date(2020, 2, 29), dt.date(2024, 2, 29), dt.date(2019, 12, 31),
                                  dt.date(2020, 1, 1)]))
moments = st.one_of(st.datetimes(dt.datetime(2015, 1, 1), dt.datetime.combine(TODAY, dt.time())),
                    st.sampled_from([dt.datetime(2019, 12, 31, 23, 59), dt.datetime(2020, 1, 1, 0, 30)]))
histories = st.lists(st.fixed_dictionaries({
    "ended_on": st.none() | days,
    "held": st.booleans(),
    "invoices": st.lists(st.tuples(days, st.integers(2015, TODAY.year)), max_size=3),
    "cdrs": st.lists(moments, max_size=3),
}), min_size=1, max_size=4)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories=histories, as_of=st.dates(dt.date(2016, 1, 1), TODAY))
def test_purges_keep_exactly_what_the_policy_keeps(telco, histories, as_of):
    policy = load_policy()
    customers = {}
    for history in histories:
        customer = next(IDS)
        add_customer(telco, customer, history["ended_on"], history["invoices"], history["cdrs"])
        if history["held"]:
            telco.execute("INSERT INTO legal_holds (customer_id, case_reference, placed_on)"
                          " VALUES (%s, 'SKP-PROP', '2015-01-01')", (customer,))
        customers[customer] = history

    conn = connect(telco.url)
    for rule_id in SCHEDULED:
        purge(conn, rule_id, as_of, RUN, batch_size=50)
    again = [purge(conn, rule_id, as_of, RUN)["removed"] for rule_id in SCHEDULED]
    conn.close()
    assert all(n == 0 for removed in again for n in removed.values()), "a re-run must be a no-op"

    def due(rule_id: str, clock_start: dt.date | None) -> bool:
        return clock_start is not None and policy.rule(rule_id).deadline(clock_start) <= as_of

    for customer, history in customers.items():
        keep = history["held"]
        ended = history["ended_on"]
        crm_kept = keep or not due("crm_master_data", ended)
        assert telco.scalar("SELECT company_name IS NOT NULL FROM customers WHERE customer_id = %s",
                            (customer,)) == crm_kept
        assert telco.scalar("SELECT count(*) FROM contacts WHERE customer_id = %s", (customer,)) == int(crm_kept)
        contracts_kept = keep or not due("archived_contracts", ended)
        assert telco.scalar("SELECT count(*) FROM archived_contracts WHERE customer_id = %s",
                            (customer,)) == int(contracts_kept)
        # an invoice (paid on its issue day) belongs to the later of its issue date's fiscal year and its label
        invoices = sorted(fy for issued, fy in history["invoices"] if keep or not due(
            "accounting", policy.fiscal_year_end_date(max(fy, policy.fiscal_year_of(issued)))))
        assert [r[0] for r in telco.rows("SELECT fiscal_year FROM invoices WHERE customer_id = %s ORDER BY 1",
                                         (customer,))] == invoices
        assert telco.scalar("SELECT count(*) FROM payments WHERE invoice_id IN"
                            " (SELECT invoice_id FROM invoices WHERE customer_id = %s)", (customer,)) == len(invoices)
        cdrs = sorted(m.replace(tzinfo=CPH).astimezone(dt.UTC) for m in history["cdrs"] if keep or not due(
            "accounting", policy.fiscal_year_end_date(policy.fiscal_year_of(m.replace(tzinfo=CPH).date()))))
        assert [r[0] for r in telco.rows("SELECT started_at FROM cdrs WHERE customer_id = %s ORDER BY 1",
                                         (customer,))] == cdrs
