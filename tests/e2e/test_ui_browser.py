"""The Airflow UI in a real browser: Debian's headless chromium, driven by Playwright.

Without a chromium the browser tests are skipped with the command that enables them; in CI
(`CI=true`, where .ci/run installs it) a missing chromium fails them instead.

Logs in, opens the customer_offboarding trigger form, checks every param's title and
description, has an invalid customer id refused and a valid one run to success. The
screenshots land in LIFECYCLE_REPORTS_DIR/screenshots for people to look at."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from e2e.harness import active_customer

pytestmark = pytest.mark.e2e
DAG = "customer_offboarding"
def dag_params(e2e) -> dict[str, tuple[str, str]]:
    """The DAG's params as the API describes them: {name: (title, description)}."""
    params = e2e.dags.get_dag_details(DAG).params
    return {name: (spec["schema"]["title"], spec["description"]) for name, spec in params.items()}


def test_trigger_form_refuses_an_invalid_customer_and_runs_a_valid_one(page, e2e, screenshots_dir):
    from playwright.sync_api import expect

    e2e.wait_for_dag(DAG)
    customer = active_customer(e2e.telco)

    # Log in (SimpleAuthManager's login page).
    page.goto(e2e.url + "/")
    page.get_by_label("Username").fill(e2e.airflow.username)
    page.get_by_label("Password").fill(e2e.airflow.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(e2e.url + "/")
    # The browser runs in UTC; the UI still defaults to the policy's clock (ui_timezone).
    assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == "UTC"
    assert page.evaluate("localStorage.getItem('timezone')") == '"Europe/Copenhagen"'

    # The trigger form shows every param with its title and description.
    page.goto(f"{e2e.url}/dags/{DAG}")
    page.get_by_role("button", name="Trigger").first.click()
    form = page.get_by_role("dialog").filter(has_text=f"Trigger Dag - {DAG}")
    expect(form).to_be_visible()
    params = dag_params(e2e)
    assert set(params) == {"customer_id", "relationship_end", "reason", "requested_by", "dry_run"}
    for name, (title, description) in params.items():
        expect(form).to_contain_text(title)
        expect(form).to_contain_text(description)
        expect(form.locator(f"[name=element_{name}]")).to_be_attached()
    page.screenshot(path=screenshots_dir / "01-trigger-form.png", full_page=True)

    submit = page.get_by_test_id("trigger-dag-submit")
    customer_id = form.locator("input[name=element_customer_id]")
    form.locator("input[name=element_requested_by]").fill("ui-test")

    # Not a number: the form itself refuses it.
    customer_id.press_sequentially("abc")
    expect(form).to_contain_text("This field is required")
    expect(submit).to_be_disabled()

    # Not an integer: the API refuses the run (HTTP 400) and the form shows the reason.
    runs_before = e2e.runs.get_dag_runs(DAG).total_entries
    customer_id.fill("1.5")
    submit.click()
    expect(form).to_contain_text("400 Bad Request")
    expect(form).to_contain_text("Invalid input for param customer_id: 1.5 is not of type 'integer'")
    page.screenshot(path=screenshots_dir / "02-invalid-customer-refused.png", full_page=True)
    assert e2e.runs.get_dag_runs(DAG).total_entries == runs_before

    # A valid customer: the run is created, and the UI shows every task succeed. (Submitted
    # with the keyboard: the "Failed to Trigger Dag" toast still covers the button.)
    customer_id.fill(str(customer))
    submit.press("Enter")
    page.wait_for_url(re.compile(f"/dags/{DAG}/runs/"))
    run_id = unquote(page.url.rsplit("/runs/", 1)[1])
    assert e2e.wait(DAG, run_id) == "success", e2e.task_states(DAG, run_id)
    page.reload()
    for task_id, state in e2e.task_states(DAG, run_id).items():  # the back-dating approval is skipped
        expect(page.get_by_role("row").filter(has_text=task_id)).to_contain_text(
            "Skipped" if state == "skipped" else "Success")
    page.screenshot(path=screenshots_dir / "03-run-succeeded.png", full_page=True)
    assert e2e.telco.scalar("SELECT count(*) FROM pbx_configs WHERE customer_id = %s", (customer,)) == 0
    assert e2e.runs.get_dag_run(DAG, run_id).conf["requested_by"] == "ui-test"

    # A time zone the user picks in the user menu is theirs to keep.
    page.evaluate("localStorage.setItem('timezone', JSON.stringify('UTC'))")
    page.reload()
    assert page.evaluate("localStorage.getItem('timezone')") == '"UTC"'
