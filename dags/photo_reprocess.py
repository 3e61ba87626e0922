"""
# photo_reprocess

Run the plant-photo ML again for one photo **from its S3 original** (no re-upload), e.g. after
fixing the reason of a warning state: adding the storage location for a `needs_location` photo,
configuring it (`needs_config`) or calibrating it (`needs_calibration`).

Params: `image_id` (an original in `s3_images`), `storage_location_id` (optional manual
location; otherwise the photo's GPS is matched again against the current locations), `reason`
(optional, recorded on the job and the new processing session). Assigning a location changes
the count only where its configuration says something new about the photo (the tray grid adds
the empty cells); its calibration is only a prior.

1. **prepare** — checks the image and the location exist; creates the reprocess job (its id is
   derived from the image and the DAG run, so retrying the run does not duplicate it).
2. **run_ml** — the same task `photo_ingest` uses: geolocate, segment, tiled detection, estimation,
   annotated image, and a **new** `photo_processing_sessions` row — earlier sessions are kept as
   history, the newest one is the photo's current result. Idempotent within a run.
3. **report** — publishes the run summary page (the photo's status, counts and warnings);
   emits the Asset `photo_processing_sessions`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from imaging.dag_defaults import DEFAULT_ARGS, GPU
from imaging.operators.photo_tasks import ASSET_PHOTO_RESULTS, run_ml


@dag(
    dag_id="photo_reprocess",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["photos", "ml", "reprocess"],
    default_args={**DEFAULT_ARGS, "retries": 3, "retry_delay": timedelta(seconds=5)},
    render_template_as_native_obj=True,
    params={
        "image_id": Param(
            type="string",
            minLength=1,
            description="image_id (UUID) of the original photo in s3_images.",
        ),
        "storage_location_id": Param(
            None,
            type=["null", "integer"],
            description="Manual storage location; empty: match the photo's GPS again.",
        ),
        "reason": Param(
            None,
            type=["null", "string"],
            description="Why the photo is reprocessed (shown in the history). Optional.",
        ),
    },
)
def photo_reprocess() -> None:
    @task
    def prepare(**context: Any) -> dict[str, Any]:
        """Validate the inputs and create the reprocess job."""
        from airflow.sdk.exceptions import AirflowFailException

        from imaging.appdb import app_engine
        from include.photos.pipeline import prepare_reprocess

        p = context["params"]
        try:
            job_id = prepare_reprocess(
                app_engine(),
                image_id=p["image_id"],
                storage_location_id=p.get("storage_location_id"),
                reason=p.get("reason") or None,
                run_id=context["run_id"],
            )
        except (LookupError, ValueError) as exc:  # bad input: retrying will not help
            raise AirflowFailException(str(exc)) from exc
        return {"staged": [job_id], "work_s": 0.0}

    @task(outlets=[ASSET_PHOTO_RESULTS])
    def report(result: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Publish the run summary; a failed photo fails the run (the reason is in the job)."""
        import logging

        from imaging.appdb import app_engine
        from imaging.artefacts import api_base_url
        from imaging.results import publish_run_summary
        from include.photos.summary import run_summary

        logging.getLogger("airflow.task").info("reprocess result: %s", result)
        publish_run_summary(
            context,
            run_summary(
                app_engine(),
                dag_id=context["dag"].dag_id,
                run_id=context["run_id"],
                job_ids=result.get("job_ids", []),
                base_url=api_base_url(),
            ),
        )
        if result["statuses"].get("failed"):
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"reprocessing failed (reason in photo_jobs): {result}")
        return result

    job = prepare()
    result = run_ml.override(queue=GPU)(
        job,
        storage_location_id="{{ params.storage_location_id }}",
        trigger="reprocess",
        reason="{{ params.reason }}",
    )
    report(result)


photo_reprocess()
