"""The steps of ``roboflow_upload``, Airflow-free: the DAG's tasks call these with the app-DB engine
and the ``RoboflowHook`` (an :class:`~include.roboflow.upload.Uploader`).

Permanent problems (bad parameters, no dataset, failed batches, lost images) raise
:class:`PipelineError`; the DAG turns them into task failures without Airflow retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from include.common.db import session_scope
from include.roboflow import store
from include.roboflow.batching import plan_batches
from include.roboflow.dataset import NEITHER, DatasetError, load_labelmap, scan_dataset
from include.roboflow.models import Status
from include.roboflow.stats import (
    batch_stats,
    check_counts,
    confirmed_per_project,
    format_stats,
    image_stats,
    save_run_stats,
)
from include.roboflow.upload import ImageOutcome, RetryPolicy, Uploader, upload_many

log = logging.getLogger(__name__)

STATS_KEYS = ("submitted", "completed", "failed", "pending")


class PipelineError(Exception):
    """A permanent problem: retrying the same task will not help."""


def plan_run(
    engine: Engine,
    *,
    dataset_dir: str,
    project: str,
    neither_project: str | None,
    batch_size: int,
    retry_failed_only: bool,
    run_id: str,
) -> list[dict[str, str]]:
    """Scan + plan + record (or, with ``retry_failed_only``, just pick the failed batches).
    Returns the refs of the batches to upload."""
    project = (project or "").strip()
    neither_project = (neither_project or "").strip() or None
    if not project:
        raise PipelineError(
            "no Roboflow project: set the 'project' param or the installation setting imaging_roboflow_project (Admin -> Variables)"
        )
    if retry_failed_only:
        projects = [p for p in (project, neither_project) if p]
        with session_scope(engine) as s:
            refs = store.batches_with_status(s, projects, [Status.FAILED])
        log.info(
            "retry_failed_only: re-queueing %d failed batch(es): %s",
            len(refs),
            [r.batch_key for r in refs],
        )
        return [r.to_dict() for r in refs]

    try:
        scan = scan_dataset(dataset_dir or "")
    except DatasetError as exc:
        raise PipelineError(str(exc)) from exc
    for iss in scan.issues:
        log.warning("bad file %s: %s (%s)", iss.rel_path, iss.reason, iss.kind)
    n_neither = scan.by_split().get(NEITHER, 0)
    if n_neither and not neither_project:
        log.warning("%d image(s) in neither/ not uploaded: neither_project is not set", n_neither)
    plans = plan_batches(
        scan.items,
        batch_size=int(batch_size),
        dataset_name=scan.name,
        project=project,
        neither_project=neither_project,
    )
    refs = [store.BatchRef(p.project, p.batch_key) for p in plans]
    with session_scope(engine) as s:
        store.record_scan_issues(s, scan.name, scan.issues, run_id)
        store.record_plan(s, plans, dataset_dir=scan.root, dataset_name=scan.name, run_id=run_id)
    with session_scope(engine) as s:
        open_states = [Status.PENDING, Status.FAILED, Status.SUBMITTED]
        todo = {
            (r.project, r.batch_key)
            for r in store.batches_with_status(s, {r.project for r in refs}, open_states)
        }
    queued = [r for r in refs if (r.project, r.batch_key) in todo]
    log.info(
        "dataset %s: %s; %d batch(es) planned, %d to upload (the others are already complete)",
        scan.name,
        scan.summary(),
        len(plans),
        len(queued),
    )
    return [r.to_dict() for r in queued]


def upload_batch_run(
    engine: Engine,
    uploader: Uploader,
    batch: dict[str, str],
    *,
    tags: Sequence[str],
    run_id: str,
    workers: int,
    policy: RetryPolicy,
) -> dict[str, Any]:
    """Upload the batch's images not confirmed yet, recording each outcome as it arrives."""
    ref = store.BatchRef.from_dict(batch)
    with session_scope(engine) as s:
        row, jobs = store.batch_jobs(s, ref, tags=tags)
        dataset_dir = row.dataset_dir
        store.start_batch(s, ref, run_id)
    labelmap, _ = load_labelmap(Path(dataset_dir))

    def on_done(outcome: ImageOutcome) -> None:
        with session_scope(engine) as s:
            store.record_outcome(s, ref.project, outcome, run_id)
        if outcome.status != Status.COMPLETED:
            log.error("%s: %s", outcome.image_key, outcome.error)
        elif outcome.notes:
            log.info("%s: confirmed (%s)", outcome.image_key, "; ".join(outcome.notes))

    outcomes = upload_many(
        uploader,
        jobs,
        workers=workers,
        labelmap=labelmap,
        policy=policy,
        on_done=on_done,
        stop_after_failures=max(5, 2 * workers),
    )
    first_error = next((o.error for o in outcomes if o.error), None)
    with session_scope(engine) as s:
        status = store.refresh_batch(s, ref, error=first_error)
    result = {
        "project": ref.project,
        "batch_key": ref.batch_key,
        "status": status,
        "sent": len(jobs),
        "completed": sum(o.status == Status.COMPLETED for o in outcomes),
        "failed": sum(o.status == Status.FAILED for o in outcomes),
        "pending": sum(o.status == Status.PENDING for o in outcomes),
        "duplicates": sum(o.duplicate for o in outcomes),
    }
    log.info("batch %s: %s", ref.batch_key, result)
    return result


