"""The "Retention status" plugin inside a running Airflow: the JSON behind Airflow's login
gives the policy's counts (a deliberately overdue customer shows up), and the page renders
in the UI in headless Chromium; the screenshot lands in LIFECYCLE_REPORTS_DIR/screenshots."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request

import pytest
from conftest import ANCHOR

from telco_lifecycle.policy import add_years, load_policy
from telco_lifecycle.rules.status import rule_counts
from telco_lifecycle.workflows.status_page import URL_PREFIX

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


def get_json(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_status_json_needs_login_and_counts_the_overdue_customer(e2e, overdue_customer):
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


def test_status_page_renders_in_the_airflow_ui(page, e2e, screenshots_dir, overdue_customer):
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
        expect(view.locator("table")).to_contain_text(rule.id)
    expect(view.locator(".headline")).to_contain_text("past its deadline")
    page.screenshot(path=screenshots_dir / "retention-status.png", full_page=True)

    # The page alone, at the seeded data's day, as a bookmark would show it.
    page.goto(f"{e2e.url}{URL_PREFIX}/?as_of={ANCHOR}")
    expect(page.locator("input[name=as_of]")).to_have_value(ANCHOR.isoformat())
    expect(page.locator(".headline.bad")).to_be_visible()
