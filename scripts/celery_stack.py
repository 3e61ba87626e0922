"""A CeleryExecutor deployment of the project on this machine, without Docker.

What it starts (each its own process group, in a private temp ``AIRFLOW_HOME``):

* a fresh PostgreSQL database as the Airflow metadata DB (``airflow db migrate``), pools created
  with ``python -m imaging.airflow_setup``;
* the local Redis as Celery broker, on a Redis database number nobody else uses (claimed with a
  marker key, flushed at the end);
* ``airflow api-server`` (workers need its execution API), ``scheduler``, ``dag-processor``,
  ``triggerer``;
* one ``airflow celery worker`` per entry of ``workers`` (default: ``worker-io`` on ``default,io``
  and ``worker-cpu`` on ``cpu,gpu`` as docker-compose runs it without a GPU), each reporting its own name as the task instances' hostname.

DAG bundles: the project's ``dags/`` plus any extra folders (e.g. ``tests/deploy/dags``).

    python scripts/celery_stack.py run [--dag celery_queues_probe] [--conf '{}']   # up, run, down
    python scripts/celery_stack.py stop --home /tmp/imaging-celery-xxxx             # after a crash

:meth:`CeleryStack.stop` stops every process it started (SIGTERM to every group at once, SIGKILL
after a grace period), drops the database and flushes the Redis database, also after a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (str(ROOT), str(ROOT / "plugins")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from include.common.local_services import free_port  # noqa: E402

PG_ADMIN_URL = os.environ.get(
    "IMAGING_TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("IMAGING_TEST_REDIS_URL", "redis://127.0.0.1:6379")
CLAIM_KEY = "imaging:celery-stack:claim"
BIN = Path(sys.executable).parent
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"


class StackError(RuntimeError):
    """The stack did not come up or a run did not finish; the message names the log to read."""


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def claim_redis_db(redis_url: str = REDIS_URL, token: str = "", ttl_s: int = 3600) -> int:
    """Claim an empty Redis database (15 down to 1) with a marker key; returns its number."""
    import redis

    for n in range(15, 0, -1):
        client = redis.Redis.from_url(f"{redis_url}/{n}")
        try:
            if client.dbsize() == 0 and client.set(CLAIM_KEY, token, nx=True, ex=ttl_s):
                return n
        finally:
            client.close()
    raise StackError(f"no empty Redis database (1-15) at {redis_url}")


def release_redis_db(redis_url: str, n: int, token: str) -> None:
    """Flush database ``n`` if we still own its marker key."""
    import redis

    client = redis.Redis.from_url(f"{redis_url}/{n}")
    try:
        owner = client.get(CLAIM_KEY)
        if owner is None or owner.decode() == token:
            client.flushdb()
    finally:
        client.close()


@dataclass
class Worker:
    name: str  # e.g. "worker-io": celery hostname and task-instance hostname
    queues: str  # comma-separated
    concurrency: int = 2
    # "prefork" (Celery's default) or "solo". Prefork children are daemonic, so a task on them
    # cannot start its own process pool ("daemonic processes are not allowed to have children");
    # the cpu/gpu workers run solo (one task per worker process, scale with more processes).
    pool: str = "prefork"


@dataclass
class CeleryStack:
    home: Path | None = None
    extra_bundles: dict[str, Path] = field(default_factory=dict)
    workers: tuple[Worker, ...] = (
        Worker("worker-io", "default,io"),
        Worker("worker-cpu", "cpu,gpu", concurrency=1, pool="solo"),  # as docker-compose, no GPU
    )
    pg_admin_url: str = PG_ADMIN_URL
    redis_url: str = REDIS_URL
    extra_env: dict[str, str] = field(default_factory=dict)
    parallelism: int = 4
    token: str = field(default_factory=lambda: secrets.token_hex(6))
    api_port: int = 0
    db_name: str = ""
    redis_db: int | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _own_home: bool = False

    # ------------------------------------------------------------ configuration

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def db_url(self) -> str:
        return self.pg_admin_url.rsplit("/", 1)[0] + f"/{self.db_name}"

    @property
    def log_dir(self) -> Path:
        assert self.home is not None
        return self.home / "process-logs"

    def env(self) -> dict[str, str]:
        """The environment every Airflow process of the stack shares."""
        assert self.home is not None and self.redis_db is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
        bundles = [
            {
                "name": "dags-folder",
                "classpath": LOCAL_BUNDLE,
                "kwargs": {"path": str(ROOT / "dags")},
            }
        ]
        bundles += [
            {"name": name, "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(path)}}
            for name, path in self.extra_bundles.items()
        ]
        pypath = [str(ROOT), str(ROOT / "plugins")] + [
            p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p
        ]
        jwt = self.home / "jwt.secret"
        if not jwt.exists():
            jwt.write_text(secrets.token_urlsafe(32))
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "PYTHONPATH": os.pathsep.join(dict.fromkeys(pypath)),
                "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(self.parallelism),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "imaging.queues.worker_hostname",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url,
                "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "2",
                "AIRFLOW__CELERY__BROKER_URL": f"{self.redis_url}/{self.redis_db}",
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.db_url,
                "AIRFLOW__CELERY__DEFAULT_QUEUE": "default",
                "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
                "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "21600",
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                # a crashed worker's task is failed (and retried) after 20 s without heartbeat
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                # only the runs we trigger: no cron runs of the pipelines' scheduled DAGs
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": self.token * 4,
                "AIRFLOW__API_AUTH__JWT_SECRET": jwt.read_text().strip(),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            }
        )
        env.update(self.extra_env)
        return env

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 180) -> CeleryStack:
        """Bring the stack up; on any failure everything started so far is stopped again."""
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        from sqlalchemy import create_engine, text

        if self.home is None:
            self.home = Path(tempfile.mkdtemp(prefix="imaging-celery-"))
            self._own_home = True
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        # the deployment's cluster policy (checks the declared queues/pools), as compose mounts it
        (self.home / "config").mkdir(exist_ok=True)
        shutil.copy2(ROOT / "config" / "airflow_local_settings.py", self.home / "config")
        self.api_port = self.api_port or free_port()
        self.db_name = f"airflow_celery_{os.getpid()}_{self.token}"
        self._write_state()
        admin = create_engine(self.pg_admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.db_name}"'))
        admin.dispose()
        self.redis_db = claim_redis_db(self.redis_url, self.token)
        self._write_state()
        env = self.env()
        self._run_once("db-migrate", [str(BIN / "airflow"), "db", "migrate"], env, 300)
        self._run_once("pools", [sys.executable, "-m", "imaging.airflow_setup"], env, 120)
        deadline = time.monotonic() + timeout
        self._spawn("api-server", [str(BIN / "airflow"), "api-server"], env)
        for name in ("scheduler", "dag-processor", "triggerer"):
            self._spawn(name, [str(BIN / "airflow"), name], env)
        for w in self.workers:
            self._spawn_worker(w, env)
        self.wait_healthy(deadline)

    def _spawn_worker(self, w: Worker, env: dict[str, str]) -> None:
        wenv = dict(env, IMAGING_WORKER_NAME=w.name, AIRFLOW__CELERY__POOL=w.pool)
        wenv["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
        cmd = [
            str(BIN / "airflow"), "celery", "worker",
            "--queues", w.queues,
            "--concurrency", str(w.concurrency),
            "--celery-hostname", f"{w.name}@%h",
            "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        self._spawn(w.name, cmd, wenv)

    def crash_worker(self, name: str) -> None:
        """SIGKILL a worker and everything in its process group (its running task too): a
        machine that dies mid-task."""
        proc = self.procs.pop(name)
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        self._write_state()

    def restart_worker(self, name: str, timeout: float = 120) -> None:
        """Start worker ``name`` again and wait until it is ready."""
        (w,) = [w for w in self.workers if w.name == name]
        log = self.log_dir / f"{name}.log"
        ready_before = log.read_text(errors="replace").count(" ready.") if log.exists() else 0
        self._spawn_worker(w, self.env())
        deadline = time.monotonic() + timeout
        while log.read_text(errors="replace").count(" ready.") <= ready_before:
            self._check_alive()
            if time.monotonic() > deadline:
                raise StackError(f"{name} not ready after {timeout} s; {log}:\n{_tail(log)}")
            time.sleep(1)

    def _run_once(self, name: str, cmd: list[str], env: dict[str, str], timeout: float) -> None:
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.run(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, cwd=ROOT
            )
        if proc.returncode != 0:
            raise StackError(f"{name} failed ({proc.returncode}); {log}:\n{_tail(log)}")

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:
            self.procs[name] = subprocess.Popen(
                cmd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=ROOT,
            )
        self._write_state()

    def _write_state(self) -> None:
        if self.home is None or not self.home.is_dir():
            return
        state = {
            "pids": {n: p.pid for n, p in self.procs.items()},
            "db_name": self.db_name,
            "pg_admin_url": self.pg_admin_url,
            "redis_url": self.redis_url,
            "redis_db": self.redis_db,
            "token": self.token,
        }
        (self.home / "stack.json").write_text(json.dumps(state, indent=2))

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                log = self.log_dir / f"{name}.log"
                raise StackError(f"{name} exited with {proc.returncode}; {log}:\n{_tail(log)}")

    def wait_healthy(self, deadline: float) -> None:
        """Wait for the api-server's health endpoint (metadata DB, scheduler, triggerer,
        dag-processor healthy) and for every Celery worker to log that it is ready."""
        import requests

        pending = {"api": True, **{w.name: True for w in self.workers}}
        while time.monotonic() < deadline:
            self._check_alive()
            if pending["api"]:
                try:
                    health = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
                    if health.ok and all(
                        v.get("status") == "healthy"
                        for v in health.json().values()
                        if isinstance(v, dict) and "status" in v
                    ):
                        pending["api"] = False
                except requests.RequestException:
                    pass
            for w in self.workers:
                if pending[w.name] and " ready." in (self.log_dir / f"{w.name}.log").read_text(
                    errors="replace"
                ):
                    pending[w.name] = False
            if not any(pending.values()):
                return
            time.sleep(1)
        raise StackError(
            f"stack not ready: {[k for k, v in pending.items() if v]} still pending; logs in {self.log_dir}"
        )

    def stop(self, grace_s: float = 20) -> None:
        """Stop every process (SIGTERM to each group, SIGKILL after ``grace_s``), drop the
        metadata database and flush the Redis database. Safe to call twice."""
        for proc in self.procs.values():
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():
            _signal_group(proc.pid, signal.SIGKILL)  # also the task processes left in the group
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self.procs.clear()
        if self.redis_db is not None:
            release_redis_db(self.redis_url, self.redis_db, self.token)
            self.redis_db = None
        if self.db_name:
            _drop_database(self.pg_admin_url, self.db_name)
            self.db_name = ""
        self._write_state()

    def cleanup(self) -> None:
        """Remove the temp AIRFLOW_HOME if the stack created it."""
        if self._own_home and self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> CeleryStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ REST API

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        import requests

        resp = requests.request(method, f"{self.base_url}/api/v2{path}", timeout=30, **kwargs)
        if not resp.ok:
            raise StackError(f"{method} {path}: {resp.status_code} {resp.text[:500]}")
        return resp.json() if resp.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 90) -> None:
        """Wait until the dag-processor has serialized ``dag_id`` (and report import errors)."""
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            resp = requests.get(f"{self.base_url}/api/v2/dags/{dag_id}/details", timeout=10)
            if resp.ok:
                return
            time.sleep(1)
        errors = self.api("GET", "/importErrors").get("import_errors", [])
        raise StackError(f"DAG {dag_id} not serialized after {timeout} s; import errors: {errors}")

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        self.wait_for_dag(dag_id)
        run = self.api(
            "POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}}
        )
        return str(run["dag_run_id"])

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        state = "queued"
        while time.monotonic() < deadline:
            self._check_alive()
            state = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(1)
        raise StackError(f"{dag_id}/{run_id} still {state} after {timeout} s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")[
            "task_instances"
        ]

    def answer_approvals(self, dag_id: str, answer: Any = None, delay: float = 2.0) -> Any:
        """A started :class:`imaging.hitl_responder.HitlResponder` thread that answers the DAG's
        human-in-the-loop tasks through the api-server's REST API (``.stop()`` it afterwards)."""
        from imaging.hitl_responder import HitlResponder, approve_all

        responder = HitlResponder(
            dag_id, answer or approve_all, delay=delay, client=_RestClient(self.base_url)
        )
        responder.start()
        return responder

    def task_log_errors(self, dag_id: str, run_id: str, limit: int = 3) -> list[str]:
        """The error events of the run's task logs (newest attempt last), for failure messages."""
        assert self.home is not None
        found: list[str] = []
        base = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        for log in sorted(base.rglob("*.log")):
            for line in log.read_text(errors="replace").splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("level") in ("error", "critical"):
                    detail = event.get("error_detail") or ""
                    found.append(
                        f"{log.relative_to(base)}: {event.get('event')} {str(detail)[-1500:]}"
                    )
        return found[-limit:]

    def worker_log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")


