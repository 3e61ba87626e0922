"""Steps shared by the two reef DAGs (``reef_treatment_upload`` and ``reef_stitch_upload``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from airflow.sdk import Param


def folder_params() -> dict[str, Param]:
    """The folder-selection params of both reef DAGs (read by :func:`select_folders`)."""
    return {
        "base_dir": Param(
            os.environ.get("REEF_BASE_DIR", "/data/reef/microscope"),
            type="string",
            description="Folder holding the microscope's timelapse folders (read only).",
        ),
        "experiment_id": Param(
            os.environ.get("REEF_EXPERIMENT_ID", "20250429-scan-time-lapse"),
            type="string",
            minLength=1,
            description="Experiment id: timelapse folders are named <experiment_id>_<date>_<time>.",
        ),
        "start_folder": Param(
            None,
            type=["null", "string"],
            description="First folder to process (default: the first unprocessed one).",
        ),
        "end_folder": Param(
            None,
            type=["null", "string"],
            description="Last folder to process (default: the second-newest; the newest is never processed).",
        ),
        "settle_seconds": Param(
            300,
            type="integer",
            minimum=0,
            description="A folder modified less than this many seconds before the run is left for later.",
        ),
    }


def select_folders(pipeline: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """The run's timelapse folders (references only) from the DAG params; a selection that cannot
    be made (unknown folder, missing base dir) fails the run at once, without retries."""
    from airflow.sdk.exceptions import AirflowFailException

    from imaging.appdb import app_engine
    from include.reef.folders import FolderSelectionError
    from include.reef.pipeline import select_for_run

    p = context["params"]
    try:
        return select_for_run(
            app_engine(),
            pipeline,
            base_dir=p["base_dir"],
            experiment_id=p["experiment_id"],
            start_folder=p["start_folder"],
            end_folder=p["end_folder"],
            reference_time=context["dag_run"].run_after.timestamp(),
            settle_seconds=float(p["settle_seconds"]),
        )
    except (FolderSelectionError, FileNotFoundError, ValueError) as exc:
        raise AirflowFailException(f"cannot select folders: {exc}") from exc
