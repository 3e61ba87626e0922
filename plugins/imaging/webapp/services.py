"""What the photos app needs from Airflow: the app database (``imaging_db``), S3 (``imaging_s3``
through ``S3Hook``), presigned URLs, and triggering ``photo_ingest`` / ``photo_reprocess`` runs in
the api-server's own process (``airflow.api.common.trigger_dag``, the function behind the REST
API's "trigger DAG run")."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from include.common.settings import get_settings

log = logging.getLogger(__name__)


class TriggerError(RuntimeError):
    """The DAG run could not be created (DAG unknown to Airflow, database error...)."""


def is_storage_error(exc: BaseException) -> bool:
    """S3 unreachable, failing or behind an open circuit breaker (not a bug of ours)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from include.common.retry import CircuitBreakerError
    from include.photos.storage import TransientS3Error

    return isinstance(
        exc, (BotoCoreError, ClientError, CircuitBreakerError, TransientS3Error, ConnectionError)
    )


@dataclass
class Services:
    """Overridable in tests (e.g. ``app.state.services``); the defaults use Airflow connections."""

    s3_conn_id: str | None = None
    db_conn_id: str | None = None
    bucket: str | None = None
    url_expiry_s: int = int(os.environ.get("IMAGING_WEBAPP_URL_EXPIRY_S", "3600"))
    ingest_dag_id: str = os.environ.get("IMAGING_WEBAPP_INGEST_DAG_ID", "photo_ingest")
    reprocess_dag_id: str = os.environ.get("IMAGING_WEBAPP_REPROCESS_DAG_ID", "photo_reprocess")

    def __post_init__(self) -> None:
        settings = get_settings()
        self.s3_conn_id = self.s3_conn_id or settings.s3_conn_id
        self.db_conn_id = self.db_conn_id or settings.app_db_conn_id
        self.bucket = self.bucket or settings.s3_bucket
        self._lock = threading.Lock()
        self._s3: Any = None
        self._s3_key: str | None = None

    # ----------------------------------------------------------------- database
    def engine(self) -> Engine:
        from imaging.appdb import app_engine

        return app_engine(self.db_conn_id)

    # ----------------------------------------------------------------- S3
    def s3(self) -> Any:
        """The shared S3 store (:class:`include.common.storage.S3Store` on the ``imaging_s3``
        connection's ``S3Hook``; cached until the connection's definition changes)."""
        from airflow.sdk import BaseHook

        from include.common.storage import s3_store

        conn = BaseHook.get_connection(self.s3_conn_id)
        key = f"{conn.host}|{conn.login}|{conn.password}|{conn.extra}"
        with self._lock:
            if self._s3 is None or self._s3_key != key:
                self._s3 = s3_store(self.s3_conn_id, self.bucket)
                self._s3_key = key
            return self._s3

    def presign(self, bucket: str, key: str) -> str:
        from include.photos.storage import presigned_get

        return presigned_get(self.s3(), bucket, key, expires=self.url_expiry_s)

    # ----------------------------------------------------------------- Airflow runs
    def dag_paused(self, dag_id: str) -> bool | None:
        """``True``/``False``, or ``None`` when Airflow does not know the DAG."""
        from airflow.models.dag import DagModel

        dm = DagModel.get_dagmodel(dag_id)
        return None if dm is None else bool(dm.is_paused)

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any], user: str) -> str:
        """Create the DAG run ``run_id`` (queued for the scheduler); an existing run with that id
        is fine (a retried request). Returns the run id."""
        from airflow.api.common.trigger_dag import trigger_dag
        from airflow.exceptions import DagNotFound, DagRunAlreadyExists
        from airflow.utils.types import DagRunTriggeredByType

        try:
            dr = trigger_dag(
                dag_id,
                triggered_by=DagRunTriggeredByType.REST_API,
                triggering_user_name=user,
                run_id=run_id,
                conf=conf,
                replace_microseconds=False,
                note=f"started from the photos web app by {user}",
            )
        except DagRunAlreadyExists:
            return run_id
        except DagNotFound as exc:
            raise TriggerError(
                f"{dag_id} is not known to Airflow yet (not parsed?): {exc}"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - reported to the client as 503
            log.exception("could not trigger %s", dag_id)
            raise TriggerError(f"could not trigger {dag_id}: {type(exc).__name__}: {exc}") from exc
        if dr is None:
            raise TriggerError(f"{dag_id}: Airflow created no run")
        return dr.run_id
