"""The telecom database through the `telco_db` Airflow connection: from tasks, the status
page and the deadline callbacks in the triggerer alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from telco_lifecycle.settings import TELCO_CONN_ID

if TYPE_CHECKING:
    from telco_lifecycle.database import Connection


def telco_connection() -> Connection:
    """A connection to the telecom database through the `telco_db` Airflow connection."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from telco_lifecycle.database import apply_session_settings

    # The hook's declared CompatConnection omits rollback(), which both psycopg versions have.
    conn = cast("Connection", PostgresHook(postgres_conn_id=TELCO_CONN_ID).get_conn())
    apply_session_settings(conn)
    return conn
