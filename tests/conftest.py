"""Test harness shared by every test.

* Each pytest session (and each xdist worker) gets its own ``AIRFLOW_HOME`` in a temp folder with a
  SQLite metadata DB; the dags folder is the project's ``dags/``. Nothing touches the demo's state.
* Real servers as session fixtures: PostgreSQL app database (a fresh database per session, migrated
  with Alembic, dropped afterwards), an S3 server (``rclone serve s3``) and a Hypha server with its
  artifact manager, on free loopback ports, stopped afterwards.
* ``run_dag`` runs a DAG with ``dag.test()`` in-process and can answer its approval tasks.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "plugins"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

_TMP = Path(tempfile.mkdtemp(prefix="imaging-tests-"))
_AIRFLOW_HOME = _TMP / "airflow"
_AIRFLOW_HOME.mkdir()
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(_AIRFLOW_HOME / "logs"),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "IMAGING_DATA_DIR": str(_TMP / "data"),
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]
        ),
    }
)
# A developer's shell may carry connections of the demo: tests set their own.
for _k in [k for k in os.environ if k.startswith("AIRFLOW_CONN_")]:
    del os.environ[_k]

PG_ADMIN_URL = os.environ.get(
    "IMAGING_TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def set_connection(conn_id: str, conn: dict[str, Any] | None) -> None:
    """Point an Airflow connection at ``conn`` (JSON form) through its ``AIRFLOW_CONN_*`` variable."""
    key = f"AIRFLOW_CONN_{conn_id.upper()}"
    if conn is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = json.dumps(conn)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def tmp_root() -> Path:
    """The session's private temp folder (AIRFLOW_HOME, server state, data)."""
    return _TMP


# ---------------------------------------------------------------- app database


@pytest.fixture(scope="session")
def pg_app_db_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session, migrated to every branch head."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from include.common.migrate import upgrade

    name = f"imaging_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:  # never skip: the suite needs the real database
        pytest.fail(f"PostgreSQL is required at {PG_ADMIN_URL} (CI={os.environ.get('CI')}): {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    from include.common.db import _ENGINES

    for u in [u for u in _ENGINES if u.endswith(f"/{name}")]:
        _ENGINES.pop(u).dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_app_db_url(tmp_root: Path) -> str:
    """A migrated SQLite app database (the demo's embedded default)."""
    from include.common.migrate import upgrade

    url = f"sqlite:///{tmp_root / 'app.db'}"
    upgrade(url)
    return url


def _db_connection(url: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return {"conn_type": "sqlite", "host": u.database}
    return {
        "conn_type": "postgres",
        "host": u.host,
        "port": u.port or 5432,
        "login": u.username,
        "password": u.password or "",
        "schema": u.database,
    }


@pytest.fixture(scope="session")
def app_db_url(pg_app_db_url: str) -> str:
    """The app database the ``imaging_db`` connection points at (PostgreSQL)."""
    set_connection("imaging_db", _db_connection(pg_app_db_url))
    return pg_app_db_url


@pytest.fixture
def use_sqlite_app_db(sqlite_app_db_url: str, app_db_url: str) -> Iterator[str]:
    """For one test, point ``imaging_db`` at the SQLite app database instead of PostgreSQL."""
    set_connection("imaging_db", _db_connection(sqlite_app_db_url))
    yield sqlite_app_db_url
    set_connection("imaging_db", _db_connection(app_db_url))


@pytest.fixture(params=["postgresql", "sqlite"])
def any_app_db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Parametrised over both dialects; ``imaging_db`` points at the one in use."""
    pg = request.getfixturevalue("app_db_url")
    if request.param == "postgresql":
        yield pg
        return
    lite = request.getfixturevalue("sqlite_app_db_url")
    set_connection("imaging_db", _db_connection(lite))
    yield lite
    set_connection("imaging_db", _db_connection(pg))


# ---------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def s3_server(tmp_root: Path) -> Iterator[Any]:
    """A real S3 server on loopback with bucket ``imaging``; ``imaging_s3`` points at it."""
    from include.common.local_services import S3Server

    server = S3Server(root=tmp_root / "s3").start(buckets=("imaging",))
    set_connection("imaging_s3", server.airflow_connection())
    yield server
    server.stop()
    set_connection("imaging_s3", None)


@pytest.fixture(scope="session")
def hypha_server(tmp_root: Path, s3_server: Any) -> Iterator[Any]:
    """A real Hypha server (artifact manager on the S3 server); ``imaging_hypha`` points at it."""
    from include.common.local_services import HyphaServer

    server = HyphaServer(state_dir=tmp_root / "hypha", s3=s3_server).start()
    set_connection("imaging_hypha", server.airflow_connection())
    yield server
    server.stop()
    set_connection("imaging_hypha", None)


# ---------------------------------------------------------------- Airflow


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The session's Airflow metadata DB, migrated."""
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run(
        [str(airflow), "db", "migrate"], check=True, env=os.environ.copy(), capture_output=True
    )
    return _AIRFLOW_HOME


@pytest.fixture
def run_dag(airflow_db: Path) -> Callable[..., Any]:
    """``run_dag(dag_id, conf=None, approve=None|"all"|callable, delay=1.5)`` → ``RunResult``
    (``.state``, ``.run_id``, ``.task_states``, ``.answered``); runs in-process with ``dag.test()``."""
    from imaging.runner import run_dag as _run

    def _runner(
        dag_id: str, conf: dict[str, Any] | None = None, approve: Any = None, delay: float = 1.5
    ) -> Any:
        return _run(dag_id, conf, approve=approve, delay=delay)

    return _runner
