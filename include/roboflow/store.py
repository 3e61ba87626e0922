"""Read and write the upload state (``roboflow_batches``, ``roboflow_images``, scan issues in
``item_records``). Every write is an upsert on the tables' unique keys, so each step can be rerun.

Image rules on a new plan: an image already ``completed`` with the same content hash stays
completed (it is never sent again); anything else becomes ``pending``. A batch is ``completed``
only when every one of its images is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from include.common.db import upsert
from include.common.items import record_item
from include.common.models import ItemStatus
from include.roboflow.batching import BatchPlan, image_key
from include.roboflow.dataset import FileIssue
from include.roboflow.models import PIPELINE, RoboflowBatch, RoboflowImage, Status
from include.roboflow.upload import ImageJob, ImageOutcome

_CHUNK = 500


@dataclass(frozen=True)
class BatchRef:
    project: str
    batch_key: str

    def to_dict(self) -> dict[str, str]:
        return {"project": self.project, "batch_key": self.batch_key}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BatchRef:
        return cls(project=str(d["project"]), batch_key=str(d["batch_key"]))


def record_scan_issues(
    session: Session, dataset_name: str, issues: Iterable[FileIssue], run_id: str | None
) -> int:
    n = 0
    for iss in issues:
        record_item(
            session,
            pipeline=PIPELINE,
            kind="scan_error",
            key=f"{dataset_name}/{iss.rel_path}",
            status=ItemStatus.FAILED,
            error=iss.reason,
            detail={"kind": iss.kind, "rel_path": iss.rel_path},
            run_id=run_id,
        )
        n += 1
    return n


def _existing(session: Session, project: str, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for i in range(0, len(keys), _CHUNK):
        rows = session.execute(
            select(RoboflowImage.image_key, RoboflowImage.sha256, RoboflowImage.status).where(
                RoboflowImage.project == project, RoboflowImage.image_key.in_(keys[i : i + _CHUNK])
            )
        )
        out.update({k: (sha, st) for k, sha, st in rows})
    return out


def record_plan(
    session: Session,
    plans: Sequence[BatchPlan],
    *,
    dataset_dir: str,
    dataset_name: str,
    run_id: str | None,
) -> None:
    """Upsert the planned batches and their images (see the module docstring)."""
    for plan in plans:
        keys = [image_key(dataset_name, it) for it in plan.items]
        existing = _existing(session, plan.project, keys)
        rows = []
        for key, it in zip(keys, plan.items, strict=True):
            old = existing.get(key)
            keep = old is not None and old[0] == it.sha256 and old[1] == Status.COMPLETED
            rows.append(
                {
                    "project": plan.project,
                    "image_key": key,
                    "batch_key": plan.batch_key,
                    "split": plan.upload_split,
                    "path": it.path,
                    "label_path": it.label_path,
                    "sha256": it.sha256,
                    "status": Status.COMPLETED if keep else Status.PENDING,
                    "run_id": run_id,
                }
            )
        for i in range(0, len(rows), _CHUNK):
            upsert(
                session, RoboflowImage, rows[i : i + _CHUNK], conflict_cols=("project", "image_key")
            )
        upsert(
            session,
            RoboflowBatch,
            {
                "project": plan.project,
                "batch_key": plan.batch_key,
                "split": plan.split,
                "dataset_dir": dataset_dir,
                "status": Status.PENDING,
                "n_images": plan.size,
                "run_id": run_id,
                "detail": {"dataset": dataset_name, "upload_split": plan.upload_split},
            },
            conflict_cols=("project", "batch_key"),
        )
        refresh_batch(session, BatchRef(plan.project, plan.batch_key))


def refresh_batch(session: Session, ref: BatchRef, *, error: str | None = None) -> str:
    """Recompute a batch's counts and status from its images; returns the status."""
    counts = dict(
        session.execute(
            select(RoboflowImage.status, func.count())
            .where(RoboflowImage.project == ref.project, RoboflowImage.batch_key == ref.batch_key)
            .group_by(RoboflowImage.status)
        ).all()
    )
    total = sum(counts.values())
    done = counts.get(Status.COMPLETED, 0)
    failed = counts.get(Status.FAILED, 0)
    if total and done == total:
        status = Status.COMPLETED
    elif failed:
        status = Status.FAILED
    elif counts.get(Status.SUBMITTED):
        status = Status.SUBMITTED
    else:
        status = Status.PENDING
    values: dict[str, Any] = {
        "status": status,
        "n_images": total,
        "n_completed": done,
        "n_failed": failed,
    }
    if status == Status.COMPLETED:
        values["error"] = None
    elif error is not None:
        values["error"] = error
    session.execute(
        update(RoboflowBatch)
        .where(RoboflowBatch.project == ref.project, RoboflowBatch.batch_key == ref.batch_key)
        .values(**values)
    )
    return status


