"""Two-pass cull with auto percentage and remembered decisions; blink contact sheet and input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from include.astro.blink import contact_sheet, resolve, stretch
from include.astro.cull import (
    KEEP,
    REJECT,
    apply_decision,
    approval_text,
    cull_rig,
    frame_keys,
    light_dirs,
)
from include.astro.frames import Frame
from include.astro.moves import prepare_raw
from include.astro.rigs import CullPass, load_rigs
from include.astro.samples import C8E, DWARF, SQA55, generate_raw_tree

HA = f"{C8E}/10_Blink/NGC 7000/DATE_2026-11-20/FILTER_H_EXP_300.00"
O3 = f"{C8E}/10_Blink/NGC 7000/DATE_2026-11-20/FILTER_O_EXP_300.00"


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    generate_raw_tree(tmp_path / "raw")
    prepare_raw(tmp_path / "raw", tmp_path / "lib", load_rigs())
    return tmp_path / "lib"


def names(items: list[dict]) -> list[str]:
    return sorted(Path(i["src"]).name for i in items)


def test_cull_pass_rule() -> None:
    cp = CullPass("moderate", 4.6, 2.0, 30)
    assert cp.flags(Frame(path="x", hfr=4.7)) == "HFR 4.7 > 4.6"
    assert cp.flags(Frame(path="x", hfr=4.6, rmsac=2.0)) is None
    assert cp.flags(Frame(path="x", hfr=5.0, rmsac=2.5)) == "HFR 5.0 > 4.6; RMS 2.5 > 2"
    assert cp.flags(Frame(path="x")) is None  # missing values never reject


def test_two_passes_with_approval(lib: Path) -> None:
    cfg = load_rigs()
    p1 = cull_rig(lib, C8E, cfg, 0)
    # Ha: 2 of 7 flagged (28.6% < 30%) -> rejected without asking
    assert names(p1["auto_rejected"]) == [
        "2026-11-21T03-10-20_HFR_4.80_STARS_301_RMSAC_0.70_TEMP_-10.00.fits",
        "2026-11-21T03-20-40_HFR_2.20_STARS_805_RMSAC_2.50_TEMP_-10.00.fits",
    ]
    assert all(
        i["dest"].startswith(
            f"{C8E}/_Reject/10_Blink/NGC 7000/DATE_2026-11-20/FILTER_H_EXP_300.00/"
        )
        for i in p1["auto_rejected"]
    )
    # O3: 3 of 5 flagged (60%) -> pending approval
    [pending] = p1["pending"]
    assert (pending["directory"], pending["total"], pending["share"]) == (O3, 5, 60.0)
    subject, body = approval_text(pending)
    assert subject == f"Cull moderate: 3 of 5 frames flagged in {O3}"
    assert "HFR 6.00 > 4.6" in body and "Keep all" in body
    decided = apply_decision(lib, pending, KEEP)
    assert decided["decision"] == KEEP and "rejected" not in decided
    # a rerun with the remembered decision does not ask again
    again = cull_rig(lib, C8E, cfg, 0, decisions=dict.fromkeys(decided["frame_keys"], KEEP))
    assert again["pending"] == [] and [d["decision"] for d in again["decided"]] == [KEEP]
    # pass 2 (HFR > 5.5, auto 100%) rejects only the 6.0 frame
    p2 = cull_rig(lib, C8E, cfg, 1)
    assert names(p2["auto_rejected"]) == [
        "2026-11-21T04-20-40_HFR_6.00_STARS_150_RMSAC_0.65_TEMP_-10.00.fits"
    ]
    assert [len(v) for v in light_dirs(lib, C8E).values()] == [5, 4]
    assert cull_rig(lib, SQA55, cfg, 0)["auto_rejected"] == []
    assert cull_rig(lib, DWARF, cfg, 1)["pending"] == []


def test_reject_decision_moves_flagged(lib: Path) -> None:
    cfg = load_rigs()
    [pending] = cull_rig(lib, C8E, cfg, 0)["pending"]
    entry = apply_decision(lib, pending, REJECT)
    assert len(entry["rejected"]) == 3 and entry["errors"] == []
    # applying again (retry) finds them already in the reject folder
    entry2 = apply_decision(lib, pending, REJECT)
    assert [r["status"] for r in entry2["rejected"]] == ["already_present"] * 3
    assert len(light_dirs(lib, C8E)[O3]) == 2


def test_corrupt_frame_in_blink_is_reported(lib: Path) -> None:
    bad = lib / HA / "2026-11-21T05-00-00_HFR_9.0.fits"
    bad.write_bytes(b"garbage")
    res = cull_rig(lib, C8E, load_rigs(), 0)
    assert [(Path(e["src"]).name, e["reason"]) for e in res["errors"]] == [
        (bad.name, "not a FITS file (no SIMPLE card)")
    ]
    assert bad.exists()


def test_stretch_and_contact_sheet(lib: Path, tmp_path: Path) -> None:
    ramp = np.linspace(0, 1000, 100, dtype=np.float32).reshape(10, 10)
    s = stretch(ramp)
    assert s.dtype == np.uint8 and s.min() == 0 and s.max() == 255
    assert stretch(np.ones((4, 4))).max() == 0
    files = [str(p) for fs in light_dirs(lib, C8E).values() for p in fs]
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"nope")
    sheet = contact_sheet([*files, str(bad)], tmp_path / "sheet.png", title=C8E)
    assert sheet["count"] == 13 and [e["n"] for e in sheet["index"]] == list(range(1, 14))
    assert len(sheet["errors"]) == 1 and sheet["errors"][0]["file"] == str(bad)
    img = Image.open(sheet["path"])
    # issue 15.2: tiles at blinking size (48x64 px sample frames are enlarged), full names
    assert img.format == "PNG" and img.size == (3 * 480, 32 + 5 * (480 + 30))
    tile = np.asarray(img)[32 + 60 : 32 + 420, 0:480]  # 4:3 frame centred in the tile
    assert tile.std() > 10 and (tile > 0).mean() > 0.9  # the picture fills the tile


def test_resolve_reviewer_input() -> None:
    index = [{"n": i + 1, "file": f"/lib/d/f{i + 1}.fits"} for i in range(6)]
    files, errors = resolve("1, 3-4\nf6.fits; 9 ; x.fits, 1", index)
    assert files == ["/lib/d/f1.fits", "/lib/d/f3.fits", "/lib/d/f4.fits", "/lib/d/f6.fits"]
    assert errors == [
        {"entry": "9", "reason": "no such frame number on the sheet"},
        {"entry": "x.fits", "reason": "not a frame on the sheet"},
    ]
    assert resolve("2 5", index)[0] == ["/lib/d/f2.fits", "/lib/d/f5.fits"]
    assert resolve("", index) == ([], [])


def test_xisf_preview_pixels(tmp_path: Path) -> None:
    from include.astro.blink import read_pixels
    from include.astro.samples import write_xisf

    data = np.arange(12 * 10, dtype=np.float32).reshape(10, 12)
    p = write_xisf(tmp_path / "a.xisf", data, {"IMAGETYP": "LIGHT"})
    assert np.array_equal(read_pixels(p), data)
    p.write_bytes(p.read_bytes()[:-8])
    with pytest.raises(ValueError, match="truncated XISF image data"):
        read_pixels(p)


def test_keep_all_is_sticky_per_frame(lib: Path) -> None:
    """Issue 15.1: a human "Keep all" survives later runs, also when the flagged set changes."""
    cfg = load_rigs()
    [pending] = cull_rig(lib, C8E, cfg, 0)["pending"]
    kept = apply_decision(lib, pending, KEEP)
    decisions = {k: KEEP for k in kept["frame_keys"]}
    # a new flagged frame lands in the directory (e.g. the next night's run added one)
    src = lib / O3 / Path(pending["flagged"][0]["file"]).name
    extra = src.with_name("2026-11-21T06-00-00_HFR_7.0_STARS_100_RMSAC_0.5_TEMP_-10.00.fits")
    extra.write_bytes(src.read_bytes())
    again = cull_rig(lib, C8E, cfg, 0, decisions=decisions)
    # the 3 kept frames stay; only the new one is judged (1 of 6 < 30%: rejected automatically)
    assert names(again["auto_rejected"]) == [extra.name]
    assert again["pending"] == []
    assert [(d["decision"], len(d["flagged"])) for d in again["decided"]] == [(KEEP, 3)]
    assert len(light_dirs(lib, C8E)[O3]) == 5
    # a kept frame whose metrics change is asked about again
    renamed = lib / pending["flagged"][0]["file"]
    renamed.rename(renamed.with_name(renamed.name.replace("HFR_", "HFR_9")))
    third = cull_rig(lib, C8E, cfg, 0, decisions=decisions)
    assert [len(d["flagged"]) for d in third["decided"]] == [2]


def test_frames_without_hfr_in_the_name_are_culled_on_the_measured_hfr(
    lib: Path, tmp_path: Path
) -> None:
    """Issue 15 deliverable 3: a light whose NINA name has no HFR is judged on its pixels."""
    from include.astro.metrics_store import MetricsStore
    from include.astro.samples import star_frame, write_fits

    d = lib / HA
    blurry = d / "2026-11-21T05-10-00_RMSAC_0.50_TEMP_-10.00.fits"
    write_fits(blurry, star_frame(3, (200, 260), 40, sigma=6.0), {"IMAGETYP": "LIGHT"})
    store = MetricsStore(lib, C8E)
    res = cull_rig(lib, C8E, load_rigs(), 0, measure_hfr=store.hfr)
    reasons = {Path(f["file"]).name: f["reason"] for v in res["pending"] for f in v["flagged"]}
    assert reasons[blurry.name].startswith("HFR (measured) ")
    assert cull_rig(lib, C8E, load_rigs(), 0)["auto_rejected"]  # without pixels: not flagged
    store.save()
    assert (lib / "_Metrics").is_dir() and MetricsStore(lib, C8E).data  # measured once, kept


def test_earlier_format_answer_is_converted_per_frame(lib: Path) -> None:
    """Issue 15.1: a "Keep all" stored before answers were per frame (one key over the flagged set)
    still protects those frames, also once new frames land, and is handed back to be stored per
    frame."""
    cfg = load_rigs()
    [pending] = cull_rig(lib, C8E, cfg, 0)["pending"]
    old_format = {pending["key"]: KEEP}  # what the ledger held before the per-frame answers
    again = cull_rig(lib, C8E, cfg, 0, decisions=old_format)
    assert again["pending"] == [] and again["auto_rejected"] == []
    [kept] = again["decided"]
    assert (kept["decision"], kept["legacy_key"]) == (KEEP, pending["key"])
    assert sorted(kept["converted"]) == sorted(frame_keys(pending))
    assert len(light_dirs(lib, C8E)[O3]) == 5
    # a new flagged frame lands: the old key no longer names the whole flagged set, yet the 3
    # frames it was given for stay kept and only the new one is judged (1 of 6: automatic)
    src = lib / pending["flagged"][0]["file"]
    extra = src.with_name("2026-11-21T06-00-00_HFR_7.0_STARS_100_RMSAC_0.5_TEMP_-10.00.fits")
    extra.write_bytes(src.read_bytes())
    third = cull_rig(lib, C8E, cfg, 0, decisions=old_format)
    assert names(third["auto_rejected"]) == [extra.name]
    assert [(d["decision"], len(d["converted"])) for d in third["decided"]] == [(KEEP, 3)]
    # a "Reject flagged" of the earlier format rejects them
    rej = cull_rig(lib, C8E, cfg, 0, decisions={pending["key"]: REJECT})
    assert [(d["decision"], len(d["rejected"])) for d in rej["decided"]] == [(REJECT, 3)]
    assert len(light_dirs(lib, C8E)[O3]) == 2
