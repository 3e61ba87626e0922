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
SMALL = StitchOptions(chunk=64, shard=128, min_level_size=40)


def _folder(tmp_path: Path, bits: int = 8, grid: GridSpec = GRID) -> Path:
    return write_timelapse_folder(
        tmp_path / "in", "exp", datetime(2025, 1, 1), 2, grid=grid, bits=bits
    )


def _level(zarr_path: Path, ch: str, lvl: int) -> np.ndarray:
    return zarr.open_array(str(zarr_path / ch / str(lvl)), mode="r")[...]


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
    assert set(report) == set(DEFAULT_CHANNELS)
    # sharded: level 0 (3 x 4 shards of 128 px) is stored in few files
    shard_files = sorted(p.name for p in (out / DEFAULT_CHANNELS[0] / "0").glob("c.*"))
    rows, cols = (-(-n // 128) for n in GRID.shape)
    assert shard_files == sorted(f"c.{i}.{j}" for i in range(rows) for j in range(cols))


def test_ome_metadata_axes_units_scale_and_omero(tmp_path: Path):
    f = _folder(tmp_path)
    out = tmp_path / "a.zarr"
    res = stitch_folder(f, out, options=SMALL)
    meta = json.loads((out / "Fluorescence_488_nm_Ex" / "zarr.json").read_text())["attributes"][
        "ome"
    ]
    assert meta["version"] == "0.5"
    ms = meta["multiscales"][0]
    assert [a["unit"] for a in ms["axes"]] == ["micrometer", "micrometer"]
    s0 = ms["datasets"][0]["coordinateTransformations"][0]["scale"]
    s1 = ms["datasets"][1]["coordinateTransformations"][0]["scale"]
    assert s0 == pytest.approx([res.pixel_size_um] * 2)
    assert s1 == pytest.approx([res.pixel_size_um * 2] * 2)
    tr = ms["datasets"][0]["coordinateTransformations"][1]["translation"]
    assert tr == pytest.approx([GRID.origin_mm[1] * 1000, GRID.origin_mm[0] * 1000])
    ch = meta["omero"]["channels"][0]
    assert ch["label"] == "Fluorescence_488_nm_Ex" and ch["color"] == "00FF00"
    assert 0 < ch["window"]["start"] < ch["window"]["end"] <= 255
    root = json.loads((out / "zarr.json").read_text())["attributes"]["reef"]
    assert root["channels"] == list(DEFAULT_CHANNELS)


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
        f, out, options=StitchOptions.original(chunk=64, shard=128, min_level_size=40)
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
    stitch_folder(f, out, options=StitchOptions(flip_x=True, flip_y=True, chunk=64, shard=128))
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
    res = stitch_folder(f, out, options=StitchOptions(chunk=64, shard=256, min_level_size=64))
    h, w = res.shape
    assert h > 1900 and w > 1900
    files = list((out / DEFAULT_CHANNELS[0] / "0").glob("c.*"))
    assert len(files) == 4  # one shard per tile, nothing for the empty canvas
    a = zarr.open_array(str(out / DEFAULT_CHANNELS[0] / "0"), mode="r")
    assert np.array_equal(
        a[grid.step : grid.step + 64, 0:64], mosaic_region(0, 2, grid.step, grid.step + 64, 0, 64)
    )
    assert not a[100:200, 100:200].any()


def test_options_from_dict():
    assert StitchOptions.from_dict({"preset": "original"}).flip_x is True
    assert StitchOptions.from_dict({"clip_percentiles": [2, 98]}).clip_percentiles == (2, 98)
    with pytest.raises(ValueError, match="unknown stitch option"):
        StitchOptions.from_dict({"blend": True})
