"""The app database engine from the ``imaging_db`` Airflow connection.

The connection's own provider hook (``PostgresHook`` for ``postgres``, ``SqliteHook`` for ``sqlite``)
builds the SQLAlchemy URL; we only add the app-DB engine settings (SQLite WAL/busy timeout) and
cache one engine per process.
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine

from include.common.db import make_engine
from include.common.settings import get_settings


def app_db_url(conn_id: str | None = None) -> str:
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id or get_settings().app_db_conn_id)
    if conn.conn_type == "sqlite":
        # SqliteHook's URL treats ``host`` as the file path; keep absolute paths absolute.
        path = conn.host or ""
        return f"sqlite:///{path}"
    hook = conn.get_hook()
    url = hook.sqlalchemy_url if hasattr(hook, "sqlalchemy_url") else hook.get_uri()
    return url.render_as_string(hide_password=False) if hasattr(url, "render_as_string") else url


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    return make_engine(url)


def app_engine(conn_id: str | None = None) -> Engine:
    """The (cached) SQLAlchemy engine of the app database."""
    return _engine(app_db_url(conn_id))
