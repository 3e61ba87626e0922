from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from include.reef.folders import list_timelapse_folders, select_folders
from include.reef.samples import DEFAULT_EXPERIMENT, GridSpec, generate_demo, mosaic_region


def test_generate_demo_gives_confs_for_both_dags_and_settled_folders(tmp_path: Path):
    confs = generate_demo(tmp_path)
    t = confs["reef_treatment_upload"]
    s = confs["reef_stitch_upload"]
    assert t["experiment_id"] == s["experiment_id"] == DEFAULT_EXPERIMENT
    assert t["base_dir"] == s["base_dir"] and Path(s["stitched_dir"]).parent == tmp_path / "reef"
    listing = list_timelapse_folders(t["base_dir"], DEFAULT_EXPERIMENT)
    assert len(listing.folders) == 3 and not listing.rejected
    # files carry the acquisition time: the run's "now" finds them settled
    sel = select_folders(listing.folders, set(), reference_time=2_000_000_000, settle_seconds=300)
    assert len(sel.selected) == 3  # the newest too, once settled
    json.dumps(confs)  # confs are JSON (DAG run conf)


def test_generation_is_deterministic_and_tiles_are_cut_from_the_mosaic(tmp_path: Path):
    a = generate_demo(tmp_path / "a")["_folders"][0]
    b = generate_demo(tmp_path / "b")["_folders"][0]
    files_a = sorted(p.relative_to(a) for p in Path(a).rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in Path(b).rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (Path(a) / rel).read_bytes() == (Path(b) / rel).read_bytes()
    g = GridSpec()
    tile = np.asarray(Image.open(Path(a) / "0" / "A1_4_0_Fluorescence_488_nm_Ex.bmp"))
    # fov 4 is row 1, col 1 of the 3 x 3 grid
    assert np.array_equal(
        tile, mosaic_region(1, 0, g.step, g.step + g.tile, g.step, g.step + g.tile)
    )
