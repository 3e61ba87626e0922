"""The demo as a user starts it (``scripts/demo.sh``) in temp folders and on free ports, its stop
command (``scripts/stop.sh`` with the same environment), and a small client of its REST API.

Shared by the end-to-end tests that need the whole demo (``test_newcomer.py``); the environment is
the one ``test_demo.py`` uses: ``AIRFLOW_HOME``, ``IMAGING_DATA_DIR``, ``IMAGING_RUN_DIR`` under a
temp folder and ``AIRFLOW_PORT``, ``IMAGING_S3_PORT``, ``IMAGING_HYPHA_PORT``,
``IMAGING_ROBOFLOW_PORT`` on free ports, with the test session's own ``AIRFLOW*``/``IMAGING*``
variables removed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from include.common.local_services import free_port

ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie is not alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


@dataclass
class Demo:
    """``scripts/demo.sh`` in ``base`` (temp folders) on free ports."""

    base: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    stdout: str = ""

    def __post_init__(self) -> None:
        self.port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "IMAGING", "PYTHONPATH"))
        }
        env.update(
            AIRFLOW_HOME=str(self.base / "airflow"),
            IMAGING_DATA_DIR=str(self.base / "data"),
            IMAGING_RUN_DIR=str(self.base / "run"),
            AIRFLOW_PORT=str(self.port),
            IMAGING_S3_PORT=str(free_port()),
            IMAGING_HYPHA_PORT=str(free_port()),
            IMAGING_ROBOFLOW_PORT=str(free_port()),
            # the scheduler's and triggerer's log servers listen on 8793/8794 by default: another
            # demo on this machine (a developer's `make demo`) would hold them
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        )
        self.env = env

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def run_dir(self) -> Path:
        return self.base / "run"

    @property
    def password(self) -> str:
        path = self.base / "airflow" / "simple_auth_manager_passwords.json.generated"
        return str(json.loads(path.read_text())["admin"])

    def pids(self) -> dict[str, int]:
        if not self.run_dir.exists():
            return {}
        out: dict[str, int] = {}
        for p in self.run_dir.glob("*.pid"):
            try:
                out[p.stem] = int(p.read_text().strip())
            except ValueError:
                continue
        return out

    def start(self, timeout: float = 900) -> None:
        out = subprocess.run(
            ["bash", "scripts/demo.sh"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.stdout = out.stdout
        if out.returncode != 0:
            raise AssertionError(
                "scripts/demo.sh failed:\n" + out.stdout[-4000:] + "\n" + out.stderr[-4000:]
            )

    def stop(self) -> list[str]:
        """Run ``scripts/stop.sh``; returns what is left behind (empty when all is gone)."""
        pids = self.pids()
        problems: list[str] = []
        stop = subprocess.run(
            ["bash", "scripts/stop.sh"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if stop.returncode != 0:
            problems.append(f"scripts/stop.sh exited {stop.returncode}: {stop.stderr[-2000:]}")
        deadline = time.monotonic() + 15  # a process group may need a moment after its leader
        left = {n: p for n, p in pids.items() if alive(p)}
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = {n: p for n, p in left.items() if alive(p)}
        if left:
            problems.append(f"processes left behind by scripts/stop.sh: {left}")
        leftovers = subprocess.run(
            ["pgrep", "-f", str(self.base)], capture_output=True, text=True
        ).stdout.split()
        if leftovers:
            problems.append(f"processes still using the demo folders: {leftovers}")
        return problems

    def log_tail(self, name: str, n: int = 3000) -> str:
        """The last ``n`` characters of a component's log (``n < 0``: all of it)."""
        path = self.run_dir / "logs" / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text if n < 0 else text[-n:]

    def api_errors(self, n: int = 1500) -> list[str]:
        """Every error entry Airflow's API server logged (``Error with id ...``: a request that
        answered HTTP 500 "Database error"), each cut to ``n`` characters."""
        text = self.log_tail("api-server", n=-1)
        return [text[m.start() : m.start() + n] for m in re.finditer(r"Error with id \w+", text)]

    def api_error(self, answer: str, n: int = 4000) -> str:
        """The api-server's log entry for an error answer ("... look for ID <id>"): the statement
        and traceback Airflow hides from the client; empty when the answer names no id."""
        m = re.search(r"look for ID (\w+)", answer)
        if not m:
            return ""
        mark = f"Error with id {m.group(1)}"
        found = [e for e in self.api_errors(n) if e.startswith(mark)]
        return found[0] if found else f"(id {m.group(1)} not in api-server.log)"


