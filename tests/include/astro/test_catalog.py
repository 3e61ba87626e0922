"""Catalog: equipment config, 20_Data scan, per-rig upserts on PostgreSQL and SQLite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from include.astro.catalog import list_rigs, scan_rig, upsert_rig
from include.astro.equipment import apply_equipment, load_equipment, parse_equipment
from include.astro.models import (
    AstroAcceptedData,
    AstroCamera,
    AstroFilter,
    AstroLocation,
    AstroOptic,
    AstroProfile,
    AstroTarget,
)
from include.astro.samples_masters import make_data_tree
from include.common.db import make_engine, session_scope

ASTRO_TABLES = (
    AstroAcceptedData,
    AstroProfile,
    AstroFilter,
    AstroTarget,
    AstroLocation,
    AstroOptic,
    AstroCamera,
)


def clear_catalog(url: str) -> None:
    with session_scope(make_engine(url)) as s:
        for model in ASTRO_TABLES:
            s.execute(delete(model))


@pytest.fixture
def db(any_app_db_url: str):
    clear_catalog(any_app_db_url)
    yield make_engine(any_app_db_url)
    clear_catalog(any_app_db_url)


def test_equipment_config_validates_per_item() -> None:
    eq = parse_equipment(
        {
            "profiles": [
                {
                    "id": "a",
                    "name": "C8E@f10.0+ZWO ASI2600MM Pro",
                    "filters": ["L", "R", "G", "B", "S", "H", "O"],
                },
                {"id": "b", "name": "no rig pattern"},
                {"name": "SQA55@f5.3+ATR585M"},
            ],
            "locations": [
                {"name": "RL", "latitude": 35.6, "longitude": -78.8, "bortle": 6},
                {"name": "Mars", "latitude": 135, "longitude": 0},
                {"name": "Dark", "latitude": 36, "longitude": -78, "bortle": 12},
            ],
            "filters": {"L": 2625, "X": "abc"},
        }
    )
    assert [p.name for p in eq.profiles] == ["C8E@f10.0+ZWO ASI2600MM Pro"]
    assert eq.profiles[0].filter_names == "L,R,G,B,O,S,H"
    assert [loc.name for loc in eq.locations] == ["RL"]
    assert eq.default_location == "RL"
    assert len(eq.errors) == 5
    assert any("profiles[1]" in e and "not '<optic>@f<ratio>+<camera>'" in e for e in eq.errors)
    assert any("profiles[2]" in e and "missing id" in e for e in eq.errors)
    assert any("locations[1]" in e and "out of range" in e for e in eq.errors)
    assert any("locations[2]" in e and "bortle 12" in e for e in eq.errors)
    assert any("filters.X" in e for e in eq.errors)


def test_apply_equipment_idempotent(db) -> None:
    eq = load_equipment()
    with session_scope(db) as s:
        out = apply_equipment(s, eq)
    assert out == {"profiles": 4, "locations": 6, "filters": 11, "errors": []}
    with session_scope(db) as s:
        apply_equipment(s, eq)
        assert s.scalar(select(func.count()).select_from(AstroProfile)) == 4
        assert s.scalar(select(func.count()).select_from(AstroCamera)) == 4
        assert s.scalar(select(AstroFilter.astrobin_id).where(AstroFilter.name == "H")) == 2631
        prof = s.scalar(select(AstroProfile).where(AstroProfile.name == "SQA55@f5.3+ATR585M"))
        assert prof.id.endswith("0002") and prof.filter_names == "H,O,S"


def test_scan_rig_groups_light_sets(tmp_path: Path) -> None:
    make_data_tree(tmp_path)
    (tmp_path / "_Bias Library").mkdir()
    assert list_rigs(tmp_path) == [
        "C8E@f10.0+ZWO ASI2600MM Pro",
        "DWARFIII@f4.3+DWARFIII",
        "SQA55@f5.3+ATR585M",
    ]
    scan = scan_rig(tmp_path, "C8E@f10.0+ZWO ASI2600MM Pro")
    assert scan.errors == [] and scan.frames == 12
    got = [(s.target, s.date, s.filter, s.exposure, s.panel, s.count) for s in scan.sets]
    assert got == [
        ("M 31", "2026-11-18", "L", "60.00", "1", 4),
        ("M 31", "2026-11-18", "R", "60.00", "1", 3),
        ("M 31", "2026-11-19", "L", "60.00", "1", 2),
        ("M 31", "2026-11-19", "L", "60.00", "2", 3),
    ]
    assert scan.sets[0].hfrs == [2.0, 2.1, 2.2, 2.3]
    assert scan.sets[0].latitude == pytest.approx(35.6)
    assert scan.sets[0].integration_seconds == 240.0


def test_scan_reports_bad_frames(tmp_path: Path) -> None:
    make_data_tree(tmp_path)
    rig = "SQA55@f5.3+ATR585M"
    frames = sorted((tmp_path / rig / "20_Data").rglob("*.fits"))
    frames[0].write_bytes(b"garbage")
    scan = scan_rig(tmp_path, rig)
    assert scan.frames == 6
    assert len(scan.errors) == 1 and scan.errors[0]["path"] == str(frames[0])
    assert "FITS" in scan.errors[0]["reason"] or "header" in scan.errors[0]["reason"]


def test_upsert_rig_rerun_and_stale_rows(db, tmp_path: Path) -> None:
    make_data_tree(tmp_path)
    eq = load_equipment()
    with session_scope(db) as s:
        apply_equipment(s, eq)
    rigs = list_rigs(tmp_path)
    for _ in range(2):  # rerun: same rows
        for rig in rigs:
            with session_scope(db) as s:
                upsert_rig(s, scan_rig(tmp_path, rig).to_dict(), eq)
    with session_scope(db) as s:
        assert s.scalar(select(func.count()).select_from(AstroAcceptedData)) == 7
        rows = s.execute(
            select(
                AstroTarget.name,
                AstroFilter.name,
                AstroAcceptedData.date,
                AstroAcceptedData.panel_name,
                AstroAcceptedData.accepted_count,
                AstroAcceptedData.integration_seconds,
                AstroAcceptedData.hfr_median,
                AstroLocation.name,
            )
            .join(AstroTarget, AstroTarget.id == AstroAcceptedData.target_id)
            .join(AstroFilter, AstroFilter.id == AstroAcceptedData.filter_id)
            .join(AstroLocation, AstroLocation.id == AstroAcceptedData.location_id)
            .order_by(
                AstroTarget.name,
                AstroAcceptedData.date,
                AstroFilter.name,
                AstroAcceptedData.panel_name,
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("M 31", "L", "2026-11-18", "1", 4, 240.0, pytest.approx(2.15), "RL"),
        ("M 31", "R", "2026-11-18", "1", 3, 180.0, pytest.approx(2.1), "RL"),
        ("M 31", "L", "2026-11-19", "1", 2, 120.0, pytest.approx(2.05), "RL"),
        ("M 31", "L", "2026-11-19", "2", 3, 180.0, pytest.approx(2.1), "RL"),
        ("M 45", "UVIR", "2026-11-19", "", 25, 375.0, pytest.approx(4.2), "RL"),
        ("NGC 7000", "H", "2026-11-18", "", 5, 1500.0, pytest.approx(2.7), "BW"),
        ("NGC 7000", "O", "2026-11-19", "", 2, 600.0, pytest.approx(2.55), "BW"),
    ]
    # a light set leaves 20_Data (moved on); a frame is added to another: the catalog follows
    rig = "SQA55@f5.3+ATR585M"
    gone = next((tmp_path / rig / "20_Data" / "NGC 7000").glob("DATE_2026-11-19/*"))
    for f in gone.iterdir():
        f.unlink()
    gone.rmdir()
    with session_scope(db) as s:
        out = upsert_rig(s, scan_rig(tmp_path, rig), eq)
    assert out["deleted_stale"] == 1 and out["sets"] == 1
    with session_scope(db) as s:
        assert s.scalar(select(func.count()).select_from(AstroAcceptedData)) == 6


def test_parallel_rig_upserts_on_postgresql(app_db_url: str, tmp_path: Path) -> None:
    """The per-rig tasks run in parallel: concurrent transactions sharing targets and filters."""
    from concurrent.futures import ThreadPoolExecutor

    from include.astro.samples_masters import DEFAULT_LIGHT_PLAN

    clear_catalog(app_db_url)
    engine = make_engine(app_db_url)
    # every rig shoots the same targets with the same filters: maximal overlap of reference rows
    plan = tuple(
        (ri, target, night, "L", exp, panel, 2)
        for ri in range(3)
        for _, target, night, _f, exp, panel, _n in DEFAULT_LIGHT_PLAN[:4]
    )
    make_data_tree(tmp_path, plan=plan)
    eq = load_equipment()
    rigs = list_rigs(tmp_path)
    scans = {rig: scan_rig(tmp_path, rig) for rig in rigs}

    def one(rig: str) -> int:
        with session_scope(engine) as s:
            return upsert_rig(s, scans[rig], eq)["sets"]

    for _ in range(3):
        with ThreadPoolExecutor(max_workers=3) as pool:
            assert sorted(pool.map(one, rigs)) == [3, 3, 3]
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(AstroAcceptedData)) == 9
        assert s.scalar(select(func.count()).select_from(AstroTarget)) == 1
        assert s.scalar(select(func.count()).select_from(AstroFilter)) == 1
    clear_catalog(app_db_url)


def test_measured_pixel_metrics_reach_the_catalog(tmp_path: Path) -> None:
    """Issue 15 deliverable 3: metrics measured by the lights pipeline (cached per rig, keyed by
    file name) are stored with the light set; a frame without HFR in its name gets the measured one."""
    from include.astro.catalog import scan_rig
    from include.astro.metrics_store import MetricsStore
    from include.astro.samples import star_frame, write_fits

    rig = "SQA55@f5.3+ATR585M"
    blink = tmp_path / rig / "10_Blink/M 42/DATE_2026-11-20/FILTER_L_EXP_120.00"
    f = write_fits(
        blink / "2026-11-21T05-00-00_TEMP_-5.00.fits",
        star_frame(1, (200, 260), 40, sigma=2.0),
        {"IMAGETYP": "LIGHT", "INSTRUME": "ATR585M"},
    )
    store = MetricsStore(tmp_path, rig)
    m = store.get(f)
    store.save()
    data = tmp_path / rig / "20_Data/M 42/DATE_2026-11-20/FILTER_L_EXP_120.00"
    data.mkdir(parents=True)
    os.link(f, data / f.name)  # promotion keeps name, size and mtime
    f.unlink()
    scan = scan_rig(tmp_path, rig)
    [row] = scan.sets
    assert row.hfrs == [m.hfr] and row.pixel[0]["stars"] == m.stars
