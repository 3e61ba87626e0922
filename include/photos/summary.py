"""The run summary page of ``photo_ingest`` / ``photo_reprocess`` (the results contract): counts
per photo, warning states, item errors, and a link to the photo gallery filtered to the upload."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from urllib.parse import quote

from sqlalchemy import Engine, select

from include.common.db import session_scope
from include.common.results import ItemError, Link, RunSummary, Section
from include.photos.models import JobStatus, PhotoJob, Warning_

GALLERY_PATH = "/photos/gallery"
PHOTO_PATH = "/photos/photo"


def gallery_url(base_url: str, upload_session_id: str) -> str:
    return f"{base_url.rstrip('/')}{GALLERY_PATH}?upload_session_id={quote(upload_session_id)}"


def photo_url(base_url: str, image_id: str) -> str:
    """The photo's page in the photos app (its boxes, state and reprocess form)."""
    return f"{base_url.rstrip('/')}{PHOTO_PATH}/{quote(image_id)}"


def run_summary(
    engine: Engine,
    *,
    dag_id: str,
    run_id: str,
    upload_session_id: str | None = None,
    job_ids: Sequence[str] = (),
    base_url: str = "",
) -> RunSummary:
    """The summary of the jobs of ``upload_session_id`` (ingest) or of ``job_ids`` (reprocess)."""
    with session_scope(engine) as s:
        q = select(PhotoJob).order_by(PhotoJob.filename, PhotoJob.job_id)
        if upload_session_id:
            q = q.where(PhotoJob.upload_session_id == uuid.UUID(str(upload_session_id)))
        else:
            q = q.where(PhotoJob.job_id.in_([uuid.UUID(str(j)) for j in job_ids]))
        jobs = list(s.scalars(q))
        s.expunge_all()
    rows, errors, warnings = [], [], []
    plants = empty = 0
    by_status: dict[str, int] = {}
    for j in jobs:
        res = j.result or {}
        by_status[j.status] = by_status.get(j.status, 0) + 1
        n = int(res.get("total_detected") or 0) + int(res.get("total_estimated") or 0)
        e = int(res.get("total_empty_containers") or 0)
        if j.status == JobStatus.FAILED:
            errors.append(ItemError(j.filename, j.error_message or "failed", "photo"))
        else:
            plants += n
            empty += e
        for code, why in (res.get("warnings") or {}).items():
            warnings.append(f"{j.filename}: {code}: {why}")
        rows.append(
            {
                "photo": j.filename,
                "status": j.status,
                "plants": n if j.status != JobStatus.FAILED else "",
                "empty containers": e if j.status != JobStatus.FAILED else "",
                "location": res.get("storage_location_name") or "",
                "image": Link("open", photo_url(base_url, str(j.image_id))) if j.image_id else "",
            }
        )
    in_warning = sum(by_status.get(w, 0) for w in Warning_.ALL)
    headline = (
        f"{len(jobs)} photo{'s' if len(jobs) != 1 else ''}: {plants} plants counted, "
        f"{by_status.get(JobStatus.COMPLETED, 0)} ready, {in_warning} to check"
    )
    links = []
    if upload_session_id:
        links.append(Link("photo gallery of this upload", gallery_url(base_url, upload_session_id)))
    return RunSummary(
        dag_id=dag_id,
        run_id=run_id,
        title=f"{dag_id} {run_id}",
        headline=headline,
        counts={
            "photos": len(jobs),
            "plants": plants,
            "empty containers": empty,
            **{f"status {k}": v for k, v in sorted(by_status.items())},
        },
        errors=errors,
        warnings=warnings,
        links=links,
        sections=[
            Section(
                "Photos",
                columns=["photo", "status", "plants", "empty containers", "location", "image"],
                rows=rows,
            )
        ],
        total_items=len(jobs),
    )