class RestApi:
    """Airflow's REST API with a token of the demo's ``admin`` (``POST /auth/token``)."""

    def __init__(self, url: str, password: str) -> None:
        self.url = url.rstrip("/")
        self.password = password
        self._token = ""
        self._token_at = 0.0

    def _auth(self) -> str:
        if not self._token or time.monotonic() - self._token_at > 600:
            req = urllib.request.Request(
                f"{self.url}/auth/token",
                data=json.dumps({"username": "admin", "password": self.password}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=120) as r:
                self._token = json.load(r)["access_token"]
            self._token_at = time.monotonic()
        return self._token

    def call(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        qs = urlencode(query, doseq=True)
        req = urllib.request.Request(
            f"{self.url}{path}{'?' + qs if qs else ''}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self._auth()}", "Content-Type": "application/json"},
        )
        for attempt in range(3):  # SQLite may be briefly locked under load
            try:
                with urllib.request.urlopen(req, timeout=120) as r:
                    return json.load(r)
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or attempt == 2:
                    raise AssertionError(
                        f"{method} {path} -> {exc.code}: {exc.read().decode(errors='replace')[:800]}"
                    ) from exc
            except (urllib.error.URLError, TimeoutError):
                if attempt == 2:
                    raise
            time.sleep(1 + attempt)
        raise AssertionError("unreachable")

    def get(self, path: str, **query: Any) -> Any:
        return self.call("GET", path, **query)

    # ----------------------------------------------------------------- helpers of the newcomer test
    def dag_ids(self) -> list[str]:
        return sorted(d["dag_id"] for d in self.get("/api/v2/dags", limit=100)["dags"])

    def runs(self) -> list[dict[str, Any]]:
        return self.get("/api/v2/dags/~/dagRuns", limit=1000, order_by="id")["dag_runs"]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.get(f"/api/v2/dags/{q(dag_id)}/dagRuns/{q(run_id)}")

    def task_instances(self, dag_id: str = "~", run_id: str = "~", **query: Any) -> list[Any]:
        path = f"/api/v2/dags/{q(dag_id)}/dagRuns/{q(run_id)}/taskInstances"
        return self.get(path, limit=1000, **query)["task_instances"]

    def pending_approvals(self) -> list[dict[str, Any]]:
        return self.get(
            "/api/v2/dags/~/dagRuns/~/hitlDetails", response_received="false", limit=1000
        )["hitl_details"]

    def task_error(self, ti: dict[str, Any]) -> str:
        """The exception (type: message) a failed task instance logged, else its last error line."""
        path = (
            f"/api/v2/dags/{q(ti['dag_id'])}/dagRuns/{q(ti['dag_run_id'])}/taskInstances/"
            f"{q(ti['task_id'])}/logs/{max(1, int(ti.get('try_number') or 1))}"
        )
        try:
            content = self.get(path, full_content="true", map_index=ti.get("map_index", -1))
        except AssertionError as exc:
            return f"(log not readable: {exc})"
        events = content.get("content") or []
        if isinstance(events, str):
            return events.strip().splitlines()[-1][:400] if events.strip() else "(empty log)"
        errors = [
            f"{d.get('exc_type')}: {d.get('exc_value')}"
            for e in events
            if isinstance(e, dict)
            for d in (e.get("error_detail") or [])
            if isinstance(d, dict) and not d.get("is_cause")
        ]
        if errors:
            return errors[-1][:600]
        lines = [
            str(e.get("event"))
            for e in events
            if isinstance(e, dict) and e.get("level") in ("error", "critical")
        ]
        return lines[-1][:600] if lines else "(no error in the task log)"


def q(part: str) -> str:
    return quote(str(part), safe="~")
