from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import zarr
from PIL import Image

from include.reef.acquisition import AcquisitionError
from include.reef.samples import DEFAULT_CHANNELS, GridSpec, mosaic_region, write_timelapse_folder
from include.reef.stitch import (
    StitchInputError,
    StitchOptions,
    downsample2,
    is_stitched,
    stitch_folder,
    validate_zarr,
)

GRID = GridSpec(rows=3, cols=4, tile=96, overlap=0.1)
SMALL = StitchOptions(chunk=64, shard=128, min_level_size=40, register=False)


def _folder(tmp_path: Path, bits: int = 8, grid: GridSpec = GRID) -> Path:
    return write_timelapse_folder(
        tmp_path / "in", "exp", datetime(2025, 1, 1), 2, grid=grid, bits=bits
    )


def _level(zarr_path: Path, ch: str, lvl: int) -> np.ndarray:
    names = json.loads((zarr_path / "zarr.json").read_text())["attributes"]["reef"]["channels"]
    return zarr.open_array(str(zarr_path / str(lvl)), mode="r")[names.index(ch)]


def test_level0_equals_known_mosaic_and_pyramid_is_mean_of_it(tmp_path: Path):
    f = _folder(tmp_path)
    out = tmp_path / "out" / "a.zarr"
    res = stitch_folder(f, out, options=SMALL)
    assert is_stitched(out)
    assert res.shape == GRID.shape
    for ci, ch in enumerate(DEFAULT_CHANNELS):
        truth = mosaic_region(ci, 2, 0, GRID.shape[0], 0, GRID.shape[1])
        assert np.array_equal(_level(out, ch, 0), truth)
        assert np.array_equal(_level(out, ch, 1), downsample2(truth, "mean"))
        assert np.array_equal(_level(out, ch, 2), downsample2(downsample2(truth, "mean"), "mean"))
    report = validate_zarr(out, res)
    assert report["channels"] == list(DEFAULT_CHANNELS)
    # sharded: level 0 (3 channels x 3 x 4 shards of 128 px) is stored in few files
    shard_files = sorted(p.name for p in (out / "0").glob("c.*"))
    rows, cols = (-(-n // 128) for n in GRID.shape)
    assert shard_files == sorted(
        f"c.{c}.{i}.{j}" for c in range(3) for i in range(rows) for j in range(cols)
    )


def test_one_ome_image_with_channel_axis_and_per_level_translation(tmp_path: Path):
    """Issue 16.4: metadata at the root, one multiscale with a channel axis, each level's own
    translation (level l is shifted by (2**l - 1) / 2 level-0 pixels)."""
    f = _folder(tmp_path)
    out = tmp_path / "a.zarr"
    res = stitch_folder(f, out, options=SMALL)
    meta = json.loads((out / "zarr.json").read_text())["attributes"]["ome"]
    assert meta["version"] == "0.5"
    assert len(meta["multiscales"]) == 1
    ms = meta["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["c", "y", "x"]
    assert ms["axes"][0]["type"] == "channel"
    assert [a.get("unit") for a in ms["axes"][1:]] == ["micrometer", "micrometer"]
    px = res.pixel_size_um
    oy, ox = GRID.origin_mm[1] * 1000, GRID.origin_mm[0] * 1000
    assert len(ms["datasets"]) == len(res.levels) >= 3
    for lvl, ds in enumerate(ms["datasets"]):
        scale, tr = (t[t["type"]] for t in ds["coordinateTransformations"])
        f_ = 2**lvl
        assert scale == pytest.approx([1.0, px * f_, px * f_])
        assert tr == pytest.approx([0.0, oy + px * (f_ - 1) / 2, ox + px * (f_ - 1) / 2])
    chans = meta["omero"]["channels"]
    assert [c["label"] for c in chans] == list(DEFAULT_CHANNELS)
    assert [c["color"] for c in chans] == ["FFFFFF", "00FF00", "FFFF00"]
    assert all(0 < c["window"]["start"] < c["window"]["end"] <= 255 for c in chans)
    assert zarr.open_array(str(out / "0"), mode="r").shape == (3, *GRID.shape)


def test_validated_by_ome_zarr_models_and_read_back_by_ome_zarr(tmp_path: Path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v05.image import Image as OmeImage

    f = _folder(tmp_path)
    out = tmp_path / "v.zarr"
    res = stitch_folder(f, out, options=SMALL)
    model = OmeImage.from_zarr(zarr.open_group(str(out), mode="r"))
    assert [a.name for a in model.ome_attributes.multiscales[0].axes] == ["c", "y", "x"]
    nodes = list(Reader(parse_url(str(out)))())
    assert len(nodes) == 1  # one image, not one per channel
    data = nodes[0].data
    assert [tuple(d.shape) for d in data] == [(3, *s) for s in res.levels]
    assert np.array_equal(
        np.asarray(data[0][1]), mosaic_region(1, 2, 0, GRID.shape[0], 0, GRID.shape[1])
    )
    assert nodes[0].metadata["channel_names"] == list(DEFAULT_CHANNELS)
    # a broken image is refused by the validator
    meta = json.loads((out / "zarr.json").read_text())
    meta["attributes"]["ome"]["multiscales"][0]["axes"][0]["type"] = "space"
    meta["attributes"]["ome"]["multiscales"][0]["axes"][0]["name"] = "y"
    (out / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="validation failed"):
        validate_zarr(out, res)


def test_16bit_tiff_tiles_and_channel_subset(tmp_path: Path):
    f = _folder(tmp_path, bits=16)
    out = tmp_path / "b.zarr"
    res = stitch_folder(f, out, channels=["Fluorescence_561_nm_Ex"], options=SMALL)
    assert [c.name for c in res.channels] == ["Fluorescence_561_nm_Ex"]
    assert res.dtype == "uint16"
    truth = mosaic_region(2, 2, 0, GRID.shape[0], 0, GRID.shape[1], bits=16)
    assert np.array_equal(_level(out, "Fluorescence_561_nm_Ex", 0), truth)


def test_original_preset_clips_to_8bit(tmp_path: Path):
    f = _folder(tmp_path, bits=16)
    out = tmp_path / "c.zarr"
    res = stitch_folder(
        f,
        out,
        options=StitchOptions.original(chunk=64, shard=128, min_level_size=40, register=False),
    )
    assert res.dtype == "uint8"
    assert res.pixel_size_um == pytest.approx(0.3116880, rel=1e-6)
    a = _level(out, DEFAULT_CHANNELS[0], 0)
    assert a.max() == 255 and a.shape == res.shape


def test_flips_undo_a_flipped_camera(tmp_path: Path):
    f = _folder(tmp_path)
    for p in (f / "0").glob("*.bmp"):  # camera mounted upside down
        Image.fromarray(np.asarray(Image.open(p))[::-1, ::-1].copy()).save(p)
    out = tmp_path / "d.zarr"
    stitch_folder(
        f,
        out,
        options=StitchOptions(flip_x=True, flip_y=True, chunk=64, shard=128, register=False),
    )
    truth = mosaic_region(0, 2, 0, GRID.shape[0], 0, GRID.shape[1])
    assert np.array_equal(_level(out, DEFAULT_CHANNELS[0], 0), truth)


def test_rerun_is_a_no_op_and_partial_output_is_rebuilt(tmp_path: Path):
    f = _folder(tmp_path)
    out = tmp_path / "e.zarr"
    res = stitch_folder(f, out, options=SMALL)
    stamp = (out / ".done").stat().st_mtime_ns
    again = stitch_folder(f, out, options=SMALL)
    assert again.as_dict() == res.as_dict()
    assert (out / ".done").stat().st_mtime_ns == stamp
    # a crash left a temp output and an unfinished final dir: both are rebuilt
    (out / ".done").unlink()
    (tmp_path / ".e.zarr.partial").mkdir()
    res3 = stitch_folder(f, out, options=SMALL)
    assert is_stitched(out) and not (tmp_path / ".e.zarr.partial").exists()
    assert np.array_equal(
        _level(out, DEFAULT_CHANNELS[1], 0), mosaic_region(1, 2, 0, GRID.shape[0], 0, GRID.shape[1])
    )
    assert res3.shape == res.shape


def test_corrupt_tile_is_a_clear_input_error_and_sources_stay(tmp_path: Path):
    f = _folder(tmp_path)
    bad = f / "0" / "A1_5_0_BF_LED_matrix_full.bmp"
    bad.write_bytes(b"BM not really a bitmap")
    before = sorted(p.name for p in (f / "0").iterdir())
    with pytest.raises(StitchInputError, match="A1_5_0_BF_LED_matrix_full.bmp"):
        stitch_folder(f, tmp_path / "f.zarr", options=SMALL)
    assert sorted(p.name for p in (f / "0").iterdir()) == before
    assert not (tmp_path / "f.zarr").exists()
    assert not (tmp_path / ".f.zarr.partial").exists()


def test_tile_of_wrong_size_is_an_input_error(tmp_path: Path):
    f = _folder(tmp_path)
    p = f / "0" / "A1_7_0_Fluorescence_561_nm_Ex.bmp"
    Image.fromarray(np.zeros((50, 96), np.uint8)).save(p)
    with pytest.raises(StitchInputError, match="expected 96x96"):
        stitch_folder(f, tmp_path / "g.zarr", options=SMALL)


def test_missing_coordinates_is_an_input_error(tmp_path: Path):
    f = _folder(tmp_path)
    (f / "0" / "coordinates.csv").unlink()
    with pytest.raises(AcquisitionError, match="coordinates.csv"):
        stitch_folder(f, tmp_path / "h.zarr", options=SMALL)


def test_large_sparse_canvas_stays_sparse(tmp_path: Path):
    """Tiles far apart on the stage: the empty canvas between them is never stored."""
    grid = GridSpec(rows=2, cols=2, tile=64, overlap=-30.0)  # step = 64 * 31 px
    f = _folder(tmp_path, grid=grid)
    out = tmp_path / "s.zarr"
    opts = StitchOptions(chunk=64, shard=256, min_level_size=64, register=False)
    res = stitch_folder(f, out, options=opts)
    h, w = res.shape
    assert h > 1900 and w > 1900
    files = list((out / "0").glob("c.0.*"))
    assert len(files) == 4  # one shard per tile, nothing for the empty canvas
    a = zarr.open_array(str(out / "0"), mode="r")[0]
    assert np.array_equal(
        a[grid.step : grid.step + 64, 0:64], mosaic_region(0, 2, grid.step, grid.step + 64, 0, 64)
    )
    assert not a[100:200, 100:200].any()
    for lvl in range(1, len(res.levels)):  # pyramid of the sparse canvas = mean of level 0
        assert np.array_equal(
            zarr.open_array(str(out / str(lvl)), mode="r")[0],
            downsample2(zarr.open_array(str(out / str(lvl - 1)), mode="r")[0], "mean"),
        )


def _peak_rss_of_stitch(tmp_path: Path, gap_tiles: float, name: str) -> int:
    """Peak RSS (bytes) of a child process stitching two 4-tile regions ``gap_tiles`` apart."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        f"""
        import resource, sys
        from datetime import datetime
        from pathlib import Path
        from include.reef.samples import GridSpec, write_timelapse_folder
        from include.reef.stitch import StitchOptions, stitch_folder
        import csv
        base = Path({str(tmp_path)!r}) / {name!r}
        g = GridSpec(rows=2, cols=2, tile=512, overlap=0.1)
        f = write_timelapse_folder(base, "exp", datetime(2025, 1, 1), 1, grid=g, channels=("BF",))
        rows = list(csv.DictReader(open(f / "0" / "coordinates.csv")))
        extra = []
        for r in rows:  # a second region {gap_tiles} tiles to the right (same pixels)
            r2 = dict(r, region="B1")
            r2["x (mm)"] = repr(float(r["x (mm)"]) + {gap_tiles} * 512 * 0.333 / 1000)
            extra.append(r2)
            (f / "0" / f"B1_{{r['fov']}}_0_BF.bmp").write_bytes(
                (f / "0" / f"A1_{{r['fov']}}_0_BF.bmp").read_bytes())
        with open(f / "0" / "coordinates.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader(); w.writerows(rows + extra)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        stitch_folder(f, base / "o.zarr", options=StitchOptions(register=False))
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=str(ROOT)
    )
    return int(out.stdout.strip().splitlines()[-1]) * 1024


ROOT = Path(__file__).resolve().parents[3]


def test_stitch_memory_follows_the_data_not_the_canvas_extent(tmp_path: Path):
    """Issue 16.3: two regions 4 tiles apart and 400 tiles (~68 mm) apart cost the same memory."""
    near = _peak_rss_of_stitch(tmp_path, 4, "near")
    far = _peak_rss_of_stitch(tmp_path, 400, "far")
    assert far < near + 64 * 2**20, (near, far)


def test_options_from_dict():
    assert StitchOptions.from_dict({"preset": "original"}).flip_x is True
    assert StitchOptions.from_dict({"clip_percentiles": [2, 98]}).clip_percentiles == (2, 98)
    with pytest.raises(ValueError, match="unknown stitch option"):
        StitchOptions.from_dict({"blend": True})


def _covered_match(out: Path, res, grid: GridSpec, t: int = 2) -> float:
    """Share of covered level-0 pixels within ±1 grey level of the source mosaic, in the frame
    of tile A1_0 (a global translation is not observable from the tiles)."""
    pos = res.registration["positions"]["A1_0"]
    a = _level(out, DEFAULT_CHANNELS[1], 0).astype(int)
    oy, ox = pos  # canvas position of the tile whose true mosaic position is (0, 0)
    h, w = grid.shape
    y0, x0 = max(0, oy), max(0, ox)
    y1, x1 = min(a.shape[0], oy + h), min(a.shape[1], ox + w)
    got = a[y0:y1, x0:x1]
    truth = mosaic_region(1, t, y0 - oy, y1 - oy, x0 - ox, x1 - ox).astype(int)
    covered = got > 0
    return float((np.abs(got - truth)[covered] <= 1).mean())


def test_registration_corrects_stage_error_of_15_px(tmp_path: Path):
    """Issue 16.3 (deliver): stage positions off by up to ±15 px; serpentine scan order."""
    grid = GridSpec(rows=4, cols=5, tile=128, overlap=0.2, jitter_px=15, seed=3, serpentine=True)
    f = _folder(tmp_path, grid=grid)
    off = tmp_path / "off.zarr"
    stitch_folder(f, off, options=SMALL)
    on = tmp_path / "on.zarr"
    res = stitch_folder(f, on, options=StitchOptions(chunk=64, shard=128, min_level_size=40))
    assert res.registration["used_pairs"] >= 25
    assert _covered_match(on, res, grid) >= 0.995
    # the stage alone leaves seams
    pos0 = json.loads((off / "stitch_result.json").read_text())
    assert pos0["registration"] == {}


def test_registration_keeps_stage_positions_on_flat_overlaps(tmp_path: Path):
    grid = GridSpec(rows=2, cols=2, tile=96, overlap=0.2)
    f = _folder(tmp_path, grid=grid)
    for p in (f / "0").glob("*.bmp"):
        Image.fromarray(np.full((96, 96), 77, np.uint8)).save(p)
    res = stitch_folder(f, tmp_path / "flat.zarr", options=StitchOptions(chunk=32, shard=64))
    assert res.registration["used_pairs"] == 0
    assert res.shape == grid.shape


def test_registration_on_a_5_percent_overlap_with_15_px_stage_error(tmp_path: Path):
    """A 13-px overlap with stage positions off by up to ±15 px: neighbours whose stage rectangles
    do not even overlap are still paired, and a correction wider than half the overlap is found
    (the bands are widened by ``max_shift_px`` and zero-padded: no wrap-around)."""
    grid = GridSpec(rows=3, cols=4, tile=256, overlap=0.05, jitter_px=15, seed=5, serpentine=True)
    f = _folder(tmp_path, grid=grid)
    res = stitch_folder(f, tmp_path / "low.zarr", options=StitchOptions(chunk=128, shard=256))
    assert res.registration["used_pairs"] == res.registration["pairs"] == 17
    assert _covered_match(tmp_path / "low.zarr", res, grid) >= 0.995


def test_pair_shift_wider_than_half_the_overlap_and_whole_pixel_rounding():
    from include.reef.register import _round_together, measure_pair

    truth = mosaic_region(1, 0, 0, 128, 0, 300).astype(np.float32)
    a, b = truth[:, :128], truth[:, 100:228]  # b truly 100 px right of a: 28-px overlap
    sy, sx, c = measure_pair(a, b, 0, 80, 40)  # the stage says 80: 20 px off
    assert (sy, sx) == (0, 20) and c > 0.99
    assert measure_pair(np.full((128, 128), 9.0), np.full((128, 128), 9.0), 0, 100, 40) is None
    # solved positions sharing a fraction of .5 round together (not one pixel apart)
    pos = np.array([[0.5 + 1e-9, 3.5 - 1e-9], [10.5 - 1e-9, 240.5 + 1e-9]])
    got = _round_together(pos)
    assert (got[1] - got[0]).tolist() == [10, 237]


def test_butting_tiles_are_not_pulled_together(tmp_path: Path):
    """No overlap at all: neighbours within ``max_shift_px`` are tried, but smooth content that
    correlates at any small misplacement must not make a match (edges are compared)."""
    grid = GridSpec(rows=2, cols=3, tile=128, overlap=0.0)
    f = _folder(tmp_path, grid=grid)
    res = stitch_folder(f, tmp_path / "butt.zarr", options=StitchOptions(chunk=64, shard=128))
    assert res.registration["used_pairs"] == 0 and res.shape == grid.shape
