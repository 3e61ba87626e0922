"""
# roboflow_upload

Upload a Roboflow / YOLO dataset folder (`train/`, `valid/`, `test/` with `images/` + `labels/`,
optional `neither/` and `data.yaml`) to a Roboflow project with the real `roboflow` SDK
(connection `roboflow_default`: password = API key, `extra.workspace`, `extra.api_url`,
`extra.upload_workers`, `extra.upload_timeout`).

1. **plan** — scan the folder; every bad file (image without label, label without image, malformed
   label, unreadable image, duplicate content) is reported per file in the log and in
   `item_records` (`scan_error`) and left out. The good images are planned into batches per split
   (`<dataset>-<split>-<NNNN>`, at most `batch_size` images) and recorded in `roboflow_batches` /
   `roboflow_images`. Images already confirmed with the same content are not sent again.
   With `retry_failed_only` nothing is scanned: only the batches recorded as failed are queued.
2. **upload_batch** (one mapped task per batch) — uploads each image, then its annotation, keeping
   split, batch name and tags; per-request timeout, retries with exponential backoff and full jitter;
   a `duplicate` answer confirms the image. At most `upload_workers` uploads per task and two batch
   tasks at a time (`max_active_tis_per_dag`), which caps the load on the workspace.
3. **report** — `{submitted, completed, failed, pending}` of the run's batches (plus image counts),
   in the log, in the task's return value and in `item_records` (`run_stats`).
4. **verify** — compares each project's image count reported by the API with the images confirmed
   for it and fails loudly on a shortfall (the project's images are then marked for re-sending:
   `retry_failed_only=true` sends them again, the API confirms the ones it still has as
   duplicates); fails too when batches failed (rerun with `retry_failed_only=true`).

"neither" images go to `neither_project` when it is set (tagged `neither`), and are skipped otherwise.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, task

PIPELINE = "roboflow_upload"
MAX_PARALLEL_BATCHES = 2


def _engine() -> Any:
    from imaging.appdb import app_engine

    return app_engine()


@dag(
    dag_id="roboflow_upload",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["roboflow", "upload", "datasets"],
    max_active_runs=1,
    default_args={
        "retries": 2,
        "retry_exponential_backoff": True,
        "retry_delay": timedelta(seconds=10),
        "max_retry_delay": timedelta(minutes=5),
    },
    params={
        "dataset_dir": Param(
            "",
            type="string",
            description="Folder of the dataset in Roboflow/YOLO layout: train/, valid/, test/ "
            "(images/ + labels/), optional neither/ and data.yaml.",
        ),
        "project": Param(
            "",
            type="string",
            description="Roboflow project (URL slug) that receives train/valid/test.",
        ),
        "neither_project": Param(
            None,
            type=["null", "string"],
            description="Roboflow project for the images in neither/; empty: they are not uploaded.",
        ),
        "batch_size": Param(
            50,
            type="integer",
            minimum=1,
            maximum=10000,
            description="Images per upload batch (one mapped task and one Roboflow batch name each).",
        ),
        "retry_failed_only": Param(
            False,
            type="boolean",
            description="Do not scan: re-queue only the batches recorded as failed.",
        ),
        "tags": Param(
            [],
            type="array",
            items={"type": "string"},
            description="Extra Roboflow tags for every uploaded image (the dataset name and the "
            "split are always added).",
        ),
    },
)
def roboflow_upload() -> None:
    @task
    def plan(**context: Any) -> list[dict[str, str]]:
        """Scan, report bad files, plan and record the batches; returns the batch refs to upload."""
        import logging

        from airflow.sdk.exceptions import AirflowFailException

        from include.common.db import session_scope
        from include.roboflow import store
        from include.roboflow.batching import plan_batches
        from include.roboflow.dataset import NEITHER, DatasetError, scan_dataset
        from include.roboflow.models import Status

        log = logging.getLogger("airflow.task")
        params, run_id = context["params"], context["run_id"]
        project = (params.get("project") or "").strip()
        neither_project = (params.get("neither_project") or "").strip() or None
        if not project:
            raise AirflowFailException("param 'project' is required")
        if params.get("retry_failed_only"):
            projects = [p for p in (project, neither_project) if p]
            with session_scope(_engine()) as s:
                refs = store.batches_with_status(s, projects, [Status.FAILED])
            log.info(
                "retry_failed_only: re-queueing %d failed batch(es): %s",
                len(refs),
                [r.batch_key for r in refs],
            )
            return [r.to_dict() for r in refs]

        try:
            scan = scan_dataset(params.get("dataset_dir") or "")
        except DatasetError as exc:
            raise AirflowFailException(str(exc)) from exc
        for iss in scan.issues:
            log.warning("bad file %s: %s (%s)", iss.rel_path, iss.reason, iss.kind)
        n_neither = scan.by_split().get(NEITHER, 0)
        if n_neither and not neither_project:
            log.warning(
                "%d image(s) in neither/ not uploaded: neither_project is not set", n_neither
            )
        plans = plan_batches(
            scan.items,
            batch_size=int(params["batch_size"]),
            dataset_name=scan.name,
            project=project,
            neither_project=neither_project,
        )
        with session_scope(_engine()) as s:
            store.record_scan_issues(s, scan.name, scan.issues, run_id)
            store.record_plan(
                s, plans, dataset_dir=scan.root, dataset_name=scan.name, run_id=run_id
            )
        with session_scope(_engine()) as s:
            refs = [store.BatchRef(p.project, p.batch_key) for p in plans]
            todo = {
                (r.project, r.batch_key)
                for r in store.batches_with_status(
                    s, {r.project for r in refs}, [Status.PENDING, Status.FAILED, Status.SUBMITTED]
                )
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

    @task(max_active_tis_per_dag=MAX_PARALLEL_BATCHES, execution_timeout=timedelta(hours=2))
    def upload_batch(batch: dict[str, str], **context: Any) -> dict[str, Any]:
        """Upload the batch's images that are not confirmed yet; per-image failures are recorded,
        not raised (a service-level failure — bad key, missing project — fails the task)."""
        import logging
        from pathlib import Path

        from airflow.sdk.exceptions import AirflowFailException

        from imaging.hooks.roboflow import RoboflowHook
        from include.common.db import session_scope
        from include.roboflow import store
        from include.roboflow.dataset import load_labelmap
        from include.roboflow.models import Status
        from include.roboflow.upload import RetryPolicy, upload_many

        log = logging.getLogger("airflow.task")
        run_id = context["run_id"]
        ref = store.BatchRef.from_dict(batch)
        engine = _engine()
        with session_scope(engine) as s:
            row, jobs = store.batch_jobs(s, ref, tags=context["params"].get("tags") or [])
            dataset_dir = row.dataset_dir
            store.start_batch(s, ref, run_id)
        hook = RoboflowHook()
        try:
            hook.get_project(ref.project)
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from exc
        labelmap, _ = load_labelmap(Path(dataset_dir))

        def on_done(outcome: Any) -> None:
            with session_scope(engine) as s:
                store.record_outcome(s, ref.project, outcome, run_id)
            if outcome.status != Status.COMPLETED:
                log.error("%s: %s", outcome.image_key, outcome.error)
            elif outcome.notes:
                log.info("%s: confirmed (%s)", outcome.image_key, "; ".join(outcome.notes))

        workers = hook.upload_workers
        outcomes = upload_many(
            hook,
            jobs,
            workers=workers,
            labelmap=labelmap,
            policy=RetryPolicy(
                attempts=int(hook.extras.get("retry_attempts", 5)),
                base=float(hook.extras.get("retry_base", 0.5)),
                cap=float(hook.extras.get("retry_cap", 30.0)),
            ),
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

    @task(trigger_rule="all_done")
    def report(batches: list[dict[str, str]] | None, **context: Any) -> dict[str, Any]:
        """The run's ``{submitted, completed, failed, pending}`` batches (and images)."""
        import logging

        from include.common.db import session_scope
        from include.roboflow.stats import batch_stats, format_stats, image_stats, save_run_stats
        from include.roboflow.store import BatchRef

        refs = [BatchRef.from_dict(b) for b in batches or []]
        with session_scope(_engine()) as s:
            b = batch_stats(s, refs)
            stats: dict[str, Any] = {**b, "batches": b, "images": image_stats(s, refs)}
            save_run_stats(s, context["run_id"], stats)
        logging.getLogger("airflow.task").info("roboflow_upload stats: %s", format_stats(stats))
        return stats

    # the SDK's project lookup has no request timeout: bound the task instead
    @task(trigger_rule="all_done", execution_timeout=timedelta(minutes=10))
    def verify(
        batches: list[dict[str, str]] | None, stats: dict[str, Any] | None, **context: Any
    ) -> dict[str, Any]:
        """Fail loudly when a project holds fewer images than were confirmed, or batches failed."""
        import logging

        from airflow.sdk.exceptions import AirflowFailException

        from imaging.hooks.roboflow import RoboflowHook
        from include.common.db import session_scope
        from include.roboflow.stats import check_counts, confirmed_per_project
        from include.roboflow.store import mark_project_unverified

        log = logging.getLogger("airflow.task")
        if batches is None or stats is None:
            raise AirflowFailException("planning or reporting failed: nothing to verify")
        params = context["params"]
        projects = {b["project"] for b in batches}
        with session_scope(_engine()) as s:
            expected = confirmed_per_project(s, sorted(projects | {params["project"]}))
        expected = {p: n for p, n in expected.items() if n}  # nothing confirmed: nothing to lose
        hook = RoboflowHook()
        try:
            actual = {p: hook.project_image_count(p) for p in sorted(expected)}
        except ValueError as exc:  # the project or the key is gone
            raise AirflowFailException(str(exc)) from exc
        log.info("image counts: confirmed %s, reported by the API %s", expected, actual)
        problems = check_counts(expected, actual)
        if problems:
            with session_scope(_engine()) as s:
                for p in sorted(p for p in expected if actual.get(p, 0) < expected[p]):
                    n = mark_project_unverified(
                        s, p, f"image count shortfall seen by run {context['run_id']}"
                    )
                    log.error(
                        "project %s: %d image(s) marked for re-sending (retry_failed_only)", p, n
                    )
            raise AirflowFailException(
                "Roboflow lost images: "
                + "; ".join(problems)
                + ". Rerun with retry_failed_only=true: "
                "images still there are confirmed as duplicates, the lost ones are sent again"
            )
        if stats.get("failed") or stats.get("pending"):
            raise AirflowFailException(
                f"{stats.get('failed', 0)} batch(es) failed and {stats.get('pending', 0)} did not finish "
                f"({stats.get('images', {}).get('failed', 0)} image(s) failed): see the upload_batch logs, "
                "then rerun with retry_failed_only=true"
            )
        return {"expected": expected, "actual": actual}

    planned = plan()
    uploaded = upload_batch.expand(batch=planned)
    stats = report(planned)
    uploaded >> stats
    verify(planned, stats)


roboflow_upload()
