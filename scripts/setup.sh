#!/usr/bin/env bash
# Create/refresh the two virtualenvs from the pinned requirements (idempotent: skips what is current).
#   .venv        Airflow + providers + pipelines + test tools (requirements.txt)
#   .venv-hypha  the Hypha server (requirements-hypha.txt; it cannot share Airflow's FastAPI)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; assert sys.version_info[:2] >= (3, 11), f"Python >= 3.11 needed, not {sys.version}"'

ensure_venv() {  # dir requirements-file
  local venv="$1" req="$2" stamp="$1/.requirements.sha256"
  local want; want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "setup: $venv is up to date"; return
  fi
  local t0=$SECONDS
  [[ -x "$venv/bin/python" ]] || "$PY" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
  echo "setup: $venv installed from $req in $((SECONDS - t0)) s"
}

ensure_venv .venv requirements.txt &
p1=$!
ensure_venv .venv-hypha requirements-hypha.txt &
p2=$!
wait $p1; wait $p2

# Extra system pieces some tests need (e.g. Debian's chromium for the browser tests): each script in
# scripts/setup.d is idempotent and quick when its piece is already there.
for extra in scripts/setup.d/*.sh; do
  [[ -e "$extra" ]] || continue
  bash "$extra"
done
