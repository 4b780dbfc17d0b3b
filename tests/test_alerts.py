"""Alerts and metrics (telco_lifecycle.workflows.alerts, alert_delivery, metrics): a failing
verification and a missed deadline each reach a real SMTP server started here, holding no
personal data; tasks report their rows, subjects and verification outcomes through Airflow's
StatsD metrics."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import json
import os
import socket

import pytest
from conftest import ANCHOR, load_dagbag
from test_offboarding_dag import active_customer_with_config

from telco_lifecycle.local.components import free_port


class Inbox:
    """What the local SMTP server received."""

    def __init__(self):
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def text(self, message) -> str:
        parts = [message["Subject"]] + [part.get_payload(decode=True).decode()
                                        for part in message.walk() if not part.is_multipart()]
        return "\n".join(parts)


@pytest.fixture(scope="module")
def smtp():
    """An SMTP server on a free port, reachable as the `smtp_default` connection."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": controller.port,
        "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0}})
    yield inbox
    del os.environ["AIRFLOW_CONN_SMTP_DEFAULT"]
    controller.stop()


@pytest.fixture
def statsd():
    """Airflow's metrics sent to a UDP socket here, as to a StatsD server; the metric lines received."""
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics import stats_utils

    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    env = {"AIRFLOW__METRICS__STATSD_ON": "True", "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
           "AIRFLOW__METRICS__STATSD_PORT": str(server.getsockname()[1]),
           "AIRFLOW__METRICS__STATSD_PREFIX": "airflow"}
    os.environ.update(env)
    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)

    def received() -> list[str]:
        lines = []
        while True:
            try:
                lines += server.recv(65536).decode().splitlines()
            except BlockingIOError:
                return lines

    yield received
    for key in env:
        del os.environ[key]
    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
    server.close()


def personal_values(telco) -> set[str]:
    """Every name, e-mail, phone, CVR and address in the database (long enough to be telling)."""
    rows = telco.rows("""
        SELECT unnest(ARRAY[company_name, cvr, address, email, phone]) FROM customers
        UNION SELECT unnest(ARRAY[full_name, email, phone]) FROM contacts
        UNION SELECT number FROM phone_numbers
        UNION SELECT unnest(ARRAY[billing_name, billing_address]) FROM invoices""")
    return {value for (value,) in rows if value and len(value) >= 6}


def assert_no_personal_data(text: str, telco) -> None:
    leaked = sorted(value for value in personal_values(telco) if value in text)
    assert not leaked, f"personal data in the alert: {leaked[:5]}"


def test_a_failing_verification_alerts_the_team(telco, run_dag, smtp, statsd):
    """On the seeded data (no purge has run) data past its deadline remains: the
    verification fails, names rules and counts, and the team gets an e-mail."""
    smtp.messages.clear()
    run, _ = run_dag("retention_verification", {"as_of": ANCHOR.isoformat()},
                     logical_date=dt.datetime(2026, 6, 15, 3, tzinfo=dt.UTC))
    assert run.state == "failed"

    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    text = smtp.text(message)
    assert message["Subject"].startswith(
        "[data lifecycle] verification failed: retention_verification.verify_all_rules")
    assert message["To"] == "data-team@localhost"
    assert run.run_id in text and "crm_master_data" in text and "offending rows" in text
    assert ">as_of<" in text and ANCHOR.isoformat() in text
    assert "/dags/retention_verification/runs/" in text
    assert_no_personal_data(text, telco)
    assert any(line.startswith("airflow.lifecycle.verification.failed.crm_master_data:1|c") for line in statsd())


def test_a_lifecycle_run_reports_rows_subjects_and_verification(telco, run_dag, smtp, statsd):
    customer = active_customer_with_config(telco)
    pbx = telco.scalar("SELECT count(*) FROM pbx_configs WHERE customer_id = %s", (customer,))
    smtp.messages.clear()

    run, _ = run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "test"})

    assert run.state == "success"
    lines = statsd()
    assert f"airflow.lifecycle.rows_removed.pbx_sip_config.pbx_configs:{pbx}|c" in lines
    assert "airflow.lifecycle.subjects_removed.pbx_sip_config:1|c" in lines
    assert "airflow.lifecycle.verification.passed.pbx_sip_config:1|c" in lines
    assert smtp.messages == []  # nothing failed, nobody is paged


