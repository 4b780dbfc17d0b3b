"""The retention status (telco_lifecycle.workflows.status_page): the counts the policy implies at a chosen
`as_of`, the runs linked from it, and the endpoint behind Airflow's login."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from conftest import ANCHOR

from telco_lifecycle.policy import add_years, load_policy
from telco_lifecycle.workflows.status_page import retention_status

POLICY = load_policy()
CRM, ACCOUNTING = POLICY.rule("crm_master_data"), POLICY.rule("accounting")


def status_at(telco, as_of=ANCHOR) -> dict:
    from airflow.utils.session import create_session

    with create_session() as session:
        return retention_status(telco.conn, session, as_of, POLICY)


def by_rule(status: dict) -> dict[str, dict]:
    return {rule["rule"]: rule for rule in status["rules"]}


def counts(status: dict, rule_id: str) -> dict[str, int]:
    rule = by_rule(status)[rule_id]
    return {key: rule[key] for key in ("due_today", "overdue", "due_soon", "held")}


def expected_relationship_counts(telco, rule, as_of, window_days=30) -> dict[str, int]:
    """The oracle: ended customers bucketed by `Rule.deadline(relationship end)`, among those
    that still hold what the rule removes."""
    present = set()
    for item in rule.data:
        remains = (" AND (" + " OR ".join(f"{c} IS NOT NULL" for c in item.columns) + ")"
                   if item.action == "anonymise" else "")
        present |= {r[0] for r in telco.rows(f"SELECT DISTINCT customer_id FROM {item.table} WHERE TRUE{remains}")}
    result = dict.fromkeys(("due_today", "overdue", "due_soon", "held"), 0)
    for customer, end, held in telco.rows("SELECT customer_id, relationship_ended_on, lifecycle_on_hold(customer_id)"
                                          " FROM customers WHERE relationship_ended_on IS NOT NULL"):
        if customer not in present:
            continue
        deadline = rule.deadline(end)
        if deadline <= as_of and held:
            result["held"] += 1
        elif deadline < as_of:
            result["overdue"] += 1
        elif deadline == as_of:
            result["due_today"] += 1
        elif deadline <= as_of + dt.timedelta(days=window_days):
            result["due_soon"] += 1
    return result


def add_customer(telco, customer_id: int, ended: dt.date | None, *, contact=True, pbx=False, invoice_year=None,
                 hold=False) -> None:
    telco.execute("INSERT INTO customers (customer_id, company_name, cvr, email, relationship_ended_on)"
                  " VALUES (%s, 'Statustest ApS', '12345678', 'status@example.invalid', %s)", (customer_id, ended))
    if contact:
        telco.execute("INSERT INTO contacts (customer_id, full_name, role) VALUES (%s, 'Test Person', 'other')",
                      (customer_id,))
    if pbx:
        telco.execute("INSERT INTO pbx_configs (customer_id, config) VALUES (%s, '{}')", (customer_id,))
    if invoice_year:
        telco.execute("INSERT INTO invoices (customer_id, issued_on, fiscal_year, amount_dkk)"
                      " VALUES (%s, %s, %s, 100)", (customer_id, dt.date(invoice_year, 6, 1), invoice_year))
    if hold:
        telco.execute("INSERT INTO legal_holds (customer_id, case_reference, placed_on) VALUES (%s, 'CASE-1', %s)",
                      (customer_id, ANCHOR - dt.timedelta(days=3)))


def test_counts_on_the_seeded_data_are_what_the_policy_implies(telco, airflow_db):
    status = status_at(telco)
    assert status["as_of"] == ANCHOR.isoformat()
    for rule in POLICY.rules:
        if rule.clock == "relationship_end":
            assert counts(status, rule.id) == expected_relationship_counts(telco, rule, ANCHOR), rule.id
    assert status["overdue_total"] == sum(r["overdue"] for r in status["rules"])
    assert status["holds_in_force"]["holds"] == telco.scalar(
        "SELECT count(*) FROM legal_holds WHERE released_on IS NULL")


def test_each_customer_lands_in_the_bucket_its_deadline_gives(telco, airflow_db):
    before = status_at(telco)
    one_day = dt.timedelta(days=1)

    def ended_for(rule, deadline):  # the relationship end whose deadline under `rule` is `deadline`
        return add_years(deadline, -rule.period_years)

    add_customer(telco, 100001, ended_for(CRM, ANCHOR - 10 * one_day))       # deliberately overdue
    add_customer(telco, 100002, ended_for(CRM, ANCHOR))                       # due today
    add_customer(telco, 100003, ended_for(CRM, ANCHOR + 20 * one_day))        # due in 20 days
    add_customer(telco, 100004, ended_for(CRM, ANCHOR + 31 * one_day))        # outside the window
    add_customer(telco, 100005, ended_for(CRM, ANCHOR - 400 * one_day), hold=True)  # kept by a hold
    add_customer(telco, 100006, ANCHOR, contact=False, pbx=True)             # PBX due today (offboarding day)
    add_customer(telco, 100007, ANCHOR - one_day, contact=False, pbx=True)   # PBX left behind: overdue
    fiscal_due_today = next(y for y in range(ANCHOR.year, 2000, -1)          # the last fiscal year due by ANCHOR
                            if ACCOUNTING.deadline(POLICY.fiscal_year_end_date(y)) <= ANCHOR)
    add_customer(telco, 100009, None, contact=False, invoice_year=fiscal_due_today - 1)  # overdue invoice
    after = status_at(telco)

    def delta(rule_id):
        return {k: counts(after, rule_id)[k] - counts(before, rule_id)[k] for k in counts(after, rule_id)}

    assert delta("crm_master_data") == {"due_today": 1, "overdue": 1, "due_soon": 1, "held": 1}
    assert delta("pbx_sip_config") == {"due_today": 1, "overdue": 1, "due_soon": 0, "held": 0}
    assert delta("archived_contracts") == {"due_today": 0, "overdue": 0, "due_soon": 0, "held": 0}
    assert delta("accounting") == {"due_today": 0, "overdue": 1, "due_soon": 0, "held": 0}
    assert after["overdue_total"] - before["overdue_total"] == 3
    assert after["holds_in_force"]["holds"] - before["holds_in_force"]["holds"] == 1


def test_after_the_purge_nothing_is_overdue_and_the_run_is_linked(telco, run_dag):
    run, results = run_dag("crm_retention", {"as_of": ANCHOR.isoformat()},
                           logical_date=dt.datetime(2026, 6, 15, 2, tzinfo=dt.UTC))
    assert run.state == "success", results
    status = status_at(telco)
    crm = by_rule(status)["crm_master_data"]
    assert (crm["due_today"], crm["overdue"]) == (0, 0)
    assert crm["last_purge"]["run_id"] == run.run_id
    assert crm["last_purge"]["url"].startswith("/dags/crm_retention/runs/")
    assert crm["last_verification"]["result"] == "passed"
    assert crm["last_verification"]["task_id"].startswith("verify")
    assert "crm_retention" in crm["dags"]


@pytest.fixture
def client(telco, airflow_db):
    from airflow.api_fastapi.app import get_auth_manager, init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from telco_lifecycle.workflows.status_page import create_app

    init_auth_manager()
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
    client = TestClient(create_app())
    client.token = token
    return client


def test_endpoint_requires_login_and_serves_json_and_html(client, telco):
    assert client.get("/api/status").status_code == 401
    assert client.get("/", cookies={"_token": "forged"}).status_code == 403

    response = client.get(f"/api/status?as_of={ANCHOR}", headers={"Authorization": f"Bearer {client.token}"})
    assert response.status_code == 200
    assert response.json() == status_at(telco)

    client.cookies.set("_token", client.token)  # the UI's session cookie, as the iframe sends it
    page = client.get(f"/?as_of={ANCHOR}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Retention status" in page.text and "crm_master_data" in page.text
    assert client.get("/api/status?as_of=not-a-date").status_code == 422


def test_one_month_after_keeps_the_day_or_takes_the_month_end():
    from telco_lifecycle.workflows.status_page import one_month_after

    assert one_month_after(dt.date(2026, 3, 15)) == dt.date(2026, 4, 15)
    assert one_month_after(dt.date(2026, 1, 31)) == dt.date(2026, 2, 28)
    assert one_month_after(dt.date(2028, 1, 31)) == dt.date(2028, 2, 29)
    assert one_month_after(dt.date(2026, 12, 20)) == dt.date(2027, 1, 20)


@pytest.fixture
def open_access_request(airflow_db):
    """A data_subject_access run that came in ten days before ANCHOR and has not ended."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    received = dt.datetime(2026, 6, 5, 9, tzinfo=dt.UTC)
    run_id = f"manual__status_test_{uuid.uuid4().hex[:8]}"
    with create_session() as session:
        run = DagRun(dag_id="data_subject_access", run_id=run_id, run_type=DagRunType.MANUAL, run_after=received,
                     conf={"customer_id": 42, "requested_by": "test"}, state=DagRunState.RUNNING)
        run.queued_at = received
        session.add(run)
    yield run_id
    with create_session() as session:
        session.query(DagRun).filter(DagRun.run_id == run_id).delete()


