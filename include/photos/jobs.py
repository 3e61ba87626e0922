"""The job contract shared by the pipeline (``photo_ingest`` / ``photo_reprocess``) and the web app
(which creates jobs before the DAG runs): one place for the rows, the ids and the failure update,
so both sides always write the same ``photo_upload_sessions`` / ``photo_jobs`` rows.

Light on purpose (SQLAlchemy and the models only): the web app imports it per request.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, func, update
from sqlalchemy.orm import Session

from include.common.db import session_scope
from include.photos.models import (
    ImageStatus,
    JobStatus,
    PhotoJob,
    S3Image,
    StorageLocation,
    UploadStatus,
    det_uuid,
)

# a job in one of these states may still be picked up by a DAG run
ACTIVE = (JobStatus.PENDING, JobStatus.PROCESSING)


class NotFound(LookupError):
    """The image / location / upload session / job does not exist."""


def upload_session_row(
    upload_session_id: uuid.UUID,
    *,
    uploaded_by: str | None,
    upload_source: str,
    source_ref: str | None,
    storage_location_id: int | None = None,
    total_files: int = 0,
) -> dict[str, Any]:
    """A new ``photo_upload_sessions`` row (``status="pending"``)."""
    return {
        "upload_session_id": upload_session_id,
        "uploaded_by": uploaded_by,
        "upload_source": upload_source,
        "source_ref": source_ref,
        "storage_location_id": storage_location_id,
        "status": UploadStatus.PENDING,
        "total_files": total_files,
    }


def ingest_job_row(
    job_id: uuid.UUID,
    upload_session_id: uuid.UUID,
    filename: str,
    source_ref: str,
    *,
    staged_key: str | None = None,
    image_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """A new ``pending`` ingest job of one file of an upload session. ``source_ref`` is where the
    file is (an S3 key under ``temp_uploads/`` or a local path); ``staged_key`` the S3 key when
    it is staged; ``image_id`` when the caller already chose it (the web app)."""
    return {
        "job_id": job_id,
        "upload_session_id": upload_session_id,
        "kind": "ingest",
        "image_id": image_id,
        "filename": filename[:255],
        "source_ref": source_ref,
        "staged_key": staged_key,
        "status": JobStatus.PENDING,
        "progress_percent": 0,
        "error_message": None,
    }


# --------------------------------------------------------------------------- reprocess
def reprocess_job_id(image_id: uuid.UUID, run_id: str) -> uuid.UUID:
    """The job id of reprocessing ``image_id`` in the ``photo_reprocess`` run ``run_id``."""
    return det_uuid("job", "reprocess", image_id, run_id)


def reprocess_target(
    session: Session, image_id: uuid.UUID, storage_location_id: int | None
) -> S3Image:
    """The original image to reprocess; :class:`NotFound` for an unknown (or non-original) image
    or an unknown storage location."""
    image = session.get(S3Image, image_id)
    if image is None or image.image_kind != "original":
        raise NotFound(f"image {image_id} is not an original in s3_images")
    if (
        storage_location_id is not None
        and session.get(StorageLocation, int(storage_location_id)) is None
    ):
        raise NotFound(f"storage location {storage_location_id} does not exist")
    return image


def reprocess_job_row(
    image: S3Image, run_id: str, reason: str | None, result: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``pending`` reprocess job of ``image`` in run ``run_id`` (not part of an upload
    session: ``photo_ingest`` never picks it up). The S3 original is its input."""
    row: dict[str, Any] = {
        "job_id": reprocess_job_id(image.image_id, run_id),
        "upload_session_id": None,
        "kind": "reprocess",
        "image_id": image.image_id,
        "filename": (image.original_filename or str(image.image_id))[:255],
        "source_ref": f"s3://{image.s3_bucket}/{image.s3_key_original}",
        "staged_key": None,
        "status": JobStatus.PENDING,
        "progress_percent": 0,
        "reason": reason,
        "dag_run_id": run_id,
    }
    if result is not None:
        row["result"] = result
    return row


# --------------------------------------------------------------------------- failure
def fail_job(
    engine: Engine,
    job_id: uuid.UUID,
    reason: str,
    image_id: uuid.UUID | None = None,
    *,
    only_active: bool = False,
) -> None:
    """Mark a job ``failed`` with ``reason`` (and its image, when given). With ``only_active`` a
    job that already finished is left alone (e.g. its DAG run could not be created after all)."""
    with session_scope(engine) as s:
        q = update(PhotoJob).where(PhotoJob.job_id == job_id)
        if only_active:
            q = q.where(PhotoJob.status.in_(ACTIVE))
        s.execute(
            q.values(status=JobStatus.FAILED, error_message=reason[:2000], progress_percent=100)
        )
        if image_id is not None:
            s.execute(
                update(S3Image)
                .where(S3Image.image_id == image_id)
                .values(
                    status=ImageStatus.FAILED,
                    error_details=reason[:2000],
                    processing_status_updated_at=func.now(),
                )
            )
