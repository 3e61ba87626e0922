"""The steps of ``photo_ingest`` and ``photo_reprocess`` (Airflow-free; the DAG tasks call them).

* :func:`prepare_upload` — the upload session and one job row per photo; returns chunks of job ids.
* :func:`stage_chunk` — validate, read EXIF, upload original + thumbnail to S3, ``s3_images`` row.
* :func:`process_chunk` — geolocate, ML (:mod:`include.photos.analyze`), annotated image,
  ``photo_processing_sessions`` row, job status (completed / warning state / failed).
* :func:`finish_upload` — the upload session's aggregate and status.
* :func:`prepare_reprocess` — a reprocess job for one image (the S3 original is the input).

Ids are deterministic (``det_uuid``): a folder import's session is derived from the folder, a
photo from its content hash, an ingest processing session from the image, a reprocess session
from the image and the DAG run. Every step can be rerun: finished items are skipped, rows are
upserted, S3 objects are written only when missing (same key, same content).

Bad input (not an image, truncated, too large, CMYK, 16-bit, missing file) makes that photo's
job ``failed`` with the reason; the chunk goes on. S3 outages are not bad input: they raise
(after retries, or at once when the circuit breaker is open) so Airflow retries the chunk.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, update

from include.common.db import session_scope, upsert
from include.common.retry import CircuitBreakerError
from include.photos import storage
from include.photos.aggregate import annotate, photo_summary, session_summary, upload_status
from include.photos.catalog import get_area, load_areas
from include.photos.detect import BackendUnavailable
from include.photos.exif import BadImageError, decode_rgb, inspect_image, thumbnail_bytes
from include.photos.geolocate import LocationArea, locate
from include.photos.jobs import (
    fail_job,
    ingest_job_row,
    reprocess_job_row,
    reprocess_target,
    upload_session_row,
)
from include.photos.models import (
    ImageStatus,
    JobStatus,
    PhotoJob,
    PhotoProcessingSession,
    PhotoUploadSession,
    S3Image,
    SessionStatus,
    UploadStatus,
    Warning_,
    det_uuid,
)

log = logging.getLogger(__name__)

CHUNK_SIZE = 20
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif"}


def folder_files(folder: Path) -> list[Path]:
    """The files of a folder import: every visible regular file (not recursive). Photos are
    recognised by content when staged; anything else gets a job that fails with the reason
    (unsupported format...), so no file is dropped silently."""
    return sorted(
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and (p.is_file() or p.is_symlink()) and not p.is_dir()
    )


def chunked(items: Sequence[Any], size: int = CHUNK_SIZE) -> list[list[Any]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _uuid(v: str | uuid.UUID) -> uuid.UUID:
    return v if isinstance(v, uuid.UUID) else uuid.UUID(str(v))


# --------------------------------------------------------------------------- 1. register
def prepare_upload(
    engine: Engine,
    *,
    upload_session_id: str | None = None,
    source_dir: str | None = None,
    uploaded_by: str | None = None,
    storage_location_id: int | None = None,
    run_id: str | None = None,
    s3_client: Any = None,
    bucket: str | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> dict[str, Any]:
    """Create/refresh the upload session and its jobs. Returns ``{"upload_session_id",
    "chunks": [[job_id, ...], ...], "total"}``.

    ``source_dir``: every visible file of the folder (not recursive) becomes a job (JPEG, PNG,
    WebP, HEIC/HEIF are processed; any other file's job fails with the reason); the
    session id is derived from the folder path (a rerun is the same session).
    ``upload_session_id``: the session the upload API created; its ``photo_jobs`` rows are used,
    and files found under ``temp_uploads/<id>/`` without a job get one.
    """
    if bool(upload_session_id) == bool(source_dir):
        raise ValueError("give exactly one of upload_session_id or source_dir")
    jobs: list[dict[str, Any]] = []
    if source_dir:
        folder = Path(source_dir).expanduser().resolve()
        if not folder.is_dir():
            raise FileNotFoundError(f"source_dir {folder} is not a directory")
        sid = det_uuid("dir", folder)
        files = folder_files(folder)
        source, ref = "dir", str(folder)
        for p in files:
            jobs.append(ingest_job_row(det_uuid("job", sid, p.name), sid, p.name, str(p)))
    else:
        sid = _uuid(upload_session_id)  # type: ignore[arg-type]
        source, ref = "web", f"{storage.TEMP_UPLOADS}/{sid}/"
    with session_scope(engine) as s:
        if storage_location_id is not None and get_area(s, int(storage_location_id)) is None:
            raise LookupError(f"storage location {storage_location_id} does not exist")
        existing = s.get(PhotoUploadSession, sid)
        if existing is None:
            if source == "web" and s3_client is None:
                raise LookupError(f"upload session {sid} does not exist")
            s.add(
                PhotoUploadSession(
                    **upload_session_row(
                        sid,
                        uploaded_by=uploaded_by,
                        upload_source=source,
                        source_ref=ref,
                        storage_location_id=storage_location_id,
                    )
                )
            )
            s.flush()
        else:
            if storage_location_id is not None:
                existing.storage_location_id = storage_location_id
            if uploaded_by and not existing.uploaded_by:
                existing.uploaded_by = uploaded_by
        if source == "web" and s3_client is not None and bucket:
            known: set[str] = set()
            for src, staged in s.execute(
                select(PhotoJob.source_ref, PhotoJob.staged_key).where(
                    PhotoJob.upload_session_id == sid
                )
            ):
                known.update(k for k in (src, staged) if k)
            for key in storage.list_keys(s3_client, bucket, ref):
                if key not in known:
                    name = key.rsplit("/", 1)[-1]
                    jobs.append(
                        ingest_job_row(det_uuid("job", sid, name), sid, name, key, staged_key=key)
                    )
        if jobs:
            # new jobs only: a rerun never resets a finished job
            upsert(s, PhotoJob, jobs, conflict_cols=("job_id",), update_cols=[])
        ids = list(
            s.scalars(
                select(PhotoJob.job_id)
                .where(PhotoJob.upload_session_id == sid)
                .order_by(PhotoJob.filename, PhotoJob.job_id)
            )
        )
        sess = s.get(PhotoUploadSession, sid)
        assert sess is not None
        sess.total_files = len(ids)
        sess.status = UploadStatus.PROCESSING if ids else UploadStatus.COMPLETED
        sess.dag_run_id = run_id
    return {
        "upload_session_id": str(sid),
        "chunks": chunked([str(i) for i in ids], chunk_size),
        "total": len(ids),
    }


# --------------------------------------------------------------------------- 2. stage to S3
def _read_source(job: PhotoJob, client: Any, bucket: str) -> bytes:
    if job.staged_key or job.source_ref.startswith(f"{storage.TEMP_UPLOADS}/"):
        from botocore.exceptions import ClientError

        try:
            return storage.get_bytes(client, bucket, job.staged_key or job.source_ref)
        except ClientError as exc:
            raise FileNotFoundError(
                f"staged upload s3://{bucket}/{job.staged_key or job.source_ref} is missing"
            ) from exc
    p = Path(job.source_ref)
    if not p.is_file():
        raise FileNotFoundError(f"source file {p} is missing")
    return p.read_bytes()


def stage_chunk(
    engine: Engine,
    client: Any,
    bucket: str,
    job_ids: Sequence[str],
    *,
    run_date: date | datetime | str,
    uploaded_by: str | None = None,
) -> dict[str, Any]:
    """Upload the originals and thumbnails of a chunk. Returns ``{"staged": [job ids ready for
    ML], "failed": n, "skipped": n, "work_s": seconds}``."""
    t0 = time.perf_counter()
    staged: list[str] = []
    failed = skipped = 0
    for jid in job_ids:
        job_id = _uuid(jid)
        with session_scope(engine) as s:
            job = s.get(PhotoJob, job_id)
            if job is None:
                failed += 1
                continue
            image = s.get(S3Image, job.image_id) if job.image_id else None
            sess = (
                s.get(PhotoUploadSession, job.upload_session_id) if job.upload_session_id else None
            )
            s.expunge_all()
        if job.status == JobStatus.FAILED and image is None:
            failed += 1  # bad input found by an earlier attempt: stays failed
            continue
        if image is not None and storage.head(client, bucket, image.s3_key_original) is not None:
            skipped += 1
            staged.append(jid)
            continue
        try:
            data = _read_source(job, client, bucket)
            info = inspect_image(data)
            small, _ = decode_rgb(data, 600)  # full entropy decode: catches truncated files
        except (BadImageError, FileNotFoundError) as exc:
            fail_job(engine, job_id, str(exc))
            failed += 1
            continue
        sha = hashlib.sha256(data).hexdigest()
        image_id = job.image_id or det_uuid("sha256", sha)
        with session_scope(engine) as s:
            row = s.get(S3Image, image_id)
            key = row.s3_key_original if row else None
            thumb_key = row.s3_key_thumbnail if row else None
        day = info.taken_at or run_date
        key = key or storage.original_key(image_id, info.extension, day)
        thumb_key = thumb_key or storage.thumbnail_key(image_id, day)
        who = uploaded_by or (sess.uploaded_by if sess else None)
        meta = {
            "image_id": str(image_id),
            "uploaded_by": who or "unknown",
            "upload_session_id": str(job.upload_session_id or ""),
            "content_type": info.content_type,
            "original_filename": job.filename,
            "upload_timestamp": info.taken_at or str(run_date),
        }
        storage.put_once(client, bucket, key, data, info.content_type, meta)
        storage.put_once(
            client,
            bucket,
            thumb_key,
            thumbnail_bytes(small),
            "image/jpeg",
            {"image_id": str(image_id)},
        )
        with session_scope(engine) as s:
            upsert(
                s,
                S3Image,
                {
                    "image_id": image_id,
                    "s3_bucket": bucket,
                    "s3_key_original": key,
                    "s3_key_thumbnail": thumb_key,
                    "content_type": info.content_type,
                    "file_size_bytes": len(data),
                    "width_px": info.width,
                    "height_px": info.height,
                    "exif_metadata": info.exif,
                    "gps_coordinates": info.gps,
                    "upload_source": sess.upload_source if sess else "api",
                    "uploaded_by": who,
                    "status": ImageStatus.UPLOADED,
                    "sha256": sha,
                    "original_filename": job.filename,
                    "image_kind": "original",
                    "upload_session_id": job.upload_session_id,
                },
                conflict_cols=("image_id",),
                update_cols=["s3_key_thumbnail", "exif_metadata", "gps_coordinates"],
            )
            s.execute(
                update(PhotoJob)
                .where(PhotoJob.job_id == job_id)
                .values(image_id=image_id, progress_percent=25, error_message=None)
            )
        staged.append(jid)
    return {
        "staged": staged,
        "failed": failed,
        "skipped": skipped,
        "work_s": round(time.perf_counter() - t0, 4),
    }


# --------------------------------------------------------------------------- 3. ML
def _gps_text(gps: dict[str, Any] | None) -> str:
    return f"({gps['lat']:.6f}, {gps['lon']:.6f})" if gps else ""


def resolve_location(
    engine: Engine, gps: dict[str, Any] | None, override_id: int | None, exif: dict[str, Any] | None
) -> tuple[LocationArea | None, str | None, dict[str, str]]:
    """``(location, source, warnings)`` for a photo."""
    warnings: dict[str, str] = {}
    with session_scope(engine) as s:
        if override_id is not None:
            loc = get_area(s, int(override_id))
            if loc is None:
                warnings[Warning_.NEEDS_LOCATION] = f"storage location {override_id} does not exist"
                return None, None, warnings
            source = "manual"
        else:
            loc = locate(gps, load_areas(s))
            source = "gps"
            if loc is None:
                if not gps:
                    why = "GPS coordinates not found"
                    if not exif:
                        why += " (the photo has no EXIF metadata)"
                    elif exif.get("gps_error"):
                        why += f" ({exif['gps_error']})"
                else:
                    why = f"GPS {_gps_text(gps)} is outside every storage location"
                warnings[Warning_.NEEDS_LOCATION] = why
                return None, None, warnings
    if not loc.config:
        warnings[Warning_.NEEDS_CONFIG] = f"storage location {loc.code} is not configured"
    if not (loc.calibration or {}).get("avg_plant_area_px"):
        warnings[Warning_.NEEDS_CALIBRATION] = (
            f"storage location {loc.code} has no density parameters (avg_plant_area_px): "
            "missed plants are not estimated"
        )
    return loc, source, warnings


# the per-photo aggregate (aggregate.photo_summary) kept both in the job's result and in the
# photo_processing_sessions row
RESULT_FIELDS = (
    "total_detected",
    "total_estimated",
    "total_empty_containers",
    "avg_confidence",
    "category_counts",
    "quality_score",
    "quality_band",
)


def session_id_for(image_id: uuid.UUID, trigger: str, run_id: str | None) -> uuid.UUID:
    if trigger == "ingest":
        return det_uuid("session", "ingest", image_id)
    return det_uuid("session", trigger, image_id, run_id)


def process_chunk(
    engine: Engine,
    client: Any,
    bucket: str,
    job_ids: Sequence[str],
    *,
    override_location_id: int | None = None,
    run_id: str | None = None,
    trigger: str = "ingest",
    reason: str | None = None,
) -> dict[str, Any]:
    """ML of every staged photo of a chunk. Returns ``{"results": [{job_id, status, ...}],
    "work_s"}``."""
    t0 = time.perf_counter()
    results: list[dict[str, Any]] = []
    for jid in job_ids:
        try:
            results.append(
                process_one(
                    engine,
                    client,
                    bucket,
                    _uuid(jid),
                    override_location_id=override_location_id,
                    run_id=run_id,
                    trigger=trigger,
                    reason=reason,
                )
            )
        except (CircuitBreakerError, storage.TransientS3Error, ConnectionError):
            raise  # infrastructure: let Airflow retry the chunk
        except Exception as exc:  # noqa: BLE001 - one photo must not stop the chunk
            from botocore.exceptions import BotoCoreError

            if isinstance(exc, BotoCoreError):
                raise
            log.exception("photo job %s failed", jid)
            fail_job(engine, _uuid(jid), f"processing error: {type(exc).__name__}: {exc}")
            results.append({"job_id": jid, "status": JobStatus.FAILED, "error": str(exc)})
    return {"results": results, "work_s": round(time.perf_counter() - t0, 4)}


def process_one(
    engine: Engine,
    client: Any,
    bucket: str,
    job_id: uuid.UUID,
    *,
    override_location_id: int | None = None,
    run_id: str | None = None,
    trigger: str = "ingest",
    reason: str | None = None,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    with session_scope(engine) as s:
        job = s.get(PhotoJob, job_id)
        if job is None or job.image_id is None:
            raise LookupError(f"job {job_id} has no staged image")
        image = s.get(S3Image, job.image_id)
        if image is None:
            raise LookupError(f"image {job.image_id} of job {job_id} is not in s3_images")
        up = s.get(PhotoUploadSession, job.upload_session_id) if job.upload_session_id else None
        s.expunge_all()
    sid = session_id_for(image.image_id, trigger, run_id)
    if job.status in JobStatus.FINAL and job.processing_session_id == sid:
        return {"job_id": str(job_id), "status": job.status, "skipped": True, **(job.result or {})}
    if override_location_id is None and up is not None:
        override_location_id = up.storage_location_id
    # what identifies this processing session: written when it starts and again when it ends
    session_row = {
        "session_id": sid,
        "original_image_id": image.image_id,
        "upload_session_id": job.upload_session_id,
        "trigger": trigger,
        "reason": reason,
        "dag_run_id": run_id,
    }
    with session_scope(engine) as s:
        upsert(
            s,
            PhotoProcessingSession,
            {**session_row, "status": SessionStatus.PROCESSING},
            conflict_cols=("session_id",),
        )
        s.execute(
            update(PhotoJob)
            .where(PhotoJob.job_id == job_id)
            .values(
                status=JobStatus.PROCESSING,
                progress_percent=50,
                processing_session_id=sid,
                dag_run_id=run_id,
            )
        )
        s.execute(
            update(S3Image)
            .where(S3Image.image_id == image.image_id)
            .values(status=ImageStatus.PROCESSING, processing_status_updated_at=func.now())
        )
    data = storage.get_bytes(client, bucket, image.s3_key_original)
    loc, loc_source, warnings = resolve_location(
        engine, image.gps_coordinates, override_location_id, image.exif_metadata
    )
    from include.photos.analyze import analyze

    try:
        a = analyze(
            data,
            config=loc.config if loc else None,
            calibration=loc.calibration if loc else None,
        )
    except (BadImageError, BackendUnavailable) as exc:
        return _finish_failed(engine, job_id, image.image_id, sid, str(exc), loc)
    review = review_warning(
        engine, a.total_detected + a.total_estimated, loc.id if loc else None, image.image_id
    )
    if review:
        warnings[Warning_.NEEDS_REVIEW] = review
    summary = photo_summary(a, warnings)
    status = next((w for w in Warning_.ALL if w in warnings), SessionStatus.COMPLETED)
    processed_id = det_uuid("annotated", sid)
    day = _day_of(image.s3_key_original)
    ann_key = storage.annotated_key(processed_id, day)
    ann = annotate(a, warnings, f"quality {summary['quality_score']:.2f} {summary['quality_band']}")
    storage.put_once(client, bucket, ann_key, ann, "image/jpeg", {"image_id": str(processed_id)})
    seconds = round(time.perf_counter() - t0, 3)
    result = {
        "session_id": str(sid),
        "image_id": str(image.image_id),
        "storage_location_id": loc.id if loc else None,
        "storage_location_name": loc.name if loc else None,
        **{k: summary[k] for k in RESULT_FIELDS},
        "warnings": warnings,
        "annotated_key": ann_key,
        "processing_seconds": seconds,
    }
    with session_scope(engine) as s:
        upsert(
            s,
            S3Image,
            {
                "image_id": processed_id,
                "s3_bucket": bucket,
                "s3_key_original": ann_key,
                "content_type": "image/jpeg",
                "file_size_bytes": len(ann),
                "width_px": a.image.width,
                "height_px": a.image.height,
                "upload_source": image.upload_source,
                "uploaded_by": image.uploaded_by,
                "status": ImageStatus.READY,
                "image_kind": "annotated",
                "upload_session_id": image.upload_session_id,
            },
            conflict_cols=("image_id",),
        )
        upsert(
            s,
            PhotoProcessingSession,
            {
                **session_row,
                "processed_image_id": processed_id,
                "storage_location_id": loc.id if loc else None,
                "location_source": loc_source,
                **{k: summary[k] for k in RESULT_FIELDS},
                "detector_backend": summary["detector_backend"],
                "regions": summary["regions"],
                "status": status,
                "error_message": "; ".join(f"{k}: {v}" for k, v in warnings.items()) or None,
                "needs_location": Warning_.NEEDS_LOCATION in warnings,
                "needs_config": Warning_.NEEDS_CONFIG in warnings,
                "needs_calibration": Warning_.NEEDS_CALIBRATION in warnings,
                "warning_details": warnings or None,
                "processing_seconds": seconds,
            },
            conflict_cols=("session_id",),
        )
        s.execute(
            update(PhotoJob)
            .where(PhotoJob.job_id == job_id)
            .values(
                status=status,
                progress_percent=100,
                result=result,
                error_message=None,
                processing_session_id=sid,
            )
        )
        first = next(iter(warnings.items()), None)
        s.execute(
            update(S3Image)
            .where(S3Image.image_id == image.image_id)
            .values(
                status=ImageStatus.WARNING if warnings else ImageStatus.READY,
                error_details=f"{first[0]}: {first[1]}" if first else None,
                processing_status_updated_at=func.now(),
            )
        )
    return {"job_id": str(job_id), "status": status, **result}


HISTORY_SESSIONS = 5  # recent counts of a location a new count is compared with
HISTORY_FACTOR = 2.0  # a count below history/F or above history*F needs a review


def review_warning(
    engine: Engine, total: int, location_id: int | None, image_id: uuid.UUID
) -> str | None:
    """Why a count needs a human look, or ``None``: no plants found at all, or a count far from
    the median of the location's last :data:`HISTORY_SESSIONS` counts (other photos)."""
    if total <= 0:
        return (
            "no plants found in the photo: check it (an empty container, or plants the counter "
            "cannot see) and reprocess or validate it"
        )
    if location_id is None:
        return None
    with session_scope(engine) as s:
        rows = s.execute(
            select(PhotoProcessingSession.total_detected, PhotoProcessingSession.total_estimated)
            .where(
                PhotoProcessingSession.storage_location_id == location_id,
                PhotoProcessingSession.original_image_id != image_id,
                PhotoProcessingSession.total_detected.is_not(None),
                PhotoProcessingSession.status.not_in(
                    [SessionStatus.FAILED, SessionStatus.PROCESSING, SessionStatus.PENDING]
                ),
            )
            .order_by(PhotoProcessingSession.created_at.desc())
            .limit(HISTORY_SESSIONS)
        ).all()
    history = sorted(int(d or 0) + int(e or 0) for d, e in rows)
    if len(history) < 2:
        return None
    med = history[len(history) // 2]
    if med > 0 and not (med / HISTORY_FACTOR <= total <= med * HISTORY_FACTOR):
        return (
            f"{total} plants is far from this location's recent counts (median {med} of "
            f"{len(history)} photos): check the photo"
        )
    return None


def _finish_failed(
    engine: Engine,
    job_id: uuid.UUID,
    image_id: uuid.UUID,
    sid: uuid.UUID,
    reason: str,
    loc: LocationArea | None,
) -> dict[str, Any]:
    with session_scope(engine) as s:
        s.execute(
            update(PhotoProcessingSession)
            .where(PhotoProcessingSession.session_id == sid)
            .values(
                status=SessionStatus.FAILED,
                error_message=reason[:2000],
                storage_location_id=loc.id if loc else None,
            )
        )
    fail_job(engine, job_id, reason, image_id)
    return {"job_id": str(job_id), "status": JobStatus.FAILED, "error": reason}


def _day_of(key: str) -> str:
    """``YYYY-MM-DD`` from an ``originals/YYYY/MM/DD/...`` key (the annotated image's date)."""
    parts = key.split("/")
    return f"{parts[1]}-{parts[2]}-{parts[3]}"


# --------------------------------------------------------------------------- 4. aggregate
def finish_upload(engine: Engine, upload_session_id: str) -> dict[str, Any]:
    """Aggregate the session's jobs into ``photo_upload_sessions.summary`` and ``status``."""
    sid = _uuid(upload_session_id)
    with session_scope(engine) as s:
        jobs = s.scalars(select(PhotoJob).where(PhotoJob.upload_session_id == sid)).all()
        summary = session_summary({"status": j.status, "result": j.result} for j in jobs)
        sess = s.get(PhotoUploadSession, sid)
        if sess is None:
            raise LookupError(f"upload session {sid} does not exist")
        sess.summary = summary
        sess.status = upload_status(summary)
        return {"upload_session_id": str(sid), "status": sess.status, **summary}


# --------------------------------------------------------------------------- reprocess
def prepare_reprocess(
    engine: Engine,
    *,
    image_id: str,
    storage_location_id: int | None,
    reason: str | None,
    run_id: str,
) -> str:
    """A reprocess job for ``image_id`` (deterministic per DAG run). Returns the job id."""
    with session_scope(engine) as s:
        image = reprocess_target(s, _uuid(image_id), storage_location_id)
        row = reprocess_job_row(image, run_id, reason)
        upsert(s, PhotoJob, row, conflict_cols=("job_id",), update_cols=[])
    return str(row["job_id"])
