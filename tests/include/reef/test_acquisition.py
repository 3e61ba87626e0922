from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from include.reef.acquisition import (
    ORIGINAL_ADJUSTMENT,
    AcquisitionError,
    AcquisitionParameters,
    parse_tile_name,
    plan_mosaic,
    read_coordinates,
    read_parameters,
)
from include.reef.samples import GridSpec, pixel_size_um, write_timelapse_folder


def test_pixel_size_follows_the_original_formula():
    p = AcquisitionParameters.from_dict(
        {
            "sensor_pixel_size_um": 1.85,
            "tube_lens_mm": 50,
            "objective": {"magnification": 20, "tube_lens_f_mm": 180},
        }
    )
    assert p.pixel_size_um() == pytest.approx(1.85 / (20 / (180 / 50)))
    assert p.pixel_size_um(ORIGINAL_ADJUSTMENT) == pytest.approx(0.3116880, rel=1e-6)


@pytest.mark.parametrize(
    "data, message",
    [
        ([], "not a JSON object"),
        ({"sensor_pixel_size_um": 1.85, "tube_lens_mm": 50}, "'objective'"),
        (
            {"tube_lens_mm": 50, "objective": {"magnification": 20, "tube_lens_f_mm": 180}},
            "sensor_pixel_size_um",
        ),
        (
            {
                "sensor_pixel_size_um": 1.85,
                "tube_lens_mm": 0,
                "objective": {"magnification": 20, "tube_lens_f_mm": 180},
            },
            "must be > 0",
        ),
        (
            {
                "sensor_pixel_size_um": "x",
                "tube_lens_mm": 50,
                "objective": {"magnification": 20, "tube_lens_f_mm": 180},
            },
            "not a number",
        ),
    ],
)
def test_bad_parameters(data, message):
    with pytest.raises(AcquisitionError, match=message):
        AcquisitionParameters.from_dict(data)


def test_missing_and_invalid_parameter_file(tmp_path: Path):
    with pytest.raises(AcquisitionError, match="missing acquisition parameters.json"):
        read_parameters(tmp_path)
    (tmp_path / "acquisition parameters.json").write_text("{nope")
    with pytest.raises(AcquisitionError, match="not valid JSON"):
        read_parameters(tmp_path)


def test_coordinates_errors(tmp_path: Path):
    with pytest.raises(AcquisitionError, match="missing 0/coordinates.csv"):
        read_coordinates(tmp_path)
    (tmp_path / "0").mkdir()
    csv = tmp_path / "0" / "coordinates.csv"
    csv.write_text("region,fov,x (mm)\nA1,0,1.0\n")
    with pytest.raises(AcquisitionError, match="missing columns"):
        read_coordinates(tmp_path)
    csv.write_text("region,fov,z_level,x (mm),y (mm)\nA1,0,0,1.0,2.0\nA1,1,0,abc,2.0\n")
    with pytest.raises(AcquisitionError, match="line 3"):
        read_coordinates(tmp_path)
    csv.write_text("region,fov,z_level,x (mm),y (mm)\n")
    with pytest.raises(AcquisitionError, match="no rows"):
        read_coordinates(tmp_path)


def test_tile_names_with_underscored_channels():
    t = parse_tile_name("A1_12_0_Fluorescence_488_nm_Ex.bmp")
    assert (t.region, t.fov, t.z_level, t.channel) == ("A1", 12, 0, "Fluorescence_488_nm_Ex")
    assert parse_tile_name("B2_3_1_BF_LED_matrix_full.TIFF").channel == "BF_LED_matrix_full"
    assert parse_tile_name("coordinates.csv") is None
    assert parse_tile_name("A1_x_0_BF.bmp") is None


def _folder(tmp_path: Path, **kw) -> Path:
    return write_timelapse_folder(
        tmp_path, "exp", datetime(2025, 1, 1), 0, grid=GridSpec(rows=2, cols=3, tile=64), **kw
    )


def test_plan_places_tiles_at_stage_positions(tmp_path: Path):
    f = _folder(tmp_path)
    plan = plan_mosaic(f, tile_shape=(64, 64))
    g = GridSpec(rows=2, cols=3, tile=64)
    assert plan.shape == g.shape
    assert plan.pixel_size_um == pytest.approx(pixel_size_um())
    bf = plan.channels["BF_LED_matrix_full"]
    assert sorted((p.y, p.x) for p in bf) == sorted(
        (r * g.step, c * g.step) for r in range(2) for c in range(3)
    )
    assert len(plan.channels) == 3


def test_plan_missing_tile_and_unknown_channel(tmp_path: Path):
    f = _folder(tmp_path)
    (f / "0" / "A1_4_0_Fluorescence_488_nm_Ex.bmp").unlink()
    with pytest.raises(
        AcquisitionError,
        match="1 tile\\(s\\) listed in coordinates.csv are absent: A1_4_0_Fluorescence_488_nm_Ex",
    ):
        plan_mosaic(f, tile_shape=(64, 64))
    plan = plan_mosaic(f, tile_shape=(64, 64), channels=["BF_LED_matrix_full"])
    assert list(plan.channels) == ["BF_LED_matrix_full"]
    with pytest.raises(AcquisitionError, match="have no tiles"):
        plan_mosaic(f, tile_shape=(64, 64), channels=["DAPI"])


def test_plan_rejects_params_without_objective(tmp_path: Path):
    f = _folder(tmp_path)
    (f / "acquisition parameters.json").write_text(json.dumps({"sensor_pixel_size_um": 1.85}))
    with pytest.raises(AcquisitionError, match="objective"):
        plan_mosaic(f, tile_shape=(64, 64))
