"""
# roboflow_upload

Upload a Roboflow / YOLO dataset folder (`train/`, `valid/`, `test/` with `images/` + `labels/`,
optional `neither/` and `data.yaml`) to a Roboflow project with the real `roboflow` SDK
(connection `roboflow_default`: password = API key, `extra.workspace`, `extra.api_url`, optional
`extra.upload_workers`, `extra.upload_timeout`, `extra.retry_*`).

1. **plan** — scan the folder; every bad file (image without label, label without image, malformed
   label, unreadable image, duplicate content) is reported per file in the log and in
   `item_records` (`scan_error`) and left out. The good images are planned into batches per split
   (`<dataset>-<split>-<NNNN>`, at most `batch_size` images) and recorded in `roboflow_batches` /
   `roboflow_images`. Images already confirmed with the same content are not sent again.
   With `retry_failed_only` nothing is scanned: only the batches recorded as failed are queued.
2. **upload_batch** (one mapped task per batch) — uploads each image, then its annotation, keeping
   split, batch name and tags; per-request timeout (`extra.upload_timeout`), retries with exponential
   backoff and full jitter, never sooner than the server's `Retry-After` (`extra.retry_attempts`,
   `retry_base`, `retry_cap`); a `duplicate` answer confirms the image. At most `upload_workers`
   uploads per task and two batch tasks at a time (`max_active_tis_per_dag`), which caps the load on
   the workspace (the task runs on the `io` queue and takes 8 slots of the `roboflow_api` pool).
3. **report** — `{submitted, completed, failed, pending}` of the run's batches (plus image counts),
   in the log, in the task's return value and in `item_records` (`run_stats`).
4. **verify** — compares each project's image count reported by the API with the images confirmed
   for it and fails loudly on a shortfall (the project's images are then marked for re-sending:
   `retry_failed_only=true` sends them again, the API confirms the ones it still has as
   duplicates); fails too when batches failed (rerun with `retry_failed_only=true`).

5. **summary** — the run's page at `/artefacts/roboflow_upload/<run>/summary.html` (batch names and
   counts per project, bad files, failed images) and the one-line outcome in the run's note.

Empty `dataset_dir` / `project` fall back to the installation settings `imaging_roboflow_dataset_dir`
/ `imaging_roboflow_project` (*Admin → Variables*).

"neither" images go to `neither_project` when it is set (tagged `neither`), and are skipped otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from imaging.dag_defaults import DEFAULT_ARGS, IO, ROBOFLOW_POOL, api_pool

PIPELINE = "roboflow_upload"
#: params that fall back to installation settings (Airflow Variables imaging_*) when left empty
SETTINGS = {"dataset_dir": "roboflow_dataset_dir", "project": "roboflow_project"}
MAX_PARALLEL_BATCHES = 2


def _engine() -> Any:
    from imaging.appdb import app_engine

    return app_engine()


@contextmanager
def _permanent_errors_fail() -> Iterator[None]:
    """Bad parameters, a rejected key, a missing project, failed batches, lost images: fail the
    task without Airflow retries (the same input would fail again)."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.roboflow.pipeline import PipelineError

    try:
        yield
    except (PipelineError, ValueError) as exc:
        raise AirflowFailException(str(exc)) from exc


@dag(
    dag_id="roboflow_upload",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["roboflow", "upload", "datasets"],
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "dataset_dir": Param(
            None,
            type=["null", "string"],
            description="Folder of the dataset in Roboflow/YOLO layout: train/, valid/, test/ "
            "(images/ + labels/), optional neither/ and data.yaml. Empty: the installation "
            "setting imaging_roboflow_dataset_dir (Admin -> Variables).",
        ),
        "project": Param(
            None,
            type=["null", "string"],
            description="Roboflow project (URL slug) that receives train/valid/test. Empty: the "
            "installation setting imaging_roboflow_project.",
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
        from imaging.install import resolved
        from include.roboflow.pipeline import plan_run

        p = resolved(context["params"], SETTINGS)
        with _permanent_errors_fail():
            return plan_run(
                _engine(),
                dataset_dir=p["dataset_dir"],
                project=p["project"],
                neither_project=p.get("neither_project"),
                batch_size=p["batch_size"],
                retry_failed_only=bool(p.get("retry_failed_only")),
                run_id=context["run_id"],
            )

    @task(
        queue=IO,
        **api_pool(ROBOFLOW_POOL, concurrency=8),  # the hook's default upload_workers
        max_active_tis_per_dag=MAX_PARALLEL_BATCHES,
        execution_timeout=timedelta(hours=2),
    )
    def upload_batch(batch: dict[str, str], **context: Any) -> dict[str, Any]:
        """Upload the batch's images not confirmed yet; per-image failures are recorded, not raised
        (a rejected key or a missing project fails the task)."""
        from imaging.hooks.roboflow import RoboflowHook
        from include.roboflow.pipeline import upload_batch_run

        hook = RoboflowHook()
        with _permanent_errors_fail():
            hook.get_project(batch["project"])
        return upload_batch_run(
            _engine(),
            hook,
            batch,
            tags=context["params"].get("tags") or [],
            run_id=context["run_id"],
            workers=hook.upload_workers,
            policy=hook.retry_policy(),
        )

    @task(trigger_rule="all_done")
    def report(batches: list[dict[str, str]] | None, **context: Any) -> dict[str, Any]:
        """The run's ``{submitted, completed, failed, pending}`` batches (and images)."""
        from include.roboflow.pipeline import report_run

        return report_run(_engine(), batches, context["run_id"])

    # the SDK's project lookup has no request timeout: bound the task instead
    @task(trigger_rule="all_done", execution_timeout=timedelta(minutes=10))
    def verify(
        batches: list[dict[str, str]] | None, stats: dict[str, Any] | None, **context: Any
    ) -> dict[str, Any]:
        """Fail loudly when a project holds fewer images than were confirmed, or batches failed."""
        from imaging.hooks.roboflow import RoboflowHook
        from imaging.install import resolved
        from include.roboflow.pipeline import verify_run

        with _permanent_errors_fail():
            return verify_run(
                _engine(),
                RoboflowHook().project_image_count,
                batches,
                stats,
                project=resolved(context["params"], SETTINGS)["project"],
                run_id=context["run_id"],
            )

    @task(trigger_rule="all_done")
    def summary(
        batches: list[dict[str, str]] | None,
        stats: dict[str, Any] | None,
        verified: dict[str, Any] | None,
        **context: Any,
    ) -> dict[str, Any]:
        """The run's summary page (batches, counts, bad files) and its one-line outcome."""
        from imaging.install import resolved
        from imaging.results import publish_run_summary
        from include.roboflow.summary import build_summary

        page = build_summary(
            _engine(),
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
            batches=batches,
            stats=stats,
            verified=verified,
            project=resolved(context["params"], SETTINGS)["project"],
        )
        return dict(publish_run_summary(context, page))

    planned = plan()
    uploaded = upload_batch.expand(batch=planned)
    stats = report(planned)
    uploaded >> stats
    verified = verify(planned, stats)
    summary(planned, stats, verified)


roboflow_upload()
