"""Steps shared by the two reef DAGs (``reef_treatment_upload`` and ``reef_stitch_upload``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
