#!/usr/bin/env bash
# Stop every process the demo started (by PID, whole process groups), leaving none behind.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -x .venv/bin/python ]] || exit 0
. scripts/env.sh
python scripts/services.py stop "$@"
