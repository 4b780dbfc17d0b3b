# The Airflow image for the telecom data-lifecycle workflows: the official image extended
# with this project's pinned requirements and its `telco-lifecycle` package (which puts the
# `lifecycle` command on PATH), as https://airflow.apache.org/docs/docker-stack/build.html
# recommends: install as the `airflow` user, keep `apache-airflow` at the image's version.
FROM apache/airflow:3.3.2-python3.11

USER airflow

# A writable build folder owned by airflow (pip builds the package in-tree).
RUN mkdir -p /home/airflow/telco-lifecycle/src
WORKDIR /home/airflow/telco-lifecycle

# Dependencies first, so that a code change does not reinstall them. requirements.txt pins
# the direct dependencies and reads constraints.txt (same folder) for the whole resolved set;
# naming apache-airflow==${AIRFLOW_VERSION} stops pip from changing the image's Airflow.
COPY --chown=airflow:root requirements.txt constraints.txt pyproject.toml ./
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r requirements.txt

# The project's package itself; its dependencies are already installed above.
COPY --chown=airflow:root src/ ./src/
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build src/*.egg-info

# DAGs and include/ (SQL migrations and templates, the retention policy) baked in, so the
# image works on its own; docker-compose.yml bind-mounts the checkout's folders over them.
COPY --chown=airflow:root include/ /opt/airflow/include/
COPY --chown=airflow:root dags/ /opt/airflow/dags/
RUN mkdir -p /opt/airflow/reports /opt/airflow/plugins

ENV LIFECYCLE_PROJECT_DIR=/opt/airflow \
    LIFECYCLE_REPORTS_DIR=/opt/airflow/reports \
    AIRFLOW__CORE__DEFAULT_TIMEZONE=Europe/Copenhagen

WORKDIR /opt/airflow
