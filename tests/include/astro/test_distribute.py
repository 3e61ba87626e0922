"""Calibration matching per rig property list; run summary files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from include.astro.distribute import distribute_rig, find, load_masters
from include.astro.frames import Frame
from include.astro.moves import prepare_raw
from include.astro.rigs import load_rigs
from include.astro.samples import C8E, DWARF, SQA55, generate_library, generate_raw_tree, write_xisf
from include.astro.summary import build_summary, to_markdown, write_summary

HA = f"{C8E}/10_Blink/NGC 7000/DATE_2026-11-20/FILTER_H_EXP_300.00"
SQ = f"{SQA55}/10_Blink/M 42/DATE_2026-11-20/FILTER_L_EXP_120.00_PANEL_1"
DW = f"{DWARF}/10_Blink/M 45/DATE_2026-11-20/FILTER_RGB_EXP_15.00"


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    generate_raw_tree(tmp_path / "raw")
    generate_library(tmp_path / "lib")
    prepare_raw(tmp_path / "raw", tmp_path / "lib", load_rigs())
    return tmp_path / "lib"


def by_dir(res: dict) -> dict[str, dict]:
    return {d["directory"]: d for d in res["directories"]}


def test_matching_rules() -> None:
    light = Frame(
        path="l", imagetyp="LIGHT", camera="C", exposure="300.00", settemp="-10.00", gain="100"
    )
    dark = Frame(path="d", imagetyp="MASTER DARK", camera="C", exposure="300.00", settemp="-10.00")
    other = Frame(path="o", imagetyp="MASTER DARK", camera="C", exposure="180.00")
    flat = Frame(path="f", imagetyp="MASTER FLAT", camera="C")
    props = ("exposure", "settemp", "camera", "gain", "offset", "imagetyp")
    # gain/offset missing on the master match; the type must be MASTER DARK
    assert find(light, [dark, other, flat], props, "MASTER DARK") == [dark]
    assert find(light, [other], props, "MASTER DARK") == []


def test_distribute_all_rigs(lib: Path) -> None:
    cfg = load_rigs()
    c8 = by_dir(distribute_rig(lib, C8E, cfg))
    assert sorted(Path(p).name for p in c8[HA]["copied"]) == [
        "masterDark_EXPOSURE_300.00_SETTEMP_-10.00_GAIN_100_OFFSET_50.xisf",
        "masterFlat_FILTER_H_SETTEMP_-10.00_GAIN_100_OFFSET_50.xisf",
    ]
    assert c8[HA]["complete"] and "bias" not in c8[HA]["needed"]  # dark exposure = light exposure
    sq = by_dir(distribute_rig(lib, SQA55, cfg))[SQ]
    # the SQA55 dark has no exposure (scaled dark): a bias is needed and matched with readout mode
    assert sorted(sq["needed"]) == ["bias", "dark", "flat"] and sq["complete"]
    assert sq["needed"]["bias"].endswith(
        "masterBias_SETTEMP_-5.00_GAIN_100_OFFSET_20_READOUTM_Normal.xisf"
    )
    dw = by_dir(distribute_rig(lib, DWARF, cfg))[DW]
    assert dw["missing"] == ["flat"] and not dw["complete"]
    # rerun: everything already present, nothing copied twice
    again = by_dir(distribute_rig(lib, C8E, cfg))[HA]
    assert again["copied"] == [] and len(again["present"]) == 2


def test_ambiguous_and_conflicting_masters(lib: Path) -> None:
    cfg = load_rigs()
    # a second dark without exposure also matches the C8E lights -> error, nothing copied for it
    write_xisf(
        lib / "_Dark Library/ZWO ASI2600MM Pro/masterDark_SETTEMP_-10.00_GAIN_100_OFFSET_50.xisf",
        np.zeros((4, 4), "f4"),
        {"IMAGETYP": "Master Dark", "INSTRUME": "ZWO ASI2600MM Pro"},
    )
    (lib / "_Dark Library/broken.xisf").write_bytes(b"XISF0100junk")
    res = distribute_rig(lib, C8E, cfg)
    ha = by_dir(res)[HA]
    assert ha["errors"][0].startswith(
        "2 dark masters match: _Dark Library/ZWO ASI2600MM Pro/masterDark_"
    )
    assert not ha["complete"] and all("masterDark" not in c for c in ha["copied"])
    assert res["master_errors"] == [
        {"src": "_Dark Library/broken.xisf", "reason": "truncated XISF header"}
    ]
    # a different file with the master's name in the light dir is never overwritten
    (
        lib / SQ / "masterFlat_FILTER_L_SETTEMP_-5.00_GAIN_100_OFFSET_20_READOUTM_Normal.xisf"
    ).write_bytes(b"x")
    sq = by_dir(distribute_rig(lib, SQA55, cfg))[SQ]
    assert any("already in the directory" in e for e in sq["errors"]) and not sq["complete"]


def test_load_masters_restricted_to_subdir(lib: Path) -> None:
    masters, errors = load_masters(lib, load_rigs(), "DWARFIII")
    assert [Path(m.path).name for m in masters] == ["masterDark_EXPOSURE_15.00_GAIN_60.xisf"]
    assert errors == []


def test_summary_files(tmp_path: Path) -> None:
    s = build_summary(
        run_key="manual__2026-11-21T09:00:00+00:00",
        prepare={
            "items": [{"src": "bad.fits", "status": "error", "reason": "not a FITS file"}],
            "counts": {"light_moved": 3, "calibration_moved": 2, "error": 1},
        },
        culls=[
            {"rig": "R", "pass_name": "moderate", "auto_rejected": [{"src": "R/10_Blink/a.fits"}]}
        ],
        blink=[{"rig": "R", "rejected": [{"src": "R/10_Blink/b.fits"}], "errors": []}],
        distribute=[
            {
                "rig": "R",
                "directories": [
                    {
                        "directory": "R/10_Blink/d",
                        "copied": ["R/10_Blink/d/m.xisf"],
                        "missing": ["flat"],
                        "errors": [],
                    }
                ],
            }
        ],
        promote=[
            {"promoted": [], "held": [{"directory": "R/10_Blink/d", "reason": "MISSING flat"}]}
        ],
    )
    assert s["counts"] == {
        "lights_moved": 3,
        "calibration_moved": 2,
        "culled": 1,
        "rejected_by_review": 1,
        "masters_copied": 1,
        "missing_masters": 1,
        "promoted_directories": 0,
        "errors": 1,
    }
    paths = write_summary(tmp_path, s)
    assert Path(paths["json"]).name == "manual__2026-11-21T09_00_00+00_00.json"
    assert json.loads(Path(paths["json"]).read_text()) == s
    md = Path(paths["markdown"]).read_text()
    assert "- MISSING FLAT: `R/10_Blink/d`" in md and md == to_markdown(s)