def deadline_context(dag_run, deadline_time: dt.datetime, **overrides) -> dict:
    """What Airflow's scheduler gives a missed deadline's callback (models.deadline.Deadline.handle_miss);
    `overrides` change the run's fields (e.g. its state)."""
    from airflow.api_fastapi.core_api.datamodels.dag_run import DAGRunResponse
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.get(DagRun, dag_run.id)
        return {"dag_run": {**DAGRunResponse.model_validate(run).model_dump(mode="json"), **overrides},
                "deadline": {"id": "0", "deadline_time": deadline_time}}


def test_a_missed_offboarding_deadline_alerts_the_team(telco, run_dag, smtp):
    """The offboarding DAG's DeadlineAlert callback, run as the triggerer runs it: a run still
    running that has not committed the PBX/SIP deletion alerts the team; once the run has ended
    (failed or succeeded), or while it waits after the deletion (a back-dated end's approval),
    nothing is sent."""
    from airflow.triggers.callback import CallbackTrigger

    customer = active_customer_with_config(telco)
    run, _ = run_dag("customer_offboarding", {"customer_id": customer, "requested_by": "test",
                                              "reason": "customer_terminated"})
    [alert] = load_dagbag().get_dag("customer_offboarding").deadline
    assert alert.interval == dt.timedelta(minutes=30)
    smtp.messages.clear()

    async def fire(state: str, run_id: str = run.run_id) -> list:
        trigger = CallbackTrigger(alert.callback.path, {**alert.callback.kwargs, "context": deadline_context(
            run, run.start_date + alert.interval, state=state, dag_run_id=run_id)})
        return [event.payload async for event in trigger.run()]

    for ended in ("success", "failed"):
        assert asyncio.run(fire(ended))[-1]["state"] == "success"
    assert asyncio.run(fire("running"))[-1]["state"] == "success"  # the deletion is committed
    assert smtp.messages == []
    stuck = "manual__stuck_before_the_deletion"
    events = asyncio.run(fire("running", stuck))

    assert events[-1]["state"] == "success", events
    [message] = smtp.messages
    text = smtp.text(message)
    assert message["Subject"] == ("[data lifecycle] PBX/SIP deletion not finished within 30 min of the trigger: "
                                  "customer_offboarding (pbx_sip_config)")
    assert stuck in text and ">customer_id<" in text and f">{customer}<" in text
    assert_no_personal_data(text, telco)


def test_the_daily_purges_must_finish_by_the_set_local_time(monkeypatch):
    from telco_lifecycle.workflows.alerts import purge_deadline

    dags = load_dagbag()
    for dag_id in ("crm_retention", "contract_archive_retention", "accounting_retention"):
        [alert] = dags.get_dag(dag_id).deadline
        assert alert.interval == dt.timedelta(hours=4), dag_id  # 02:00 -> 06:00 Copenhagen
    monkeypatch.setenv("LIFECYCLE_PURGE_DEADLINE", "03:30")
    assert purge_deadline("crm_master_data", "0 2 * * *").interval == dt.timedelta(minutes=90)
    monkeypatch.setenv("LIFECYCLE_PURGE_DEADLINE", "01:00")
    with pytest.raises(ValueError, match="not after the purge's start"):
        purge_deadline("crm_master_data", "0 2 * * *")


def test_alerts_go_to_the_log_unless_smtp_or_a_channel_is_configured(monkeypatch, caplog):
    """No SMTP connection and no LIFECYCLE_ALERT_CHANNEL: the alert is a warning in the log."""
    from telco_lifecycle.workflows.alert_delivery import Alert, adeliver

    monkeypatch.delenv("LIFECYCLE_ALERT_CHANNEL", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    with caplog.at_level("WARNING", logger="telco_lifecycle.workflows.alerts"):
        asyncio.run(adeliver(Alert("task failed", "some_dag", "manual__1")))
    assert "ALERT [data lifecycle] task failed: some_dag" in caplog.text
