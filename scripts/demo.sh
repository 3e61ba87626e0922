#!/usr/bin/env bash
# The demo on the embedded default: SQLite metadata DB + LocalExecutor, SQLite app DB, local S3
# (rclone) and Hypha servers, sample data for every pipeline, connections set, and the Airflow
# components started as separate processes on http://127.0.0.1:8080. Stop with: make stop
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
T0=$SECONDS
bash scripts/setup.sh
. scripts/env.sh
mkdir -p "$AIRFLOW_HOME" "$IMAGING_DATA_DIR" "$IMAGING_RUN_DIR/logs"
bash scripts/stop.sh --quiet

echo "demo: migrating the Airflow metadata DB (SQLite)"
airflow db migrate > "$IMAGING_RUN_DIR/logs/db-migrate.log" 2>&1
echo "demo: migrating the app DB ($IMAGING_DATA_DIR/app.db)"
python -m include.common.migrate "sqlite:///$IMAGING_DATA_DIR/app.db" > "$IMAGING_RUN_DIR/logs/app-migrate.log" 2>&1
echo "demo: starting the local S3 and Hypha servers"
python scripts/services.py start
airflow connections import --overwrite "$IMAGING_RUN_DIR/connections.json" > "$IMAGING_RUN_DIR/logs/connections.log" 2>&1
echo "demo: generating sample data"
if [[ -z "${IMAGING_DEMO_SKIP_SAMPLES:-}" ]]; then IMAGING_DEMO_APP_DB_URL="sqlite:///$IMAGING_DATA_DIR/app.db" python scripts/make_samples.py "$IMAGING_DATA_DIR/samples"; fi
echo "demo: pools and installation settings (Admin -> Pools, Admin -> Variables)"
SETUP_ARGS=()
[[ -f "$IMAGING_DATA_DIR/samples/variables.json" ]] && SETUP_ARGS+=(--variables "$IMAGING_DATA_DIR/samples/variables.json")
python -m imaging.airflow_setup "${SETUP_ARGS[@]}" > "$IMAGING_RUN_DIR/logs/airflow-setup.log" 2>&1 \
  || { cat "$IMAGING_RUN_DIR/logs/airflow-setup.log"; echo "demo: the Airflow set-up step failed"; exit 1; }

for component in api-server scheduler dag-processor triggerer; do
  setsid nohup airflow "$component" > "$IMAGING_RUN_DIR/logs/$component.log" 2>&1 < /dev/null &
  echo $! > "$IMAGING_RUN_DIR/airflow-$component.pid"
done

URL="http://127.0.0.1:${AIRFLOW__API__PORT}"
for _ in $(seq 1 120); do
  if curl -fsS "$URL/api/v2/monitor/health" > /dev/null 2>&1; then break; fi
  sleep 1
done
curl -fsS "$URL/api/v2/monitor/health" > /dev/null || { echo "demo: the api-server did not come up; see $IMAGING_RUN_DIR/logs/api-server.log"; exit 1; }
python scripts/demo_check.py "$URL"
PASSWORD="$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['admin'])" "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated")"
cat <<MSG

  Airflow UI:  $URL
  Login:       admin / $PASSWORD
  Sample data: $IMAGING_DATA_DIR/samples   (trigger confs: $IMAGING_DATA_DIR/samples/demo_confs.json)
  S3:          http://127.0.0.1:${IMAGING_S3_PORT:-9100}  (bucket imaging)
  Hypha:       http://127.0.0.1:${IMAGING_HYPHA_PORT:-9527}
  Logs:        $IMAGING_RUN_DIR/logs
  Ready in $((SECONDS - T0)) s.  Stop everything with: make stop
MSG
