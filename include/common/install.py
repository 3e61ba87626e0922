"""Installation settings: the folders and ids that scheduled and Asset-triggered runs use.

One mechanism for the whole project: **Airflow Variables** named ``imaging_<name>``. Set them in the
UI (*Admin → Variables*), with ``airflow variables set``/``import``, or as environment variables
``AIRFLOW_VAR_IMAGING_<NAME>`` (what a container deployment does). A DAG's trigger-form param that is
left empty (``null``) falls back to its setting, and a setting that is not set falls back to the
default below (under ``$IMAGING_DATA_DIR``). The demo imports its values from
``.data/samples/variables.json`` so that every schedule runs on the sample data.

This module is Airflow-free: it holds the catalogue and the resolution rule. The Variable lookup is
passed in (:func:`imaging.install.lookup` in tasks, a dict in tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from include.common.settings import Settings, get_settings

VARIABLE_PREFIX = "imaging_"


@dataclass(frozen=True)
class InstallSetting:
    name: str  # "astro_raw_dir" -> Variable "imaging_astro_raw_dir"
    description: str
    default: Callable[[Settings], str | None]

    @property
    def variable(self) -> str:
        return VARIABLE_PREFIX + self.name


def _data(*parts: str) -> Callable[[Settings], str]:
    return lambda s: str(s.data_dir.joinpath(*parts))


def _none(_: Settings) -> None:
    return None


def _env_or(
    var: str, default: Callable[[Settings], str | None]
) -> Callable[[Settings], str | None]:
    """The environment variable ``var`` of older deployments, else ``default``."""
    import os

    return lambda s: os.environ.get(var) or default(s)


SETTINGS: dict[str, InstallSetting] = {
    s.name: s
    for s in (
        # astrophotography
        InstallSetting("astro_raw_dir", "NINA's output folder (raw frames)", _data("astro", "raw")),
        InstallSetting(
            "astro_library_dir",
            "astro library root (rig folders, 10_Blink, 20_Data, _Reject, master libraries)",
            _data("astro", "library"),
        ),
        InstallSetting(
            "astro_calibration_dir",
            "folder of raw calibration frames (bias/dark/flat) to integrate into masters; "
            "empty: <library>/_Calibration, where the lights pipeline sorts them",
            _none,
        ),
        InstallSetting(
            "astro_rigs",
            "rig configuration file (YAML/JSON); empty: the bundled include/astro/rigs_default.yaml",
            _none,
        ),
        InstallSetting(
            "astro_scheduler_db",
            "NINA Target Scheduler SQLite DB to update with accepted counts; empty: no update",
            _none,
        ),
        InstallSetting(
            "astro_report_dir",
            "where the catalog report is written; empty: <library>/_Reports",
            _none,
        ),
        # reef microscope
        InstallSetting(
            "reef_base_dir",
            "microscope output folder (one folder per timepoint); default $REEF_BASE_DIR",
            _env_or("REEF_BASE_DIR", _data("reef")),
        ),
        InstallSetting(
            "reef_experiment_id",
            "experiment id (Hypha dataset name); default $REEF_EXPERIMENT_ID",
            _env_or("REEF_EXPERIMENT_ID", _none),
        ),
        InstallSetting(
            "reef_stitched_dir",
            "where stitched OME-Zarr timepoints and their previews are kept; default "
            "$REEF_STITCHED_DIR",
            _env_or("REEF_STITCHED_DIR", _data("reef_stitched")),
        ),
        # plant photos
        InstallSetting(
            "photo_source_dir",
            "folder imported by a manual photo_ingest run",
            _data("photos", "inbox"),
        ),
        # design images
        InstallSetting(
            "design_source_dir", "folder of new design images", _data("design", "inbox")
        ),
        InstallSetting("design_shop", "shop the designs belong to", lambda s: "default"),
        # roboflow
        InstallSetting(
            "roboflow_dataset_dir", "dataset folder to upload", _data("roboflow", "dataset")
        ),
        InstallSetting("roboflow_project", "Roboflow project of the images", _none),
    )
}

Lookup = Callable[[str], Any]


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def resolve(name: str, value: Any = None, lookup: Lookup | None = None) -> Any:
    """``value`` when given (a non-empty param), else the Variable ``imaging_<name>`` through
    ``lookup``, else the setting's default. Strings are stripped."""
    setting = SETTINGS[name]
    if not _empty(value):
        return value.strip() if isinstance(value, str) else value
    if lookup is not None:
        found = lookup(setting.variable)
        if not _empty(found):
            return found.strip() if isinstance(found, str) else found
    return setting.default(get_settings())


def resolve_params(
    params: Mapping[str, Any], names: Mapping[str, str], lookup: Lookup | None = None
) -> dict[str, Any]:
    """A copy of ``params`` where each ``param -> setting`` of ``names`` is resolved."""
    out = dict(params)
    for param, setting in names.items():
        out[param] = resolve(setting, params.get(param), lookup)
    return out


def defaults_for(data_dir_settings: Settings | None = None) -> dict[str, str | None]:
    """Every setting's default value, keyed by its Variable name (docs, demo)."""
    s = data_dir_settings or get_settings()
    return {v.variable: v.default(s) for v in SETTINGS.values()}
