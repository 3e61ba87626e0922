#!/usr/bin/env bash
# Browser tests (tests/e2e/test_webapp_browser.py): Debian's chromium + the Playwright client.
# Idempotent and quick when both are there. Never runs `playwright install`: the tests launch
# /usr/bin/chromium through Playwright's executable_path.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PLAYWRIGHT_VERSION="1.65.2"

if [[ ! -x /usr/bin/chromium ]]; then
  SUDO=""
  [[ "$(id -u)" == "0" ]] || SUDO="sudo"
  echo "browser: installing Debian's chromium"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
/usr/bin/chromium --version 2>/dev/null  # (its wrapper script prints a harmless shell warning)

PY="$ROOT/.venv/bin/python"
if [[ -x "$PY" ]]; then
  have="$("$PY" -c 'import importlib.metadata as m; print(m.version("playwright"))' 2>/dev/null || true)"
  if [[ "$have" != "$PLAYWRIGHT_VERSION" ]]; then
    echo "browser: installing playwright==$PLAYWRIGHT_VERSION into .venv"
    "$PY" -m pip install -q --disable-pip-version-check "playwright==$PLAYWRIGHT_VERSION"
  fi
  echo "browser: playwright $("$PY" -c 'import importlib.metadata as m; print(m.version("playwright"))')"
fi