def test_open_requests_show_their_legal_deadline_and_the_cli_prints_them(telco, open_access_request, capsys):
    from telco_lifecycle.cli import main

    [request] = [r for r in status_at(telco)["requests"]["open_requests"] if r["run_id"] == open_access_request]
    assert request == {"kind": "access", "dag_id": "data_subject_access", "run_id": open_access_request,
                       "customer_id": 42, "received": "2026-06-05", "deadline": "2026-07-05", "days_left": 20,
                       "url": f"/dags/data_subject_access/runs/{open_access_request}"}

    assert main(["status", "--database-url", telco.url, "--as-of", ANCHOR.isoformat()]) in (0, 1)
    out = capsys.readouterr().out
    assert f"Retention status as of {ANCHOR}" in out and "crm_master_data" in out
    assert (f"access   customer 42: received 2026-06-05, legal deadline 2026-07-05 (20 day(s) left)"
            f"  {open_access_request}") in out


def test_deletions_a_hold_defers_are_listed_under_requests(telco, capsys):
    """An ended customer under a hold whose PBX/SIP configuration is kept until the release."""
    from telco_lifecycle.cli import main

    customer = telco.scalar("""
        SELECT c.customer_id FROM customers c WHERE c.relationship_ended_on IS NULL AND lifecycle_on_hold(c.customer_id)
          AND EXISTS (SELECT 1 FROM pbx_configs p WHERE p.customer_id = c.customer_id)
        ORDER BY c.customer_id LIMIT 1""")
    telco.execute("UPDATE customers SET relationship_ended_on = %s WHERE customer_id = %s",
                  (ANCHOR - dt.timedelta(days=3), customer))
    holds = [r[0] for r in telco.rows("SELECT legal_hold_id FROM legal_holds WHERE customer_id = %s"
                                      " AND released_on IS NULL ORDER BY placed_on, legal_hold_id", (customer,))]

    deferred = status_at(telco)["requests"]["deferred_deletions"]
    assert {"customer_id": customer, "ended_on": (ANCHOR - dt.timedelta(days=3)).isoformat(),
            "hold_ids": holds} in deferred
    main(["status", "--database-url", telco.url, "--as-of", ANCHOR.isoformat()])
    assert f"deferred PBX/SIP deletion: customer {customer} (ended {ANCHOR - dt.timedelta(days=3)})" in \
        capsys.readouterr().out
