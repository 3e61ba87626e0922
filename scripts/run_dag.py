"""Headless runner: run one DAG run to completion and exit non-zero if it failed.

    make run-dag DAG=<dag_id> CONF='<json>' [APPROVE=all]
    .venv/bin/python scripts/run_dag.py <dag_id> --conf '<json>' [--approve all]

With ``--approve all`` every human-approval task of the run is answered with its approving option
through Airflow's HITL REST API, ~1.5 s after it starts waiting; without it approval tasks wait
(answer them in the UI: this process serves the run until they are answered).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "plugins"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("dag_id")
    ap.add_argument("--conf", default="{}", help="DAG run conf as JSON")
    ap.add_argument("--approve", default="", choices=["", "all", "none"])
    ap.add_argument(
        "--local",
        action="store_true",
        help="run in this process with dag.test() even when the demo's Airflow is up",
    )
    args = ap.parse_args(argv)
    try:
        conf = json.loads(args.conf or "{}")
    except json.JSONDecodeError as exc:
        print(f"--conf is not valid JSON: {exc}", file=sys.stderr)
        return 2
    import os

    from imaging.runner import api_is_up, api_token, run_dag, run_dag_remote

    approve = "all" if args.approve == "all" else None
    base_url = os.environ.get("AIRFLOW__API__BASE_URL", "http://127.0.0.1:8080")
    if not args.local and api_is_up(base_url):
        # The demo is running: trigger through its REST API so its scheduler runs the tasks.
        home = Path(os.environ.get("AIRFLOW_HOME", ROOT / ".airflow"))
        passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        user = os.environ.get("AIRFLOW_USER", "admin")
        token = api_token(base_url, user, passwords[user])
        print(f"running {args.dag_id} on {base_url}")
        result = run_dag_remote(base_url, args.dag_id, conf, token=token, approve=approve)
    else:
        result = run_dag(args.dag_id, conf, approve=approve)
    width = max((len(k) for k in result.task_states), default=0)
    for task, state in sorted(result.task_states.items()):
        print(f"  {task:<{width}}  {state}")
    for a in result.answered:
        print(f"  approved {a['task_id']}[{a['map_index']}]: {a['chosen_options']}")
    print(f"{result.dag_id} {result.run_id}: {result.state}")
    line = (result.outcome or {}).get("line") or result.note
    print(
        f"outcome: {line}" if line else "outcome: (the run published no summary; see the task logs)"
    )
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
