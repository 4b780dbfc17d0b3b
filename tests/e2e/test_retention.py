"""A retention DAG on a real Airflow, triggered through the REST API with an `as_of`."""

from __future__ import annotations

import pytest

from e2e.harness import check_retention_run, requires_dag

pytestmark = pytest.mark.e2e


@requires_dag("crm_retention")
def test_crm_retention_honours_as_of_and_logs_its_audit_events(e2e):
    check_retention_run(e2e, "crm_retention", "crm_master_data")

