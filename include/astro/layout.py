"""Where things live in the astrophotography library (the rig tree). Pure path rules, no I/O
except :func:`ensure_accept_dir`.

``library_dir`` layout::

    <library_dir>/
      <optic>@f<ratio>+<camera>/                      one folder per rig (see :func:`rig_dir`)
        10_Blink/<target>/DATE_<night>/FILTER_<f>_EXP_<e>[_PANEL_<p>]/<datetime>_HFR_.._STARS_.._RMSAC_.._TEMP_...<ext>
        10_Blink/<target>/accept/                    created next to the DATE_ folders
        20_Data/...                                  same relative path, after approval + calibration
        _Reject/<path relative to the rig folder>    culled / blink-rejected frames
      _Calibration/<TYPE>/<optic>+<camera>/DATE_<night>/<group>/<datetime>...<ext>
                                                     the "calibration input area": raw BIAS/DARK/FLAT
                                                     frames, grouped for master integration
      _Bias Library/<camera>/masterBias_...<ext>     master libraries (issue 5 builds them)
      _Dark Library/<camera>/masterDark_...<ext>
      _Flat Stash/<camera>/<optic>/DATE_<night>/masterFlat_...<ext>
      _Summary/astro_prepare_lights/<run key>.json|.md

Folders whose name starts with ``_`` are never scanned for lights; raw folders named ``_stash`` are
skipped by the raw step.

Airflow Asset names (the DAG files build ``Asset(name)``): lights published to 20_Data →
:data:`ASSET_20_DATA` (the catalog/report pipeline listens), masters added to the library →
:data:`ASSET_CALIBRATION_LIBRARY` (the lights pipeline listens).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from include.astro.frames import Frame

BLINK_DIR = "10_Blink"
DATA_DIR = "20_Data"
ACCEPT_DIR = "accept"
REJECT_DIR = "_Reject"
CALIBRATION_INPUT_DIR = "_Calibration"
BIAS_LIBRARY = "_Bias Library"
DARK_LIBRARY = "_Dark Library"
FLAT_STASH = "_Flat Stash"
SUMMARY_DIR = "_Summary"
RAW_SKIP_DIRS = ("_stash",)

LIBRARY_DIRS = {"MASTER BIAS": BIAS_LIBRARY, "MASTER DARK": DARK_LIBRARY, "MASTER FLAT": FLAT_STASH}
CALIBRATION_TYPES = ("BIAS", "DARK", "FLAT", "DARKFLAT")
MASTER_TYPES = ("MASTER BIAS", "MASTER DARK", "MASTER FLAT")

ASSET_20_DATA = "astro_20_data"
ASSET_CALIBRATION_LIBRARY = "astro_calibration_library"


def rig_name(optic: str, fratio: str, camera: str) -> str:
    """``C8E@f10.0+ZWO ASI2600MM Pro``."""
    return f"{optic}@f{fratio}+{camera}"


def rig_dir(library_dir: str | os.PathLike[str], rig: str) -> Path:
    return Path(library_dir) / safe_component(rig)


def blink_dir(library_dir: str | os.PathLike[str], rig: str) -> Path:
    return rig_dir(library_dir, rig) / BLINK_DIR


def data_dir(library_dir: str | os.PathLike[str], rig: str) -> Path:
    return rig_dir(library_dir, rig) / DATA_DIR


def reject_dir(library_dir: str | os.PathLike[str], rig: str) -> Path:
    return rig_dir(library_dir, rig) / REJECT_DIR


def summary_dir(
    library_dir: str | os.PathLike[str], pipeline: str = "astro_prepare_lights"
) -> Path:
    """``<library>/_Summary/<pipeline>``: run summaries and per-run step files."""
    return Path(library_dir) / SUMMARY_DIR / pipeline


def calibration_input_dir(library_dir: str | os.PathLike[str]) -> Path:
    """Root of the calibration input area (raw BIAS/DARK/FLAT frames)."""
    return Path(library_dir) / CALIBRATION_INPUT_DIR


def library_dir_for(library_dir: str | os.PathLike[str], master_type: str) -> Path:
    """``_Bias Library`` / ``_Dark Library`` / ``_Flat Stash`` for a ``MASTER *`` type."""
    return Path(library_dir) / LIBRARY_DIRS[master_type.upper()]


_UNSAFE = re.compile(r'[/\\\x00-\x1f:*?"<>|]')


def safe_component(value: object, default: str = "UNKNOWN") -> str:
    """One path component from a header/name value: no separators, no control or Windows-reserved
    characters, never ``.``/``..``/empty (a hostile OBJECT cannot escape the library)."""
    v = _UNSAFE.sub("_", str(value)).strip()
    if v in ("", ".", ".."):
        return default
    return v


def _fmt(value: str | None) -> str:
    return "" if value is None else safe_component(value, default="_")


def light_group(frame: Frame) -> str:
    """``FILTER_<f>_EXP_<e>[_PANEL_<p>]`` - the folder holding one light set."""
    p = f"FILTER_{_fmt(frame.filter)}_EXP_{_fmt(frame.exposure)}"
    if frame.panel:
        p += f"_PANEL_{_fmt(frame.panel)}"
    return p


def frame_file_name(frame: Frame, ext: str | None = None) -> str:
    """``<datetime>[_HFR_<v>][_STARS_<v>][_RMSAC_<v>][_TEMP_<v>]<ext>``; missing metrics are left
    out (like the origin's prepare step), so a later parse finds them missing, not empty."""
    stem = frame.datetime or "unknown"
    for key, value in (
        ("HFR", frame.hfr_text),
        ("STARS", None if frame.stars is None else str(frame.stars)),
        ("RMSAC", frame.rmsac_text),
        ("TEMP", frame.temp),
    ):
        if value not in (None, ""):
            stem += f"_{key}_{_fmt(value)}"
    if ext is None:
        ext = Path(frame.path).suffix.lower() if frame.path else ".fits"
    return stem + ext


def light_rel_path(frame: Frame, ext: str | None = None) -> Path:
    """Path of a light below the rig's stage folder: ``<target>/DATE_<d>/<group>/<file>``."""
    return (
        Path(safe_component(frame.target or "UNKNOWN"))
        / f"DATE_{frame.date}"
        / light_group(frame)
        / (frame_file_name(frame, ext))
    )


def light_dest(library_dir: str | os.PathLike[str], frame: Frame, ext: str | None = None) -> Path:
    """Destination of a raw light: ``<rig>/10_Blink/<target>/DATE_<d>/<group>/<file>``."""
    return blink_dir(library_dir, frame.rig_name) / light_rel_path(frame, ext)


def accept_dir_for(light_path: str | os.PathLike[str]) -> Path:
    """``<target>/accept`` for a light at ``<target>/DATE_<d>/<group>/<file>``."""
    return Path(light_path).parent.parent.parent / ACCEPT_DIR


def ensure_accept_dir(light_path: str | os.PathLike[str]) -> Path:
    d = accept_dir_for(light_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


def calibration_group(frame: Frame) -> str:
    """``[FILTER_<f>_]EXP_<e>[_SETTEMP_<t>][_GAIN_<g>][_OFFSET_<o>][_READOUTM_<r>]``: one master's
    worth of raw frames. FILTER only for flats."""
    parts: list[str] = []
    if frame.imagetyp in ("FLAT", "DARKFLAT"):
        parts.append(f"FILTER_{_fmt(frame.filter)}")
    parts.append(f"EXP_{_fmt(frame.exposure)}")
    for key, value in (
        ("SETTEMP", frame.settemp),
        ("GAIN", frame.gain),
        ("OFFSET", frame.offset),
        ("READOUTM", frame.readoutmode),
    ):
        if value not in (None, ""):
            parts.append(f"{key}_{_fmt(value)}")
    return "_".join(parts)


def calibration_dest(
    library_dir: str | os.PathLike[str], frame: Frame, ext: str | None = None
) -> Path:
    """Raw calibration frame → ``_Calibration/<TYPE>/<optic>+<camera>/DATE_<d>/<group>/<file>``."""
    return (
        calibration_input_dir(library_dir)
        / (frame.imagetyp or "UNKNOWN")
        / safe_component("+".join(str(v) for v in (frame.optic, frame.camera) if v))
        / f"DATE_{frame.date}"
        / calibration_group(frame)
        / frame_file_name(frame, ext)
    )


def master_file_name(frame: Frame, ext: str = ".xisf") -> str:
    """``masterDark_EXPOSURE_300.00_SETTEMP_-10.00_GAIN_100_OFFSET_50[_READOUTM_<r>].xisf`` etc.

    Flats: ``masterFlat_FILTER_<f>_SETTEMP_..`` (exposure left out); bias: no exposure either."""
    kind = (frame.imagetyp or "").upper().replace("MASTER ", "")
    name = "master" + kind.capitalize()
    props: list[tuple[str, str | None]] = []
    if kind == "FLAT":
        props.append(("FILTER", frame.filter))
    if kind == "DARK":
        props.append(("EXPOSURE", frame.exposure))
    props += [
        ("SETTEMP", frame.settemp),
        ("GAIN", frame.gain),
        ("OFFSET", frame.offset),
        ("READOUTM", frame.readoutmode),
    ]
    for key, value in props:
        if value not in (None, ""):
            name += f"_{key}_{_fmt(value)}"
    return name + ext


def master_dest(
    library_dir: str | os.PathLike[str],
    frame: Frame,
    ext: str = ".xisf",
    subdir: str | None = None,
) -> Path:
    """Where a master of ``frame.imagetyp`` (``MASTER BIAS|DARK|FLAT``) lives in the library:
    ``_Dark Library/[<subdir>/]<camera>/<name>``, flats under ``_Flat Stash/[<subdir>/]<camera>/<optic>/DATE_<d>/``."""
    base = library_dir_for(library_dir, frame.imagetyp or "")
    if subdir:
        base = base / subdir
    base = base / safe_component(frame.camera or "UNKNOWN")
    if (frame.imagetyp or "").upper() == "MASTER FLAT":
        base = base / safe_component(frame.optic or "UNKNOWN") / f"DATE_{_fmt(frame.date)}"
    return base / master_file_name(frame, ext)


def blink_to_data(path: str | os.PathLike[str]) -> Path:
    """The same path with the ``10_Blink`` component replaced by ``20_Data``."""
    parts = list(Path(path).parts)
    try:
        i = parts.index(BLINK_DIR)
    except ValueError:
        raise ValueError(f"not inside {BLINK_DIR}: {path}") from None
    parts[i] = DATA_DIR
    return Path(*parts)


def reject_dest(
    library_dir: str | os.PathLike[str], rig: str, path: str | os.PathLike[str]
) -> Path:
    """``<rig>/_Reject/<path relative to the rig folder>``."""
    rel = Path(path).resolve().relative_to(rig_dir(library_dir, rig).resolve())
    return reject_dir(library_dir, rig) / rel


def is_skipped_dir(name: str) -> bool:
    """Folders never scanned for frames: ``_...`` (libraries, rejects, stash) and hidden ones."""
    return name.startswith("_") or name.startswith(".")
