"""Upload statistics and the image-count check.

``batch_stats`` gives the seed's ``{submitted, completed, failed, pending}`` for the batches queued
by one run: ``submitted`` = how many were queued, the other three partition them by their current
state (``pending`` = not finished: never started, or interrupted). ``image_stats`` gives the same
for images. ``check_counts`` compares the project's image count reported by the API with the number
of distinct images confirmed for it and reports every shortfall.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from include.common.items import record_item
from include.common.models import ItemStatus
from include.roboflow.models import PIPELINE, RoboflowBatch, RoboflowImage, Status
from include.roboflow.store import BatchRef


def _partition(states: Iterable[str]) -> dict[str, int]:
    out = {"submitted": 0, "completed": 0, "failed": 0, "pending": 0}
    for s in states:
        out["submitted"] += 1
        if s == Status.COMPLETED:
            out["completed"] += 1
        elif s == Status.FAILED:
            out["failed"] += 1
        else:
            out["pending"] += 1
    return out


def batch_stats(session: Session, refs: Sequence[BatchRef]) -> dict[str, int]:
    states: list[str] = []
    keys = [(r.project, r.batch_key) for r in refs]
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        states += session.scalars(
            select(RoboflowBatch.status).where(
                tuple_(RoboflowBatch.project, RoboflowBatch.batch_key).in_(chunk)
            )
        ).all()
    missing = len(keys) - len(states)
    return _partition([*states, *([Status.PENDING] * missing)])


def image_stats(session: Session, refs: Sequence[BatchRef]) -> dict[str, int]:
    states: list[str] = []
    keys = [(r.project, r.batch_key) for r in refs]
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        states += session.scalars(
            select(RoboflowImage.status).where(
                tuple_(RoboflowImage.project, RoboflowImage.batch_key).in_(chunk)
            )
        ).all()
    return _partition(states)


def confirmed_per_project(session: Session, projects: Iterable[str]) -> dict[str, int]:
    """Distinct image contents confirmed (completed) per project: what the project must hold at least."""
    rows = session.execute(
        select(RoboflowImage.project, func.count(func.distinct(RoboflowImage.sha256)))
        .where(RoboflowImage.project.in_(list(projects)), RoboflowImage.status == Status.COMPLETED)
        .group_by(RoboflowImage.project)
    )
    counts = {p: 0 for p in projects}
    counts.update({p: int(n) for p, n in rows})
    return counts


def check_counts(expected: Mapping[str, int], actual: Mapping[str, int]) -> list[str]:
    """One message per project whose reported image count is below what was confirmed."""
    problems = []
    for project, want in sorted(expected.items()):
        have = actual.get(project)
        if have is None:
            problems.append(f"project {project!r}: the API reported no image count")
        elif have < want:
            problems.append(
                f"project {project!r}: the API reports {have} images but {want} were confirmed uploaded "
                f"({want - have} missing)"
            )
    return problems


def save_run_stats(session: Session, run_id: str, stats: dict[str, Any]) -> None:
    record_item(
        session,
        pipeline=PIPELINE,
        kind="run_stats",
        key=run_id,
        status=ItemStatus.DONE if not stats.get("batches", {}).get("failed") else ItemStatus.FAILED,
        detail=stats,
        run_id=run_id,
    )


def format_stats(stats: Mapping[str, Any]) -> str:
    b = stats.get("batches", {})
    i = stats.get("images", {})
    return (
        f"batches: {b.get('submitted', 0)} submitted, {b.get('completed', 0)} completed, "
        f"{b.get('failed', 0)} failed, {b.get('pending', 0)} pending | images: {i.get('submitted', 0)} submitted, "
        f"{i.get('completed', 0)} completed, {i.get('failed', 0)} failed, {i.get('pending', 0)} pending"
    )
