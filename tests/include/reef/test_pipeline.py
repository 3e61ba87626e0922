"""Pipeline steps that need only the app database (SQLite here; PostgreSQL in the e2e tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from include.common.db import make_engine, session_scope
from include.common.items import get_item, record_item
from include.reef.pipeline import (
    STITCH,
    TREATMENT,
    folder_key,
    select_for_run,
    stitch_dataset_alias,
    stitch_one,
    summarize,
)
from include.reef.samples import DEFAULT_CHANNELS, GridSpec, generate_timelapse

GRID = GridSpec(rows=2, cols=2, tile=64)


def test_selection_skips_folders_recorded_done_in_the_database(sqlite_app_db_url, tmp_path: Path):
    engine = make_engine(sqlite_app_db_url)
    exp = "sel-exp"
    folders = generate_timelapse(tmp_path, exp, n_folders=4, grid=GRID)
    with session_scope(engine) as s:
        record_item(
            s,
            pipeline=TREATMENT,
            kind="folder",
            key=folder_key(exp, folders[0].name),
            status="done",
        )
        record_item(
            s,
            pipeline=TREATMENT,
            kind="folder",
            key=folder_key(exp, folders[1].name),
            status="failed",
        )
        # another pipeline's record does not count
        record_item(
            s, pipeline=STITCH, kind="folder", key=folder_key(exp, folders[2].name), status="done"
        )
    sel = select_for_run(engine, TREATMENT, base_dir=str(tmp_path), experiment_id=exp)
    assert [f["name"] for f in sel["selected"]] == [f.name for f in folders[1:]]
    sel = select_for_run(engine, STITCH, base_dir=str(tmp_path), experiment_id=exp)
    assert [f["name"] for f in sel["selected"]] == [folders[i].name for i in (0, 1, 3)]
    sel = select_for_run(engine, TREATMENT, base_dir=str(tmp_path), experiment_id=exp, redo=True)
    assert [f["name"] for f in sel["selected"]] == [f.name for f in folders]
    with pytest.raises(ValueError, match="experiment_id"):
        select_for_run(engine, TREATMENT, base_dir=str(tmp_path), experiment_id="")


def test_missing_default_base_dir_is_quiet_but_a_named_one_fails(sqlite_app_db_url, tmp_path: Path):
    """Issue 13: a scheduled run before the microscope wrote anything succeeds with nothing to do."""
    engine = make_engine(sqlite_app_db_url)
    missing = str(tmp_path / "not-yet")
    sel = select_for_run(
        engine, TREATMENT, base_dir=missing, experiment_id="e", base_dir_named=False
    )
    assert sel["selected"] == [] and "does not exist" in sel["note"]
    with pytest.raises(FileNotFoundError):
        select_for_run(engine, TREATMENT, base_dir=missing, experiment_id="e", base_dir_named=True)


def test_stitch_one_records_failure_with_reason_and_reuses_a_finished_stitch(
    sqlite_app_db_url, tmp_path: Path
):
    engine = make_engine(sqlite_app_db_url)
    exp = "stitch-one"
    good, bad, _ = generate_timelapse(tmp_path / "mic", exp, n_folders=3, grid=GRID)
    (bad / "acquisition parameters.json").unlink()
    opts = {"chunk": 32, "shard": 64, "min_level_size": 32, "register": False}

    def item(p: Path, taken: str) -> dict:
        return {"name": p.name, "path": str(p), "taken_at": taken}

    r = stitch_one(
        engine,
        item(bad, "2025-04-29T16:38:36.107800"),
        experiment_id=exp,
        stitched_dir=tmp_path / "st",
        options=opts,
    )
    assert r["status"] == "failed" and "acquisition parameters.json" in r["reason"]
    with session_scope(engine) as s:
        rec = get_item(s, STITCH, "folder", folder_key(exp, bad.name))
        assert (
            rec.status == "failed"
            and "acquisition parameters.json" in rec.error
            and rec.attempts == 1
        )
    g = item(good, "2025-04-29T15:38:36.107800")
    first = stitch_one(engine, g, experiment_id=exp, stitched_dir=tmp_path / "st", options=opts)
    assert first["status"] == "stitched" and first["reused"] is False
    assert (
        first["dataset"]
        == stitch_dataset_alias(exp, g["taken_at"])
        == "stitch-one-2025-04-29-15-38-36"
    )
    assert set(first["previews"]) == {*DEFAULT_CHANNELS, "composite"}
    again = stitch_one(engine, g, experiment_id=exp, stitched_dir=tmp_path / "st", options=opts)
    assert again["reused"] is True and again["zarr_path"] == first["zarr_path"]
    assert again["stitch_id"] == first["stitch_id"]
    # issue 16.2: changed stitch options are not served from the finished stitch
    flipped = {**opts, "flip_x": True}
    third = stitch_one(engine, g, experiment_id=exp, stitched_dir=tmp_path / "st", options=flipped)
    assert third["reused"] is False and third["stitch_id"] != first["stitch_id"]
    s = summarize([r, again], {"skipped": {"x": "newest"}, "rejected": {}})
    assert s["failed"] == {bad.name: r["reason"]} and s["skipped"] == {"x": "newest"}


def test_as_list_accepts_every_shape_of_a_mapped_xcom_pull():
    from include.reef.pipeline import as_list

    assert as_list(None) == []
    assert as_list({"folder": "a"}) == [{"folder": "a"}]
    assert as_list([{"folder": "a"}, None, {"folder": "b"}]) == [{"folder": "a"}, {"folder": "b"}]


def test_timelapse_of_the_experiments_composites(tmp_path: Path):
    from PIL import Image

    from include.reef.pipeline import build_timelapse, preview_dir

    exp = "tl"
    folders = generate_timelapse(tmp_path / "mic", exp, n_folders=3, grid=GRID)
    for i, f in enumerate(folders):
        d = preview_dir(tmp_path / "st", exp, f.name)
        d.mkdir(parents=True)
        Image.new("RGB", (40 + i, 30), (80 * i, 0, 0)).save(d / "composite.png")
    assert (
        build_timelapse(None, experiment_id=exp, stitched_dir=tmp_path / "st", committed=[]) is None
    )
    out = build_timelapse(
        None, experiment_id=exp, stitched_dir=tmp_path / "st", committed=[{"status": "done"}]
    )
    assert out is not None and out["frames"] == 3
    with Image.open(out["path"]) as im:
        assert im.n_frames == 3 and im.size == (42, 30)
