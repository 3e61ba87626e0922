"""Library copy (no clobber, verified) and the guarded raw-frame cleanup (BIAS → DARK → FLAT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from include.astro.calgroups import group_frames
from include.astro.layout import calibration_input_dir
from include.astro.library import (
    copy_to_library,
    covers,
    delete_raw_frames,
)
from include.astro.masters import integrate_group
from include.astro.matching import library_path, subdirs_by_camera
from include.astro.rigs import load_rigs
from include.astro.samples_masters import make_calibration_sets


@pytest.fixture
def integrated(tmp_path: Path) -> tuple[Path, list[dict]]:
    make_calibration_sets(tmp_path, n_frames=3, shape=(12, 10))
    groups = [g.to_dict() for g in group_frames(calibration_input_dir(tmp_path)).groups]
    work = tmp_path / "_work"
    for g in groups:
        g["master"] = integrate_group(g, work)
        g["work_dir"] = str(work / g["group_id"])
    return tmp_path, groups


def test_library_paths_follow_shared_layout(tmp_path: Path) -> None:
    subdirs = subdirs_by_camera(load_rigs())
    assert subdirs == {"DWARFIII": "DWARFIII"}
    props = {
        "camera": "ATR585M",
        "gain": "150",
        "offset": "30",
        "settemp": "-5.00",
        "readoutmode": "1",
        "exposure": "300.00",
    }
    assert library_path(tmp_path, "DARK", props) == (
        tmp_path
        / "_Dark Library"
        / "ATR585M"
        / "masterDark_EXPOSURE_300.00_SETTEMP_-5.00_GAIN_150_OFFSET_30_READOUTM_1.fits"
    )
    flat = {
        "camera": "DWARFIII",
        "optic": "DWARFIII",
        "fratio": "4.3",
        "gain": "80",
        "filter": "UVIR",
        "date": "2026-11-20",
    }
    assert library_path(tmp_path, "FLAT", flat, subdir="DWARFIII") == (
        tmp_path
        / "_Flat Stash"
        / "DWARFIII"
        / "DWARFIII"
        / "DWARFIII"
        / "DATE_2026-11-20"
        / "masterFlat_FILTER_UVIR_GAIN_80.fits"
    )
    assert (
        library_path(tmp_path, "BIAS", {"camera": "X", "gain": "1"}).name
        == "masterBias_GAIN_1.fits"
    )


def test_copy_identical_skip_different_conflict(integrated: tuple[Path, list[dict]]) -> None:
    root, groups = integrated
    g = groups[0]
    dest = library_path(root, g["imagetyp"], g["props"])
    rec = copy_to_library(
        g["group_id"], g["imagetyp"], g["master"]["path"], dest, g["master"]["checksum"]
    )
    assert (
        rec.status == "copied"
        and rec.verified
        and Path(rec.dest).read_bytes() == Path(g["master"]["path"]).read_bytes()
    )
    again = copy_to_library(
        g["group_id"], g["imagetyp"], g["master"]["path"], dest, g["master"]["checksum"]
    )
    assert again.status == "already_present" and again.verified
    # another (different) master for the same library name is never written over the first
    other = groups[1]
    before = dest.read_bytes()
    clash = copy_to_library(
        other["group_id"], "BIAS", other["master"]["path"], dest, other["master"]["checksum"]
    )
    assert clash.status == "conflict" and not clash.verified
    assert "not overwritten" in clash.error
    assert dest.read_bytes() == before
    # a master changed after integration is refused
    tampered = groups[2]
    Path(tampered["master"]["path"]).write_bytes(b"x")
    bad = copy_to_library(
        tampered["group_id"],
        "BIAS",
        tampered["master"]["path"],
        root / "elsewhere.fits",
        tampered["master"]["checksum"],
    )
    assert bad.status == "error" and "checksum" in bad.error
    assert not (root / "elsewhere.fits").exists()


def test_cleanup_only_verified_and_unchanged(integrated: tuple[Path, list[dict]]) -> None:
    root, groups = integrated
    plan = []
    for g in groups:
        dest = library_path(root, g["imagetyp"], g["props"])
        rec = copy_to_library(
            g["group_id"], g["imagetyp"], g["master"]["path"], dest, g["master"]["checksum"]
        )
        assert rec.verified, rec
        plan.append(dict(g, library_path=rec.dest, library_checksum=rec.checksum))
    # group 0 (BIAS): no verified copy recorded -> kept
    plan[0] = dict(plan[0], library_checksum=None)
    # group 3 (DARK): one raw frame changed after integration -> that frame kept, others deleted
    changed = Path(plan[3]["frames"][1])
    hdr = fits.getheader(changed)
    fits.PrimaryHDU(np.zeros((12, 10), dtype=np.uint16), header=hdr).writeto(
        changed, overwrite=True
    )
    # group 6 (FLAT): library copy damaged -> kept
    Path(plan[6]["library_path"]).write_bytes(b"damaged")

    results = delete_raw_frames(plan, calibration_dir=calibration_input_dir(root))
    assert [r.imagetyp for r in results] == ["BIAS"] * 3 + ["DARK"] * 3 + ["FLAT"] * 5
    by_id = {r.group_id: r for r in results}
    r0 = by_id[plan[0]["group_id"]]
    assert r0.deleted == [] and "no verified library copy" in r0.error
    assert all(Path(p).exists() for p in plan[0]["frames"])
    r3 = by_id[plan[3]["group_id"]]
    assert [k["path"] for k in r3.kept] == [str(changed)]
    assert "not an input of the library master" in r3.kept[0]["reason"]
    assert len(r3.deleted) == 2 and changed.exists() and not r3.temp_removed
    r6 = by_id[plan[6]["group_id"]]
    assert "fails its checksum" in r6.error and all(Path(p).exists() for p in plan[6]["frames"])
    for i in (1, 2, 4, 5, 7, 8, 9, 10):
        r = by_id[plan[i]["group_id"]]
        assert r.error is None and len(r.deleted) == 3 and r.temp_removed
        assert not any(Path(p).exists() for p in plan[i]["frames"])
        assert not Path(plan[i]["work_dir"]).exists()
    # rerun: nothing more is deleted, nothing fails
    again = delete_raw_frames(plan, calibration_dir=calibration_input_dir(root))
    assert sum(len(r.deleted) for r in again) == 0
    assert all(Path(p).exists() for p in plan[0]["frames"])


def test_interrupted_cleanup_is_finished_by_a_rerun(integrated: tuple[Path, list[dict]]) -> None:
    root, groups = integrated
    g = groups[3]  # a DARK group
    dest = library_path(root, g["imagetyp"], g["props"])
    rec = copy_to_library(g["group_id"], "DARK", g["master"]["path"], dest, g["master"]["checksum"])
    assert covers(dest, g["frames"])
    # the cleanup died after deleting the first frame
    Path(g["frames"][0]).unlink()
    rest = g["frames"][1:]
    assert covers(dest, rest)  # the rest are still inputs of the library master
    assert not covers(dest, [*rest, groups[4]["frames"][0]])  # a frame of another group is not
    assert not covers(root / "missing.fits", rest)
    out = delete_raw_frames(
        [dict(g, frames=rest, library_path=rec.dest, library_checksum=rec.checksum)]
    )
    assert out[0].deleted == rest and out[0].kept == [] and out[0].error is None


def test_library_masters_parse_back_with_the_lights_parser(
    integrated: tuple[Path, list[dict]],
) -> None:
    """The lights pipeline matches masters by the properties its parser reads from them."""
    from include.astro.frames import parse_frame

    root, groups = integrated
    subdirs = subdirs_by_camera(load_rigs())
    for g in groups:
        dest = library_path(
            root, g["imagetyp"], g["props"], subdir=subdirs.get(g["props"]["camera"])
        )
        rec = copy_to_library(
            g["group_id"], g["imagetyp"], g["master"]["path"], dest, g["master"]["checksum"]
        )
        assert rec.verified
        frame = parse_frame(dest, root=root)
        assert frame.imagetyp == f"MASTER {g['imagetyp']}"
        assert {k: frame.get(k) for k in g["props"]} == g["props"], g["group_id"]


def test_no_import_cycle_between_library_and_masters() -> None:
    """Issue 15.11: matching keys and library paths live in include.astro.matching (defined once);
    masters.py no longer imports library.py (which imports masters.py)."""
    import ast

    import include.astro.masters as masters

    tree = ast.parse(Path(masters.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "include.astro.library" not in imported
    from include.astro import calgroups, matching

    assert calgroups.GROUP_PROPS is matching.MASTER_KEYS
