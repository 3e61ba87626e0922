"""Grouping of raw calibration frames: keys, validation, per-frame errors, contact sheets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from include.astro.calgroups import contact_sheet, group_frames, read_frame
from include.astro.layout import calibration_input_dir
from include.astro.samples_masters import make_calibration_sets


@pytest.fixture
def cal(tmp_path: Path) -> tuple[Path, dict[str, list[str]]]:
    sets = make_calibration_sets(tmp_path, n_frames=3, shape=(16, 20))
    return calibration_input_dir(tmp_path), sets


def test_groups_three_rigs(cal: tuple[Path, dict[str, list[str]]]) -> None:
    root, sets = cal
    result = group_frames(root)
    assert result.errors == []
    assert len(result.groups) == len(sets) == 11
    assert all(g.valid for g in result.groups)
    by_type = {t: [g for g in result.groups if g.imagetyp == t] for t in ("BIAS", "DARK", "FLAT")}
    assert [len(v) for v in by_type.values()] == [3, 3, 5]
    # order: BIAS, DARK, FLAT
    assert [g.imagetyp for g in result.groups] == ["BIAS"] * 3 + ["DARK"] * 3 + ["FLAT"] * 5
    dark = next(g for g in by_type["DARK"] if g.props["camera"] == "ATR585M")
    assert dark.props == {
        "camera": "ATR585M",
        "gain": "150",
        "offset": "30",
        "settemp": "-5.00",
        "readoutmode": "1",
        "exposure": "300.00",
    }
    assert sorted(f.path for f in dark.frames) == sorted(sets["DARK|SQA55@f5.3+ATR585M|300.00"])
    flat = next(g for g in by_type["FLAT"] if g.props["filter"] == "L")
    assert flat.props["optic"] == "C8E" and flat.props["fratio"] == "10.0"
    assert flat.props["date"] == "2026-11-20"
    assert flat.date_obs == min(f.date_obs for f in flat.frames)
    # ids are stable and unique
    ids = [g.group_id for g in result.groups]
    assert len(set(ids)) == len(ids)
    assert ids == [g.group_id for g in group_frames(root).groups]


def test_read_frame_normalises(cal: tuple[Path, dict[str, list[str]]]) -> None:
    root, sets = cal
    f = read_frame(sets["FLAT|SQA55@f5.3+ATR585M|H"][0], root)
    assert (f.imagetyp, f.camera, f.filter, f.settemp, f.gain) == (
        "FLAT",
        "ATR585M",
        "H",
        "-5.00",
        "150",
    )
    assert (f.height, f.width, f.bitpix) == (16, 20, 16)


def test_bad_groups_reported(cal: tuple[Path, dict[str, list[str]]]) -> None:
    root, sets = cal
    # a truncated frame in the C8E dark group
    dark = Path(sets["DARK|C8E@f10.0+ZWO ASI2600MM Pro|300.00"][0])
    dark.write_bytes(dark.read_bytes()[:3000])
    # mismatched size in the ATR585M bias group
    bias = Path(sets["BIAS|SQA55@f5.3+ATR585M|"][1])
    with fits.open(bias) as hdul:
        hdr = hdul[0].header.copy()
    fits.PrimaryHDU(np.zeros((10, 10), dtype=np.uint16), header=hdr).writeto(bias, overwrite=True)
    # too few frames: DWARF flats keep one frame
    for p in sets["FLAT|DWARFIII@f4.3+DWARFIII|UVIR"][1:]:
        Path(p).unlink()
    # a file that is not FITS at all, outside any group
    junk = root / "notes" / "readme.fits"
    junk.parent.mkdir(parents=True)
    junk.write_text("hello")

    result = group_frames(root, min_frames=2)
    bad = {g.group_id: g.problems for g in result.groups if not g.valid}
    assert len(bad) == 3, bad
    probs = " | ".join(p for v in bad.values() for p in v)
    assert "corrupt/unreadable frame" in probs and "truncated" in probs
    assert "mismatched frame sizes: 10x10, 16x20" in probs
    assert "too few frames: 1 < 2" in probs
    assert [Path(e.path).name for e in result.errors] == ["readme.fits"]
    assert sum(g.valid for g in result.groups) == 8


def test_contact_sheet(cal: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
    from PIL import Image

    root, _ = cal
    g = group_frames(root).groups[0]
    out = contact_sheet(g, tmp_path / "sheets" / f"{g.group_id}.png", thumb=40, columns=2)
    img = Image.open(out)
    assert img.size == (80, 2 * (40 + 28) + 18)
    assert np.asarray(img).max() > 0


def test_contact_sheet_of_real_nina_16bit_frames(tmp_path: Path) -> None:
    """Issue 15.2: NINA writes BITPIX=16 + BZERO=32768; astropy refuses memmap for scaled data, so
    the tiles were black with an "unreadable" label. Every tile must show the sky (not just text)."""
    from PIL import Image

    from include.astro.samples import star_field, write_fits

    frames = []
    for i in range(3):
        p = tmp_path / "cal" / f"2026-11-21_03-0{i}-00_DARK.fits"
        write_fits(p, star_field(i, 2.0, shape=(120, 160)) + 1000, {"IMAGETYP": "DARK"})
        with fits.open(p) as h:  # really the NINA layout
            assert (h[0].header["BITPIX"], h[0].header["BZERO"]) == (16, 32768)
        frames.append(str(p))
    g = {"group_id": "DARK", "n_frames": 3, "frames": frames}
    out = contact_sheet(g, tmp_path / "sheet.png", thumb=100, columns=3)
    arr = np.asarray(Image.open(out), dtype=float)
    for i in range(3):
        tile = arr[18 + 20 : 18 + 100, i * 100 : (i + 1) * 100]  # below any label text
        assert tile.mean() > 20 and tile.std() > 5, i


def test_corrupt_flat_holds_back_its_group(cal: tuple[Path, dict[str, list[str]]]) -> None:
    root, sets = cal
    flat = Path(sets["FLAT|C8E@f10.0+ZWO ASI2600MM Pro|L"][2])
    flat.write_bytes(b"SIMPLE  =                    T" + b" " * 50)  # header without END
    result = group_frames(root)
    bad = [g for g in result.groups if not g.valid]
    assert len(bad) == 1
    assert bad[0].props["filter"] == "L" and len(bad[0].frames) == 2
    assert bad[0].errors[0].path == str(flat)
    assert len(result.groups) == 11


def test_demo_samples(tmp_path: Path) -> None:
    from include.astro.samples_masters import generate_demo

    confs = generate_demo(tmp_path)
    lib = Path(confs["astro_calibration_masters"]["library_dir"])
    assert len(group_frames(calibration_input_dir(lib)).groups) == 11
    assert Path(confs["astro_catalog_report"]["scheduler_db"]).is_file()
    before = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert generate_demo(tmp_path) == confs  # rerun: nothing rewritten, same confs
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == before


def test_xisf_frame_is_reported_and_holds_its_group(cal: tuple[Path, dict[str, list[str]]]) -> None:
    root, sets = cal
    bias = Path(sets["BIAS|SQA55@f5.3+ATR585M|"][0])
    xisf = bias.with_name("2026-11-20T23-59-59.xisf")
    xisf.write_bytes(b"XISF0100" + b"\0" * 64)
    result = group_frames(root)
    (bad,) = [g for g in result.groups if not g.valid]
    assert bad.props["camera"] == "ATR585M" and bad.imagetyp == "BIAS"
    assert "only FITS frames can be integrated" in bad.problems[0]
