"""Read queries of the web app: job status, gallery, photo detail, warehouses and locations.

Everything returns JSON-ready dicts shaped like the seed's API examples. Image links come from a
``presign(bucket, key) -> url`` callable (presigned S3 GET URLs with an expiry in the app), so this
module needs neither S3 nor Airflow.

The current result of an original image is its newest ``photo_processing_sessions`` row
(reprocessing adds rows, the older ones are the history).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, aliased

from include.photos.models import (
    ImageStatus,
    JobStatus,
    PhotoJob,
    PhotoProcessingSession,
    PhotoUploadSession,
    S3Image,
    StorageLocation,
    Warehouse,
)
from include.webapp.staging import NotFound, jobs_of

Presign = Callable[[str, str], str]

# typical seconds per photo when nothing finished yet (the progress estimate's prior)
DEFAULT_SECONDS_PER_PHOTO = 20.0

STATUS_FILTERS: dict[str, tuple[str, ...] | None] = {
    "all": None,
    "success": (ImageStatus.READY,),
    "warning": (ImageStatus.WARNING,),
    "error": (ImageStatus.FAILED,),
    "errors": (ImageStatus.WARNING, ImageStatus.FAILED),  # seed: "errors only"
    "processing": (ImageStatus.UPLOADED, ImageStatus.PROCESSING),
}


def badge(status: str | None) -> str:
    """success | warning | error | processing — the colour of a status badge."""
    if status in (JobStatus.COMPLETED, ImageStatus.READY):
        return "success"
    if status in JobStatus.WARNINGS or status == ImageStatus.WARNING:
        return "warning"
    if status == JobStatus.FAILED:
        return "error"
    return "processing"


def _iso(v: datetime | date | None) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime) and v.tzinfo is None:
        v = v.replace(tzinfo=UTC)
    return v.isoformat().replace("+00:00", "Z")


def _num(v: Any) -> Any:
    return float(v) if isinstance(v, Decimal) else v


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


# --------------------------------------------------------------------------- jobs
DAG_OF_KIND = {"ingest": "photo_ingest", "reprocess": "photo_reprocess"}


def airflow_run_path(kind: str | None, run_id: str | None) -> str | None:
    """The Airflow UI page of the run that processed a job (same origin): ``/dags/<dag>/runs/<id>``."""
    if not run_id:
        return None
    from urllib.parse import quote

    dag = DAG_OF_KIND.get(kind or "ingest", "photo_ingest")
    return f"/dags/{dag}/runs/{quote(run_id, safe='')}"


def job_view(job: PhotoJob, seconds_per_photo: float = DEFAULT_SECONDS_PER_PHOTO) -> dict[str, Any]:
    res = dict(job.result or {})
    out: dict[str, Any] = {
        "job_id": str(job.job_id),
        "kind": job.kind,
        "image_id": _str(job.image_id),
        "filename": job.filename,
        "status": job.status,
        "badge": badge(job.status),
        "progress_percent": int(job.progress_percent or 0),
        "error_message": job.error_message,
        "dag_run_id": job.dag_run_id,
        "airflow_run_url": airflow_run_path(job.kind, job.dag_run_id),
        "reason": job.reason,
        "created_at": _iso(job.created_at),
        "updated_at": _iso(job.updated_at),
    }
    if job.status in JobStatus.FINAL:
        out["progress_percent"] = 100
        if res.get("processing_seconds") is not None:
            out["processing_time_seconds"] = res["processing_seconds"]
    else:
        left = max(0.0, 1.0 - out["progress_percent"] / 100.0)
        out["estimated_remaining_seconds"] = round(seconds_per_photo * left, 1)
    if res.get("session_id"):
        out["result"] = {
            k: res.get(k)
            for k in (
                "session_id",
                "total_detected",
                "total_estimated",
                "total_empty_containers",
                "storage_location_id",
                "storage_location_name",
                "warnings",
            )
        }
    return out


def _summary(jobs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    n = len(jobs)
    count = lambda *st: sum(1 for j in jobs if j["status"] in st)  # noqa: E731
    return {
        "total_jobs": n,
        "completed": count(JobStatus.COMPLETED),
        "warnings": count(*JobStatus.WARNINGS),
        "processing": count(JobStatus.PROCESSING),
        "pending": count(JobStatus.PENDING),
        "failed": count(JobStatus.FAILED),
        "done": all(j["status"] in JobStatus.FINAL for j in jobs),
        "overall_progress_percent": round(sum(j["progress_percent"] for j in jobs) / n, 1)
        if n
        else 100.0,
    }


def _seconds_per_photo(jobs: Sequence[PhotoJob]) -> float:
    times = [
        float(j.result["processing_seconds"])
        for j in jobs
        if j.result and j.result.get("processing_seconds") is not None
    ]
    return sum(times) / len(times) if times else DEFAULT_SECONDS_PER_PHOTO


def job_status(session: Session, upload_session_id: uuid.UUID) -> dict[str, Any]:
    """The seed's ``GET /jobs/status`` body for one upload session."""
    up = session.get(PhotoUploadSession, upload_session_id)
    if up is None:
        raise NotFound(f"no upload session {upload_session_id}")
    rows = jobs_of(session, upload_session_id)
    spp = _seconds_per_photo(rows)
    jobs = [job_view(j, spp) for j in rows]
    return {
        "upload_session_id": str(upload_session_id),
        "status": up.status,
        "uploaded_by": up.uploaded_by,
        "created_at": _iso(up.created_at),
        "dag_run_id": up.dag_run_id,
        "jobs": jobs,
        "summary": _summary(jobs),
    }


