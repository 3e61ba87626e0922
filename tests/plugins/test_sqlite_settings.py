"""The demo's SQLite metadata DB: the API server's audit log must not block its event loop.

Airflow writes the audit entry of every UI action (trigger, unpause, approve) in an async
dependency with a synchronous session. On SQLite, while another request holds the write lock
and needs the event loop to commit, that write deadlocked the server for the busy timeout and
the click answered HTTP 500 (caught by the newcomer test). Here a real Airflow (its own SQLite
metadata DB, the demo's ``config/demo/airflow_local_settings.py`` on ``PYTHONPATH``) runs Airflow's
own ``action_logging`` dependency while another connection holds the write lock: the event loop
must keep ticking, and the entry must be written once the lock is released.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOLD_S = 1.5

PROBE = r"""
import asyncio, json, sqlite3, sys, threading, time

import airflow  # noqa: F401 - imports airflow_local_settings
from airflow import settings
from airflow.api_fastapi.logging import decorators
from airflow.models import Log
from starlette.requests import Request

db, hold_s = sys.argv[1], float(sys.argv[2])
log_action = decorators.action_logging("probe_event")
body = json.dumps({"note": "hi"}).encode()


async def receive():
    return {"type": "http.request", "body": body, "more_body": False}


def endpoint():  # request.scope["endpoint"] names the event when none is given
    pass


request = Request(
    {
        "type": "http", "method": "POST", "path": "/api/v2/dags/d/dagRuns", "query_string": b"",
        "headers": [(b"content-type", b"application/json")], "path_params": {"dag_id": "d"},
        "endpoint": endpoint,
    },
    receive,
)


class User:
    def get_name(self):
        return "probe"


holder = sqlite3.connect(db, check_same_thread=False)
holder.execute("BEGIN IMMEDIATE")  # another request's uncommitted write
released = threading.Event()


def release():
    holder.commit()
    released.set()


async def main():
    ticks = []

    async def ticker():
        while not released.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.05)

    t0 = time.monotonic()
    threading.Timer(hold_s, release).start()
    session = settings.Session()
    await asyncio.gather(ticker(), log_action(request=request, session=session, user=User()))
    during = sum(1 for t in ticks if t - t0 < hold_s - 0.1)
    with settings.Session() as s:
        rows = s.query(Log).filter(Log.event == "probe_event").all()
        entry = [(r.dag_id, r.owner, json.loads(r.extra)) for r in rows]
    print(json.dumps({"ticks_while_locked": during, "entries": entry,
                      "wrapped": getattr(decorators.action_logging, "_imaging_off_loop", False)}))


asyncio.run(main())
"""


@pytest.mark.timeout(300)
def test_audit_log_waits_for_the_sqlite_lock_off_the_event_loop(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    home.mkdir()
    db = home / "airflow.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__DATABASE")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{db}",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS="imaging.sqlite_settings.CONNECT_ARGS",
        PYTHONPATH=os.pathsep.join(
            [str(ROOT), str(ROOT / "plugins"), str(ROOT / "config" / "demo")]
        ),
    )
    airflow = Path(sys.executable).with_name("airflow")
    migrate = subprocess.run(
        [str(airflow), "db", "migrate"], env=env, capture_output=True, text=True, timeout=240
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(db), str(HOLD_S)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["wrapped"], "config/demo/airflow_local_settings.py did not install the wrapper"
    # 50 ms ticks over ~1.4 s: the loop served other work while the audit entry waited
    assert result["ticks_while_locked"] >= 10, result
    assert result["entries"] == [["d", "probe", {"note": "hi", "method": "POST"}]], result
