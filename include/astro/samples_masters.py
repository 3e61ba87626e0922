"""Deterministic sample data for the calibration-masters and catalog pipelines.

* :func:`make_calibration_sets` - raw BIAS/DARK/FLAT frames of three rigs in the calibration input
  area (``_Calibration/<TYPE>/<optic>+<camera>/DATE_<night>/<group>/<datetime>...fits``, the layout
  of :mod:`include.astro.layout`), with NINA-style headers and realistic-looking pixels (offset
  level + read noise, dark current + hot pixels, vignetted flats).
* :func:`make_data_tree` - an accepted-lights ``20_Data`` tree for the same rigs (tiny frames: the
  catalog reads names and headers only).

Everything is a pure function of the arguments (seeded RNG, fixed timestamps), so tests can assert
exact results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SampleRig:
    optic: str
    fratio: str
    camera: str
    gain: str
    offset: str | None
    settemp: str | None
    readoutmode: str | None
    filters: tuple[str, ...]
    latitude: float
    longitude: float

    @property
    def name(self) -> str:
        return f"{self.optic}@f{self.fratio}+{self.camera}"


RIGS = (
    SampleRig(
        "C8E",
        "10.0",
        "ZWO ASI2600MM Pro",
        "100",
        "50",
        "-10.00",
        None,
        ("L", "R", "G", "B"),
        35.6,
        -78.8,
    ),
    SampleRig("SQA55", "5.3", "ATR585M", "150", "30", "-5.00", "1", ("H", "O", "S"), 35.8, -79.0),
    SampleRig("DWARFIII", "4.3", "DWARFIII", "80", None, None, None, ("UVIR",), 35.6, -78.8),
)
NIGHT = "2026-11-20"


def _write(path: Path, data: np.ndarray, cards: dict[str, Any]) -> None:
    from astropy.io import fits

    path.parent.mkdir(parents=True, exist_ok=True)
    hdu = fits.PrimaryHDU(data)
    for k, v in cards.items():
        if v is not None:
            hdu.header[k] = v
    hdu.writeto(path, overwrite=True)


def _cards(rig: SampleRig, imagetyp: str, when: datetime, **extra: Any) -> dict[str, Any]:
    cards: dict[str, Any] = {
        "IMAGETYP": imagetyp,
        "INSTRUME": rig.camera,
        "TELESCOP": rig.optic,
        "FOCRATIO": float(rig.fratio),
        "GAIN": int(rig.gain),
        "DATE-OBS": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
    }
    if rig.offset is not None:
        cards["OFFSET"] = int(rig.offset)
    if rig.settemp is not None:
        cards["SET-TEMP"] = float(rig.settemp)
    if rig.readoutmode is not None:
        cards["READOUTM"] = rig.readoutmode
    cards.update(extra)
    return cards


def _frame_path(root: Path, rig: SampleRig, imagetyp: str, when: datetime, **props: Any) -> Path:
    from include.astro.frames import Frame
    from include.astro.layout import calibration_dest

    frame = Frame(
        path="x.fits",
        imagetyp=imagetyp,
        optic=rig.optic,
        fratio=rig.fratio,
        camera=rig.camera,
        date=props.get("date", NIGHT),
        datetime=when.strftime("%Y-%m-%dT%H-%M-%S"),
        filter=props.get("filter"),
        exposure=props.get("exposure"),
        settemp=rig.settemp,
        gain=rig.gain,
        offset=rig.offset,
        readoutmode=rig.readoutmode,
    )
    return calibration_dest(root, frame, ".fits")


def make_calibration_sets(
    library_dir: str | os.PathLike[str],
    *,
    shape: tuple[int, int] = (48, 64),
    n_frames: int = 5,
    seed: int = 5,
    rigs: tuple[SampleRig, ...] = RIGS,
    dark_exposures: tuple[str, ...] = ("300.00",),
) -> dict[str, list[str]]:
    """Write raw calibration frames for ``rigs`` under ``<library_dir>/_Calibration``.

    Per rig: one BIAS set, one DARK set per exposure, one FLAT set per filter (first two filters).
    Returns ``{"<TYPE>|<rig>|<filter or exposure>": [paths...]}``.
    """
    rng = np.random.default_rng(seed)
    root = Path(library_dir)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    vignette = 1.0 - 0.3 * (((yy - h / 2) / h) ** 2 + ((xx - w / 2) / w) ** 2)
    out: dict[str, list[str]] = {}
    start = datetime.fromisoformat(f"{NIGHT}T23:00:00")
    for ri, rig in enumerate(rigs):
        level = 500 + 100 * ri

        def emit(
            key: str,
            imagetyp: str,
            i: int,
            data: np.ndarray,
            ri: int = ri,
            rig: SampleRig = rig,
            **props: Any,
        ) -> None:
            when = start + timedelta(hours=ri, minutes=len(out.get(key, [])) + 1, seconds=i)
            path = _frame_path(root, rig, imagetyp, when, **props)
            extra: dict[str, Any] = {}
            if props.get("exposure") is not None:
                extra["EXPOSURE"] = float(props["exposure"])
                extra["EXPTIME"] = float(props["exposure"])
            if props.get("filter") is not None:
                extra["FILTER"] = props["filter"]
            _write(path, data, _cards(rig, imagetyp, when, **extra))
            out.setdefault(key, []).append(str(path))

        for i in range(n_frames):
            bias = level + rng.normal(0, 8, shape)
            emit(
                f"BIAS|{rig.name}|",
                "BIAS",
                i,
                np.clip(bias, 0, 65535).astype(np.uint16),
                exposure="0.00",
            )
        hot = rng.random(shape) < 0.01
        for exp in dark_exposures:
            for i in range(n_frames):
                dark = level + 0.02 * float(exp) + hot * 3000 + rng.normal(0, 8, shape)
                emit(
                    f"DARK|{rig.name}|{exp}",
                    "DARK",
                    i,
                    np.clip(dark, 0, 65535).astype(np.uint16),
                    exposure=exp,
                )
        for fi, filt in enumerate(rig.filters[:2]):
            for i in range(n_frames):
                flat = level + (20000 + 3000 * fi + 500 * i) * vignette + rng.normal(0, 30, shape)
                emit(
                    f"FLAT|{rig.name}|{filt}",
                    "FLAT",
                    i,
                    np.clip(flat, 0, 65535).astype(np.uint16),
                    filter=filt,
                    exposure="1.50",
                )
    return out


@dataclass(frozen=True)
class LightSet:
    rig: str
    target: str
    date: str
    filter: str
    exposure: str
    panel: str | None
    count: int
    hfrs: tuple[float, ...]


DEFAULT_LIGHT_PLAN: tuple[tuple[int, str, str, str, str, str | None, int], ...] = (
    # rig index, target, night, filter, exposure, panel, count
    (0, "M 31", "2026-11-18", "L", "60.00", "1", 4),
    (0, "M 31", "2026-11-18", "R", "60.00", "1", 3),
    (0, "M 31", "2026-11-19", "L", "60.00", "1", 2),
    (0, "M 31", "2026-11-19", "L", "60.00", "2", 3),
    (1, "NGC 7000", "2026-11-18", "H", "300.00", None, 5),
    (1, "NGC 7000", "2026-11-19", "O", "300.00", None, 2),
    (2, "M 45", "2026-11-19", "UVIR", "15.00", None, 25),
)

# profile ids of include/astro/equipment.yaml
PROFILE_IDS = {
    "C8E@f10.0+ZWO ASI2600MM Pro": "9f1c2a6e-2b1d-4c51-9a53-1f0e8a2c0001",
    "SQA55@f5.3+ATR585M": "9f1c2a6e-2b1d-4c51-9a53-1f0e8a2c0002",
    "DWARFIII@f4.3+DWARFIII": "9f1c2a6e-2b1d-4c51-9a53-1f0e8a2c0003",
}


def sample_scheduler_plans() -> list[Any]:
    """Target Scheduler exposure plans for the targets of :data:`DEFAULT_LIGHT_PLAN`."""
    from include.astro.scheduler import PlanSpec

    c8, sqa, dw = PROFILE_IDS.values()
    return [
        # exposure <= 0: the template default applies
        PlanSpec(c8, "M 31 mosaic", "M 31 Panel 1", "L", 6, -1, 60.0, ra=0.71, dec=41.27),
        PlanSpec(c8, "M 31 mosaic", "M 31 Panel 1", "R", 10, 60, 60.0, ra=0.71, dec=41.27),
        PlanSpec(c8, "M 31 mosaic", "M 31 Panel 1", "G", 10, 60, 60.0, ra=0.71, dec=41.27),
        PlanSpec(c8, "M 31 mosaic", "M 31 Panel 2", "L", 3, 60, 60.0, ra=0.75, dec=41.6),
        PlanSpec(c8, "M 31 mosaic", "M 31 Panel 2", "R", 5, 120, 60.0, ra=0.75, dec=41.6),
        PlanSpec(sqa, "NGC 7000", "NGC 7000", "Ha", 10, -1, 300.0, ra=20.98, dec=44.3),
        PlanSpec(sqa, "NGC 7000", "NGC 7000", "O", 10, 300, 300.0, ra=20.98, dec=44.3),
        PlanSpec(sqa, "NGC 7000", "NGC 7000", "S", 10, 300, 300.0, accepted=3, ra=20.98, dec=44.3),
        PlanSpec(dw, "M 45", "M 45", "UVIR", 26, 15, 15.0, ra=3.79, dec=24.1),
        PlanSpec("other-profile-guid", "Unrelated", "M 42", "L", 10, 60, 60.0, accepted=4),
    ]


def make_data_tree(
    library_dir: str | os.PathLike[str],
    *,
    plan: tuple[tuple[int, str, str, str, str, str | None, int], ...] = DEFAULT_LIGHT_PLAN,
    rigs: tuple[SampleRig, ...] = RIGS,
    seed: int = 7,
) -> list[LightSet]:
    """Write accepted lights into ``<rig>/20_Data/<target>/DATE_<d>/FILTER_<f>_EXP_<e>[_PANEL_<p>]/``
    (plus the ``accept`` folder the lights pipeline creates). Frames are 8x8 uint16."""
    from include.astro.frames import Frame
    from include.astro.layout import DATA_DIR, light_rel_path

    rng = np.random.default_rng(seed)
    root = Path(library_dir)
    sets: list[LightSet] = []
    for ri, target, night, filt, exp, panel, count in plan:
        rig = rigs[ri]
        hfrs: list[float] = []
        for i in range(count):
            when = datetime.fromisoformat(f"{night}T22:00:00") + timedelta(
                minutes=7 * i + (60 if panel == "2" else 0)
            )
            hfr = round(2.0 + ri * 0.5 + 0.1 * i, 2)
            hfrs.append(hfr)
            frame = Frame(
                path="x.fits",
                imagetyp="LIGHT",
                optic=rig.optic,
                fratio=rig.fratio,
                camera=rig.camera,
                target=target,
                date=night,
                datetime=when.strftime("%Y-%m-%dT%H-%M-%S"),
                filter=filt,
                exposure=exp,
                settemp=rig.settemp,
                gain=rig.gain,
                offset=rig.offset,
                hfr=hfr,
                stars=300 + i,
                rmsac=0.5,
                temp=rig.settemp,
                panel=panel,
            )
            path = root / rig.name / DATA_DIR / light_rel_path(frame, ".fits")
            obj = f"{target} Panel {panel}" if panel else target
            cards = _cards(
                rig,
                "LIGHT",
                when,
                OBJECT=obj,
                FILTER=filt,
                EXPOSURE=float(exp),
                EXPTIME=float(exp),
                SITELAT=rig.latitude,
                SITELONG=rig.longitude,
                HFR=hfr,
            )
            _write(path, rng.integers(0, 4000, (8, 8), dtype=np.uint16), cards)
            (root / rig.name / DATA_DIR / target / "accept").mkdir(parents=True, exist_ok=True)
        sets.append(LightSet(rig.name, target, night, filt, exp, panel, count, tuple(hfrs)))
    return sets


def generate_demo(dest: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """Demo data for the masters and catalog DAGs under ``dest``; returns their trigger confs.

    (The domain's ``include.astro.samples.generate_demo`` can merge these confs with its own.)"""
    from include.astro.scheduler import create_scheduler_db

    root = Path(dest)
    masters_lib = root / "masters_library"
    catalog_lib = root / "catalog_library"
    if not (masters_lib / "_Calibration").exists():
        make_calibration_sets(masters_lib, shape=(96, 128))
    if not catalog_lib.exists():
        make_data_tree(catalog_lib)
    sched = root / "schedulerdb.sqlite"
    if not sched.exists():
        create_scheduler_db(sched, sample_scheduler_plans())
    return {
        "astro_setup": {},
        "astro_calibration_masters": {"library_dir": str(masters_lib)},
        "astro_catalog_report": {
            "library_dir": str(catalog_lib),
            "scheduler_db": str(sched),
            "report_dir": str(root / "reports"),
        },
    }


if __name__ == "__main__":  # python -m include.astro.samples_masters DEST
    import json
    import sys

    print(
        json.dumps(
            generate_demo(sys.argv[1] if len(sys.argv) > 1 else ".data/samples/astro"), indent=2
        )
    )
