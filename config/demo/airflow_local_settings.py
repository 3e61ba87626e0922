"""Airflow local settings of the demo and the headless runner (``config/demo`` is on ``PYTHONPATH``
through scripts/env.sh; Airflow imports ``airflow_local_settings`` while it initialises, before the
API server loads its routes). The deployment's are ``config/airflow_local_settings.py``.

On a SQLite metadata DB (the demo) the API server writes its audit log off the event loop: see
``imaging.sqlite_settings``.
"""

from __future__ import annotations

import os

if os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite").startswith("sqlite"):
    from imaging.sqlite_settings import keep_audit_log_off_the_event_loop

    keep_audit_log_off_the_event_loop()
