"""Stage a web upload for ``photo_ingest`` and record the reprocess requests, following the contract
in :mod:`include.photos.models`:

* one ``photo_upload_sessions`` row (``upload_source="web"``, ``status="pending"``);
* every accepted file staged in S3 at ``temp_uploads/<upload_session_id>/<job_id>.<ext>`` — the
  user's file name is kept only as a label (``photo_jobs.filename`` and S3 metadata), never as a
  path;
* one ``photo_jobs`` row per accepted file (``staged_key`` = ``source_ref`` = the S3 key,
  ``image_id`` chosen here), ``status="pending"``;
* then the caller triggers ``photo_ingest`` with ``{"upload_session_id": ...}`` and records the run
  id with :func:`record_dag_run`.

Idempotent: with an ``Idempotency-Key`` the upload session id is derived from (user, key), job and
image ids from (session, position, content hash), and staging skips objects already in S3 with
the same content, so a client retrying a request that timed out gets the same session back instead
of a duplicate. Rows are written only after every object is safely in S3.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from include.common.db import session_scope, upsert
from include.photos.jobs import (
    ACTIVE,
    ingest_job_row,
    reprocess_job_row,
    reprocess_target,
    upload_session_row,
)
from include.photos.jobs import NotFound as NotFound  # re-exported: the API maps it to 404
from include.photos.models import JobStatus, PhotoJob, PhotoUploadSession, det_uuid
from include.photos.storage import put_once, temp_upload_key
from include.webapp.validation import Rejection, ValidPhoto

log = logging.getLogger(__name__)

INGEST_DAG_ID = "photo_ingest"
REPROCESS_DAG_ID = "photo_reprocess"

# dag_id, run_id, conf -> the run id Airflow created (or already had)
Trigger = Callable[[str, str, dict[str, Any]], str]


class Conflict(RuntimeError):
    """The request cannot be done in the object's current state (e.g. still processing)."""


@dataclass(frozen=True)
class StagedJob:
    job_id: uuid.UUID
    image_id: uuid.UUID
    filename: str
    staged_key: str
    size: int
    sha256: str


def upload_session_id_for(user: str, idempotency_key: str | None) -> uuid.UUID:
    """Deterministic session id for a retried request; a fresh one without a key."""
    if idempotency_key:
        return det_uuid("web-upload", user, idempotency_key)
    return uuid.uuid4()


def ingest_run_id(upload_session_id: uuid.UUID | str) -> str:
    return f"web_upload__{upload_session_id}"


def reprocess_run_id(request_id: uuid.UUID | str) -> str:
    return f"web_reprocess__{request_id}"


def plan_jobs(upload_session_id: uuid.UUID, photos: Sequence[ValidPhoto]) -> list[StagedJob]:
    """Job id, image id and S3 key of every accepted photo (deterministic in the session)."""
    out = []
    for p in photos:
        job_id = det_uuid(upload_session_id, "job", p.index, p.sha256)
        image_id = det_uuid(upload_session_id, "image", p.index, p.sha256)
        out.append(
            StagedJob(
                job_id=job_id,
                image_id=image_id,
                filename=p.filename,
                staged_key=temp_upload_key(upload_session_id, f"{job_id}.{p.extension}"),
                size=p.size,
                sha256=p.sha256,
            )
        )
    return out


def existing_session(session: Session, upload_session_id: uuid.UUID) -> PhotoUploadSession | None:
    return session.get(PhotoUploadSession, upload_session_id)


def stage_files(
    s3: Any,
    bucket: str,
    upload_session_id: uuid.UUID,
    photos: Sequence[ValidPhoto],
    jobs: Sequence[StagedJob],
    user: str,
    workers: int = 6,
    read: Callable[[ValidPhoto], bytes] | None = None,
) -> None:
    """Put every photo at its staged key (skipped when the same bytes are already there).
    Runs up to ``workers`` uploads at once (seed: up to 6 parallel). Photos validated without
    their bytes are read with ``read`` (and must still have the validated content hash)."""

    def put(pair: tuple[ValidPhoto, StagedJob]) -> str:
        photo, job = pair
        data = photo.data
        if not data:
            if read is None:
                raise ValueError(f"no bytes for {photo.filename} and no reader")
            data = read(photo)
            if hashlib.sha256(data).hexdigest() != photo.sha256:
                raise RuntimeError(f"{photo.filename} changed between validation and staging")
        return put_once(
            s3,
            bucket,
            job.staged_key,
            data,
            photo.content_type,
            metadata={
                "image_id": str(job.image_id),
                "job_id": str(job.job_id),
                "upload_session_id": str(upload_session_id),
                "uploaded_by": user,
                "original_filename": photo.filename,
            },
        )

    pairs = list(zip(photos, jobs, strict=True))
    if len(pairs) <= 1:
        for pair in pairs:
            put(pair)
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(pairs))) as pool:
        list(pool.map(put, pairs))


def rejected_job_id(upload_session_id: uuid.UUID, index: int) -> uuid.UUID:
    return det_uuid(upload_session_id, "rejected", index)


