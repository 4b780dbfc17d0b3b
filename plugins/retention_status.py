"""The "Retention status" page in the Airflow UI: telco_lifecycle.workflows.status_page served by the API
server under /retention-status (HTML at /, JSON at /api/status, both behind Airflow's login)
and shown in the UI's navigation as an external view (at /plugin/retention-status); and the
UI's default time zone, Europe/Copenhagen (telco_lifecycle.workflows.ui_timezone)."""

from airflow.plugins_manager import AirflowPlugin

from telco_lifecycle.workflows.status_page import URL_PREFIX, create_app
from telco_lifecycle.workflows.ui_timezone import DefaultUiTimezone


class RetentionStatusPlugin(AirflowPlugin):
    name = "retention_status"
    fastapi_apps = [{"name": "Retention status", "app": create_app(), "url_prefix": URL_PREFIX}]
    external_views = [{
        "name": "Retention status",
        "href": URL_PREFIX + "/",
        "url_route": "retention-status",
        "destination": "nav",
        "nav_top_level": True,
    }]
    fastapi_root_middlewares = [{"name": "UI time zone Europe/Copenhagen", "middleware": DefaultUiTimezone}]
