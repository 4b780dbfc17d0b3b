"""docker-compose.yml (no Docker engine here) checked for structure, and against what the
end-to-end suite runs: the same components and commands, and the same Airflow settings."""

from __future__ import annotations

import re
from importlib.metadata import version
from urllib.parse import urlsplit

import pytest
import yaml

from e2e.harness import PRODUCTION_SETTINGS
from telco_lifecycle.local.components import HEALTH_PATH, LocalAirflow
from telco_lifecycle.settings import project_dir

pytestmark = pytest.mark.e2e
ROOT = project_dir()
AIRFLOW_SERVICES = {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                    "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer",
                    "airflow-worker": "celery worker"}
# Settings whose value must be the same in production as in the e2e run.
SAME_VALUE = ["AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__AUTH_MANAGER", "AIRFLOW__CORE__LOAD_EXAMPLES",
              "AIRFLOW__CORE__DEFAULT_TIMEZONE", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def e2e_celery_env(tmp_path_factory) -> dict[str, str]:
    """The settings the Celery e2e run starts Airflow with (test_celery.py)."""
    home = tmp_path_factory.mktemp("compose-airflow")
    airflow = LocalAirflow({"AIRFLOW_HOME": str(home), **PRODUCTION_SETTINGS}, api_port=1,
                           broker_url="redis://127.0.0.1:1/0")
    return airflow.env | {"components": [" ".join(args) for args in airflow.components]}


def test_services_and_commands_match_the_e2e_components(compose, e2e_celery_env):
    services = compose["services"]
    assert {"postgres", "redis", "telco-db", "airflow-init", *AIRFLOW_SERVICES} <= set(services)
    assert sorted(AIRFLOW_SERVICES.values()) == sorted(e2e_celery_env["components"])
    for service, command in AIRFLOW_SERVICES.items():
        assert services[service]["command"] == command, service
    assert services["redis"]["image"].startswith("redis:")
    assert services["postgres"]["image"].startswith("postgres:")


def test_environment_matches_the_e2e_run(compose, e2e_celery_env):
    env = compose["x-airflow-common"]["environment"]
    for name in SAME_VALUE:
        assert str(env[name]).lower() == e2e_celery_env[name].lower(), name
    for name, value in PRODUCTION_SETTINGS.items():
        assert env[name] == value, name
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].endswith(":admin")
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"].startswith("/opt/airflow/auth/")
    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert (broker.scheme, broker.hostname) == ("redis", "redis")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert "AIRFLOW_CONN_TELCO_DB" in env
    # Tasks reach the api-server's Execution API under the service name and container port.
    execution = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert (execution.hostname, execution.path) == ("airflow-apiserver", "/execution/")
    assert compose["services"]["airflow-apiserver"]["ports"][0].endswith(f":{execution.port}")
    # The audit report reads the workers' task logs through the api-server, as the e2e run does.
    api = urlsplit(env["LIFECYCLE_AIRFLOW_API_URL"])
    assert (api.hostname, api.port) == ("airflow-apiserver", execution.port)
    assert e2e_celery_env["LIFECYCLE_AIRFLOW_API_URL"] == e2e_celery_env["AIRFLOW__API__BASE_URL"]
    # Every Airflow container shares the secrets the components check each other with.
    for name in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert env[name].startswith("${"), name


def test_project_folders_are_mounted_where_airflow_reads_them(compose, e2e_celery_env):
    volumes = compose["x-airflow-common"]["volumes"]
    for folder in ("dags", "plugins", "include"):
        assert f"${{AIRFLOW_PROJ_DIR:-.}}/{folder}:/opt/airflow/{folder}" in volumes
    assert e2e_celery_env["AIRFLOW__CORE__DAGS_FOLDER"] == str(ROOT / "dags")


def test_long_running_services_have_health_checks(compose):
    services = compose["services"]
    for name, service in services.items():
        if name not in ("airflow-init", "airflow-cli"):
            assert "healthcheck" in service, name
    assert HEALTH_PATH in " ".join(services["airflow-apiserver"]["healthcheck"]["test"])


def test_every_required_variable_is_in_env_example():
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    example = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert required and required <= example, required - example


def test_image_is_the_tested_airflow_with_the_pinned_requirements():
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM apache/airflow:(\S+)", dockerfile, re.M).group(1)
    assert base.split("-")[0] == version("apache-airflow")
    assert f"apache-airflow=={version('apache-airflow')}" in (ROOT / "requirements.txt").read_text()
    assert "-r requirements.txt" in dockerfile and "constraints.txt" in dockerfile


def test_the_dags_connect_with_their_own_least_privilege_login(compose):
    """Only airflow-init gets the owner's URL (migrations, then grant-login); the DAGs'
    connection is another login, which grant-login makes a member of lifecycle_app."""
    services = compose["services"]
    assert "LIFECYCLE_OWNER_DATABASE_URL" not in compose["x-airflow-common"]["environment"]
    assert "LIFECYCLE_OWNER_DATABASE_URL" in services["airflow-init"]["environment"]
    init = " ".join(services["airflow-init"]["command"])
    assert init.index("lifecycle migrate --database-url") < init.index("lifecycle grant-login --database-url")
    example = dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", (ROOT / ".env.example").read_text(), re.M))
    owner, worker = urlsplit(example["LIFECYCLE_OWNER_DATABASE_URL"]), urlsplit(example["AIRFLOW_CONN_TELCO_DB"])
    assert worker.username != owner.username and (worker.hostname, worker.path) == (owner.hostname, owner.path)


def test_the_owner_of_the_telecom_database_is_not_a_superuser(compose):
    """telco-db's superuser only runs initdb; its init script creates the owner `lifecycle`
    (no superuser, may create roles) and the database `telco` it owns."""
    telco_db = compose["services"]["telco-db"]
    example = dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", (ROOT / ".env.example").read_text(), re.M))
    owner = urlsplit(example["LIFECYCLE_OWNER_DATABASE_URL"])
    assert telco_db["environment"]["POSTGRES_USER"] != owner.username
    script, target = next(v.replace("${AIRFLOW_PROJ_DIR:-.}/", "").split(":")[:2] for v in telco_db["volumes"]
                          if "docker-entrypoint-initdb.d" in v)
    sql = (ROOT / script).read_text()
    assert target.startswith("/docker-entrypoint-initdb.d/")
    assert f"CREATE ROLE {owner.username} LOGIN NOSUPERUSER CREATEROLE" in sql
    assert f"CREATE DATABASE {owner.path.lstrip('/')} OWNER {owner.username}" in sql
    assert "lifecycle-evidence:/opt/airflow/evidence" in compose["x-airflow-common"]["volumes"]
