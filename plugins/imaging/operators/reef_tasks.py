"""Steps shared by the two reef DAGs (``reef_treatment_upload`` and ``reef_stitch_upload``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Param

#: params that fall back to installation settings (Airflow Variables imaging_*) when left empty
SETTINGS = {
    "base_dir": "reef_base_dir",
    "experiment_id": "reef_experiment_id",
    "stitched_dir": "reef_stitched_dir",
}
DEFAULT_SETTLE_SECONDS = 300


def folder_params() -> dict[str, Param]:
    """The folder-selection params of both reef DAGs (read by :func:`select_folders`)."""
    return {
        "base_dir": Param(
            None,
            type=["null", "string"],
            description="Folder holding the microscope's timelapse folders (read only). "
            "Empty: the installation setting imaging_reef_base_dir.",
        ),
        "experiment_id": Param(
            None,
            type=["null", "string"],
            description="Experiment id: timelapse folders are named <experiment_id>_<date>_<time>. "
            "Empty: the installation setting imaging_reef_experiment_id.",
        ),
        "start_folder": Param(
            None,
            type=["null", "string"],
            description="First folder to process (default: the first unprocessed one).",
        ),
        "end_folder": Param(
            None,
            type=["null", "string"],
            description="Last folder to process (default: the newest one, once settled).",
        ),
        "settle_seconds": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            description="A folder modified less than this many seconds before the run is left "
            f"for later (it may still be written). Empty: {DEFAULT_SETTLE_SECONDS}.",
        ),
        "redo": Param(
            False,
            type="boolean",
            description="Process the selected folders again even when they are recorded as done "
            "(name them with start_folder / end_folder).",
        ),
    }


def run_params(context: Mapping[str, Any]) -> dict[str, Any]:
    """The run's params with empty ones resolved from the installation settings."""
    from imaging.install import resolved

    p = resolved(context["params"], SETTINGS)
    p["base_dir_named"] = bool((context["params"].get("base_dir") or "").strip())
    if p.get("settle_seconds") is None:
        p["settle_seconds"] = DEFAULT_SETTLE_SECONDS
    p["redo"] = bool(p.get("redo"))
    return p


def select_folders(pipeline: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """The run's timelapse folders (references only). A selection that cannot be made (unknown
    folder, a named base dir that does not exist) fails the run at once, without retries; no
    experiment id configured, or the installation's base dir not existing yet, is a quiet
    "nothing to do" (scheduled runs stay green)."""
    from airflow.sdk.exceptions import AirflowFailException

    from imaging.appdb import app_engine
    from include.reef.folders import FolderSelectionError
    from include.reef.pipeline import select_for_run

    p = run_params(context)
    if not p["experiment_id"]:
        note = "no experiment id: set imaging_reef_experiment_id or the experiment_id param"
        return {
            "selected": [],
            "skipped": {},
            "rejected": {},
            "start": None,
            "end": None,
            "note": note,
        }
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
            redo=p["redo"],
            base_dir_named=p["base_dir_named"],
        )
    except (FolderSelectionError, FileNotFoundError, ValueError) as exc:
        raise AirflowFailException(f"cannot select folders: {exc}") from exc


def hypha_links() -> tuple[str, str] | None:
    """(server URL, workspace) of the Hypha connection, or None when there is none."""
    try:
        from imaging.hooks.hypha import HyphaArtifactHook

        s = HyphaArtifactHook().settings
        return s.server_url, s.workspace
    except Exception:  # noqa: BLE001 - no connection: the summary goes without links
        return None
