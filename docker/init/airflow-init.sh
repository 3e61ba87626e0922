#!/usr/bin/env bash
# airflow-init: one-shot, idempotent set-up of the compose stack (safe to rerun:
# `docker compose run --rm airflow-init`). Every other Airflow service waits for it to succeed.
#   1. resource check (warnings only), folders
#   2. Airflow metadata DB:   airflow db migrate
#   3. app DB (imaging):      python -m include.common.migrate  (Alembic, every domain branch)
#   4. pools + installation settings: python -m imaging.airflow_setup [--variables FILE]
#   5. connections + UI passwords from .env
set -euo pipefail
cd /opt/airflow

mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)
cpus=$(nproc 2>/dev/null || echo 0)
if (( mem_kb < 4 * 1024 * 1024 )); then
    echo "WARNING: less than 4 GB of memory for Docker ($((mem_kb / 1024)) MB): the stack may be killed."
fi
if (( cpus < 2 )); then
    echo "WARNING: fewer than 2 CPUs for Docker ($cpus)."
fi
mkdir -p /opt/airflow/logs /opt/airflow/data /opt/airflow/nas /opt/airflow/auth

echo "[init] Airflow metadata database"
airflow db migrate

echo "[init] app database migrations"
: "${IMAGING_DB_PASSWORD:?set IMAGING_DB_PASSWORD in .env}"
python -m include.common.migrate "$(python /opt/airflow/docker-init/connections.py --app-db-url)"

echo "[init] pools and installation settings (Variables imaging_*)"
if [[ -f /opt/airflow/config/variables.json ]]; then
  python -m imaging.airflow_setup --variables /opt/airflow/config/variables.json
else
  python -m imaging.airflow_setup
fi

echo "[init] connections"
python /opt/airflow/docker-init/connections.py

if [[ "$(id -u)" == "0" ]]; then
    echo "[init] handing logs/data/nas/auth to uid ${AIRFLOW_UID:-50000}"
    chown -R "${AIRFLOW_UID:-50000}:0" /opt/airflow/logs /opt/airflow/data /opt/airflow/nas /opt/airflow/auth
fi
echo "[init] done"
