"""
# reef_treatment_upload

Reef microscope timelapse: each finished timelapse folder is zipped and uploaded to the
experiment's **treatment dataset** in the Hypha artifact manager (connection `imaging_hypha`).
Runs every 30 minutes (one run at a time) and by hand.

Params: `base_dir` (where the microscope writes `<experiment_id>_YYYY-MM-DD_HH-MM-SS.ffffff`
folders), `experiment_id`, optional `start_folder` / `end_folder` (swapped if reversed),
`settle_seconds`, `work_dir` (temp zips).

1. **select_folders** — timelapse folders of the experiment ordered by the date-time in their
   name; folders recorded as processed in the app database are skipped. Default range: first
   unprocessed folder to the second-newest; the newest folder, and any folder modified in the last
   `settle_seconds`, is never processed (the microscope may still be writing it).
2. **upload_folder** (mapped, one folder at a time) — streamed zip64 archive (sorted entries, fixed
   times: the same folder always gives the same bytes, no absolute or `..` paths), dataset staged
   (created on first use, then edited in place: one committed version), presigned PUT (multipart
   when large), commit with retries on a fresh connection, listing verified (name and size), then
   the folder is recorded `done` in `item_records`. A crash at any point is safe to rerun: the same
   path is overwritten (no duplicates) and nothing is recorded before its commit.
   An unreadable folder is recorded `failed` with the reason; the others go on.
3. **report** — what was done, skipped and failed; fails the run if a folder failed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, TriggerRule, dag, task

from imaging.dag_defaults import DEFAULT_ARGS, HYPHA_POOL, IO, api_pool
from imaging.operators.reef_tasks import folder_params

PIPELINE = "reef_treatment_upload"


@dag(
    dag_id="reef_treatment_upload",
    schedule=timedelta(minutes=30),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["reef", "microscope", "hypha", "upload"],
    default_args={
        **DEFAULT_ARGS,
        "retries": 3,
        "retry_delay": timedelta(seconds=30),
        "max_retry_delay": timedelta(minutes=10),
    },
    params={
        **folder_params(),
        "work_dir": Param(
            "",
            type="string",
            description="Where the temp zip archives are built. Empty: $IMAGING_DATA_DIR/reef/work.",
        ),
    },
)
def reef_treatment_upload() -> None:
    @task
    def select_folders(**context: Any) -> dict[str, Any]:
        """Timelapse folders to upload in this run (references only)."""
        from imaging.operators.reef_tasks import select_folders as select

        return select(PIPELINE, context)

    @task
    def folders_of(selection: dict[str, Any]) -> list[dict[str, Any]]:
        return selection["selected"]

    @task(
        queue=IO,
        # HyphaArtifactHook put_concurrency (default 25) presigned PUTs per task
        **api_pool(HYPHA_POOL, concurrency=25),
        max_active_tis_per_dagrun=1,
        map_index_template="{{ task.op_kwargs['folder']['name'] }}",
    )
    def upload_folder(folder: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Zip, stage, upload, commit, verify and record one folder."""
        from imaging.appdb import app_engine
        from imaging.hooks.hypha import HyphaArtifactHook
        from include.common.settings import get_settings
        from include.reef.pipeline import treatment_upload_folder

        p = context["params"]
        work = p["work_dir"] or str(get_settings().data_dir / "reef" / "work")
        with HyphaArtifactHook() as hook:
            return treatment_upload_folder(
                app_engine(),
                hook,
                folder,
                experiment_id=p["experiment_id"],
                work_dir=work,
                run_id=context["run_id"],
            )

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def report(**context: Any) -> dict[str, Any]:
        """Summary of the run; fails when a folder failed (the reasons are in the log and DB).
        Results are pulled here (not passed in) so that a failed upstream still gets a report."""
        import logging

        from airflow.sdk.exceptions import AirflowFailException

        from include.reef.pipeline import as_list, summarize

        ti = context["ti"]
        selection = ti.xcom_pull(task_ids="select_folders")
        if not selection:
            raise AirflowFailException("folder selection failed: see select_folders")
        summary = summarize(as_list(ti.xcom_pull(task_ids="upload_folder")), selection)
        logging.getLogger("airflow.task").info("reef treatment upload: %s", summary)
        if summary["failed"]:
            raise AirflowFailException(f"folders failed: {summary['failed']}")
        return summary

    selection = select_folders()
    uploaded = upload_folder.expand(folder=folders_of(selection))
    [selection, uploaded] >> report()


reef_treatment_upload()
