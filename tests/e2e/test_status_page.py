"""The "Retention status" plugin inside a running Airflow: the JSON behind Airflow's login
gives the policy's counts (a deliberately overdue customer shows up) and the requests waiting
(an erasure request parked at its approval, with its one-month deadline), and the page renders
in the UI in headless Chromium; the screenshot lands in LIFECYCLE_REPORTS_DIR/screenshots."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request

import pytest
from conftest import ANCHOR

from e2e.harness import insert_ended_customer
from telco_lifecycle.evidence.audit_report import run_label
from telco_lifecycle.policy import add_years, load_policy
from telco_lifecycle.rules.status import rule_counts
from telco_lifecycle.workflows.status_page import URL_PREFIX, one_month_after, today

pytestmark = pytest.mark.e2e
OVERDUE_CUSTOMER = 100501


@pytest.fixture
def overdue_customer(e2e):
    """A customer whose CRM data passed its deadline ten days before ANCHOR and is still there."""
    crm = load_policy().rule("crm_master_data")
    ended = add_years(ANCHOR - dt.timedelta(days=10), -crm.period_years)
    e2e.telco.execute("INSERT INTO customers (customer_id, company_name, relationship_ended_on)"
                      " VALUES (%s, 'Overdue ApS', %s)", (OVERDUE_CUSTOMER, ended))
    yield OVERDUE_CUSTOMER
    e2e.telco.execute("DELETE FROM customers WHERE customer_id = %s", (OVERDUE_CUSTOMER,))


@pytest.fixture(scope="module")
def waiting_erasure(e2e):
    """An erasure request parked at its approval (the run stays open); rejected afterwards."""
    dag = "data_subject_erasure"
    customer = e2e.telco.scalar("SELECT greatest(max(customer_id), 99999) + 1 FROM customers")
    insert_ended_customer(e2e.telco, customer, dt.date.today() - dt.timedelta(days=10))
    e2e.unpause(dag)
    run_id = e2e.trigger(dag, {"customer_id": customer, "requested_by": "e2e-status", "dry_run": False})
    deadline = time.monotonic() + 300
    while not e2e.tasks.get_hitl_details(dag, run_id, response_received=False).hitl_details:
        assert time.monotonic() < deadline, e2e.task_states(dag, run_id)
        time.sleep(1)
    yield {"run_id": run_id, "customer_id": customer}
    e2e.answer_approval(dag, run_id, "Reject")
    e2e.wait(dag, run_id)


def get_json(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_status_json_needs_login_and_counts_the_overdue_customer(e2e, overdue_customer, waiting_erasure):
    url = f"{e2e.url}{URL_PREFIX}/api/status?as_of={ANCHOR}"
    assert get_json(url)[0] == 401

    status, body = get_json(url, e2e.token())

    assert status == 200
    policy = load_policy()
    for rule in body["rules"]:
        expected = rule_counts(e2e.telco.conn, policy.rule(rule["rule"]), ANCHOR, policy)
        assert {k: rule[k] for k in expected} == expected, rule["rule"]
    crm = next(rule for rule in body["rules"] if rule["rule"] == "crm_master_data")
    assert crm["overdue"] >= 1 and body["overdue_total"] >= 1
    assert "customer_offboarding" in next(r for r in body["rules"] if r["rule"] == "pbx_sip_config")["dags"]

    # Today's view: the parked erasure request is open, with its legal deadline, and waits for approval.
    status, body = get_json(f"{e2e.url}{URL_PREFIX}/api/status", e2e.token())
    [request] = [r for r in body["requests"]["open_requests"] if r["run_id"] == waiting_erasure["run_id"]]
    received = dt.date.fromisoformat(request["received"])
    assert request["kind"] == "erasure" and request["customer_id"] == waiting_erasure["customer_id"]
    assert request["deadline"] == one_month_after(received).isoformat()
    assert request["days_left"] == (one_month_after(received) - today()).days
    assert waiting_erasure["run_id"] in {a["run_id"] for a in body["requests"]["approvals_waiting"]}


def test_status_page_renders_in_the_airflow_ui(page, e2e, screenshots_dir, overdue_customer, waiting_erasure):
    from playwright.sync_api import expect

    page.goto(e2e.url + "/")
    page.get_by_label("Username").fill(e2e.airflow.username)
    page.get_by_label("Password").fill(e2e.airflow.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(e2e.url + "/")

    # The navigation links the page; it opens inside the UI.
    page.get_by_role("link", name="Retention status").first.click()
    page.wait_for_url(f"{e2e.url}/plugin/retention-status")
    view = page.frame_locator("iframe")
    expect(view.locator("h1")).to_have_text("Retention status")
    for rule in load_policy().rules:
        expect(view.locator("table.rules")).to_contain_text(rule.id)
    expect(view.locator(".headline")).to_contain_text("past its deadline")
    expect(view.locator("#requests")).to_have_text("Requests")
    expect(view.locator("table.requests")).to_contain_text(run_label(waiting_erasure["run_id"]))
    expect(view.locator("table.requests")).to_contain_text("legal deadline")
    expect(view.locator("table.approvals")).to_contain_text(f"customer {waiting_erasure['customer_id']}")
    page.screenshot(path=screenshots_dir / "retention-status.png", full_page=True)

    # The page alone, at the seeded data's day, as a bookmark would show it.
    page.goto(f"{e2e.url}{URL_PREFIX}/?as_of={ANCHOR}")
    expect(page.locator("input[name=as_of]")).to_have_value(ANCHOR.isoformat())
    expect(page.locator(".headline.bad")).to_be_visible()
