"""The run summary of ``roboflow_upload``: batch names and counts per project, scan errors and
failed images per file, and the verification's outcome, as a :class:`RunSummary`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.engine import Engine

from include.common.db import session_scope
from include.common.models import ItemRecord
from include.common.results import ItemError, RunSummary, Section
from include.roboflow.models import PIPELINE, RoboflowBatch, RoboflowImage, Status
from include.roboflow.store import BatchRef

_CHUNK = 500


def _batches(session: Any, refs: Sequence[BatchRef]) -> list[RoboflowBatch]:
    keys = [(r.project, r.batch_key) for r in refs]
    rows: list[RoboflowBatch] = []
    for i in range(0, len(keys), _CHUNK):
        rows += session.scalars(
            select(RoboflowBatch).where(
                tuple_(RoboflowBatch.project, RoboflowBatch.batch_key).in_(keys[i : i + _CHUNK])
            )
        ).all()
    return sorted(rows, key=lambda b: (b.project, b.batch_key))


def _failed_images(session: Any, refs: Sequence[BatchRef]) -> list[RoboflowImage]:
    keys = [(r.project, r.batch_key) for r in refs]
    rows: list[RoboflowImage] = []
    for i in range(0, len(keys), _CHUNK):
        rows += session.scalars(
            select(RoboflowImage).where(
                tuple_(RoboflowImage.project, RoboflowImage.batch_key).in_(keys[i : i + _CHUNK]),
                RoboflowImage.status == Status.FAILED,
            )
        ).all()
    return rows


def build_summary(
    engine: Engine,
    *,
    dag_id: str,
    run_id: str,
    batches: Sequence[Mapping[str, str]] | None,
    stats: Mapping[str, Any] | None,
    verified: Mapping[str, Any] | None,
    project: str | None,
) -> RunSummary:
    refs = [BatchRef.from_dict(dict(b)) for b in batches or []]
    with session_scope(engine) as s:
        rows = _batches(s, refs)
        failed = _failed_images(s, refs)
        scan = s.scalars(
            select(ItemRecord).where(
                ItemRecord.pipeline == PIPELINE,
                ItemRecord.kind == "scan_error",
                ItemRecord.run_id == run_id,
            )
        ).all()
        errors = [ItemError(r.item_key, r.error or "bad file", "plan") for r in scan]
        errors += [ItemError(i.path, i.error or "upload failed", "upload_batch") for i in failed]
        table = [
            {
                "batch": b.batch_key,
                "project": b.project,
                "split": b.split,
                "images": b.n_images,
                "uploaded": b.n_completed,
                "failed": b.n_failed,
                "status": b.status,
            }
            for b in rows
        ]
    img = dict((stats or {}).get("images") or {})
    bat = dict((stats or {}).get("batches") or {})
    warnings: list[str] = []
    if batches is None:
        warnings.append("planning failed: nothing was uploaded (see the plan task's log)")
    if verified is None and batches is not None:
        warnings.append("the image counts were not verified (see the verify task's log)")
    per_project = ", ".join(
        f"{p}: {n}" for p, n in sorted(((verified or {}).get("actual") or {}).items())
    )
    headline = (
        f"{img.get('completed', 0)} of {img.get('submitted', 0)} images uploaded in "
        f"{bat.get('completed', 0)} of {bat.get('submitted', 0)} batches"
        + (f" to {project}" if project else "")
    )
    return RunSummary(
        dag_id=dag_id,
        run_id=run_id,
        title=f"Roboflow upload: {project or 'no project'}",
        headline=headline,
        counts={
            "batches": bat.get("submitted", 0),
            "batches failed": bat.get("failed", 0),
            "images uploaded": img.get("completed", 0),
            "images failed": img.get("failed", 0),
            "bad files": len(scan),
        },
        errors=errors,
        warnings=warnings,
        total_items=(img.get("submitted", 0) + len(scan)) or None,
        sections=[
            Section(
                title="Batches",
                text=(f"Images the API reports per project: {per_project}." if per_project else ""),
                columns=["batch", "project", "split", "images", "uploaded", "failed", "status"],
                rows=table,
            )
        ],
    )