def batches_with_status(
    session: Session, projects: Iterable[str], statuses: Iterable[str]
) -> list[BatchRef]:
    rows = session.execute(
        select(RoboflowBatch.project, RoboflowBatch.batch_key)
        .where(RoboflowBatch.project.in_(list(projects)), RoboflowBatch.status.in_(list(statuses)))
        .order_by(RoboflowBatch.project, RoboflowBatch.batch_key)
    )
    return [BatchRef(p, k) for p, k in rows]


def batch_jobs(
    session: Session, ref: BatchRef, *, tags: Sequence[str] = ()
) -> tuple[RoboflowBatch, list[ImageJob]]:
    """The batch row and an upload job for each of its images not confirmed yet."""
    batch = session.scalar(
        select(RoboflowBatch).where(
            RoboflowBatch.project == ref.project, RoboflowBatch.batch_key == ref.batch_key
        )
    )
    if batch is None:
        raise KeyError(f"no planned batch {ref.batch_key!r} for project {ref.project!r}")
    rows = session.scalars(
        select(RoboflowImage)
        .where(
            RoboflowImage.project == ref.project,
            RoboflowImage.batch_key == ref.batch_key,
            RoboflowImage.status != Status.COMPLETED,
        )
        .order_by(RoboflowImage.image_key)
    ).all()
    dataset = (batch.detail or {}).get("dataset", "")
    all_tags = tuple(
        dict.fromkeys([*(t for t in tags if t), *([dataset] if dataset else []), batch.split])
    )
    jobs = [
        ImageJob(
            image_key=r.image_key,
            project=r.project,
            path=r.path,
            label_path=r.label_path,
            split=r.split,
            batch_name=r.batch_key,
            tags=all_tags,
        )
        for r in rows
    ]
    return batch, jobs


def start_batch(session: Session, ref: BatchRef, run_id: str | None) -> None:
    """Mark the batch and its unconfirmed images ``submitted`` (sent, not confirmed yet)."""
    session.execute(
        update(RoboflowBatch)
        .where(RoboflowBatch.project == ref.project, RoboflowBatch.batch_key == ref.batch_key)
        .values(status=Status.SUBMITTED, run_id=run_id, attempts=RoboflowBatch.attempts + 1)
    )
    session.execute(
        update(RoboflowImage)
        .where(
            RoboflowImage.project == ref.project,
            RoboflowImage.batch_key == ref.batch_key,
            RoboflowImage.status != Status.COMPLETED,
        )
        .values(status=Status.SUBMITTED, run_id=run_id)
    )


def record_outcome(
    session: Session, project: str, outcome: ImageOutcome, run_id: str | None
) -> None:
    values: dict[str, Any] = {
        "status": outcome.status,
        "attempts": RoboflowImage.attempts + outcome.attempts,
        "error": outcome.error,
        "run_id": run_id,
    }
    if outcome.remote_id:
        values["remote_id"] = outcome.remote_id
        values["duplicate"] = outcome.duplicate
    session.execute(
        update(RoboflowImage)
        .where(RoboflowImage.project == project, RoboflowImage.image_key == outcome.image_key)
        .values(**values)
    )


def mark_project_unverified(session: Session, project: str, reason: str) -> int:
    """After an image-count shortfall we cannot tell which confirmed image the API lost: mark every
    confirmed image of ``project`` (and its batches) failed, so that ``retry_failed_only`` sends them
    again — the ones still there come back as ``duplicate`` (no second copy), the lost ones are
    stored. Returns how many images were marked."""
    n = session.execute(
        update(RoboflowImage)
        .where(RoboflowImage.project == project, RoboflowImage.status == Status.COMPLETED)
        .values(status=Status.FAILED, error=reason)
    ).rowcount
    session.execute(
        update(RoboflowBatch)
        .where(RoboflowBatch.project == project, RoboflowBatch.status == Status.COMPLETED)
        .values(status=Status.FAILED, error=reason)
    )
    return int(n or 0)
