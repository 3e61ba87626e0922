"""Wait until the demo's dag-processor has parsed every DAG file, then report DAGs and import errors.
Exits non-zero on import errors."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _token(url: str) -> str:
    import os

    home = Path(os.environ["AIRFLOW_HOME"])
    pw = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    req = urllib.request.Request(
        f"{url}/auth/token",
        data=json.dumps({"username": "admin", "password": pw}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["access_token"]


def _get(url: str, token: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


# DAGs the web app triggers: unpaused so that uploads from /photos run at once. The scheduled DAGs
# stay paused until the user unpauses them.
UNPAUSE = ("photo_ingest", "photo_reprocess")


def _patch(url: str, token: str, body: dict) -> None:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="PATCH",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10):
        pass


def main(url: str, timeout: float = 180) -> int:
    files = sorted(p.stem for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
    token = _token(url)
    deadline = time.monotonic() + timeout
    dags: set[str] = set()
    errors: list[dict] = []
    while time.monotonic() < deadline:
        dags = {d["dag_id"] for d in _get(f"{url}/api/v2/dags?limit=100", token)["dags"]}
        errors = _get(f"{url}/api/v2/importErrors", token)["import_errors"]
        if set(files) <= dags or errors:
            break
        time.sleep(2)
    print(f"demo: {len(dags)} DAGs loaded: {', '.join(sorted(dags))}")
    missing = sorted(set(files) - dags)
    for e in errors:
        print(f"demo: IMPORT ERROR in {e['filename']}:\n{e['stack_trace']}")
    if missing:
        print(f"demo: not (yet) loaded: {', '.join(missing)}")
    for dag_id in UNPAUSE:
        if dag_id in dags:
            _patch(f"{url}/api/v2/dags/{dag_id}", token, {"is_paused": False})
    return 1 if errors or missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
