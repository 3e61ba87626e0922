"""What the upload/gallery web app (issue 7) needs from this pipeline, as plain functions:

* :func:`stage_upload` — ``POST /api/v1/photos/upload``: put the files under
  ``temp_uploads/<upload_session_id>/`` in S3, create the ``photo_upload_sessions`` row and one
  ``pending`` ``photo_jobs`` row per file (with its ``image_id``), and return the seed's 202 body.
  The caller then triggers ``photo_ingest`` with ``{"upload_session_id": ...}``.
* :func:`jobs_status` — ``GET /api/v1/photos/jobs/status``: the jobs of a session with their
  status/progress/result and the summary (counts and overall progress), in the seed's shape.

Nothing here decodes images: validation happens in the pipeline, which marks bad files
``failed`` with the reason (so the API answers fast).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, select

from include.common.db import session_scope, upsert
from include.photos import storage
from include.photos.models import (
    JobStatus,
    PhotoJob,
    PhotoUploadSession,
    UploadStatus,
    det_uuid,
)

MAX_FILES = 100  # seed: 1-100 photos per upload
MAX_BYTES = 50 * 1024 * 1024
CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
}


def stage_upload(
    engine: Engine,
    client: Any,
    bucket: str,
    upload_session_id: str | uuid.UUID,
    files: Iterable[tuple[str, bytes]],
    *,
    uploaded_by: str | None = None,
    upload_source: str = "web",
    storage_location_id: int | None = None,
) -> dict[str, Any]:
    """Stage an upload. Idempotent for the same session and file names (a retried request does
    not create duplicates). Raises ``ValueError`` for an empty or oversized upload; files with
    an unsupported extension or size are rejected up front in ``rejected`` (not staged)."""
    sid = uuid.UUID(str(upload_session_id))
    files = list(files)
    if not files:
        raise ValueError("no files in the upload")
    if len(files) > MAX_FILES:
        raise ValueError(f"{len(files)} files: at most {MAX_FILES} per upload")
    jobs, rejected = [], []
    used: set[str] = set()
    for name, data in files:
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if ext not in CONTENT_TYPES:
            rejected.append({"filename": name, "reason": "only JPEG, PNG or WebP photos"})
            continue
        if len(data) > MAX_BYTES:
            rejected.append({"filename": name, "reason": f"larger than {MAX_BYTES >> 20} MB"})
            continue
        key = storage.temp_upload_key(sid, name)
        n = 1
        while key in used:  # two names that sanitise alike: keep both files
            stem, _, e = name.rpartition(".")
            key = storage.temp_upload_key(sid, f"{stem}-{n}.{e}")
            n += 1
        used.add(key)
        storage.put_once(
            client, bucket, key, data, CONTENT_TYPES[ext], {"upload_session_id": str(sid)}
        )
        jobs.append(
            {
                "job_id": det_uuid("job", sid, key.rsplit("/", 1)[-1]),
                "upload_session_id": sid,
                "kind": "ingest",
                "image_id": det_uuid("upload", sid, key),
                "filename": name[:255],
                "source_ref": key,
                "staged_key": key,
                "status": JobStatus.PENDING,
            }
        )
    with session_scope(engine) as s:
        upsert(
            s,
            PhotoUploadSession,
            {
                "upload_session_id": sid,
                "uploaded_by": uploaded_by,
                "upload_source": upload_source,
                "source_ref": f"{storage.TEMP_UPLOADS}/{sid}/",
                "storage_location_id": storage_location_id,
                "status": UploadStatus.PENDING,
                "total_files": len(jobs),
            },
            conflict_cols=("upload_session_id",),
            update_cols=[],
        )
        if jobs:
            upsert(s, PhotoJob, jobs, conflict_cols=("job_id",), update_cols=[])
    return {
        "status": "accepted",
        "upload_session_id": str(sid),
        "jobs": [
            {
                "job_id": str(j["job_id"]),
                "image_id": str(j["image_id"]),
                "filename": j["filename"],
                "status": JobStatus.PENDING,
            }
            for j in jobs
        ],
        "rejected": rejected,
        "total_files": len(jobs),
        "poll_url": f"/api/v1/photos/jobs/status?upload_session_id={sid}",
    }


def jobs_status(engine: Engine, upload_session_id: str | uuid.UUID) -> dict[str, Any]:
    """The seed's job-status body for one upload session (``LookupError`` if unknown)."""
    sid = uuid.UUID(str(upload_session_id))
    with session_scope(engine) as s:
        up = s.get(PhotoUploadSession, sid)
        if up is None:
            raise LookupError(f"upload session {sid} does not exist")
        rows = s.scalars(
            select(PhotoJob)
            .where(PhotoJob.upload_session_id == sid)
            .order_by(PhotoJob.filename, PhotoJob.job_id)
        ).all()
        jobs = []
        for j in rows:
            item: dict[str, Any] = {
                "job_id": str(j.job_id),
                "image_id": str(j.image_id) if j.image_id else None,
                "filename": j.filename,
                "status": j.status,
                "progress_percent": j.progress_percent,
            }
            if j.error_message:
                item["error"] = j.error_message
            if j.result:
                item["result"] = {
                    "session_id": j.result.get("session_id"),
                    "total_detected": j.result.get("total_detected"),
                    "total_estimated": j.result.get("total_estimated"),
                    "storage_location_id": j.result.get("storage_location_id"),
                    "warnings": j.result.get("warnings") or {},
                    "processing_time_seconds": j.result.get("processing_seconds"),
                }
            jobs.append(item)
        counts = {k: 0 for k in ("completed", "processing", "pending", "failed", "warning")}
        for j in rows:
            key = "warning" if j.status in JobStatus.WARNINGS else j.status
            counts[key] = counts.get(key, 0) + 1
        total = len(rows)
        progress = sum(j.progress_percent for j in rows) / total if total else 100.0
        return {
            "upload_session_id": str(sid),
            "status": up.status,
            "jobs": jobs,
            "summary": {
                "total_jobs": total,
                **counts,
                "overall_progress_percent": round(progress, 1),
            },
            "aggregate": up.summary,
        }