def record_upload(
    session: Session,
    upload_session_id: uuid.UUID,
    jobs: Sequence[StagedJob],
    user: str,
    rejected: Sequence[Rejection] = (),
) -> None:
    """Write the upload session, its pending jobs and one ``failed`` job per refused file (with
    the reason, so the job list shows it next to the others; ``photo_ingest`` leaves failed jobs
    without an image alone). Upserts that never overwrite: a retried request is a no-op."""
    upsert(
        session,
        PhotoUploadSession,
        upload_session_row(
            upload_session_id,
            uploaded_by=user,
            upload_source="web",
            source_ref=None,
            total_files=len(jobs) + len(rejected),
        ),
        conflict_cols=("upload_session_id",),
        update_cols=[],
    )
    rows = [
        ingest_job_row(
            j.job_id,
            upload_session_id,
            j.filename,
            j.staged_key,
            staged_key=j.staged_key,
            image_id=j.image_id,
        )
        for j in jobs
    ] + [
        {
            **ingest_job_row(
                rejected_job_id(upload_session_id, r.index),
                upload_session_id,
                r.filename,
                f"rejected:{r.index}",
            ),
            "status": JobStatus.FAILED,
            "progress_percent": 100,
            "error_message": f"rejected at upload ({r.code}): {r.reason}"[:2000],
        }
        for r in rejected
    ]
    if rows:
        upsert(session, PhotoJob, rows, conflict_cols=("job_id",), update_cols=[])


def stage_upload(
    engine: Any,
    s3: Any,
    bucket: str,
    upload_session_id: uuid.UUID,
    photos: Sequence[ValidPhoto],
    rejected: Sequence[Rejection],
    user: str,
    *,
    read: Callable[[ValidPhoto], bytes] | None = None,
    workers: int = 6,
) -> list[StagedJob]:
    """Stage one validated upload: plan the jobs, put the photos in S3, then write the session
    and job rows (only once every object is safely in S3). A retried request (same session id,
    same photos) is a no-op; a session id already used by another user or for other photos (an
    ``Idempotency-Key`` reused) raises :class:`Conflict` before anything is written. S3 errors
    propagate (nothing is recorded)."""
    jobs = plan_jobs(upload_session_id, photos)
    with session_scope(engine) as s:
        existing = existing_session(s, upload_session_id)
        if existing is not None:
            known = {j.job_id for j in jobs_of(s, upload_session_id)}
            if existing.uploaded_by != user or not {j.job_id for j in jobs} <= known:
                raise Conflict(
                    "this Idempotency-Key was used for another upload (other files): use a new key"
                )
    stage_files(s3, bucket, upload_session_id, photos, jobs, user, workers=workers, read=read)
    with session_scope(engine) as s:
        record_upload(s, upload_session_id, jobs, user, rejected)
    return jobs


def record_dag_run(
    session: Session,
    dag_run_id: str,
    *,
    upload_session_id: uuid.UUID | None = None,
    job_id: uuid.UUID | None = None,
) -> None:
    """Remember which Airflow run processes the upload session / the reprocess job."""
    if upload_session_id is not None:
        up = session.get(PhotoUploadSession, upload_session_id)
        if up is not None and not up.dag_run_id:
            up.dag_run_id = dag_run_id
        for job in session.scalars(
            select(PhotoJob).where(PhotoJob.upload_session_id == upload_session_id)
        ):
            if not job.dag_run_id:
                job.dag_run_id = dag_run_id
    if job_id is not None:
        job = session.get(PhotoJob, job_id)
        if job is not None and not job.dag_run_id:
            job.dag_run_id = dag_run_id


def jobs_of(session: Session, upload_session_id: uuid.UUID) -> list[PhotoJob]:
    """The jobs of an upload session, by file name (the order the status views list them)."""
    return list(
        session.scalars(
            select(PhotoJob)
            .where(PhotoJob.upload_session_id == upload_session_id)
            .order_by(PhotoJob.filename, PhotoJob.job_id)
        )
    )


# --------------------------------------------------------------------------- reprocess
def create_reprocess_job(
    session: Session,
    image_id: uuid.UUID,
    reason: str,
    storage_location_id: int | None,
    user: str,
    request_key: str,
) -> tuple[PhotoJob, bool]:
    """Record the ``reprocess`` job of an original image before ``photo_reprocess`` runs, so the
    client can poll it at once. Returns ``(job, created)``.

    The run id is derived from (image, user, request key); the row is the one
    :func:`include.photos.pipeline.prepare_reprocess` writes in that run
    (:func:`include.photos.jobs.reprocess_job_row`), so the DAG's own upsert finds this row
    (``DO NOTHING``) instead of adding a second one; a retried request (same key) returns the
    same job. Raises :class:`NotFound` for an unknown image/location and :class:`Conflict`
    while another job of the image is pending/processing.
    """
    image = reprocess_target(session, image_id, storage_location_id)
    run_id = reprocess_run_id(det_uuid("web-reprocess", image_id, user, request_key))
    row = reprocess_job_row(
        image,
        run_id,
        reason,
        result={"requested_storage_location_id": storage_location_id, "requested_by": user},
    )
    job = session.get(PhotoJob, row["job_id"])
    if job is not None:
        return job, False
    busy = session.scalars(
        select(PhotoJob).where(PhotoJob.image_id == image_id, PhotoJob.status.in_(ACTIVE)).limit(1)
    ).first()
    if busy is not None:
        raise Conflict(
            f"image {image_id} already has a {busy.kind} job {busy.job_id} in state {busy.status}"
        )
    job = PhotoJob(**row)
    session.add(job)
    session.flush()
    return job, True
