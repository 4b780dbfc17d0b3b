#!/bin/sh
# First start of the telco-db volume (docker-entrypoint-initdb.d): the telecom database's
# owner `lifecycle` is not the superuser. It may create roles (lifecycle_app, the DAGs'
# login: `lifecycle migrate`, `lifecycle grant-login`) and owns `telco`; nothing more, so
# the owner cannot bypass row security, read other databases' files or turn off what a
# superuser could (the audit trail's checkpoints are signed outside the database anyway).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v owner_password="$LIFECYCLE_OWNER_PASSWORD" <<'SQL'
CREATE ROLE lifecycle LOGIN NOSUPERUSER CREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS
    PASSWORD :'owner_password';
CREATE DATABASE telco OWNER lifecycle;
SQL
