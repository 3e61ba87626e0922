"""Catalog of accepted light sets: scan a rig's ``20_Data`` tree, upsert ``astro_accepted_data``.

:func:`scan_rig` reads every light below ``<library>/<rig>/20_Data`` with the lights pipeline's parser
(names first, then the header) and groups them into light sets (target, night, filter, exposure,
panel, directory) with their count, integration time, HFR values and site coordinates; unreadable
frames are per-item errors. :func:`upsert_rig` writes the sets of one rig in one transaction: the
reference rows (camera, optic, target, filter, location) are get-or-create upserts, the sets are
upserts on the catalog's unique key, and rows of directories that no longer hold lights (moved on or
deleted) are removed - so a rerun converges to the tree, never duplicates.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from include.astro.equipment import (
    Equipment,
    Location,
    camera_id,
    filter_id,
    location_id,
    nearest_location,
    optic_id,
    target_id,
)
from include.astro.models import ACCEPTED_KEY, AstroAcceptedData
from include.common.db import upsert

FRAME_SUFFIXES = (".fits", ".fit", ".fts", ".xisf")


@dataclass
class LightSetRow:
    rig: str
    optic: str
    fratio: str
    camera: str
    target: str
    date: str
    filter: str
    exposure: str
    panel: str
    directory: str
    count: int = 0
    hfrs: list[float] = field(default_factory=list)
    pixel: list[dict[str, Any]] = field(
        default_factory=list
    )  # measured metrics (include.astro.metrics)
    latitude: float | None = None
    longitude: float | None = None

    @property
    def integration_seconds(self) -> float:
        return self.count * float(self.exposure)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RigScan:
    rig: str
    sets: list[LightSetRow]
    errors: list[dict[str, str]]
    frames: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "rig": self.rig,
            "sets": [s.to_dict() for s in self.sets],
            "errors": list(self.errors),
            "frames": self.frames,
        }


def list_rigs(library_dir: str | os.PathLike[str]) -> list[str]:
    """Rig folders (``<optic>@f<ratio>+<camera>``) that have a ``20_Data`` folder."""
    from include.astro.layout import DATA_DIR

    root = Path(library_dir)
    if not root.is_dir():
        return []
    return sorted(
        d.name
        for d in root.iterdir()
        if d.is_dir() and not d.name.startswith(("_", ".")) and "@f" in d.name
        if (d / DATA_DIR).is_dir()
    )


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _pixel_medians(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Medians of the measured star count, HFR, FWHM, eccentricity and background of a set."""
    if not rows:
        return None
    out: dict[str, Any] = {"frames": len(rows)}
    for k in ("stars", "hfr", "fwhm", "eccentricity", "background"):
        vals = [r[k] for r in rows if r.get(k) is not None]
        out[k] = statistics.median(vals) if vals else None
    return out


def scan_rig(library_dir: str | os.PathLike[str], rig: str) -> RigScan:
    from include.astro.frames import FrameError, parse_frame
    from include.astro.metrics_store import MetricsStore

    metrics = MetricsStore(library_dir, rig)
    from include.astro.headers import HeaderError, read_header
    from include.astro.layout import DATA_DIR, is_skipped_dir

    root = Path(library_dir)
    data_root = root / rig / DATA_DIR
    sets: dict[tuple[str, ...], LightSetRow] = {}
    errors: list[dict[str, str]] = []
    n = 0
    for dirpath, dirnames, filenames in os.walk(data_root):
        dirnames[:] = sorted(d for d in dirnames if not is_skipped_dir(d))
        for name in sorted(filenames):
            if not name.lower().endswith(FRAME_SUFFIXES) or name.startswith("."):
                continue
            path = Path(dirpath) / name
            try:
                frame = parse_frame(path, root)
                cards = read_header(path, check_size=False)
            except (FrameError, HeaderError) as exc:
                errors.append({"path": str(path), "reason": getattr(exc, "reason", str(exc))})
                continue
            except OSError as exc:
                errors.append({"path": str(path), "reason": f"cannot read: {exc}"})
                continue
            if not frame.is_light:
                continue
            missing = [
                k
                for k in ("optic", "fratio", "camera", "target", "date", "exposure")
                if not frame.get(k)
            ]
            if missing:
                errors.append({"path": str(path), "reason": "missing " + ", ".join(missing)})
                continue
            n += 1
            key = (
                frame.target,
                frame.date,
                frame.filter or "RGB",
                frame.exposure,
                frame.panel or "",
                str(path.parent),
            )
            row = sets.get(key)
            if row is None:
                row = sets[key] = LightSetRow(
                    rig=rig,
                    optic=frame.optic,
                    fratio=frame.fratio,
                    camera=frame.camera,
                    target=frame.target,
                    date=frame.date,
                    filter=frame.filter or "RGB",
                    exposure=frame.exposure,
                    panel=frame.panel or "",
                    directory=str(path.parent),
                    latitude=_float(cards.get("SITELAT")),
                    longitude=_float(cards.get("SITELONG")),
                )
            row.count += 1
            hfr = frame.hfr
            m = metrics.get(path, measure=False)  # measured by the lights pipeline, if any
            if m is not None:
                row.pixel.append(m.to_dict())
            if hfr is None:  # no HFR in NINA's name: the one measured from the pixels
                hfr = None if m is None else m.hfr
            if hfr is not None:
                row.hfrs.append(float(hfr))
    ordered = sorted(
        sets.values(), key=lambda r: (r.target, r.date, r.filter, r.panel, r.directory)
    )
    return RigScan(rig, ordered, errors, n)


