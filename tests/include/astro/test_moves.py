"""Raw step (parse, move+rename, accept dirs, empty-dir cleanup) and promotion to 20_Data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from include.astro import layout
from include.astro.moves import prepare_raw, promote_dir
from include.astro.rigs import load_rigs
from include.astro.samples import C8E, DWARF, SQA55, generate_raw_tree, star_field, write_fits

HA_DIR = f"{C8E}/10_Blink/NGC 7000/DATE_2026-11-20/FILTER_H_EXP_300.00"


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path, dict[str, list[str]]]:
    raw, lib = tmp_path / "raw", tmp_path / "lib"
    return raw, lib, generate_raw_tree(raw)


def test_prepare_raw_moves_and_renames(tree: tuple[Path, Path, dict[str, list[str]]]) -> None:
    raw, lib, made = tree
    ledger: list[tuple] = []
    res = prepare_raw(raw, lib, load_rigs(), ledger=lambda *a: ledger.append(a))
    d = res.to_dict()
    assert d["counts"] == {"light_moved": 19, "calibration_moved": 8, "error": 3}
    assert d["rigs"] == sorted([C8E, DWARF, SQA55])
    assert d["skipped_dirs"] == ["_stash"]
    errors = {i.src: i.reason for i in res.errors}
    assert errors == {
        made["bad"][0]: "truncated FITS data (3880 of 9024 bytes)",
        made["bad"][1]: "not a FITS file (no SIMPLE card)",
        made["bad"][2]: "unknown frame type (no IMAGETYP in name or header)",
    }
    # bad files and the stash stay where they were; everything else is gone from raw
    assert files_under(raw) == sorted(made["bad"] + made["stash"])
    assert d["accept_dirs"] == [
        f"{C8E}/10_Blink/NGC 7000/accept",
        f"{DWARF}/10_Blink/M 45/accept",
        f"{SQA55}/10_Blink/M 42/accept",
    ]
    assert all((lib / a).is_dir() for a in d["accept_dirs"])
    assert (lib / HA_DIR / "2026-11-21T03-15-30_RMSAC_0.66_TEMP_-10.10.fits").is_file()
    assert (
        lib / f"{SQA55}/10_Blink/M 42/DATE_2026-11-20/FILTER_L_EXP_120.00_PANEL_1"
        "/2026-11-21T05-04-20_HFR_1.95_STARS_1510_RMSAC_0.79_TEMP_-5.10.fits"
    ).is_file()
    assert (
        lib / "_Calibration/DARK/C8E+ZWO ASI2600MM Pro/DATE_2026-11-20"
        "/EXP_300.00_SETTEMP_-10.00_GAIN_100_OFFSET_50/2026-11-21T11-00-00.fits"
    ).is_file()
    assert not (raw / DWARF).exists()  # emptied raw folders are deleted
    assert (raw / "_stash").is_dir()
    assert len([x for x in ledger if x[2] == "done"]) == 27
    assert len([x for x in ledger if x[2] == "failed"]) == 3


def test_rerun_is_idempotent_and_crash_safe(tree: tuple[Path, Path, dict[str, list[str]]]) -> None:
    raw, lib, made = tree
    cfg = load_rigs()
    # simulate a crash after the copy/link of one frame but before deleting the source
    first = raw / made["lights"][0]
    keep = first.read_bytes()
    prepare_raw(raw, lib, cfg)
    before = files_under(lib)
    first.parent.mkdir(parents=True, exist_ok=True)
    first.write_bytes(keep)
    res = prepare_raw(raw, lib, cfg)
    assert [(i.status, i.kind) for i in res.items if i.status != "error"] == [
        ("already_present", "light")
    ]
    assert not first.exists()
    assert files_under(lib) == before
    again = prepare_raw(raw, lib, cfg)
    assert again.counts() == {"error": 3}


def test_conflict_and_read_only_are_per_item(tree: tuple[Path, Path, dict[str, list[str]]]) -> None:
    raw, lib, made = tree
    cfg = load_rigs()
    # a different file already sits where the first light would go
    dest = lib / HA_DIR / "2026-11-21T03-00-00_HFR_2.10_STARS_812_RMSAC_0.61_TEMP_-10.00.fits"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"something else")
    # the SQA55 flats folder is read-only
    flats = raw / Path(made["calibration"][-1]).parent
    os.chmod(flats, 0o555)
    try:
        res = prepare_raw(raw, lib, cfg)
    finally:
        os.chmod(flats, 0o755)
    reasons = {i.src: i.reason for i in res.errors}
    assert reasons[made["lights"][0]] == "a different file is already at the destination"
    assert dest.read_bytes() == b"something else"
    assert (raw / made["lights"][0]).exists()
    ro = [r for s, r in reasons.items() if s.startswith(f"{SQA55}/FLAT")]
    assert len(ro) == 3 and all(r.startswith("source folder is read-only") for r in ro)
    assert len(list(flats.iterdir())) == 3
    assert res.counts()["light_moved"] == 18


def test_custom_name_without_rig_folder_uses_header(tmp_path: Path) -> None:
    raw, lib = tmp_path / "raw", tmp_path / "lib"
    write_fits(
        raw / "night1" / "2026-11-21_01-02-03_LIGHT_FILTER_Ha_EXP_60.00s_0001.fits",
        star_field(1, 2.0),
        {
            "IMAGETYP": "LIGHT",
            "TELESCOP": "R135",
            "FOCRATIO": 2.8,
            "INSTRUME": "AP26CC",
            "OBJECT": "IC 1396",
            "DATE-OBS": "2026-11-21T01:02:03",
        },
    )
    res = prepare_raw(raw, lib, load_rigs())
    assert [i.dest for i in res.items] == [
        "R135@f2.8+AP26CC/10_Blink/IC 1396/DATE_2026-11-20/FILTER_H_EXP_60.00/2026-11-21T01-02-03.fits"
    ]


def test_promote_dir(tmp_path: Path) -> None:
    lib = tmp_path
    d = lib / HA_DIR
    d.mkdir(parents=True)
    (lib / f"{C8E}/10_Blink/NGC 7000/accept").mkdir()
    (d / "a.fits").write_bytes(b"a")
    (d / "masterDark_X.xisf").write_bytes(b"m")
    out = promote_dir(lib, d)
    assert [(o.status, o.dest) for o in out] == [
        ("moved", f"{C8E}/20_Data/NGC 7000/DATE_2026-11-20/FILTER_H_EXP_300.00/a.fits"),
        ("moved", f"{C8E}/20_Data/NGC 7000/DATE_2026-11-20/FILTER_H_EXP_300.00/masterDark_X.xisf"),
    ]
    assert (lib / f"{C8E}/20_Data/NGC 7000/accept").is_dir()
    assert not (lib / f"{C8E}/10_Blink/NGC 7000").exists()
    assert layout.blink_to_data(d).is_dir()


def test_promote_after_a_crash_midway(tmp_path: Path) -> None:
    """A crash after some files reached 20_Data: the rerun completes the move, nothing doubled."""
    lib = tmp_path
    d = lib / HA_DIR
    d.mkdir(parents=True)
    for name in ("a.fits", "b.fits", "masterFlat_X.xisf"):
        (d / name).write_bytes(name.encode())
    dest = layout.blink_to_data(d)
    dest.mkdir(parents=True)
    (dest / "a.fits").write_bytes(b"a.fits")  # moved before the crash
    os.link(d / "b.fits", dest / "b.fits")  # linked, source not yet deleted
    (d / "a.fits").unlink()
    out = promote_dir(lib, d)
    assert [(Path(o.src).name, o.status) for o in out] == [
        ("b.fits", "already_present"),
        ("masterFlat_X.xisf", "moved"),
    ]
    assert sorted(p.name for p in dest.iterdir()) == ["a.fits", "b.fits", "masterFlat_X.xisf"]
    assert not d.exists()


def test_promote_never_overwrites(tmp_path: Path) -> None:
    lib = tmp_path
    d = lib / HA_DIR
    d.mkdir(parents=True)
    (d / "a.fits").write_bytes(b"new")
    dest = layout.blink_to_data(d)
    dest.mkdir(parents=True)
    (dest / "a.fits").write_bytes(b"old")
    [o] = promote_dir(lib, d)
    assert (o.status, o.reason) == ("error", "a different file is already in 20_Data")
    assert (d / "a.fits").read_bytes() == b"new" and (dest / "a.fits").read_bytes() == b"old"


def test_hostile_header_values_stay_inside_the_library(tmp_path: Path) -> None:
    raw, lib = tmp_path / "raw", tmp_path / "lib"
    write_fits(
        raw / "x" / "2026-11-21_01-02-03_0001.fits",
        star_field(1, 2.0),
        {
            "IMAGETYP": "LIGHT",
            "TELESCOP": "../../etc",
            "FOCRATIO": 2.8,
            "INSTRUME": "cam/../../x",
            "OBJECT": "../../../outside Panel ../1",
            "FILTER": "L",
            "EXPOSURE": 60.0,
            "DATE-OBS": "2026-11-21T01:02:03",
        },
    )
    res = prepare_raw(raw, lib, load_rigs())
    [item] = res.items
    assert item.status == "moved"
    assert item.dest == (
        ".._.._etc@f2.8+cam_.._.._x/10_Blink/.._.._.._outside/DATE_2026-11-20/"
        "FILTER_L_EXP_60.00_PANEL_.._1/2026-11-21T01-02-03.fits"
    )
    assert all(p.resolve().is_relative_to(lib.resolve()) for p in lib.rglob("*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib", "raw"]


def test_non_frame_files_are_reported_and_left(tmp_path: Path) -> None:
    raw, lib = tmp_path / "raw", tmp_path / "lib"
    (raw / "night").mkdir(parents=True)
    (raw / "night" / "session.log").write_text("x")
    (raw / "night" / "IMG_0001.CR2").write_bytes(b"raw")
    (raw / "night" / ".DS_Store").write_bytes(b"")
    res = prepare_raw(raw, lib, load_rigs())
    assert [(i.src, i.status, i.reason) for i in res.items] == [
        ("night/IMG_0001.CR2", "error", "unsupported file type .cr2 (not FITS/XISF)"),
        ("night/session.log", "error", "unsupported file type .log (not FITS/XISF)"),
    ]
    assert sorted(p.name for p in (raw / "night").iterdir()) == [
        ".DS_Store",
        "IMG_0001.CR2",
        "session.log",
    ]


def test_symlinked_raw_file_lands_as_a_real_file(tmp_path: Path) -> None:
    """Issue 15.6: the library gets the content, not a (dangling) link; the link's target stays."""
    raw, lib, elsewhere = tmp_path / "raw", tmp_path / "lib", tmp_path / "elsewhere"
    real = write_fits(
        elsewhere / "x.fits",
        star_field(1, 2.0),
        {"IMAGETYP": "LIGHT", "FILTER": "L", "EXPOSURE": 60.0, "OBJECT": "M 42"},
    )
    link = raw / f"{SQA55}/M 42/DATE_2026-11-20/2026-11-21_05-00-00_HFR_1.90.fits"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    dangling = link.with_name("2026-11-21_05-01-00_HFR_1.90.fits")
    dangling.symlink_to(elsewhere / "gone.fits")
    res = prepare_raw(raw, lib, load_rigs())
    [moved] = [i for i in res.items if i.status == "moved"]
    dest = lib / moved.dest
    assert dest.is_file() and not dest.is_symlink() and dest.read_bytes() == real.read_bytes()
    assert not link.is_symlink() and real.is_file()
    [err] = res.errors
    assert err.src.endswith(dangling.name) and (err.reason or "").startswith("dangling symlink")
    # the moved file is usable by the next steps (the link would dangle once the raw side goes)
    real.unlink()
    assert dest.read_bytes()[:6] == b"SIMPLE"


def test_folders_emptied_by_rejects_are_removed(tmp_path: Path) -> None:
    """Issue 15.7: rejecting every frame of a set leaves no empty FILTER_/DATE_/target folders."""
    from include.astro.cull import light_dirs, reject_files

    generate_raw_tree(tmp_path / "raw")
    prepare_raw(tmp_path / "raw", lib := tmp_path / "lib", load_rigs())
    [(m42_dir, files)] = light_dirs(lib, SQA55).items()
    reject_files(lib, SQA55, [str(f.relative_to(lib)) for f in files], "test")
    assert not (lib / SQA55 / "10_Blink" / "M 42").exists()
    assert (lib / SQA55 / "_Reject" / "10_Blink" / "M 42").is_dir()
