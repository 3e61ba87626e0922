"""Target Scheduler update: matching by profile/target/panel/filter/exposure, the 95 % rule, backup,
idempotent reruns, bad files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from include.astro.catalog import list_rigs, scan_rig, upsert_rig
from include.astro.equipment import apply_equipment, load_equipment
from include.astro.samples_masters import make_data_tree, sample_scheduler_plans
from include.astro.scheduler import (
    SchedulerDBError,
    accepted_counts,
    create_scheduler_db,
    desired_hours,
    planned_accepted,
    update_accepted,
)
from include.common.db import make_engine, session_scope
from tests.include.astro.test_catalog import clear_catalog


def _plans(path: Path) -> dict[int, tuple[int, int, int]]:
    with sqlite3.connect(path) as conn:
        return {
            r[0]: (r[1], r[2], r[3])
            for r in conn.execute(
                "SELECT Id, desired, acquired, accepted FROM exposureplan ORDER BY Id"
            )
        }


def _plans_of_bytes(data: bytes, tmp_path: Path) -> dict[int, tuple[int, int, int]]:
    copy = tmp_path / "original.sqlite"
    copy.write_bytes(data)
    return _plans(copy)


def test_master_ready_rule() -> None:
    assert planned_accepted(100, 96) == 200
    assert planned_accepted(100, 95) == 95  # exactly 95 % is not "just short"
    assert planned_accepted(100, 100) == 100
    assert planned_accepted(10, 12) == 12
    assert planned_accepted(0, 3) == 3


def test_sample_db_has_the_plugin_schema(tmp_path: Path) -> None:
    db = create_scheduler_db(tmp_path / "schedulerdb.sqlite", sample_scheduler_plans())
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        cols = {r[1] for r in conn.execute("PRAGMA table_info(exposureplan)")}
        assert conn.execute("SELECT count(*) FROM project").fetchone() == (4,)
        assert conn.execute("SELECT count(*) FROM exposureplan").fetchone() == (10,)
        assert conn.execute("SELECT isMosaic FROM project WHERE name='M 31 mosaic'").fetchone() == (
            1,
        )
    assert {
        "project",
        "target",
        "exposureplan",
        "exposuretemplate",
        "acquiredimage",
        "imagedata",
        "ruleweight",
        "profilepreference",
        "filtercadenceitem",
    } <= tables
    assert {
        "Id",
        "profileId",
        "exposure",
        "desired",
        "acquired",
        "accepted",
        "targetid",
        "exposureTemplateId",
        "enabled",
        "guid",
    } == cols
    hours = desired_hours(db)
    assert hours[("9f1c2a6e-2b1d-4c51-9a53-1f0e8a2c0002", "NGC 7000", "H")] == pytest.approx(
        10 * 300 / 3600
    )


def test_update_from_catalog(any_app_db_url: str, tmp_path: Path) -> None:
    clear_catalog(any_app_db_url)
    engine = make_engine(any_app_db_url)
    make_data_tree(tmp_path / "lib")
    eq = load_equipment()
    with session_scope(engine) as s:
        apply_equipment(s, eq)
        for rig in list_rigs(tmp_path / "lib"):
            upsert_rig(s, scan_rig(tmp_path / "lib", rig), eq)
    with session_scope(engine) as s:
        counts = accepted_counts(s)
    c8 = "9f1c2a6e-2b1d-4c51-9a53-1f0e8a2c0001"
    assert counts[(c8, "M 31", "1", "L", "60.00")] == 6  # two nights summed
    db = Path(create_scheduler_db(tmp_path / "ts" / "schedulerdb.sqlite", sample_scheduler_plans()))
    original = db.read_bytes()

    out = update_accepted(db, counts)
    assert out["plans"] == 10 and out["untouched_profiles"] == [10]
    assert _plans(db) == {
        1: (6, 6, 6),  # Panel 1 L, exposure from the template default (60 s): 4 + 2
        2: (10, 3, 3),  # Panel 1 R 60 s
        3: (10, 0, 0),  # Panel 1 G: no data
        4: (3, 3, 3),  # Panel 2 L
        5: (5, 0, 0),  # Panel 2 R wants 120 s subs: the 60 s ones do not count
        6: (10, 5, 5),  # NGC 7000 "Ha" template = H, 300 s default
        7: (10, 2, 2),  # O
        8: (10, 0, 0),  # S: stale 3 reset to the catalog's 0
        9: (26, 52, 52),  # M 45: 25 of 26 (> 95 %) counts as complete -> 2 x desired
        10: (10, 4, 4),  # other profile: untouched
    }
    assert {c["plan_id"] for c in out["changes"]} == {1, 2, 4, 6, 7, 8, 9}
    assert next(c for c in out["changes"] if c["plan_id"] == 9)["complete"] is True
    backup = Path(out["backup"])
    assert _plans(backup) == _plans_of_bytes(original, tmp_path)
    # rerun: nothing to change, no second backup
    again = update_accepted(db, counts)
    assert again["changes"] == [] and again["backup"] is None
    assert len(list(db.parent.glob("*.bak"))) == 1


def test_dry_run_and_bad_files(tmp_path: Path) -> None:
    db = Path(create_scheduler_db(tmp_path / "s.sqlite", sample_scheduler_plans()))
    before = db.read_bytes()
    out = update_accepted(
        db, {("9f1c2a6e-2b1d-4c51-9a53-1f0e8a2c0001", "M 31", "1", "L", "60.00"): 6}, dry_run=True
    )
    assert [c["plan_id"] for c in out["changes"]][:1] == [1] and db.read_bytes() == before
    with pytest.raises(SchedulerDBError, match="does not exist"):
        update_accepted(tmp_path / "missing.sqlite", {})
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(SchedulerDBError, match="not a SQLite database"):
        update_accepted(junk, {})
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE x (a)").connection.close()
    with pytest.raises(SchedulerDBError, match="not a Target Scheduler database"):
        update_accepted(other, {})


def test_held_lights_keep_their_plan_counts(tmp_path: Path) -> None:
    """Issue 15.5: a target whose lights wait in 10_Blink keeps NINA's accepted/acquired count
    (zeroing it made the Target Scheduler image it again)."""
    from include.astro.samples import write_fits
    from include.astro.scheduler import held_light_keys

    lib = tmp_path / "lib"
    held_dir = lib / "SQA55@f4.8+ZWO ASI2600MM Pro/10_Blink/NGC 7000/DATE_2026-11-20"
    write_fits(
        held_dir / "FILTER_S_EXP_300.00/2026-11-21T03-00-00_HFR_2.10.fits",
        np.full((8, 8), 1000.0),
        {"IMAGETYP": "LIGHT"},
    )
    held = held_light_keys(lib)
    assert held == {("NGC 7000", "", "S", "300.00")}
    db = Path(create_scheduler_db(tmp_path / "s.sqlite", sample_scheduler_plans()))
    from include.astro.samples_masters import PROFILE_IDS

    sqa = list(PROFILE_IDS.values())[1]
    counts = {(sqa, "NGC 7000", "", "H", "300.00"): 4}  # S has no catalog data yet
    assert 8 in [c["plan_id"] for c in update_accepted(db, counts, dry_run=True)["changes"]]
    out = update_accepted(db, counts, held=held)
    assert 8 not in [c["plan_id"] for c in out["changes"]] and out["held"] == [8]
    assert _plans(db)[8] == (10, 3, 3)
