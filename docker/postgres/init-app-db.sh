#!/bin/bash
# Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d):
# creates the app database and its owner next to the Airflow metadata database.
# The app DB's tables are created by airflow-init (python -m include.common.migrate).
set -euo pipefail
: "${IMAGING_DB_USER:=imaging}" "${IMAGING_DB_NAME:=imaging}"
: "${IMAGING_DB_PASSWORD:?set IMAGING_DB_PASSWORD in .env}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v app_user="$IMAGING_DB_USER" -v app_db="$IMAGING_DB_NAME" -v app_pw="$IMAGING_DB_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'app_user', :'app_pw')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_user') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'app_user')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'app_db') \gexec
SQL
