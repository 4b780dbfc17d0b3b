"""The date guard: no run and no acting command acts for a date after today (the database
server's date in Copenhagen), and a trigger with a key its DAG does not declare is refused;
either refusal comes before anything is read or changed."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import load_dagbag
from retention_helpers import VALID_CONF, at

from telco_lifecycle.database import connect
from telco_lifecycle.guards import (
    FutureDateRefused,
    UnknownKeyRefused,
    refuse_future_dates,
    refuse_unknown_keys,
    today,
)


def server_today(telco) -> dt.date:
    return telco.scalar("SELECT (now() AT TIME ZONE 'Europe/Copenhagen')::date")


def test_today_is_the_database_servers_date_in_copenhagen(telco):
    conn = connect(telco.url)
    assert today(conn) == server_today(telco)
    assert refuse_future_dates(conn, {"as_of": server_today(telco), "relationship_end": None}) == server_today(telco)
    tomorrow = server_today(telco) + dt.timedelta(days=1)
    with pytest.raises(FutureDateRefused, match=f"^as_of {tomorrow} is after today \\({server_today(telco)}\\)"):
        refuse_future_dates(conn, {"logical date": dt.date(2020, 1, 1), "as_of": tomorrow})
    conn.close()


def test_an_unknown_key_is_refused_naming_the_closest_declared_one():
    declared = ["customer_id", "relationship_end", "reason", "requested_by", "dry_run"]
    refuse_unknown_keys({"customer_id": 1, "dry_run": True}, declared)
    with pytest.raises(UnknownKeyRefused, match="'dryrun' \\(did you mean 'dry_run'\\?\\)"):
        refuse_unknown_keys({"customer_id": 1999, "requested_by": "x", "dryrun": True}, declared)


def dag_ids() -> list[str]:
    return sorted(load_dagbag().dag_ids)


@pytest.mark.parametrize("dag_id", dag_ids())
def test_every_dag_refuses_a_future_logical_date_before_it_reads_anything(telco, run_dag, dag_id):
    before = telco.fingerprint()
    tomorrow = server_today(telco) + dt.timedelta(days=1)
    dag_run, values = run_dag(dag_id, VALID_CONF.get(dag_id, {}), at(tomorrow))
    assert dag_run.state == "failed" and values == {}
    assert telco.fingerprint() == before




@pytest.mark.parametrize("dag_id, conf", [
    ("crm_retention", {"as_of": "2099-01-01"}),
    ("customer_offboarding", {"customer_id": 1, "requested_by": "test", "relationship_end": "2099-01-01"}),
    ("customer_offboarding", {"customer_id": 1, "requested_by": "test", "dryrun": True}),
    ("accounting_retention", {"as_of": "2020-01-01", "dryrun": True}),
])
def test_a_future_date_param_or_an_unknown_key_is_refused(telco, run_dag, dag_id, conf):
    before = telco.fingerprint()
    dag_run, values = run_dag(dag_id, conf)
    assert dag_run.state == "failed" and values == {}
    assert telco.fingerprint() == before
