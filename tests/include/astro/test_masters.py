"""Master integration: exact pixel values against numpy, headers, provenance, bounded chunks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from include.astro.calgroups import group_frames
from include.astro.layout import calibration_input_dir
from include.astro.masters import (
    IntegrationError,
    integrate,
    integrate_group,
    read_master_provenance,
)
from include.astro.samples_masters import make_calibration_sets
from include.common.files import sha256_file


def _write(path: Path, data: np.ndarray, **cards: object) -> str:
    hdu = fits.PrimaryHDU(data)
    for k, v in cards.items():
        hdu.header[k] = v
    hdu.writeto(path)
    return str(path)


@pytest.fixture
def stack(tmp_path: Path) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(3)
    data = rng.integers(0, 65535, (6, 37, 29), dtype=np.uint16)
    paths = [_write(tmp_path / f"f{i}.fits", d) for i, d in enumerate(data)]
    return paths, data


@pytest.mark.parametrize("budget", [1, 4096, 64 << 20])
def test_median_matches_numpy_any_chunking(
    stack: tuple[list[str], np.ndarray], tmp_path: Path, budget: int
) -> None:
    paths, data = stack
    res = integrate(paths, tmp_path / "m.fits", imagetyp="BIAS", memory_budget=budget)
    got = fits.getdata(tmp_path / "m.fits")
    assert got.dtype == np.dtype(">f4")
    np.testing.assert_array_equal(got, np.median(data, axis=0).astype(np.float32))
    assert res.n_frames == 6 and res.shape == (37, 29)
    assert res.checksum == sha256_file(tmp_path / "m.fits")


def test_odd_count_median_and_float_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    data = rng.normal(100, 5, (5, 8, 9)).astype(np.float32)
    paths = [_write(tmp_path / f"f{i}.fits", d) for i, d in enumerate(data)]
    integrate(paths, tmp_path / "m.fits", imagetyp="DARK")
    np.testing.assert_allclose(
        fits.getdata(tmp_path / "m.fits"), np.median(data, axis=0), rtol=1e-6
    )


def test_sigma_clip_rejects_outlier(tmp_path: Path) -> None:
    base = np.full((7, 4, 4), 1000, dtype=np.uint16)
    base[:, 0, 0] = [1000, 1002, 998, 1001, 999, 1000, 60000]  # cosmic ray in one frame
    paths = [_write(tmp_path / f"f{i}.fits", d) for i, d in enumerate(base)]
    integrate(paths, tmp_path / "sc.fits", imagetyp="DARK", method="sigma_clip", sigma=2.0)
    got = fits.getdata(tmp_path / "sc.fits")
    assert got[0, 0] == pytest.approx(1000.0, abs=0.01)
    assert np.all(got[1:, 1:] == 1000)
    assert fits.getheader(tmp_path / "sc.fits")["COMBMETH"] == "sigma_clip"


def test_flat_normalised(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    shape = (40, 50)
    pattern = np.linspace(0.8, 1.2, shape[1])[None, :] * np.ones(shape)
    levels = [10000, 20000, 30000]
    data = [(lv * pattern + rng.normal(0, 1, shape)).astype(np.uint16) for lv in levels]
    paths = [_write(tmp_path / f"f{i}.fits", d) for i, d in enumerate(data)]
    res = integrate(paths, tmp_path / "flat.fits", imagetyp="FLAT", props={"filter": "L"})
    got = fits.getdata(tmp_path / "flat.fits").astype(np.float64)
    assert res.median == pytest.approx(1.0, abs=1e-3)
    expected = pattern / np.median(pattern)
    np.testing.assert_allclose(got, expected, atol=2e-3)
    h = fits.getheader(tmp_path / "flat.fits")
    assert h["IMAGETYP"] == "MASTER FLAT" and h["NORMALIZ"] is True and h["FILTER"] == "L"


def test_header_properties_and_provenance(
    stack: tuple[list[str], np.ndarray], tmp_path: Path
) -> None:
    paths, _ = stack
    props = {
        "camera": "ATR585M",
        "gain": "150",
        "offset": "30",
        "settemp": "-5.00",
        "exposure": "300.00",
        "readoutmode": "1",
        "date_obs": "2026-11-20T23:01:00.000",
    }
    res = integrate(paths, tmp_path / "d.fits", imagetyp="DARK", props=props)
    h = fits.getheader(tmp_path / "d.fits")
    assert h["IMAGETYP"] == "MASTER DARK"
    assert (h["INSTRUME"], h["GAIN"], h["OFFSET"], h["SET-TEMP"], h["EXPOSURE"], h["READOUTM"]) == (
        "ATR585M",
        150,
        30,
        -5.0,
        300.0,
        1,
    )
    assert h["NCOMBINE"] == 6 and h["DATE-OBS"] == "2026-11-20T23:01:00.000"
    prov = read_master_provenance(tmp_path / "d.fits")
    assert prov["inputs"] == {Path(p).name: sha256_file(p) for p in paths}
    assert prov["provsha"] == res.provenance
    # deterministic: same inputs -> byte-identical master
    res2 = integrate(paths, tmp_path / "d2.fits", imagetyp="DARK", props=props)
    assert res2.checksum == res.checksum


def test_bad_inputs(tmp_path: Path, stack: tuple[list[str], np.ndarray]) -> None:
    paths, _ = stack
    other = _write(tmp_path / "small.fits", np.zeros((5, 5), dtype=np.uint16))
    with pytest.raises(IntegrationError, match="frame size mismatch"):
        integrate([*paths, other], tmp_path / "x.fits", imagetyp="BIAS")
    trunc = tmp_path / "trunc.fits"
    trunc.write_bytes(Path(paths[0]).read_bytes()[: 2880 + 100])
    with pytest.raises(IntegrationError, match="truncated"):
        integrate([*paths, str(trunc)], tmp_path / "x.fits", imagetyp="BIAS")
    junk = tmp_path / "junk.fits"
    junk.write_text("not fits")
    with pytest.raises(IntegrationError, match="unreadable FITS header"):
        integrate([str(junk)], tmp_path / "x.fits", imagetyp="BIAS")
    assert not (tmp_path / "x.fits").exists()
    assert not list(tmp_path.glob(".x.fits*"))


def test_integrate_group_is_idempotent(tmp_path: Path) -> None:
    make_calibration_sets(tmp_path, n_frames=3, shape=(12, 10))
    groups = group_frames(calibration_input_dir(tmp_path)).groups
    g = next(x for x in groups if x.imagetyp == "DARK").to_dict()
    work = tmp_path / "work"
    first = integrate_group(g, work)
    assert first["reused"] is False
    assert Path(first["path"]).name.startswith("masterDark_EXPOSURE_300.00")
    again = integrate_group(g, work)
    assert again["reused"] is True and again["checksum"] == first["checksum"]
    # a changed input frame forces re-integration
    data = fits.getdata(g["frames"][0])
    hdr = fits.getheader(g["frames"][0])
    fits.PrimaryHDU(data + 1, header=hdr).writeto(g["frames"][0], overwrite=True)
    third = integrate_group(g, work)
    assert third["reused"] is False and third["checksum"] != first["checksum"]
    bad = dict(g, valid=False, problems=["too few frames: 1 < 3"])
    with pytest.raises(IntegrationError, match="too few frames"):
        integrate_group(bad, work)


def test_flat_minus_master_bias(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    shape = (30, 40)
    pedestal = 500 + rng.normal(0, 3, shape)  # per-pixel offset pattern of the sensor
    bias_frames = [(pedestal + rng.normal(0, 0.5, shape)).astype(np.uint16) for _ in range(5)]
    bias_paths = [_write(tmp_path / f"b{i}.fits", d) for i, d in enumerate(bias_frames)]
    integrate(bias_paths, tmp_path / "bias.fits", imagetyp="BIAS")
    bias = fits.getdata(tmp_path / "bias.fits").astype(np.float64)

    pattern = np.linspace(0.7, 1.3, shape[1])[None, :] * np.ones(shape)
    flats = [(pedestal + lv * pattern).astype(np.uint16) for lv in (8000, 12000, 16000)]
    flat_paths = [_write(tmp_path / f"f{i}.fits", d) for i, d in enumerate(flats)]
    integrate(flat_paths, tmp_path / "flat.fits", imagetyp="FLAT", subtract=tmp_path / "bias.fits")
    got = fits.getdata(tmp_path / "flat.fits").astype(np.float64)
    scaled = [(f - bias) / np.median((f - bias)[::7, ::7]) for f in np.asarray(flats, np.float64)]
    expected = np.median(scaled, axis=0)
    np.testing.assert_allclose(got, expected / np.median(expected), rtol=1e-5)
    np.testing.assert_allclose(got, pattern / np.median(pattern), atol=2e-3)
    h = fits.getheader(tmp_path / "flat.fits")
    assert h["CALBIAS"] == "bias.fits" and h["CALBSHA"] == sha256_file(tmp_path / "bias.fits")
    # without the bias the pedestal flattens the vignetting: a visibly different master
    integrate(flat_paths, tmp_path / "raw_flat.fits", imagetyp="FLAT")
    assert np.abs(fits.getdata(tmp_path / "raw_flat.fits") - got).max() > 0.01
    # a bias of another size is refused
    _write(tmp_path / "small_bias.fits", np.zeros((5, 5), dtype=np.float32))
    with pytest.raises(IntegrationError, match="master to subtract small_bias.fits"):
        integrate(
            flat_paths, tmp_path / "x.fits", imagetyp="FLAT", subtract=tmp_path / "small_bias.fits"
        )


def test_integrate_group_reuse_follows_the_subtracted_bias(tmp_path: Path) -> None:
    make_calibration_sets(tmp_path, n_frames=3, shape=(14, 12))
    groups = [g.to_dict() for g in group_frames(calibration_input_dir(tmp_path)).groups]
    bias = next(g for g in groups if g["imagetyp"] == "BIAS" and g["props"]["camera"] == "ATR585M")
    flat = next(g for g in groups if g["imagetyp"] == "FLAT" and g["props"]["camera"] == "ATR585M")
    work = tmp_path / "work"
    b = integrate_group(bias, work)
    first = integrate_group(flat, work, subtract=b["path"])
    assert first["reused"] is False and first["subtracted"] == b["path"]
    assert integrate_group(flat, work, subtract=b["path"])["reused"] is True
    plain = integrate_group(flat, work)  # no bias now: a different master, recomputed
    assert plain["reused"] is False and plain["checksum"] != first["checksum"]
    assert "CALBIAS" not in fits.getheader(plain["path"])