class _RestClient:
    """``get``/``patch`` on paths of the api-server, as the HITL responder expects."""

    def __init__(self, base_url: str) -> None:
        import requests

        self.base_url = base_url
        self.http = requests.Session()

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.http.get(self.base_url + path, timeout=30, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self.http.patch(self.base_url + path, timeout=30, **kwargs)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _drop_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def stop_from_state(home: Path) -> None:
    """Stop what a crashed ``run`` left behind, from ``<home>/stack.json``."""
    state = json.loads((home / "stack.json").read_text())
    for pid in state["pids"].values():
        _signal_group(int(pid), signal.SIGTERM)
    time.sleep(5)
    for pid in state["pids"].values():
        _signal_group(int(pid), signal.SIGKILL)
    if state.get("redis_db") is not None:
        release_redis_db(state["redis_url"], int(state["redis_db"]), state["token"])
    if state.get("db_name"):
        _drop_database(state["pg_admin_url"], state["db_name"])


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="start the stack, run DAGs to the end, stop it")
    run.add_argument("--dag", action="append", default=None, help="dag_id (repeatable)")
    run.add_argument("--conf", default="{}", help="JSON conf for every run")
    run.add_argument("--keep-home", action="store_true")
    stop = sub.add_parser("stop", help="stop a stack left behind by a crash")
    stop.add_argument("--home", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "stop":
        stop_from_state(args.home)
        return 0
    stack = CeleryStack(extra_bundles={"deploy-probe": ROOT / "tests" / "deploy" / "dags"})
    summary: dict[str, Any] = {}
    ok = True
    try:
        t0 = time.monotonic()
        stack.start()
        summary["startup_s"] = round(time.monotonic() - t0, 1)
        for dag_id in args.dag or ["celery_queues_probe"]:
            run_id = stack.trigger(dag_id, json.loads(args.conf))
            state = stack.wait_run(dag_id, run_id)
            ok = ok and state == "success"
            tis = stack.task_instances(dag_id, run_id)
            summary[dag_id] = {
                "run_id": run_id,
                "state": state,
                "tasks": [
                    {
                        k: ti.get(k)
                        for k in ("task_id", "map_index", "state", "queue", "hostname", "pool")
                    }
                    for ti in tis
                ],
            }
    finally:
        stack.stop()
        if not args.keep_home:
            stack.cleanup()
        else:
            summary["home"] = str(stack.home)
        print(json.dumps(summary, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
