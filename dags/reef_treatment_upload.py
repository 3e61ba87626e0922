"""
# reef_treatment_upload

Reef microscope timelapse: each finished timelapse folder is zipped and uploaded to the
experiment's **treatment dataset** in the Hypha artifact manager (connection `imaging_hypha`).
Runs every 30 minutes (one run at a time) and by hand.

Params (all optional): `base_dir` (where the microscope writes
`<experiment_id>_YYYY-MM-DD_HH-MM-SS.ffffff` folders) and `experiment_id` — empty: the installation
settings `imaging_reef_base_dir` / `imaging_reef_experiment_id` (*Admin → Variables*);
`start_folder` / `end_folder` (swapped if reversed), `settle_seconds` (default 300), `redo`
(upload done folders again), `work_dir` (temp zips).

1. **select_folders** — timelapse folders of the experiment ordered by the date-time in their
   name; folders recorded as processed in the app database are skipped (unless `redo`). Default
   range: first unprocessed folder to the newest; a folder modified in the last `settle_seconds`
   is left for later (the microscope may still be writing it). No experiment id or an
   installation base dir that does not exist yet: nothing to do, a green run.
2. **upload_folder** (mapped, one folder at a time) — tiles checked first (missing tiles and
   corrupt/truncated BMPs are warnings on the summary page; the folder is archived as it is);
   streamed zip64 archive (deterministic bytes), dataset staged (one committed version), presigned
   PUT (multipart when large), the archive's sha256 in the manifest, commit, listing verified; a
   committed archive is reused only when its sha256 matches. Then the folder is recorded `done`.
   An unreadable folder is recorded `failed` with the reason; the others go on.
3. **summary** — the run's page (folders, warnings, Hypha dataset link) and its one-line outcome.
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
            None,
            type=["null", "string"],
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
        """Check, zip, stage, upload, commit, verify and record one folder."""
        from imaging.appdb import app_engine
        from imaging.hooks.hypha import HyphaArtifactHook
        from imaging.operators.reef_tasks import run_params
        from include.common.settings import get_settings
        from include.reef.pipeline import treatment_upload_folder

        p = run_params(context)
        work = p["work_dir"] or str(get_settings().data_dir / "reef" / "work")
        with HyphaArtifactHook() as hook:
            return treatment_upload_folder(
                app_engine(),
                hook,
                folder,
                experiment_id=p["experiment_id"],
                work_dir=work,
                run_id=context["run_id"],
                redo=p["redo"],
            )

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summary(**context: Any) -> dict[str, Any]:
        """The run's summary page and one-line outcome (the DAG's only leaf: fails the run when
        another task failed). Results are pulled here so that a failed upstream still gets one."""
        from airflow.sdk.exceptions import AirflowFailException

        from imaging.operators.reef_tasks import hypha_links, run_params
        from imaging.results import publish_run_summary
        from include.reef.pipeline import as_list, treatment_dataset_alias
        from include.reef.summary import treatment_summary

        ti = context["ti"]
        selection = ti.xcom_pull(task_ids="select_folders")
        if not selection:
            raise AirflowFailException("folder selection failed: see select_folders")
        exp = run_params(context)["experiment_id"]
        page = treatment_summary(
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
            experiment_id=exp,
            selection=selection,
            results=as_list(ti.xcom_pull(task_ids="upload_folder")),
            hypha=hypha_links(),
            dataset_alias=treatment_dataset_alias(exp) if exp else None,
        )
        return dict(publish_run_summary(context, page))

    selection = select_folders()
    uploaded = upload_folder.expand(folder=folders_of(selection))
    uploaded >> summary()


reef_treatment_upload()
