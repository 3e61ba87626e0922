"""Master-matching keys and library paths, defined once.

:data:`MASTER_KEYS` are the properties a calibration group (and its master) is made of: BIAS by
camera settings, DARK also by exposure, FLAT also by optic, focal ratio, filter and night. The
calibration grouping (:mod:`include.astro.calgroups`), the bias a flat is calibrated with
(:func:`bias_props`), imported masters (:mod:`include.astro.master_import`) and the library paths
(:func:`library_path`) all use these. The per-rig ``*_properties`` of the rig configuration
(:mod:`include.astro.rigs`) choose which of them a light set must match when masters are
distributed; :func:`include.astro.rigs.load_rigs` rejects any other name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CAMERA_SETTINGS: tuple[str, ...] = ("camera", "gain", "offset", "settemp", "readoutmode")
MASTER_KEYS: dict[str, tuple[str, ...]] = {
    "BIAS": CAMERA_SETTINGS,
    "DARK": (*CAMERA_SETTINGS, "exposure"),
    "FLAT": (
        "camera",
        "optic",
        "fratio",
        "gain",
        "offset",
        "settemp",
        "readoutmode",
        "filter",
        "date",
    ),
}
# names a rig configuration may list (``type`` = the frame type, always matched)
RIG_PROPERTIES = frozenset(k for keys in MASTER_KEYS.values() for k in keys) | {"type", "imagetyp"}


def master_props(imagetyp: str, props: Mapping[str, Any]) -> dict[str, Any]:
    """The matching properties of a master of ``imagetyp`` taken from ``props``."""
    return {k: props.get(k) for k in MASTER_KEYS[imagetyp]}


def bias_key(props: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a flat and the bias subtracted from it share (camera settings)."""
    return tuple(props.get(k) for k in CAMERA_SETTINGS)


def bias_props(props: Mapping[str, Any]) -> dict[str, Any]:
    return master_props("BIAS", props)


def master_frame(imagetyp: str, props: Mapping[str, Any]) -> Any:
    """A :class:`include.astro.frames.Frame` describing a master (for the shared layout rules)."""
    from include.astro.frames import Frame

    return Frame(
        path="",
        imagetyp=f"MASTER {imagetyp}",
        camera=props.get("camera"),
        optic=props.get("optic"),
        fratio=props.get("fratio"),
        date=props.get("date"),
        filter=props.get("filter"),
        exposure=props.get("exposure"),
        settemp=props.get("settemp"),
        gain=props.get("gain"),
        offset=props.get("offset"),
        readoutmode=props.get("readoutmode"),
    )


def library_path(
    library_dir: str | os.PathLike[str],
    imagetyp: str,
    props: Mapping[str, Any],
    *,
    subdir: str | None = None,
    ext: str = ".fits",
) -> Path:
    """Where the master of a group belongs in the library."""
    from include.astro.layout import master_dest

    return master_dest(library_dir, master_frame(imagetyp, props), ext=ext, subdir=subdir)


def subdirs_by_camera(rigs: Any) -> dict[str, str]:
    """``{camera: library_subdir}`` from a :class:`include.astro.rigs.RigsConfig`."""
    out: dict[str, str] = {}
    for name, cfg in rigs.rigs.items():
        if cfg.library_subdir and "+" in name:
            out[name.rsplit("+", 1)[1]] = cfg.library_subdir
    return out


def library_dest(
    library_dir: str | os.PathLike[str], imagetyp: str, props: Mapping[str, Any], rigs: Any
) -> Path:
    """Library path of a master, honouring the rig configuration's ``library_subdir``."""
    subdir = subdirs_by_camera(rigs).get(props.get("camera"))
    return library_path(library_dir, imagetyp, props, subdir=subdir)
