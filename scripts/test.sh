#!/usr/bin/env bash
# The test command: set up, check the local services, lint, then the whole test suite.
# The app DB is a fresh PostgreSQL database per run; S3 and Hypha servers are started by the test
# session on free loopback ports and stopped afterwards (tests/conftest.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
T0=$SECONDS
bash scripts/setup.sh
export PATH="$ROOT/.venv/bin:$PATH"
if ! python -c "import psycopg2; psycopg2.connect(host='127.0.0.1', port=5432, user='postgres', dbname='postgres', connect_timeout=5).close()" 2>/dev/null; then
  if command -v pg_ctlcluster > /dev/null && [[ -d /etc/postgresql ]]; then
    echo "test: PostgreSQL is not answering; trying to start it"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    sleep 2
  fi
  python -c "import psycopg2; psycopg2.connect(host='127.0.0.1', port=5432, user='postgres', dbname='postgres', connect_timeout=5).close()" \
    || { echo "test: FAIL: PostgreSQL is required at 127.0.0.1:5432 (CI=${CI:-})"; exit 1; }
fi
# Redis is the Celery broker of the scale-out integration test.
if ! python -c "import redis; redis.Redis(host='127.0.0.1', port=6379, socket_connect_timeout=3).ping()" 2>/dev/null; then
  if command -v redis-server > /dev/null; then
    echo "test: Redis is not answering; starting it"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
    sleep 1
  fi
  python -c "import redis; redis.Redis(host='127.0.0.1', port=6379, socket_connect_timeout=3).ping()" \
    || { echo "test: FAIL: Redis is required at 127.0.0.1:6379 (CI=${CI:-})"; exit 1; }
fi
command -v psql > /dev/null || { echo "test: FAIL: psql (PostgreSQL client) is required"; exit 1; }
echo "test: ruff"
ruff check .
ruff format --check .
echo "test: pytest (setup took $((SECONDS - T0)) s)"
exec pytest "$@"
