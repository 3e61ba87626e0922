"""A private Airflow for the browser tests: its own home (SQLite metadata DB, LocalExecutor, free
ports), chosen DAG files, a user with a known password, and the components as separate processes
(each in its own process group, stopped with SIGTERM, then SIGKILL).

Subclass it for what a test needs on top (``components``, ``healthy``, ``prepare``, ``env``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from include.common.local_services import free_port

ROOT = Path(__file__).resolve().parents[2]


class PrivateAirflow:
    components: tuple[str, ...] = ("api-server", "scheduler")
    healthy: tuple[str, ...] = ("scheduler",)  # components /monitor/health must call healthy
    prepare: tuple[tuple[str, ...], ...] = (("db", "migrate"),)  # airflow commands run first

    def __init__(self, home: Path, dag_files: list[Path], user: str, password: str) -> None:
        self.home = home
        self.dag_files = dag_files
        self.user, self.password = user, password
        self.port = free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = os.environ.copy()  # the session's PYTHONPATH and AIRFLOW_CONN_IMAGING_DB
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.home / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "imaging.sqlite_settings.CONNECT_ARGS",
                # the demo's local settings: the audit log off the event loop on SQLite
                "PYTHONPATH": os.pathsep.join(
                    [str(ROOT / "config" / "demo"), env.get("PYTHONPATH", "")]
                ),
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "2",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.user}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
                    self.home / "passwords.json"
                ),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "NO_PROXY": "127.0.0.1,localhost",
            }
        )
        return env

    def _airflow(self) -> str:
        return str(Path(sys.executable).parent / "airflow")

    def start(self, timeout: float = 300) -> PrivateAirflow:
        (self.home / "dags").mkdir(parents=True, exist_ok=True)
        for f in self.dag_files:
            shutil.copy2(f, self.home / "dags" / f.name)
        (self.home / "passwords.json").write_text(json.dumps({self.user: self.password}))
        env = self.env()
        for cmd in self.prepare:
            out = subprocess.run(
                [self._airflow(), *cmd], env=env, capture_output=True, text=True, timeout=300
            )
            assert out.returncode == 0, f"airflow {' '.join(cmd)} failed:\n{out.stderr[-3000:]}"
        for name in self.components:
            log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
            port = ["--port", str(self.port)] if name == "api-server" else []
            self.procs[name] = subprocess.Popen(
                [self._airflow(), name, *port],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited:\n{self.log_tail(name)}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=3) as r:
                    health = json.loads(r.read())
                if all((health.get(k) or {}).get("status") == "healthy" for k in self.healthy):
                    return self
            except OSError:
                pass
            time.sleep(1)
        raise TimeoutError(f"Airflow did not become healthy:\n{self.log_tail('api-server')}")

    @contextmanager
    def running(self) -> Iterator[PrivateAirflow]:
        """Started for the ``with`` block, then stopped; fails if a process outlived the stop."""
        try:
            yield self.start()
        finally:
            self.stop()
        assert all(p.poll() is not None for p in self.procs.values()), (
            "Airflow processes left running"
        )

    def log_tail(self, name: str, n: int = 4000) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for p in self.procs.values():
            try:
                p.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
