"""Import of masters made with WBPP/Siril (issue 15.9): same library paths as our own masters,
verified copies, per-item errors, WBPP temp cleanup only after every master is verified."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from include.astro.master_import import cleanup_wbpp, import_masters
from include.astro.matching import library_path
from include.astro.rigs import load_rigs
from include.astro.samples import write_fits

CAM = "ZWO ASI2600MM Pro"
HDR = {"INSTRUME": CAM, "GAIN": 100, "OFFSET": 50, "SET-TEMP": -10.0}


def _wbpp(root: Path) -> Path:
    w = root / "WBPP"
    px = np.full((16, 16), 1000.0)
    write_fits(
        w / "master/masterBias_BIN-1_6248x4176_CAMERA.fits", px, {"IMAGETYP": "Master Bias", **HDR}
    )
    write_fits(
        w / "master/masterDark_BIN-1_EXPOSURE-300.00s.fits",
        px,
        {"IMAGETYP": "Master Dark", "EXPTIME": 300.0, **HDR},
    )
    write_fits(
        w / "master/masterFlat_BIN-1_FILTER-Ha.fits",
        px,
        {
            "IMAGETYP": "Master Flat",
            "FILTER": "Ha",
            "TELESCOP": "C8E",
            "DATE-OBS": "2026-11-21T06:00:00",
            **HDR,
        },
    )
    write_fits(w / "calibrated/light_c.fits", px, {"IMAGETYP": "Light Frame"})
    (w / "registered").mkdir()
    (w / "logs").mkdir()
    return w


def test_wbpp_masters_land_where_our_masters_would(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    w = _wbpp(tmp_path)
    out = import_masters(w, lib, load_rigs())
    assert [o.status for o in out] == ["copied"] * 3 and all(o.verified for o in out)
    dark = next(o for o in out if o.imagetyp == "DARK")
    props = {
        "camera": CAM,
        "gain": "100",
        "offset": "50",
        "settemp": "-10.00",
        "exposure": "300.00",
    }
    assert Path(dark.dest) == library_path(lib, "DARK", props)
    # rerun: identical files count as present, nothing is overwritten
    assert {o.status for o in import_masters(w, lib, load_rigs())} == {"already_present"}
    res = cleanup_wbpp(w, out)
    assert sorted(Path(p).name for p in res["removed"]) == ["calibrated", "registered"]
    assert (w / "master").is_dir() and (w / "logs").is_dir()


def test_unverified_masters_keep_the_wbpp_folders(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    w = _wbpp(tmp_path)
    write_fits(
        w / "master/masterFlat_nofilter.fits", np.ones((4, 4)), {"IMAGETYP": "Master Flat", **HDR}
    )
    out = import_masters(w, lib, load_rigs())
    bad = [o for o in out if o.status == "error"]
    assert len(bad) == 1 and bad[0].error == "missing filter"
    res = cleanup_wbpp(w, out)
    assert res["removed"] == [] and (w / "calibrated").is_dir()
    assert res["kept_because"] == "1 master(s) not verified"


def test_siril_names(tmp_path: Path) -> None:
    s = tmp_path / "siril"
    write_fits(
        s / "dark_stacked.fit", np.ones((4, 4)), {"IMAGETYP": "Dark Frame", "EXPTIME": 120.0, **HDR}
    )
    [o] = import_masters(s, tmp_path / "lib", load_rigs())
    assert o.imagetyp == "DARK" and o.verified and o.dest.endswith(".fits")