def _location_of(eq: Equipment, row: LightSetRow) -> Location:
    if row.latitude is not None and row.longitude is not None:
        loc = nearest_location(eq.locations, row.latitude, row.longitude, eq.location_match_degrees)
        if loc is None:  # an unknown site: registered under its rounded coordinates
            loc = Location(
                f"{row.latitude:.2f},{row.longitude:.2f}",
                round(row.latitude, 2),
                round(row.longitude, 2),
            )
        return loc
    default = next((x for x in eq.locations if x.name == eq.default_location), None)
    return default or Location("unknown", 0.0, 0.0)


def upsert_rig(session: Session, scan: RigScan | dict[str, Any], eq: Equipment) -> dict[str, Any]:
    """Write one rig's light sets; delete this rig's rows whose directory is gone from the scan."""
    if isinstance(scan, dict):
        scan = RigScan(
            scan["rig"],
            [LightSetRow(**s) for s in scan["sets"]],
            list(scan["errors"]),
            int(scan["frames"]),
        )
    # reference rows first, each kind in sorted order: parallel per-rig transactions then take their
    # row locks in the same order (no deadlock between concurrent mapped tasks on PostgreSQL)
    for cam in sorted({s.camera for s in scan.sets}):
        camera_id(session, cam)
    for opt in sorted({(s.optic, s.fratio) for s in scan.sets}):
        optic_id(session, *opt)
    for tgt in sorted({s.target for s in scan.sets}):
        target_id(session, tgt)
    for flt in sorted({s.filter for s in scan.sets}):
        filter_id(session, flt, eq.filters.get(flt))
    locations = {
        loc.name: location_id(session, loc, update=False)
        for loc in sorted({_location_of(eq, s) for s in scan.sets}, key=lambda x: x.name)
    }
    rows = []
    for s in scan.sets:
        rows.append(
            {
                "camera_id": camera_id(session, s.camera),
                "optic_id": optic_id(session, s.optic, s.fratio),
                "location_id": locations[_location_of(eq, s).name],
                "target_id": target_id(session, s.target),
                "filter_id": filter_id(session, s.filter, eq.filters.get(s.filter)),
                "date": s.date,
                "panel_name": s.panel,
                "shutter_time_seconds": s.exposure,
                "raw_directory": s.directory,
                "rig": s.rig,
                "accepted_count": s.count,
                "integration_seconds": s.integration_seconds,
                "hfr_median": statistics.median(s.hfrs) if s.hfrs else None,
                "detail": {"hfr": s.hfrs, "pixel_metrics": _pixel_medians(s.pixel)},
            }
        )
    for chunk in _chunks(rows, 200):
        upsert(session, AstroAcceptedData, chunk, ACCEPTED_KEY)
    keep = {tuple(r[k] for k in ACCEPTED_KEY) for r in rows}
    stale = [
        row.id
        for row in session.execute(
            select(
                AstroAcceptedData.id, *[getattr(AstroAcceptedData, k) for k in ACCEPTED_KEY]
            ).where(AstroAcceptedData.rig == scan.rig)
        )
        if tuple(row[1:]) not in keep
    ]
    if stale:
        session.execute(delete(AstroAcceptedData).where(AstroAcceptedData.id.in_(stale)))
    return {
        "rig": scan.rig,
        "sets": len(rows),
        "frames": scan.frames,
        "deleted_stale": len(stale),
        "errors": scan.errors,
    }


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
