"""Reports: AstroBin CSV, have/want/need totals, HTML with plots - from a real catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from include.astro.catalog import list_rigs, scan_rig, upsert_rig
from include.astro.equipment import apply_equipment, load_equipment
from include.astro.reports import astrobin_csv, catalog_rows, totals, write_reports
from include.astro.samples_masters import make_data_tree, sample_scheduler_plans
from include.astro.scheduler import create_scheduler_db, desired_hours
from include.common.db import make_engine, session_scope
from tests.include.astro.test_catalog import clear_catalog


@pytest.fixture
def rows(any_app_db_url: str, tmp_path: Path) -> list[dict]:
    clear_catalog(any_app_db_url)
    engine = make_engine(any_app_db_url)
    make_data_tree(tmp_path / "lib")
    eq = load_equipment()
    with session_scope(engine) as s:
        apply_equipment(s, eq)
        for rig in list_rigs(tmp_path / "lib"):
            upsert_rig(s, scan_rig(tmp_path / "lib", rig), eq)
    with session_scope(engine) as s:
        out = catalog_rows(s)
    clear_catalog(any_app_db_url)
    return out


def test_astrobin_csv_and_totals(rows: list[dict]) -> None:
    m31 = [r for r in rows if r["target"] == "M 31"]
    assert astrobin_csv(m31) == (
        "date,filter,number,duration,fNumber,bortle\n"
        "2026-11-18,2625,4,60.00,10.0,6\n"
        "2026-11-18,2627,3,60.00,10.0,6\n"
        "2026-11-19,2625,5,60.00,10.0,6\n"  # panels 1 and 2 summed
    )
    want = {"L Panel 1": 0.1, "R Panel 1": 1.0, "G Panel 1": 0.5}
    t = totals(m31, want)
    assert t["have"] == {
        "uom": "hours",
        "L Panel 1": 0.1,
        "L Panel 2": 0.05,
        "R Panel 1": 0.05,
        "total": 0.2,
    }
    assert t["need"] == {
        "uom": "hours",
        "G Panel 1": 0.5,
        "L Panel 1": 0.0,
        "R Panel 1": 0.95,
        "total": 1.45,
    }
    assert t["want"]["total"] == 1.6


def test_write_reports(rows: list[dict], tmp_path: Path) -> None:
    db = create_scheduler_db(tmp_path / "ts.sqlite", sample_scheduler_plans())
    out = write_reports(rows, tmp_path / "report", desired=desired_hours(db))
    root = Path(out["report_dir"])
    assert out["targets"] == 3
    assert sorted(out["files"]) == sorted(
        [
            "C8E@f10.0+ZWO_ASI2600MM_Pro/M_31/astrobin.csv",
            "C8E@f10.0+ZWO_ASI2600MM_Pro/M_31/totals.json",
            "DWARFIII@f4.3+DWARFIII/M_45/astrobin.csv",
            "DWARFIII@f4.3+DWARFIII/M_45/totals.json",
            "SQA55@f5.3+ATR585M/NGC_7000/astrobin.csv",
            "SQA55@f5.3+ATR585M/NGC_7000/totals.json",
            "hours_over_time.png",
            "hfr_per_rig.png",
            "index.html",
        ]
    )
    ngc = json.loads((root / "SQA55@f5.3+ATR585M/NGC_7000/totals.json").read_text())
    # have: H 5x300 s, O 2x300 s; want: 10x300 s each of H, O, S
    assert ngc["have"] == {"uom": "hours", "H": 0.42, "O": 0.17, "total": 0.58}
    assert ngc["want"] == {"uom": "hours", "H": 0.83, "O": 0.83, "S": 0.83, "total": 2.5}
    assert ngc["need"] == {"uom": "hours", "H": 0.42, "O": 0.67, "S": 0.83, "total": 1.92}
    m45 = (root / "DWARFIII@f4.3+DWARFIII/M_45/astrobin.csv").read_text().splitlines()
    assert m45 == ["date,filter,number,duration,fNumber,bortle", "2026-11-19,2411,25,15.00,4.3,6"]
    for png in ("hours_over_time.png", "hfr_per_rig.png"):
        assert Image.open(root / png).size == (800, 450)
    page = (root / "index.html").read_text()
    assert "<img src='hours_over_time.png'" in page and "<img src='hfr_per_rig.png'" in page
    assert "NGC 7000" in page and "href='SQA55@f5.3+ATR585M/NGC_7000/astrobin.csv'" in page
    # rerun: byte-identical outputs
    before = {f: (root / f).read_bytes() for f in out["files"]}
    write_reports(rows, root, desired=desired_hours(db))
    assert {f: (root / f).read_bytes() for f in out["files"]} == before
