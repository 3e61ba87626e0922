"""
# reef_stitch_upload

Reef microscope timelapse: each finished timelapse folder (timepoint) is stitched into **one
OME-Zarr image** (NGFF 0.5, zarr v3, sharded; axes channel/y/x, one multiscale, omero channel
labels and colours) and uploaded as its own dataset (`<experiment>-<date-time>`) in the
experiment's gallery on the Hypha artifact manager (connection `imaging_hypha`), with a preview
picture per channel and a colour composite; the experiment's timelapse (composite across
timepoints) goes to `<experiment>-timelapse`. Runs every 30 minutes (one run at a time) and by hand.

Params (all optional): `base_dir`, `experiment_id`, `stitched_dir` — empty: the installation
settings `imaging_reef_base_dir`, `imaging_reef_experiment_id`, `imaging_reef_stitched_dir`
(*Admin → Variables*); `start_folder` / `end_folder`, `settle_seconds` (default 300), `redo`
(process done folders again), `channels` (subset; empty = all), `zip_chunk_rows`,
`stitch_options` (e.g. `{"preset": "original"}`, `{"register": false}`, `flip_x`, `rot90`,
`clip_percentiles`, `chunk`, `shard`).

1. **select_folders** — as in `reef_treatment_upload` (settled folders only, the newest included;
   done ones skipped unless `redo`). Nothing there yet is a quiet, green run.
2. **stitch** (mapped per folder) — reused when a finished stitch was made with the same options
   from the same files; otherwise tile positions are refined from the overlaps (phase correlation +
   global least squares, stage position where an overlap has no texture) and the tiles are placed
   band by band into the sharded pyramid (memory follows the data, not the canvas extent); then
   validated (ome-zarr-models + ome-zarr's reader) and preview PNGs drawn. Bad input marks the
   folder `failed` with the reason; the others go on.
3. **prepare_datasets** — gallery and one staged dataset per stitched folder.
4. **upload_channel** (mapped per folder x channel, several at once in the Hypha pool) — the
   channel's shards; staged files are skipped by size only when the dataset holds this very stitch.
5. **commit_folder** (mapped per folder) — metadata + pictures, manifest `stitch_id`, commit,
   listing verified; only then the local zarr is removed (previews stay) and the folder recorded.
6. **timelapse** — the experiment's animated composite, uploaded when a timepoint was committed.
7. **summary** — the run's page (Hypha dataset links, previews, timelapse, item errors) and its
   one-line outcome; a folder that failed is an item error (⚠), a failed task fails the run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, TriggerRule, dag, task

from imaging.dag_defaults import CPU, DEFAULT_ARGS, HYPHA_POOL, IO, api_pool
from imaging.operators.reef_tasks import folder_params

PIPELINE = "reef_stitch_upload"
#: presigned PUTs per channel upload: several channels share the Hypha pool at once
CHANNEL_PUT_CONCURRENCY = 5


@dag(
    dag_id="reef_stitch_upload",
    schedule=timedelta(minutes=30),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["reef", "microscope", "hypha", "ome-zarr", "stitch"],
    default_args={
        **DEFAULT_ARGS,
        "retries": 3,
        "retry_delay": timedelta(seconds=30),
        "max_retry_delay": timedelta(minutes=10),
    },
    params={
        **folder_params(),
        "channels": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            description="Channels to stitch, e.g. Fluorescence_488_nm_Ex (empty: every channel found).",
        ),
        "stitched_dir": Param(
            None,
            type=["null", "string"],
            description="Where the OME-Zarr output (removed after a verified commit) and the previews "
            "are written. Empty: the installation setting imaging_reef_stitched_dir.",
        ),
        "zip_chunk_rows": Param(
            False,
            type="boolean",
            description="Upload each level's shard files of one chunk row as one stored zip "
            "(<level>/c.<channel>.<row>.zip), as the original uploader did for Hypha's zip streaming.",
        ),
        "stitch_options": Param(
            None,
            type=["null", "object"],
            description='Stitch options: {"preset": "original"} or flip_x, flip_y, rot90, rotation_deg, '
            "clip_percentiles, pixel_size_adjustment, chunk, shard, downsample, register (default "
            "true), max_shift_px, min_correlation.",
        ),
    },
)
def reef_stitch_upload() -> None:
    @task
    def select_folders(**context: Any) -> dict[str, Any]:
        """Timelapse folders to stitch in this run (references only)."""
        from imaging.operators.reef_tasks import select_folders as select

        return select(PIPELINE, context)

    @task
    def folders_of(selection: dict[str, Any]) -> list[dict[str, Any]]:
        return selection["selected"]

    @task(
        queue=CPU,  # OME-Zarr stitching and pyramids
        max_active_tis_per_dagrun=1,
        map_index_template="{{ task.op_kwargs['folder']['name'] }}",
    )
    def stitch(folder: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Stitch one folder into a validated OME-Zarr with previews (or reuse a finished one)."""
        from imaging.appdb import app_engine
        from imaging.operators.reef_tasks import run_params
        from include.reef.pipeline import stitch_one

        p = run_params(context)
        return stitch_one(
            app_engine(),
            folder,
            experiment_id=p["experiment_id"],
            stitched_dir=p["stitched_dir"],
            channels=list(p["channels"] or []),
            options=dict(p["stitch_options"] or {}),
            run_id=context["run_id"],
            redo=p["redo"],
        )

    @task
    def prepare_datasets(stitched: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
        """Gallery + one staged dataset per stitched folder; one upload item per channel."""
        from imaging.hooks.hypha import HyphaArtifactHook
        from imaging.operators.reef_tasks import run_params
        from include.reef.pipeline import prepare_stitch_datasets

        p = run_params(context)
        with HyphaArtifactHook() as hook:
            return prepare_stitch_datasets(
                hook,
                list(stitched),
                experiment_id=p["experiment_id"],
                zip_rows=bool(p["zip_chunk_rows"]),
            )

    @task
    def channel_items(plan: dict[str, Any]) -> list[dict[str, Any]]:
        return plan["channels"]

    @task
    def folder_items(plan: dict[str, Any]) -> list[dict[str, Any]]:
        return plan["folders"]

    @task(
        queue=IO,
        # CHANNEL_PUT_CONCURRENCY presigned PUTs per task: several channels upload at once
        **api_pool(HYPHA_POOL, concurrency=CHANNEL_PUT_CONCURRENCY),
        map_index_template="{{ task.op_kwargs['item']['folder'] }}/{{ task.op_kwargs['item']['channel'] }}",
    )
    def upload_channel(item: dict[str, Any]) -> dict[str, Any]:
        """Upload one channel of one folder (missing files only when the stitch is the same)."""
        from imaging.hooks.hypha import HyphaArtifactHook
        from include.reef.pipeline import upload_channel as upload

        with HyphaArtifactHook(put_concurrency=CHANNEL_PUT_CONCURRENCY) as hook:
            return upload(hook, item)

    @task(queue=IO, map_index_template="{{ task.op_kwargs['folder']['folder'] }}")
    def commit_folder(folder: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Commit once all channels are in, verify the listing, remove the local zarr, record."""
        from imaging.appdb import app_engine
        from imaging.hooks.hypha import HyphaArtifactHook
        from imaging.operators.reef_tasks import run_params
        from include.reef.pipeline import commit_stitched

        with HyphaArtifactHook() as hook:
            return commit_stitched(
                app_engine(),
                hook,
                folder,
                experiment_id=run_params(context)["experiment_id"],
                run_id=context["run_id"],
            )

    @task(queue=IO, trigger_rule=TriggerRule.ALL_DONE)
    def timelapse(**context: Any) -> dict[str, Any] | None:
        """The experiment's timelapse, rebuilt and uploaded when a timepoint was committed."""
        from imaging.hooks.hypha import HyphaArtifactHook
        from imaging.operators.reef_tasks import run_params
        from include.reef.pipeline import as_list, build_timelapse

        p = run_params(context)
        committed = as_list(context["ti"].xcom_pull(task_ids="commit_folder"))
        if not p["experiment_id"] or not committed:
            return None
        with HyphaArtifactHook() as hook:
            return build_timelapse(
                hook,
                experiment_id=p["experiment_id"],
                stitched_dir=p["stitched_dir"],
                committed=committed,
            )

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summary(**context: Any) -> dict[str, Any]:
        """The run's summary page and one-line outcome (the DAG's only leaf: fails the run when
        another task failed). Results are pulled here so that a failed upstream still gets one."""
        from airflow.sdk.exceptions import AirflowFailException

        from imaging.artefacts import publish_artefact
        from imaging.operators.reef_tasks import hypha_links, run_params
        from imaging.results import publish_run_summary
        from include.reef.pipeline import as_list
        from include.reef.summary import stitch_summary

        ti = context["ti"]
        selection = ti.xcom_pull(task_ids="select_folders")
        if not selection:
            raise AirflowFailException("folder selection failed: see select_folders")
        page = stitch_summary(
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
            experiment_id=run_params(context)["experiment_id"],
            selection=selection,
            stitched=as_list(ti.xcom_pull(task_ids="stitch")),
            committed=as_list(ti.xcom_pull(task_ids="commit_folder")),
            timelapse=ti.xcom_pull(task_ids="timelapse"),
            hypha=hypha_links(),
            publish=lambda src, name: publish_artefact(context, src, name)["url"],
        )
        return dict(publish_run_summary(context, page))

    selection = select_folders()
    stitched = stitch.expand(folder=folders_of(selection))
    plan = prepare_datasets(stitched)
    uploads = upload_channel.expand(item=channel_items(plan))
    committed = commit_folder.expand(folder=folder_items(plan))
    uploads >> committed
    movie = timelapse()
    committed >> movie
    movie >> summary()


reef_stitch_upload()
