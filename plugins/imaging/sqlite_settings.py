"""Connection arguments of the demo's SQLite metadata DB (``[database] sql_alchemy_connect_args``,
set by scripts/env.sh when the metadata DB is SQLite).

Airflow already puts SQLite in WAL mode (readers never wait for the writer); what broke under load
on 2 busy cores was the writers: pysqlite's default 5 s busy timeout made a trigger request answer
HTTP 500 ("database is locked") while the scheduler held the write lock. Writers now wait up to
60 s for the lock instead.
"""

from __future__ import annotations

from typing import Any

BUSY_TIMEOUT_S = 60

#: ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS=imaging.sqlite_settings.CONNECT_ARGS``
CONNECT_ARGS: dict[str, Any] = {"timeout": BUSY_TIMEOUT_S}
