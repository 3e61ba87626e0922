"""End to end: astro_setup then astro_catalog_report on a generated 20_Data tree of three rigs and a
generated Target Scheduler database (dag.test, real app DB on PostgreSQL and SQLite)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import func, select

from include.astro.models import AstroAcceptedData, AstroLocation, AstroProfile
from include.astro.samples_masters import make_data_tree, sample_scheduler_plans
from include.astro.scheduler import create_scheduler_db
from include.common.db import make_engine, session_scope
from include.common.publish import published_root
from tests.include.astro.test_catalog import clear_catalog

pytestmark = pytest.mark.e2e


def _plans(path: Path) -> dict[int, int]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT Id, accepted FROM exposureplan ORDER BY Id").fetchall())


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_setup_catalog_scheduler_reports(
    run_dag, app_db_url: str, request, tmp_path: Path, dialect: str
) -> None:
    url = request.getfixturevalue("use_sqlite_app_db") if dialect == "sqlite" else app_db_url
    clear_catalog(url)
    engine = make_engine(url)
    # setup with an edited copy of the equipment file: one bad location is skipped, the rest load
    cfg = tmp_path / "equipment.json"
    cfg.write_text(
        json.dumps(
            {
                "profiles": [
                    {
                        "id": "9f1c2a6e-2b1d-4c51-9a53-1f0e8a2c0001",
                        "name": "C8E@f10.0+ZWO ASI2600MM Pro",
                        "filters": ["L", "R", "G", "B"],
                    },
                    {
                        "id": "9f1c2a6e-2b1d-4c51-9a53-1f0e8a2c0002",
                        "name": "SQA55@f5.3+ATR585M",
                        "filters": ["H", "O", "S"],
                    },
                    {
                        "id": "9f1c2a6e-2b1d-4c51-9a53-1f0e8a2c0003",
                        "name": "DWARFIII@f4.3+DWARFIII",
                        "filters": ["UVIR"],
                    },
                ],
                "locations": [
                    {"name": "RL", "latitude": 35.6, "longitude": -78.8, "bortle": 6},
                    {"name": "BW", "latitude": 35.8, "longitude": -79.0, "bortle": 5},
                    {"name": "nowhere", "latitude": 95, "longitude": 0},
                ],
                "filters": {"L": 2625, "R": 2627, "H": 2631, "O": 2630, "S": 2629, "UVIR": 2411},
            }
        )
    )
    res = run_dag("astro_setup", conf={"config": str(cfg)})
    assert res.state == "success", res.task_states
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(AstroProfile)) == 3
        assert s.scalars(select(AstroLocation.name).order_by(AstroLocation.name)).all() == [
            "BW",
            "RL",
        ]

    lib = tmp_path / "library"
    make_data_tree(lib)
    bad = sorted((lib / "C8E@f10.0+ZWO ASI2600MM Pro" / "20_Data").rglob("*.fits"))[0]
    bad.write_bytes(b"not a frame")  # reported, the rest goes on
    sched = Path(
        create_scheduler_db(tmp_path / "ts" / "schedulerdb.sqlite", sample_scheduler_plans())
    )
    report = tmp_path / "report"
    conf = {"library_dir": str(lib), "scheduler_db": str(sched), "report_dir": str(report)}

    res = run_dag("astro_catalog_report", conf=conf)
    assert res.state == "success", res.task_states
    assert sorted(k for k in res.task_states if k.startswith("update_catalog[")) == [
        "update_catalog[0]",
        "update_catalog[1]",
        "update_catalog[2]",
    ]

    def catalog() -> list[tuple]:
        with session_scope(engine) as s:
            return [
                tuple(r)
                for r in s.execute(
                    select(
                        AstroAcceptedData.rig,
                        AstroAcceptedData.date,
                        AstroAcceptedData.panel_name,
                        AstroAcceptedData.shutter_time_seconds,
                        AstroAcceptedData.accepted_count,
                    ).order_by(
                        AstroAcceptedData.rig,
                        AstroAcceptedData.date,
                        AstroAcceptedData.raw_directory,
                    )
                )
            ]

    rows = catalog()
    assert rows == [
        ("C8E@f10.0+ZWO ASI2600MM Pro", "2026-11-18", "1", "60.00", 3),  # L: 4 minus the bad frame
        ("C8E@f10.0+ZWO ASI2600MM Pro", "2026-11-18", "1", "60.00", 3),  # R
        ("C8E@f10.0+ZWO ASI2600MM Pro", "2026-11-19", "1", "60.00", 2),
        ("C8E@f10.0+ZWO ASI2600MM Pro", "2026-11-19", "2", "60.00", 3),
        ("DWARFIII@f4.3+DWARFIII", "2026-11-19", "", "15.00", 25),
        ("SQA55@f5.3+ATR585M", "2026-11-18", "", "300.00", 5),
        ("SQA55@f5.3+ATR585M", "2026-11-19", "", "300.00", 2),
    ]
    # scheduler: Panel 1 L now 3 + 2 = 5 of 6 (83 %: not complete), M 45 25 of 26 -> complete
    assert _plans(sched) == {1: 5, 2: 3, 3: 0, 4: 3, 5: 0, 6: 5, 7: 2, 8: 0, 9: 52, 10: 4}
    assert len(list(sched.parent.glob("*.bak"))) == 1
    # reports
    files = {str(p.relative_to(report)) for p in report.rglob("*") if p.is_file()}
    assert files == {
        "C8E@f10.0+ZWO_ASI2600MM_Pro/M_31/astrobin.csv",
        "C8E@f10.0+ZWO_ASI2600MM_Pro/M_31/totals.json",
        "DWARFIII@f4.3+DWARFIII/M_45/astrobin.csv",
        "DWARFIII@f4.3+DWARFIII/M_45/totals.json",
        "SQA55@f5.3+ATR585M/NGC_7000/astrobin.csv",
        "SQA55@f5.3+ATR585M/NGC_7000/totals.json",
        "hours_over_time.png",
        "hfr_per_rig.png",
        "index.html",
    }
    assert (report / "C8E@f10.0+ZWO_ASI2600MM_Pro/M_31/astrobin.csv").read_text().splitlines() == [
        "date,filter,number,duration,fNumber,bortle",
        "2026-11-18,2625,3,60.00,10.0,6",
        "2026-11-18,2627,3,60.00,10.0,6",
        "2026-11-19,2625,5,60.00,10.0,6",
    ]
    m31 = json.loads((report / "C8E@f10.0+ZWO_ASI2600MM_Pro/M_31/totals.json").read_text())
    assert m31["want"]["L Panel 1"] == 0.1 and m31["have"]["L Panel 1"] == 0.08
    assert m31["need"]["L Panel 1"] == 0.02 and m31["need"]["G Panel 1"] == 0.17
    # the report is published for the Airflow UI with the same relative layout
    pub = published_root() / "astro_catalog_report" / res.run_id.replace(":", "_") / "report"
    assert {str(p.relative_to(pub)) for p in pub.rglob("*") if p.is_file()} == files
    assert (pub / "index.html").read_bytes() == (report / "index.html").read_bytes()
    ngc = (report / "SQA55@f5.3+ATR585M/NGC_7000/astrobin.csv").read_text().splitlines()
    assert ngc[1:] == [
        "2026-11-18,2631,5,300.00,5.3,5",
        "2026-11-19,2630,2,300.00,5.3,5",
    ]  # BW site

    # rerun: upserts, no duplicates, scheduler unchanged (no second backup)
    res = run_dag("astro_catalog_report", conf=conf)
    assert res.state == "success"
    assert catalog() == rows
    assert len(list(sched.parent.glob("*.bak"))) == 1
    clear_catalog(url)


def test_bad_scheduler_file_fails_clearly(run_dag, app_db_url: str, tmp_path: Path) -> None:
    clear_catalog(app_db_url)
    lib = tmp_path / "library"
    make_data_tree(lib, plan=((2, "M 45", "2026-11-19", "UVIR", "15.00", None, 2),))
    junk = tmp_path / "schedulerdb.sqlite"
    junk.write_text("this is not a database" * 50)
    res = run_dag(
        "astro_catalog_report",
        conf={
            "library_dir": str(lib),
            "scheduler_db": str(junk),
            "report_dir": str(tmp_path / "r"),
        },
    )
    assert res.state == "failed"
    assert res.task_states["update_catalog[0]"] == "success"
    assert res.task_states["update_scheduler"] == "failed"
    assert junk.read_text() == "this is not a database" * 50
    clear_catalog(app_db_url)


@pytest.mark.slow
def test_empty_library_still_reports(run_dag, app_db_url: str, tmp_path: Path) -> None:
    clear_catalog(app_db_url)
    lib = tmp_path / "library"
    lib.mkdir()
    res = run_dag("astro_catalog_report", conf={"library_dir": str(lib)})
    assert res.state == "success", res.task_states
    assert res.task_states["update_scheduler"] == "success"
    assert (lib / "_Reports" / "index.html").is_file()
    # and the masters pipeline with no calibration folder does nothing, successfully
    res = run_dag("astro_calibration_masters", conf={"library_dir": str(lib)}, approve="all")
    assert res.state == "success", res.task_states
    assert res.task_states["integrate_master"] == "skipped"
    assert res.task_states["publish_library"] == "skipped"
    assert not (lib / "_Bias Library").exists()
    assert (
        json.loads(
            next((lib / "_Summary" / "astro_calibration_masters").glob("*.json")).read_text()
        )["groups"]
        == []
    )
