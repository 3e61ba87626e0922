"""The tasks ``photo_ingest`` and ``photo_reprocess`` share (TaskFlow functions; the domain logic
is in :mod:`include.photos.pipeline`). S3 through ``S3Hook(aws_conn_id="imaging_s3")``, the app
database through ``imaging.appdb.app_engine`` — both made inside the task, never at parse time."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import Asset, task

log = logging.getLogger("airflow.task")

# Emitted whenever photo results were written (the gallery / stock pipelines can listen).
ASSET_PHOTO_RESULTS = Asset("photo_processing_sessions")


def s3_client_and_bucket() -> tuple[Any, str]:
    """The shared S3 store (:class:`include.common.storage.S3Store` on
    ``S3Hook(aws_conn_id="imaging_s3")``) whose client's own retries are off: the pipeline's
    full-jitter retries and circuit breaker (``include.photos.storage.s3_call``) are the only
    retry layer, so an outage reaches the breaker instead of hanging in botocore."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.config import Config

    from include.common.settings import get_settings
    from include.common.storage import s3_store

    settings = get_settings()
    base = S3Hook(aws_conn_id=settings.s3_conn_id).config
    cfg = base.merge(
        Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=60)
    )
    store = s3_store(settings.s3_conn_id, settings.s3_bucket, config=cfg)
    return store, settings.s3_bucket


def run_date(context: dict[str, Any]) -> str:
    """The run's date (logical date, else when it was due): the fallback day of S3 keys."""
    dr = context["dag_run"]
    when = context.get("logical_date") or dr.logical_date or dr.run_after
    return when.date().isoformat()


@task
def ensure_bucket_lifecycle() -> dict[str, Any]:
    """Idempotent bucket setup: the seed's lifecycle rules (temp 24 h, thumbnails 90 days,
    annotated 30 days, originals kept). A server without lifecycle support is reported, not
    fatal (the rules are then the operator's job)."""
    import time

    from include.photos.storage import ensure_lifecycle

    t0 = time.perf_counter()
    client, bucket = s3_client_and_bucket()
    result = ensure_lifecycle(client, bucket)
    if not result["applied"]:
        log.warning("lifecycle rules not applied to %s: %s", bucket, result["reason"])
    return {**result, "work_s": round(time.perf_counter() - t0, 4)}


@task
def stage_chunk(
    job_ids: list[str], uploaded_by: str | None = None, **context: Any
) -> dict[str, Any]:
    """Validate, read EXIF, upload original + thumbnail of up to 20 photos (S3 behind retries and
    a circuit breaker: an outage fails the chunk fast, Airflow retries it)."""
    import time

    from imaging.appdb import app_engine
    from include.photos.pipeline import stage_chunk as _stage

    t0 = time.perf_counter()
    client, bucket = s3_client_and_bucket()
    out = _stage(
        app_engine(), client, bucket, job_ids, run_date=run_date(context), uploaded_by=uploaded_by
    )
    out["work_s"] = round(time.perf_counter() - t0, 4)  # including hook/engine set-up
    log.info(
        "staged %d, skipped %d (already in S3), failed %d in %.2f s",
        len(out["staged"]),
        out["skipped"],
        out["failed"],
        out["work_s"],
    )
    return out


@task
def run_ml(
    staged: dict[str, Any],
    storage_location_id: int | None = None,
    trigger: str = "ingest",
    reason: str | None = None,
    **context: Any,
) -> dict[str, Any]:
    """Geolocate, segment, detect (tiled / direct), estimate, classify, annotate and record every
    staged photo of a chunk; one photo's error does not stop the others."""
    import time

    from imaging.appdb import app_engine
    from include.photos.pipeline import process_chunk

    t0 = time.perf_counter()
    if storage_location_id in ("", "None"):
        storage_location_id = None
    client, bucket = s3_client_and_bucket()
    out = process_chunk(
        app_engine(),
        client,
        bucket,
        staged.get("staged", []),
        override_location_id=int(storage_location_id) if storage_location_id is not None else None,
        run_id=context["run_id"],
        trigger=trigger,
        reason=reason or None,
    )
    counts: dict[str, int] = {}
    for r in out["results"]:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    log.info("ML results %s in %.2f s", counts, out["work_s"])
    return {
        "work_s": round(time.perf_counter() - t0, 4),  # including hook/engine set-up
        "statuses": counts,
        "job_ids": [r["job_id"] for r in out["results"] if r.get("job_id")],
        "session_ids": [r.get("session_id") for r in out["results"] if r.get("session_id")],
    }
