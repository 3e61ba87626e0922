"""Parser, header reader, layout rules and rig configuration of the astro lights pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from include.astro import layout
from include.astro.frames import (
    Frame,
    FrameError,
    TokenPattern,
    build_frame,
    night_date,
    parse_frame,
    parse_name,
    split_target,
    try_parse_frame,
)
from include.astro.headers import (
    HeaderError,
    read_fits_header,
    read_header,
    read_xisf_header,
    scan_headers,
)
from include.astro.rigs import RigConfigError, load_rigs, parse_rigs
from include.astro.samples import (
    SAMPLE_LIGHTS,
    fits_bytes,
    generate_library,
    generate_raw_tree,
    star_field,
    write_fits,
    write_xisf,
)

RIG = "C8E@f10.0+ZWO ASI2600MM Pro"
LIGHT_DIR = f"/raw/{RIG}/LIGHT/M 31/DATE_2026-11-20/FILTER_Ha_EXP_300.00s_GAIN_100_OFFSET_50"


@pytest.mark.parametrize(
    ("token", "field", "raw"),
    [
        ("DATE_2026-11-20", "date", "2026-11-20"),
        ("FILTER_Ha", "filter", "Ha"),
        ("EXP_300.00s", "exposure", "300.00s"),
        ("EXPOSURE_60", "exposure", "60"),
        ("SETTEMP_-10", "settemp", "-10"),
        ("SET-TEMP_-10.00", "settemp", "-10.00"),
        ("GAIN_100", "gain", "100"),
        ("OFFSET_50", "offset", "50"),
        ("READOUTM_High Gain", "readoutmode", "High Gain"),
        ("HFR_2.31", "hfr", "2.31"),
        ("STARS_1234", "stars", "1234"),
        ("RMSAC_0.65", "rmsac", "0.65"),
        ("TEMP_-9.9", "temp", "-9.9"),
        ("PANEL_3", "panel", "3"),
        ("HFR_", "hfr", ""),
    ],
)
def test_token_table(token: str, field: str, raw: str) -> None:
    fields = parse_name(f"/raw/x/2026-11-21_03-00-00_{token}_0001.fits", root="/raw")
    assert fields[field] == raw


def test_full_nina_name_is_parsed_and_normalised() -> None:
    p = f"{LIGHT_DIR}/2026-11-21_03-12-45_HFR__STARS_1234_RMSAC_0.65_TEMP_-9.9_SETTEMP_-10_0001.fits"
    f = build_frame(p, parse_name(p, root="/raw"))
    assert f == Frame(
        path=p,
        imagetyp="LIGHT",
        optic="C8E",
        fratio="10.0",
        camera="ZWO ASI2600MM Pro",
        target="M 31",
        date="2026-11-20",
        datetime="2026-11-21T03-12-45",
        filter="H",
        exposure="300.00",
        settemp="-10.00",
        gain="100",
        offset="50",
        readoutmode=None,
        hfr=None,  # HFR__ is an empty value: unknown, never rejected by the cull
        stars=1234,
        rmsac=0.65,
        temp="-9.90",
        panel=None,
    )
    assert f.rig is not None and f.rig.name == RIG and f.rig_name == RIG


def test_empty_value_followed_by_key_and_first_value_wins() -> None:
    p = "/raw/R@f2+C/LIGHT/T/DATE_2026-11-20/FILTER_L_EXP_10/2026-11-21_01-00-00_HFR_STARS_5_DATE_2026-01-01_FILTER_R.fits"
    fields = parse_name(p, root="/raw")
    assert fields["hfr"] == "" and fields["stars"] == "5"
    assert fields["date"] == "2026-11-20"  # folder token before the file name token
    assert fields["filter"] == "L"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Ha", "H"), ("O3", "O"), ("S2", "S"), ("", "RGB"), ("L", "L"), ("BaaderUVIRCut", "UVIR")],
)
def test_filter_aliases(raw: str, expected: str) -> None:
    p = f"/raw/R@f2+C/LIGHT/T/DATE_2026-11-20/FILTER_{raw}_EXP_10/2026-11-21_01-00-00.fits"
    assert build_frame(p, parse_name(p, root="/raw")).filter == expected


def test_normalisation_rules() -> None:
    assert split_target("M 31 Panel 2") == ("M 31", "2")
    assert split_target("Barnard's Loop") == ("Barnards Loop", None)
    assert night_date("2026-11-21T03:00:00.123") == "2026-11-20"
    assert night_date("2026-11-20T20:00:00") == "2026-11-20"
    assert night_date("2026-11-21T03:00:00", night_offset_hours=2) == "2026-11-21"
    f = build_frame(
        "/x.fits",
        {"exposure": "300", "settemp": "-5", "gain": "100.0"},
        {
            "imagetyp": "Light Frame",
            "optic": "C8E",
            "fratio": "10.0",
            "camera": "ZWO",
            "target": "'NGC 7000 Panel 4'",
            "filter": "O3",
            "__date_obs__": "2026-11-21T04:05:06.5",
        },
    )
    assert (f.imagetyp, f.exposure, f.settemp, f.gain) == ("LIGHT", "300.00", "-5.00", "100")
    assert (f.target, f.panel, f.filter) == ("NGC 7000", "4", "O")
    assert (f.date, f.datetime) == ("2026-11-20", "2026-11-21T04-05-06")


def test_dwarf_constant_focal_ratio() -> None:
    p = "/raw/LIGHT/DATE_2026-11-20/FILTER__EXP_15/2026-11-21_02-00-00.fits"
    f = build_frame(
        p, parse_name(p, root="/raw"), {"optic": "DWARFIII", "camera": "DWARFIII", "target": "M 45"}
    )
    assert (f.rig_name, f.filter, f.exposure) == ("DWARFIII@f4.3+DWARFIII", "RGB", "15.00")


def test_header_fallback_fits(tmp_path: Path) -> None:
    p = tmp_path / f"{RIG}/LIGHT/DATE_2026-11-20/2026-11-21_03-00-00_HFR_2.5_0001.fits"
    hdr = {
        "IMAGETYP": "LIGHT",
        "DATE-OBS": "2026-11-21T03:00:00.000",
        "OBJECT": "M 31 Panel 2",
        "FILTER": "S2",
        "EXPOSURE": 300.0,
        "SET-TEMP": -10.0,
        "GAIN": 100,
        "OFFSET": 50,
        "READOUTM": "High Gain",
        "CCD-TEMP": -9.85,
    }
    write_fits(p, star_field(1, 2.5), hdr)
    f = parse_frame(p, root=tmp_path)
    assert (f.target, f.panel, f.filter, f.exposure, f.settemp) == (
        "M 31",
        "2",
        "S",
        "300.00",
        "-10.00",
    )
    assert (f.gain, f.offset, f.readoutmode, f.temp, f.hfr) == (
        "100",
        "50",
        "High Gain",
        "-9.85",
        2.5,
    )
    # the name wins over the header
    p2 = p.with_name("2026-11-21_03-05-00_FILTER_Ha_0002.fits")
    write_fits(p2, star_field(1, 2.5), hdr)
    assert parse_frame(p2, root=tmp_path).filter == "H"


def test_header_fallback_xisf(tmp_path: Path) -> None:
    p = tmp_path / "_Dark Library/ZWO/masterDark_GAIN_100.xisf"
    write_xisf(
        p,
        np.zeros((8, 8), "f4"),
        {
            "IMAGETYP": "Master Dark",
            "EXPOSURE": 300.0,
            "SET-TEMP": -10.0,
            "INSTRUME": "ZWO",
            "OBJECT": "x",
        },
    )
    cards = read_xisf_header(p)
    assert cards["IMAGETYP"] == "Master Dark" and cards["EXPOSURE"] == 300.0
    f = parse_frame(p, root=tmp_path)
    assert (f.imagetyp, f.exposure, f.settemp, f.gain, f.camera) == (
        "MASTER DARK",
        "300.00",
        "-10.00",
        "100",
        "ZWO",
    )
    assert f.is_master and not f.is_light


def test_fast_header_matches_astropy(tmp_path: Path) -> None:
    p = tmp_path / "a.fits"
    h = fits.Header()
    h["IMAGETYP"] = "LIGHT"
    h["OBJECT"] = "It's M 31"
    h["EXPOSURE"] = 300.0
    h["GAIN"] = 100
    h["FLAG"] = True
    h["LONGSTR"] = "x" * 100  # CONTINUE cards
    h["HIERARCH ESO DET TEMP"] = -10.5
    h["COMMENT"] = "hello"
    fits.PrimaryHDU(np.zeros((10, 12), np.uint16), header=h).writeto(p)
    ours = read_fits_header(p)
    ref = fits.getheader(p)
    for key in ("IMAGETYP", "OBJECT", "EXPOSURE", "GAIN", "FLAG", "LONGSTR", "NAXIS1", "BITPIX"):
        assert ours[key] == ref[key], key
    assert ours["ESO DET TEMP"] == -10.5
    read_header(p)  # size check passes for a complete file


def test_sample_writer_is_valid_fits(tmp_path: Path) -> None:
    p = write_fits(tmp_path / "s.fits", star_field(3, 2.0), {"IMAGETYP": "LIGHT", "EXPOSURE": 1.5})
    with fits.open(p) as hdul:
        assert hdul[0].header["IMAGETYP"] == "LIGHT"
        assert hdul[0].data.dtype == np.uint16 and hdul[0].data.shape == (48, 64)
        assert np.array_equal(hdul[0].data, star_field(3, 2.0))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"hello world" * 100, "not a FITS file"),
        (b"SIMPLE  =                    T" + b" " * 50 + b" " * 2800, "no END card"),
    ],
)
def test_bad_headers(tmp_path: Path, content: bytes, reason: str) -> None:
    p = tmp_path / "bad.fits"
    p.write_bytes(content)
    with pytest.raises(HeaderError, match=reason):
        read_fits_header(p)
    frame, err = try_parse_frame(p)
    assert frame is None and err is not None and reason in err


def test_truncated_data_and_bad_xisf(tmp_path: Path) -> None:
    p = tmp_path / "t.fits"
    p.write_bytes(fits_bytes(star_field(1, 2.0), {"IMAGETYP": "LIGHT"})[:4000])
    with pytest.raises(HeaderError, match="truncated FITS data"):
        read_header(p)
    x = tmp_path / "x.xisf"
    x.write_bytes(b"XISF0100" + (500).to_bytes(4, "little") + b"\0\0\0\0" + b"<xisf")
    with pytest.raises(HeaderError, match="truncated XISF header"):
        read_header(x)
    res = scan_headers([p, x, tmp_path / "missing.fits"])
    assert all(isinstance(v, HeaderError) for v in res.values())
    assert "cannot open" in str(res[str(tmp_path / "missing.fits")])


def test_frame_errors_are_clear(tmp_path: Path) -> None:
    p = f"{LIGHT_DIR}/notes.fits"
    with pytest.raises(FrameError, match="missing required value"):
        build_frame(p, parse_name(p, root="/raw"))
    with pytest.raises(FrameError, match="unknown frame type"):
        build_frame("/x/capture_0001.fits", parse_name("/x/capture_0001.fits", root="/x"))
    bad = f"{LIGHT_DIR}/2026-11-21_03-00-00_HFR_abc.fits"
    with pytest.raises(FrameError, match=r"invalid value\(s\) hfr='abc'"):
        build_frame(bad, parse_name(bad, root="/raw"))


def test_configurable_token_pattern() -> None:
    pattern = TokenPattern.from_config(
        {"keys": {"FLT": "filter", "EXPO": "exposure"}, "separator": "_"}
    )
    p = "/raw/R@f2+C/LIGHT/T/DATE_2026-11-20/2026-11-21_01-00-00_FLT_Ha_EXPO_30.fits"
    f = build_frame(p, parse_name(p, root="/raw", pattern=pattern))
    assert (f.filter, f.exposure) == ("H", "30.00")
    dash = TokenPattern(separator="-")
    p = "/raw/R@f2+C/LIGHT/T/DATE-2026-11-20/2026-11-21_01-00-00-FILTER-O3-EXP-30.fits"
    fields = parse_name(p, root="/raw", pattern=dash)
    assert fields["filter"] == "O3" and fields["exposure"] == "30"


def test_sample_tree_parses(tmp_path: Path) -> None:
    out = generate_raw_tree(tmp_path / "raw")
    frames = [parse_frame(tmp_path / "raw" / r, root=tmp_path / "raw") for r in out["lights"]]
    assert len(frames) == len(SAMPLE_LIGHTS) == 19
    assert {f.rig_name for f in frames} == {
        RIG,
        "SQA55@f5.3+ATR585M",
        "DWARFIII@f4.3+DWARFIII",
    }
    sqa = [f for f in frames if f.optic == "SQA55"]
    assert {(f.target, f.panel, f.settemp, f.readoutmode) for f in sqa} == {
        ("M 42", "1", "-5.00", "Normal")
    }
    for r in out["bad"]:
        frame, err = try_parse_frame(tmp_path / "raw" / r, root=tmp_path / "raw")
        assert frame is None and err
    masters = generate_library(tmp_path / "lib")
    parsed = [parse_frame(tmp_path / "lib" / m, root=tmp_path / "lib") for m in masters]
    assert {f.imagetyp for f in parsed} == {"MASTER DARK", "MASTER BIAS", "MASTER FLAT"}
    assert all(f.target is None for f in parsed)
    # deterministic
    out2 = generate_raw_tree(tmp_path / "raw2")
    a = (tmp_path / "raw" / out["lights"][0]).read_bytes()
    assert a == (tmp_path / "raw2" / out2["lights"][0]).read_bytes()


def test_layout_paths(tmp_path: Path) -> None:
    f = Frame(
        path="/raw/a.fits",
        imagetyp="LIGHT",
        optic="C8E",
        fratio="10.0",
        camera="ZWO ASI2600MM Pro",
        target="M 31",
        date="2026-11-20",
        datetime="2026-11-21T03-00-00",
        filter="H",
        exposure="300.00",
        hfr=2.31,
        stars=812,
        rmsac=None,
        temp="-10.00",
        panel="2",
    )
    dest = layout.light_dest("/lib", f)
    assert dest == Path(
        f"/lib/{RIG}/10_Blink/M 31/DATE_2026-11-20/FILTER_H_EXP_300.00_PANEL_2/"
        "2026-11-21T03-00-00_HFR_2.31_STARS_812_TEMP_-10.00.fits"
    )
    assert layout.accept_dir_for(dest) == Path(f"/lib/{RIG}/10_Blink/M 31/accept")
    assert layout.blink_to_data(dest).parts[3] == "20_Data"
    # re-parsing the renamed file gives the same frame
    again = build_frame(str(dest), parse_name(dest, root="/lib"))
    assert again.with_path(f.path) == f
    d = Frame(
        path="/r/d.fits",
        imagetyp="DARK",
        optic="C8E",
        camera="ZWO",
        date="2026-11-20",
        datetime="2026-11-21T11-00-00",
        exposure="300.00",
        settemp="-10.00",
        gain="100",
        offset="50",
    )
    assert layout.calibration_dest("/lib", d) == Path(
        "/lib/_Calibration/DARK/C8E+ZWO/DATE_2026-11-20/EXP_300.00_SETTEMP_-10.00_GAIN_100_OFFSET_50/"
        "2026-11-21T11-00-00.fits"
    )
    m = Frame(
        path="",
        imagetyp="MASTER FLAT",
        optic="C8E",
        camera="ZWO",
        date="2026-11-20",
        filter="H",
        settemp="-10.00",
        gain="100",
        offset="50",
    )
    assert layout.master_dest("/lib", m) == Path(
        "/lib/_Flat Stash/ZWO/C8E/DATE_2026-11-20/masterFlat_FILTER_H_SETTEMP_-10.00_GAIN_100_OFFSET_50.xisf"
    )
    (tmp_path / RIG / "10_Blink" / "T").mkdir(parents=True)
    rej = layout.reject_dest(tmp_path, RIG, tmp_path / RIG / "10_Blink" / "T" / "x.fits")
    assert rej == tmp_path / RIG / "_Reject" / "10_Blink" / "T" / "x.fits"
    with pytest.raises(ValueError, match="not inside 10_Blink"):
        layout.blink_to_data("/lib/x/20_Data/y.fits")


def test_rig_config(tmp_path: Path) -> None:
    cfg = load_rigs()
    c8 = cfg.rigs[RIG]
    assert [(p.max_hfr, p.max_rms, p.auto_percent) for p in c8.cull] == [
        (4.6, 2.0, 30.0),
        (5.5, 2.0, 100.0),
    ]
    assert "readoutmode" in cfg.rigs["SQA55@f5.3+ATR585M"].dark_properties
    assert "settemp" not in cfg.rigs["DWARFIII@f4.3+DWARFIII"].dark_properties
    assert c8.dark_properties == ("exposure", "settemp", "camera", "gain", "offset", "imagetyp")
    assert cfg.for_rig("X@f1+Y").cull[0].max_hfr == 4.0
    j = tmp_path / "rigs.json"
    j.write_text(json.dumps({"rigs": [{"name": "A@f1+B", "dark_properties": ["colour"]}]}))
    with pytest.raises(RigConfigError, match="unknown property 'colour'"):
        load_rigs(j)
    with pytest.raises(RigConfigError, match="cannot read"):
        load_rigs(tmp_path / "nope.yaml")
    with pytest.raises(RigConfigError, match="'rigs' list"):
        parse_rigs({"rig": []})


def test_header_scan_only_parses_requested_keys(tmp_path: Path) -> None:
    p = write_fits(
        tmp_path / "k.fits", star_field(2, 2.0), {"IMAGETYP": "LIGHT", "OBJECT": "M 1", "GAIN": 100}
    )
    cards = read_header(p, keys={"GAIN"})
    assert cards["GAIN"] == 100 and "OBJECT" not in cards and cards["NAXIS1"] == 64
    res = scan_headers([p], keys=["OBJECT"])
    assert res[str(p)]["OBJECT"] == "M 1"  # type: ignore[index]
    # the key filter still detects truncation
    t = tmp_path / "t.fits"
    t.write_bytes(p.read_bytes()[:3000])
    with pytest.raises(HeaderError, match="truncated FITS data"):
        read_header(t, keys={"GAIN"})


RIG_DIR = "C8E@f10.0+ZWO ASI2600MM Pro"
LIGHT_NAME = "2026-11-21_03-00-00_HFR_3.70_STARS_812_RMSAC_0.60_TEMP_-10.00"


def _light(raw: Path, rel: str, **header: object) -> Path:
    from include.astro.samples import write_fits

    return write_fits(
        raw / rel,
        np.full((8, 8), 1000.0),
        {"IMAGETYP": "LIGHT", "FILTER": "Ha", "EXPOSURE": 300.0, **header},
    )


def test_object_header_beats_folder_and_targets_are_normalised(tmp_path: Path) -> None:
    """Issue 15.4: the OBJECT header names the target, not a folder the user renamed; quotes and
    decomposed Unicode (macOS folder names) do not mangle it."""
    import unicodedata

    p = _light(
        tmp_path, f"{RIG_DIR}/M 51 (restored)/DATE_2026-11-20/{LIGHT_NAME}.fits", OBJECT="M 51"
    )
    assert parse_frame(p, root=tmp_path).target == "M 51"
    nfd = unicodedata.normalize("NFD", "“Pélican” Nébula")
    q = _light(tmp_path, f"{RIG_DIR}/{nfd}/DATE_2026-11-20/{LIGHT_NAME}.fits")
    f = parse_frame(q, root=tmp_path)
    assert f.target == unicodedata.normalize("NFC", "Pélican Nébula")
    assert layout.light_rel_path(f).parts[0] == f.target
    assert split_target("'M 31' Panel 2") == ("M 31", "2")


@pytest.mark.parametrize("suffix", [" (1)", " - Copy", " copy 2"])
def test_copy_suffix_after_the_last_token(tmp_path: Path, suffix: str) -> None:
    """Issue 15.8: ``..._TEMP_-10.00 (1).fits`` (a copied file) parses like the original."""
    p = _light(tmp_path, f"{RIG_DIR}/NGC 7000/DATE_2026-11-20/{LIGHT_NAME}{suffix}.fits")
    f = parse_frame(p, root=tmp_path)
    assert (f.temp, f.hfr) == ("-10.00", 3.7)


def test_unparseable_suffix_is_named_in_the_message(tmp_path: Path) -> None:
    p = _light(tmp_path, f"{RIG_DIR}/NGC 7000/DATE_2026-11-20/{LIGHT_NAME} final.fits")
    frame, reason = try_parse_frame(p, root=tmp_path)
    assert frame is None
    assert "text after the last KEY_value token" in reason and "'-10.00 final'" in reason


def test_renamed_files_keep_trailing_zeros_and_cal_folders_without_optic(tmp_path: Path) -> None:
    """Issue 15.10: ``HFR_3.70`` stays ``3.70``; a calibration frame without TELESCOP is filed under
    its camera, not ``None+<camera>``."""
    p = _light(tmp_path, f"{RIG_DIR}/NGC 7000/DATE_2026-11-20/{LIGHT_NAME}.fits")
    f = parse_frame(p, root=tmp_path)
    assert (
        layout.frame_file_name(f)
        == "2026-11-21T03-00-00_HFR_3.70_STARS_812_RMSAC_0.60_TEMP_-10.00.fits"
    )
    dark = build_frame(
        "x/2026-11-21_11-00-00_DARK.fits",
        {
            "imagetyp": "DARK",
            "camera": "ZWO ASI2600MM Pro",
            "datetime": "2026-11-21T11-00-00",
            "date": "2026-11-20",
            "exposure": "300",
        },
    )
    dest = layout.calibration_dest(tmp_path, dark)
    assert dest.relative_to(tmp_path).parts[2] == "ZWO ASI2600MM Pro"
