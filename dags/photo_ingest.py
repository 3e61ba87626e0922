"""
# photo_ingest

Plant photo pipeline: photos → S3 → ML (segment, tiled detection, estimation) → aggregate →
database, with per-photo job status (`pending`, `processing`, `completed`, `failed`,
`needs_location`, `needs_review`, `needs_config`, `needs_calibration`) that the upload/gallery API
polls. The last task publishes the run summary page (counts per photo, warnings, a link to the
gallery filtered to the upload).

Params — give exactly one source:
- `upload_session_id`: an upload staged by the upload API (`photo_upload_sessions` row, files in
  S3 `temp_uploads/<id>/`, one `photo_jobs` row per file);
- `source_dir`: import every photo (JPEG/PNG/WebP/HEIC) of a folder (batch use, demo, tests);
  any other file gets a failed job with the reason; the session id is derived from the folder,
  so rerunning it is idempotent. Empty (and no `upload_session_id`): the installation setting
  `imaging_photo_source_dir`.
- `uploaded_by` (user name), `storage_location_id` (optional manual location for every photo).

1. **ensure_bucket_lifecycle** (next to register) — idempotent bucket setup: lifecycle rules of the seed (temp
   24 h, thumbnails 90 days, annotated 30 days, originals kept).
2. **register** — upload session + job rows; job ids in chunks of 20.
Steps 3 and 4 form the mapped task group **chunk** (one instance per 20 photos).

3. **chunk.stage_chunk** — validate each file (not an image, truncated, decompression
   bomb, CMYK, 16-bit → that photo `failed` with the reason, the chunk goes on), read EXIF
   (camera, time, GPS), upload the original to `originals/YYYY/MM/DD/<uuid>.<ext>` (object
   metadata, SSE) and a 300×300 JPEG thumbnail, `s3_images` row. S3 calls retry with full jitter
   behind a circuit breaker: when S3 is down the breaker opens, the chunk fails fast and Airflow
   retries it later; nothing is uploaded or recorded twice.
4. **chunk.run_ml** — geolocate by GPS polygon (or the manual location), count live plants
   (`include/photos/plants.py`: the photo's own evidence sets the plant size; the location's
   calibration is only a prior), empty cells from the location's tray grid, `needs_review` when
   no plant is found or the count is far from the location's recent counts, the annotated image
   to `annotated/`, `photo_processing_sessions` row.
5. **aggregate** — upload-session totals, average confidence, categories, quality bands and
   status; emits the Asset `photo_processing_sessions`. Runs also when a chunk failed for good
   (e.g. S3 down past every retry), records what was done, and then fails the run.

Detector backend per storage location (`config.detector`): `classical` (default, no weights) or
`yolo_sahi` (optional extra `pip install ultralytics sahi`, `config.model_path`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, TriggerRule, dag, task, task_group

from imaging.dag_defaults import DEFAULT_ARGS, GPU, IO
from imaging.operators.photo_tasks import (
    ASSET_PHOTO_RESULTS,
    ensure_bucket_lifecycle,
    run_ml,
    stage_chunk,
)


@dag(
    dag_id="photo_ingest",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["photos", "s3", "ml", "ingest"],
    max_active_tasks=4,
    default_args={**DEFAULT_ARGS, "retries": 3, "retry_delay": timedelta(seconds=5)},
    params={
        "upload_session_id": Param(
            None,
            type=["null", "string"],
            description="Upload session staged by the upload API (photo_upload_sessions, files in "
            "S3 temp_uploads/<id>/). Give this or source_dir.",
        ),
        "source_dir": Param(
            None,
            type=["null", "string"],
            description="Folder whose photos (JPEG/PNG/WebP/HEIC) are imported (batch use, demo, "
            "tests). Empty (and no upload_session_id): the installation setting "
            "imaging_photo_source_dir.",
        ),
        "uploaded_by": Param(
            None, type=["null", "string"], description="User name recorded on every photo."
        ),
        "storage_location_id": Param(
            None,
            type=["null", "integer"],
            description="Manual storage location for every photo (skips GPS matching).",
        ),
    },
)
def photo_ingest() -> None:
    @task
    def register(**context: Any) -> list[list[str]]:
        """Create the upload session and one job per photo; return the job ids in chunks (the
        session id goes to the XCom key ``upload_session_id``). Bad params (not exactly one of
        ``upload_session_id`` / ``source_dir``, unknown session or location) fail without retry."""
        import time

        from airflow.sdk.exceptions import AirflowFailException

        from imaging.appdb import app_engine
        from imaging.install import resolved
        from imaging.operators.photo_tasks import s3_client_and_bucket
        from include.photos.pipeline import prepare_upload

        t0 = time.perf_counter()
        p = dict(context["params"])
        if not p.get("upload_session_id"):  # a folder import: empty folder -> the setting
            p = resolved(p, {"source_dir": "photo_source_dir"})
        client, bucket = (None, None)
        if p.get("upload_session_id") and not p.get("source_dir"):
            client, bucket = s3_client_and_bucket()
        try:
            out = prepare_upload(
                app_engine(),
                upload_session_id=p.get("upload_session_id"),
                source_dir=p.get("source_dir"),
                uploaded_by=p.get("uploaded_by"),
                storage_location_id=p.get("storage_location_id"),
                run_id=context["run_id"],
                s3_client=client,
                bucket=bucket,
            )
        except (LookupError, FileNotFoundError, ValueError) as exc:  # bad params: no retry
            raise AirflowFailException(str(exc)) from exc
        context["ti"].xcom_push(key="upload_session_id", value=out["upload_session_id"])
        context["ti"].xcom_push(key="work_s", value=round(time.perf_counter() - t0, 4))
        return out["chunks"]

    @task(trigger_rule=TriggerRule.ALL_DONE, outlets=[ASSET_PHOTO_RESULTS])
    def aggregate(**context: Any) -> dict[str, Any]:
        """Aggregate the session's jobs (totals, confidence, categories, quality, status); runs
        after every chunk, also failed ones, and then fails the run if photos were left
        unprocessed (a chunk that failed for good, e.g. S3 down past all retries)."""
        import logging
        import time

        from airflow.sdk.exceptions import AirflowFailException

        from imaging.appdb import app_engine
        from imaging.artefacts import api_base_url
        from imaging.results import publish_run_summary
        from include.photos.pipeline import finish_upload
        from include.photos.summary import run_summary

        t0 = time.perf_counter()
        sid = context["ti"].xcom_pull(task_ids="register", key="upload_session_id")
        if not sid:
            raise AirflowFailException("register did not run: no upload session to aggregate")
        summary = finish_upload(app_engine(), sid)
        logging.getLogger("airflow.task").info("upload session summary: %s", summary)
        publish_run_summary(
            context,
            run_summary(
                app_engine(),
                dag_id=context["dag"].dag_id,
                run_id=context["run_id"],
                upload_session_id=sid,
                base_url=api_base_url(),
            ),
        )
        if summary["pending"]:
            raise AirflowFailException(
                f"{summary['pending']} photo(s) were not processed (a chunk failed): {summary}"
            )
        return {**summary, "work_s": round(time.perf_counter() - t0, 4)}

    @task_group
    def chunk(job_ids: list[str]) -> Any:
        """One chunk of 20 photos: S3 stage, then ML. Mapped as a group, so a chunk's ML
        starts as soon as its own staging is done (no barrier across chunks)."""
        # staging uploads to S3 (io); the ML step runs on the gpu queue (YOLO/SAHI; the
        # classical fallback runs on any worker of that queue)
        staged = stage_chunk.override(queue=IO)(job_ids)
        return run_ml.override(queue=GPU)(staged, trigger="ingest")

    # the bucket set-up runs next to register; both must be done before the first upload
    lifecycle = ensure_bucket_lifecycle()
    chunks = chunk.expand(job_ids=register())
    lifecycle >> chunks
    chunks >> aggregate()


photo_ingest()