def report_run(
    engine: Engine, batches: Sequence[dict[str, str]] | None, run_id: str
) -> dict[str, Any]:
    """``{submitted, completed, failed, pending}`` of the run's batches, plus ``batches`` (the same)
    and ``images``; saved in ``item_records`` (``run_stats``) and logged."""
    refs = [store.BatchRef.from_dict(b) for b in batches or []]
    with session_scope(engine) as s:
        b = batch_stats(s, refs)
        stats: dict[str, Any] = {**b, "batches": b, "images": image_stats(s, refs)}
        save_run_stats(s, run_id, stats)
    log.info("roboflow_upload stats: %s", format_stats(stats))
    return stats


def verify_run(
    engine: Engine,
    count_images: Callable[[str], int],
    batches: Sequence[dict[str, str]] | None,
    stats: dict[str, Any] | None,
    *,
    project: str,
    run_id: str,
) -> dict[str, Any]:
    """Compare each project's image count (``count_images``, the API) with the images confirmed for
    it. On a shortfall the project's images are marked for re-sending and :class:`PipelineError` is
    raised; it is raised too when batches failed or did not finish."""
    if batches is None or stats is None:
        raise PipelineError("planning or reporting failed: nothing to verify")
    projects = {b["project"] for b in batches} | {project}
    with session_scope(engine) as s:
        expected = confirmed_per_project(s, sorted(projects))
    expected = {p: n for p, n in expected.items() if n}  # nothing confirmed: nothing to lose
    actual = {p: count_images(p) for p in sorted(expected)}
    log.info("image counts: confirmed %s, reported by the API %s", expected, actual)
    problems = check_counts(expected, actual)
    if problems:
        with session_scope(engine) as s:
            for p in sorted(p for p in expected if actual.get(p, 0) < expected[p]):
                n = store.mark_project_unverified(
                    s, p, f"image count shortfall seen by run {run_id}"
                )
                log.error("project %s: %d image(s) marked for re-sending (retry_failed_only)", p, n)
        raise PipelineError(
            "Roboflow lost images: "
            + "; ".join(problems)
            + ". Rerun with retry_failed_only=true: the images "
            "still there are confirmed as duplicates, the lost ones are sent again"
        )
    if stats.get("failed") or stats.get("pending"):
        raise PipelineError(
            f"{stats.get('failed', 0)} batch(es) failed and {stats.get('pending', 0)} did not finish "
            f"({stats.get('images', {}).get('failed', 0)} image(s) failed): see the upload_batch logs, "
            "then rerun with retry_failed_only=true"
        )
    return {"expected": expected, "actual": actual}
