"""
# reef_stitch_upload

Reef microscope timelapse: each finished timelapse folder is stitched by stage coordinates into
an OME-Zarr (NGFF 0.5, zarr v3, sharded) multiscale image per channel and uploaded as its own
dataset (`<experiment>-<date-time>`) in the experiment's gallery on the Hypha artifact manager
(connection `imaging_hypha`). Runs every 30 minutes (one run at a time) and by hand.

Params: `base_dir`, `experiment_id`, optional `start_folder` / `end_folder`, `channels` (subset;
empty = all channels found), `stitched_dir` (local OME-Zarr output), `settle_seconds`,
`zip_chunk_rows` (upload each chunk row of a level as one zip, as the original did),
`stitch_options` (e.g. `{"preset": "original"}` for the original uploader's flip/rotation/1-99%
clipping, or `flip_x`, `flip_y`, `rot90`, `rotation_deg`, `clip_percentiles`, `chunk`, `shard`).

Input per folder: `acquisition parameters.json`, `0/coordinates.csv`,
`0/<Region>_<FOV>_<Z>_<Channel>.bmp|tiff`.

1. **select_folders** — as in `reef_treatment_upload` (newest and still-changing folders excluded,
   processed ones skipped, range swapped if reversed).
2. **stitch** (mapped per folder) — skipped when a done stitch exists; otherwise tiles are placed
   band by band into a sharded multiscale (the canvas is never in memory), with physical scale in
   micrometers, stage translation and omero channel names/colours; then validated with ome-zarr's
   reader. Bad input (missing parameters or coordinates, absent or corrupt tiles, a channel without
   tiles) marks the folder `failed` with the reason; the others go on; nothing is deleted.
3. **prepare_datasets** — gallery and one staged dataset per stitched folder.
4. **upload_channel** (mapped per folder x channel) — the channel's folder into the dataset,
   only files not already staged with the right size (reruns add nothing).
5. **commit_folder** (mapped per folder) — root metadata, commit (retries on a fresh connection),
   listing verified against every local file and size; only then the local zarr is removed and the
   folder recorded `done`.
6. **report** — summary; fails the run if a folder failed.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, TriggerRule, dag, task

from imaging.dag_defaults import CPU, DEFAULT_ARGS, HYPHA_POOL, IO, api_pool
from imaging.operators.reef_tasks import folder_params

PIPELINE = "reef_stitch_upload"


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
            [],
            type=["null", "array"],
            items={"type": "string"},
            description="Channels to stitch, e.g. Fluorescence_488_nm_Ex (empty: every channel found).",
        ),
        "stitched_dir": Param(
            os.environ.get("REEF_STITCHED_DIR", "/data/reef/stitched"),
            type="string",
            description="Where the OME-Zarr output is written (removed after a verified commit).",
        ),
        "zip_chunk_rows": Param(
            False,
            type="boolean",
            description="Upload each level's shard files of one chunk row as one stored zip "
            "(<channel>/<level>/c.<row>.zip), as the original uploader did for Hypha's zip streaming.",
        ),
        "stitch_options": Param(
            {},
            type="object",
            description='Stitch options: {"preset": "original"} or flip_x, flip_y, rot90, rotation_deg, '
            "clip_percentiles, pixel_size_adjustment, chunk, shard, downsample.",
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
        """Stitch one folder into a validated OME-Zarr (or reuse a finished one)."""
        from imaging.appdb import app_engine
        from include.reef.pipeline import stitch_one

        p = context["params"]
        return stitch_one(
            app_engine(),
            folder,
            experiment_id=p["experiment_id"],
            stitched_dir=p["stitched_dir"],
            channels=list(p["channels"] or []),
            options=dict(p["stitch_options"] or {}),
            run_id=context["run_id"],
        )

    @task
    def prepare_datasets(stitched: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
        """Gallery + one staged dataset per stitched folder; one upload item per channel."""
        from imaging.hooks.hypha import HyphaArtifactHook
        from include.reef.pipeline import prepare_stitch_datasets

        with HyphaArtifactHook() as hook:
            return prepare_stitch_datasets(
                hook,
                list(stitched),
                experiment_id=context["params"]["experiment_id"],
                zip_rows=bool(context["params"]["zip_chunk_rows"]),
            )

    @task
    def channel_items(plan: dict[str, Any]) -> list[dict[str, Any]]:
        return plan["channels"]

    @task
    def folder_items(plan: dict[str, Any]) -> list[dict[str, Any]]:
        return plan["folders"]

    @task(
        queue=IO,
        # HyphaArtifactHook put_concurrency (default 25) presigned PUTs per task
        **api_pool(HYPHA_POOL, concurrency=25),
        map_index_template="{{ task.op_kwargs['item']['folder'] }}/{{ task.op_kwargs['item']['channel'] }}",
    )
    def upload_channel(item: dict[str, Any]) -> dict[str, Any]:
        """Upload one channel of one folder (missing files only)."""
        from imaging.hooks.hypha import HyphaArtifactHook
        from include.reef.pipeline import upload_channel as upload

        with HyphaArtifactHook() as hook:
            return upload(hook, item)

    @task(queue=IO, map_index_template="{{ task.op_kwargs['folder']['folder'] }}")
    def commit_folder(folder: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Commit once all channels are in, verify the listing, remove the local zarr, record."""
        from imaging.appdb import app_engine
        from imaging.hooks.hypha import HyphaArtifactHook
        from include.reef.pipeline import commit_stitched

        with HyphaArtifactHook() as hook:
            return commit_stitched(
                app_engine(),
                hook,
                folder,
                experiment_id=context["params"]["experiment_id"],
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
        results = {r["folder"]: r for r in as_list(ti.xcom_pull(task_ids="stitch"))}
        results.update({r["folder"]: r for r in as_list(ti.xcom_pull(task_ids="commit_folder"))})
        summary = summarize(list(results.values()), selection)
        logging.getLogger("airflow.task").info("reef stitch upload: %s", summary)
        if summary["failed"]:
            raise AirflowFailException(f"folders failed: {summary['failed']}")
        return summary

    selection = select_folders()
    stitched = stitch.expand(folder=folders_of(selection))
    plan = prepare_datasets(stitched)
    uploads = upload_channel.expand(item=channel_items(plan))
    committed = commit_folder.expand(folder=folder_items(plan))
    uploads >> committed
    [selection, stitched, committed] >> report()


reef_stitch_upload()