def one_job(session: Session, job_id: uuid.UUID) -> dict[str, Any]:
    job = session.get(PhotoJob, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job_view(job)


def recent_uploads(
    session: Session, user: str | None, limit: int = 20, since: datetime | None = None
) -> list[dict[str, Any]]:
    """The user's latest upload sessions with job counts (the job list that stays visible;
    seed: 24-48 hours), newest first; ``since`` bounds their age."""
    q = select(PhotoUploadSession).where(PhotoUploadSession.upload_source == "web")
    if since is not None:
        q = q.where(PhotoUploadSession.created_at >= since)
    if user:
        q = q.where(PhotoUploadSession.uploaded_by == user)
    ups = list(
        session.scalars(q.order_by(PhotoUploadSession.created_at.desc()).limit(max(1, limit)))
    )
    out = []
    for up in ups:
        counts = dict(
            session.execute(
                select(PhotoJob.status, func.count())
                .where(PhotoJob.upload_session_id == up.upload_session_id)
                .group_by(PhotoJob.status)
            )
            .tuples()
            .all()
        )
        out.append(
            {
                "upload_session_id": str(up.upload_session_id),
                "status": up.status,
                "created_at": _iso(up.created_at),
                "total_files": up.total_files,
                "by_status": counts,
                "poll_url": f"jobs/status?upload_session_id={up.upload_session_id}",
            }
        )
    return out


# --------------------------------------------------------------------------- gallery
@dataclass(frozen=True)
class GalleryFilter:
    date_from: date | None = None
    date_to: date | None = None  # inclusive
    warehouse_ids: tuple[int, ...] = ()
    status: str = "all"
    page: int = 1
    per_page: int = 50
    upload_session_id: uuid.UUID | None = None  # only the photos of one upload

    def __post_init__(self) -> None:
        if self.status not in STATUS_FILTERS:
            raise ValueError(
                f"status must be one of {', '.join(STATUS_FILTERS)}, not {self.status!r}"
            )
        if self.page < 1:
            raise ValueError("page must be >= 1")
        if not 1 <= self.per_page <= 200:
            raise ValueError("per_page must be between 1 and 200")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError("date_from is after date_to")


def _latest_session_subquery() -> Any:
    return (
        select(
            PhotoProcessingSession.original_image_id.label("image_id"),
            func.max(PhotoProcessingSession.id).label("sid"),
        )
        .group_by(PhotoProcessingSession.original_image_id)
        .subquery("latest")
    )


def _gallery_query(f: GalleryFilter) -> Select[Any]:
    latest = _latest_session_subquery()
    pps = aliased(PhotoProcessingSession)
    q = (
        select(S3Image, pps, StorageLocation, Warehouse)
        .outerjoin(latest, latest.c.image_id == S3Image.image_id)
        .outerjoin(pps, pps.id == latest.c.sid)
        .outerjoin(StorageLocation, StorageLocation.id == pps.storage_location_id)
        .outerjoin(Warehouse, Warehouse.id == StorageLocation.warehouse_id)
        .where(S3Image.image_kind == "original")
    )
    if f.date_from:
        q = q.where(S3Image.created_at >= datetime.combine(f.date_from, time(), UTC))
    if f.date_to:
        end = datetime.combine(f.date_to + timedelta(days=1), time(), UTC)
        q = q.where(S3Image.created_at < end)
    if f.warehouse_ids:
        q = q.where(Warehouse.id.in_(f.warehouse_ids))
    if f.upload_session_id is not None:
        q = q.where(S3Image.upload_session_id == f.upload_session_id)
    wanted = STATUS_FILTERS[f.status]
    if wanted:
        q = q.where(S3Image.status.in_(wanted))
    return q


def _session_brief(
    pps: PhotoProcessingSession | None, loc: StorageLocation | None
) -> dict[str, Any] | None:
    if pps is None:
        return None
    return {
        "session_id": str(pps.session_id),
        "status": pps.status,
        "total_detected": pps.total_detected,
        "total_estimated": pps.total_estimated,
        "storage_location_id": pps.storage_location_id,
        "storage_location_name": loc.name if loc else None,
    }


def gallery(session: Session, f: GalleryFilter, presign: Presign) -> dict[str, Any]:
    """The seed's ``GET /gallery`` body: newest first, one page."""
    q = _gallery_query(f)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.execute(
        q.order_by(S3Image.created_at.desc(), S3Image.image_id)
        .offset((f.page - 1) * f.per_page)
        .limit(f.per_page)
    ).all()
    photos = []
    for img, pps, loc, wh in rows:
        photos.append(
            {
                "image_id": str(img.image_id),
                "filename": img.original_filename,
                "thumbnail_url": presign(img.s3_bucket, img.s3_key_thumbnail)
                if img.s3_key_thumbnail
                else None,
                "original_url": presign(img.s3_bucket, img.s3_key_original),
                "status": img.status,
                "badge": badge(img.status),
                "error_details": img.error_details,
                "uploaded_at": _iso(img.created_at),
                "processing_session": _session_brief(pps, loc),
                "warehouse_id": wh.id if wh else None,
                "warehouse_name": wh.name if wh else None,
            }
        )
    return {
        "photos": photos,
        "pagination": {
            "page": f.page,
            "per_page": f.per_page,
            "total_pages": max(1, math.ceil(total / f.per_page)),
            "total_items": total,
        },
        "filters": {
            "date_from": _iso(f.date_from),
            "date_to": _iso(f.date_to),
            "warehouse_ids": list(f.warehouse_ids),
            "status": f.status,
            "upload_session_id": _str(f.upload_session_id),
        },
    }


# --------------------------------------------------------------------------- detail
def _session_full(
    pps: PhotoProcessingSession, loc: StorageLocation | None, wh: Warehouse | None
) -> dict[str, Any]:
    return {
        "session_id": str(pps.session_id),
        "status": pps.status,
        "badge": badge(pps.status),
        "trigger": pps.trigger,
        "reason": pps.reason,
        "storage_location_id": pps.storage_location_id,
        "storage_location_name": loc.name if loc else None,
        "warehouse_name": wh.name if wh else None,
        "location_source": pps.location_source,
        "total_detected": pps.total_detected,
        "total_estimated": pps.total_estimated,
        "total_empty_containers": pps.total_empty_containers,
        "avg_confidence": _num(pps.avg_confidence),
        "category_counts": pps.category_counts or {},
        "quality_score": pps.quality_score,
        "quality_band": pps.quality_band,
        "warnings": pps.warning_details or {},
        "error_message": pps.error_message,
        "validated": bool(pps.validated),
        "validated_by": pps.validated_by,
        "validation_date": _iso(pps.validation_date),
        "processing_seconds": pps.processing_seconds,
        "dag_run_id": pps.dag_run_id,
        "airflow_run_url": airflow_run_path(pps.trigger, pps.dag_run_id),
        "created_at": _iso(pps.created_at),
    }


def photo_detail(
    session: Session, image_id: uuid.UUID, presign: Presign, history_limit: int = 20
) -> dict[str, Any]:
    """The seed's ``GET /{image_id}`` body plus the image's own processing history and jobs."""
    img = session.get(S3Image, image_id)
    if img is None or img.image_kind != "original":
        raise NotFound(f"no photo {image_id}")
    sessions = session.execute(
        select(PhotoProcessingSession, StorageLocation, Warehouse)
        .outerjoin(
            StorageLocation, StorageLocation.id == PhotoProcessingSession.storage_location_id
        )
        .outerjoin(Warehouse, Warehouse.id == StorageLocation.warehouse_id)
        .where(PhotoProcessingSession.original_image_id == image_id)
        .order_by(PhotoProcessingSession.id.desc())
    ).all()
    current = sessions[0] if sessions else None
    annotated_url = None
    if current is not None and current[0].processed_image_id:
        ann = session.get(S3Image, current[0].processed_image_id)
        if ann is not None:
            annotated_url = presign(ann.s3_bucket, ann.s3_key_original)
    location_history: list[dict[str, Any]] = []
    if current is not None and current[0].storage_location_id is not None:
        for pps in session.scalars(
            select(PhotoProcessingSession)
            .where(PhotoProcessingSession.storage_location_id == current[0].storage_location_id)
            .order_by(PhotoProcessingSession.id.desc())
            .limit(history_limit)
        ):
            location_history.append(
                {
                    "timestamp": _iso(pps.created_at),
                    "event": "photo_reprocessed"
                    if pps.trigger == "reprocess"
                    else "photo_processed",
                    "status": pps.status,
                    "total_plants": (pps.total_detected or 0) + (pps.total_estimated or 0)
                    if pps.total_detected is not None
                    else None,
                    "total_detected": pps.total_detected,
                    "session_id": str(pps.session_id),
                    "image_id": str(pps.original_image_id),
                }
            )
    jobs = list(
        session.scalars(
            select(PhotoJob).where(PhotoJob.image_id == image_id).order_by(PhotoJob.created_at)
        )
    )
    needs = list((current[0].warning_details or {}).keys()) if current else []
    return {
        "image_id": str(img.image_id),
        "filename": img.original_filename,
        "status": img.status,
        "badge": badge(img.status),
        "error_details": img.error_details,
        "needs": needs,
        "uploaded_at": _iso(img.created_at),
        "uploaded_by": img.uploaded_by,
        "upload_session_id": _str(img.upload_session_id),
        "original_url": presign(img.s3_bucket, img.s3_key_original),
        "thumbnail_url": presign(img.s3_bucket, img.s3_key_thumbnail)
        if img.s3_key_thumbnail
        else None,
        "annotated_url": annotated_url,
        "metadata": {
            "file_size_bytes": img.file_size_bytes,
            "width_px": img.width_px,
            "height_px": img.height_px,
            "content_type": img.content_type,
            "sha256": img.sha256,
            "exif": img.exif_metadata or {},
            "gps": img.gps_coordinates,
        },
        "processing_session": _session_full(*current) if current else None,
        "processing_history": [_session_full(*row) for row in sessions],
        "storage_location_history": location_history,
        "jobs": [job_view(j) for j in jobs],
    }


# --------------------------------------------------------------------------- lookups
def warehouses(session: Session) -> list[dict[str, Any]]:
    return [
        {"id": w.id, "code": w.code, "name": w.name}
        for w in session.scalars(select(Warehouse).order_by(Warehouse.name, Warehouse.id))
    ]


def locations(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(StorageLocation, Warehouse)
        .join(Warehouse, Warehouse.id == StorageLocation.warehouse_id)
        .order_by(Warehouse.name, StorageLocation.name, StorageLocation.id)
    ).all()
    return [
        {
            "id": loc.id,
            "code": loc.code,
            "name": loc.name,
            "warehouse_id": wh.id,
            "warehouse_name": wh.name,
            "active": bool(loc.active),
            "configured": bool(loc.config),
            "calibrated": bool((loc.calibration or {}).get("avg_plant_area_px")),
        }
        for loc, wh in rows
    ]
