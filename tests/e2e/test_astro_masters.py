"""End to end: astro_calibration_masters on generated calibration sets of three rigs (dag.test,
real app DB on PostgreSQL and SQLite, approval answered by the test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import select

from include.astro.layout import calibration_input_dir
from include.astro.samples_masters import RIGS, make_calibration_sets
from include.common.db import make_engine, session_scope
from include.common.models import ItemRecord
from include.common.publish import published_root
from tests.e2e import artefact_links

pytestmark = pytest.mark.e2e

LIB_FILES = {
    "_Bias Library/ATR585M/masterBias_SETTEMP_-5.00_GAIN_150_OFFSET_30_READOUTM_1.fits",
    "_Bias Library/DWARFIII/DWARFIII/masterBias_GAIN_80.fits",
    "_Bias Library/ZWO ASI2600MM Pro/masterBias_SETTEMP_-10.00_GAIN_100_OFFSET_50.fits",
    "_Dark Library/ATR585M/masterDark_EXPOSURE_300.00_SETTEMP_-5.00_GAIN_150_OFFSET_30_READOUTM_1.fits",
    "_Dark Library/DWARFIII/DWARFIII/masterDark_EXPOSURE_300.00_GAIN_80.fits",
    "_Dark Library/ZWO ASI2600MM Pro/masterDark_EXPOSURE_300.00_SETTEMP_-10.00_GAIN_100_OFFSET_50.fits",
    "_Flat Stash/ATR585M/SQA55/DATE_2026-11-20/masterFlat_FILTER_H_SETTEMP_-5.00_GAIN_150_OFFSET_30_READOUTM_1.fits",
    "_Flat Stash/ATR585M/SQA55/DATE_2026-11-20/masterFlat_FILTER_O_SETTEMP_-5.00_GAIN_150_OFFSET_30_READOUTM_1.fits",
    "_Flat Stash/DWARFIII/DWARFIII/DWARFIII/DATE_2026-11-20/masterFlat_FILTER_UVIR_GAIN_80.fits",
    "_Flat Stash/ZWO ASI2600MM Pro/C8E/DATE_2026-11-20/masterFlat_FILTER_L_SETTEMP_-10.00_GAIN_100_OFFSET_50.fits",
    "_Flat Stash/ZWO ASI2600MM Pro/C8E/DATE_2026-11-20/masterFlat_FILTER_R_SETTEMP_-10.00_GAIN_100_OFFSET_50.fits",
}


def _library(lib: Path) -> set[str]:
    return {
        str(p.relative_to(lib))
        for d in ("_Bias Library", "_Dark Library", "_Flat Stash")
        for p in (lib / d).rglob("*.fits")
    }


def _expected(paths: list[str], imagetyp: str, bias: np.ndarray | None = None) -> np.ndarray:
    """The master computed with plain numpy: median; flats minus the master bias, each scaled by
    its median (every 7th row and column), median-combined, normalised to median 1."""
    data = np.stack([fits.getdata(p).astype(np.float64) for p in paths])
    if imagetyp != "FLAT":
        return np.median(data, axis=0)
    data = data - bias
    scaled = np.stack([d / np.median(d[::7, ::7]) for d in data])
    m = np.median(scaled, axis=0)
    return m / np.median(m)


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_masters_three_rigs(
    run_dag, app_db_url: str, request, tmp_path: Path, dialect: str
) -> None:
    url = request.getfixturevalue("use_sqlite_app_db") if dialect == "sqlite" else app_db_url
    lib = tmp_path / "library"
    sets = make_calibration_sets(lib, n_frames=3, shape=(24, 32))
    # keep the pixels of every input to check the masters after the raw frames are gone
    expected = {}
    for k, v in sets.items():
        imagetyp, rig, _ = k.split("|")
        bias = (
            _expected(sets[f"BIAS|{rig}|"], "BIAS").astype(np.float32)
            if imagetyp == "FLAT"
            else None
        )
        expected[k] = _expected(v, imagetyp, bias)

    res = run_dag("astro_calibration_masters", conf={"library_dir": str(lib)}, approve="all")
    assert res.state == "success", res.task_states
    assert res.task_states["publish_library"] == "success"
    assert len(res.answered) == 1

    assert _library(lib) == LIB_FILES
    for key, exp in expected.items():
        imagetyp, rig, what = key.split("|")
        camera = rig.split("+", 1)[1]
        lib_dir = {"BIAS": "_Bias Library", "DARK": "_Dark Library", "FLAT": "_Flat Stash"}[
            imagetyp
        ]
        (path,) = [
            lib / f
            for f in LIB_FILES
            if f.startswith(f"{lib_dir}/{camera}/")
            and (imagetyp != "FLAT" or f"FILTER_{what}_" in f)
        ]
        got = fits.getdata(path).astype(np.float64)
        np.testing.assert_allclose(got, exp, rtol=1e-5, err_msg=key)
        h = fits.getheader(path)
        assert h["IMAGETYP"] == f"MASTER {imagetyp}" and h["NCOMBINE"] == 3
        assert h["INSTRUME"] == camera
        if imagetyp == "FLAT":  # this run's master bias was subtracted
            assert h["CALBIAS"].startswith("masterBias_")
    # raw frames and the integration temp folder are gone; nothing else was touched
    assert not any(calibration_input_dir(lib).rglob("*.fits"))
    assert not any((lib / "_Integration").rglob("*.fits"))
    summary = json.loads(
        next((lib / "_Summary" / "astro_calibration_masters").glob("*.json")).read_text()
    )
    assert [c["status"] for c in summary["library"]] == ["copied"] * 11
    assert sum(c["deleted"] for c in summary["cleanup"]) == 33
    with session_scope(make_engine(url)) as s:
        recs = s.scalars(
            select(ItemRecord).where(
                ItemRecord.pipeline == "astro_calibration_masters", ItemRecord.run_id == res.run_id
            )
        ).all()
    assert len(recs) == 11 and {r.status for r in recs} == {"done"}
    assert {str(Path(r.item_key).relative_to(lib)) for r in recs} == LIB_FILES


@pytest.mark.slow
def test_bad_groups_and_conflicts_keep_raw_frames(run_dag, app_db_url: str, tmp_path: Path) -> None:
    lib = tmp_path / "library"
    sets = make_calibration_sets(lib, n_frames=3, shape=(16, 16), rigs=RIGS[:2])
    # corrupt frame in the ATR585M dark group; too few frames in the C8E R flats
    bad_dark = Path(sets["DARK|SQA55@f5.3+ATR585M|300.00"][0])
    bad_dark.write_bytes(bad_dark.read_bytes()[:3000])  # data cut short
    for p in sets["FLAT|C8E@f10.0+ZWO ASI2600MM Pro|R"][1:]:
        Path(p).unlink()
    # a different master already sits where the C8E bias master belongs
    occupied = (
        lib / "_Bias Library/ZWO ASI2600MM Pro/masterBias_SETTEMP_-10.00_GAIN_100_OFFSET_50.fits"
    )
    occupied.parent.mkdir(parents=True)
    fits.PrimaryHDU(np.zeros((16, 16), dtype=np.float32)).writeto(occupied)
    before = occupied.read_bytes()

    res = run_dag("astro_calibration_masters", conf={"library_dir": str(lib)}, approve="all")
    assert res.state == "success", res.task_states
    assert occupied.read_bytes() == before  # never overwritten
    left = {
        str(p.relative_to(calibration_input_dir(lib)))
        for p in calibration_input_dir(lib).rglob("*.fits")
    }
    kept = {
        str(Path(p).relative_to(calibration_input_dir(lib)))
        for k in ("DARK|SQA55@f5.3+ATR585M|300.00", "BIAS|C8E@f10.0+ZWO ASI2600MM Pro|")
        for p in sets[k]
    }
    kept.add(
        str(
            Path(sets["FLAT|C8E@f10.0+ZWO ASI2600MM Pro|R"][0]).relative_to(
                calibration_input_dir(lib)
            )
        )
    )
    assert left == kept
    summary = json.loads(
        next((lib / "_Summary" / "astro_calibration_masters").glob("*.json")).read_text()
    )
    problems = {g["group_id"]: g["problems"] for g in summary["groups"] if not g["valid"]}
    assert len(problems) == 2
    text = json.dumps(problems)
    assert "truncated" in text and "too few frames: 1 < 3" in text
    statuses = sorted(c["status"] for c in summary["library"])
    assert statuses == ["conflict"] + ["copied"] * 5
    assert not (lib / "_Dark Library/ATR585M").exists()
    # rerun: converges, nothing new, the kept frames stay
    res2 = run_dag("astro_calibration_masters", conf={"library_dir": str(lib)}, approve="all")
    assert res2.state == "success"
    assert res2.task_states["publish_library"] == "skipped"
    assert {
        str(p.relative_to(calibration_input_dir(lib)))
        for p in calibration_input_dir(lib).rglob("*.fits")
    } == kept


@pytest.mark.slow
def test_blink_exclusion_and_reject(run_dag, app_db_url: str, tmp_path: Path) -> None:
    from include.astro.calgroups import group_frames

    lib = tmp_path / "library"
    sets = make_calibration_sets(lib, n_frames=3, shape=(8, 8), rigs=RIGS[1:2])
    groups = group_frames(calibration_input_dir(lib)).groups
    flat_h = next(g for g in groups if g.props.get("filter") == "H").group_id
    seen: list[dict] = []

    def exclude_h(detail: dict) -> dict:
        seen.append(detail)
        return {"chosen_options": ["Approve"], "params_input": {"exclude_groups": [flat_h]}}

    res = run_dag("astro_calibration_masters", conf={"library_dir": str(lib)}, approve=exclude_h)
    assert res.state == "success", res.task_states
    assert flat_h in seen[0]["body"] and "contact sheet" in seen[0]["body"]
    assert (lib / "_Integration" / "contact_sheets" / f"{flat_h}.png").is_file()
    # the approval links every group's contact sheet, published for the Airflow UI
    body = seen[0]["body"]
    assert "file://" not in body
    found = artefact_links.links(body)
    assert len(found) == len(groups) == 4
    run_dir = res.run_id.replace(":", "_")
    for text, url in found:
        assert text == "contact sheet"
        assert url.startswith(
            f"{artefact_links.BASE}astro_calibration_masters/{run_dir}/contact_sheets/"
        )
        png = artefact_links.published_path(url)
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        line = next(ln for ln in body.splitlines() if url in ln)
        assert png.stem in line  # the link of a group is on that group's line
    flat_url = next(u for _, u in found if flat_h in u)
    assert artefact_links.fetch(flat_url)[:2] == (200, "image/png")
    # the summary is published too; the published sheets stay after the cleanup
    published = published_root() / "astro_calibration_masters" / run_dir
    assert json.loads((published / "summary.json").read_text())["run_id"] == res.run_id
    assert (published / "summary.html").is_file()
    assert len(list((published / "contact_sheets").glob("*.png"))) == 4
    assert len(_library(lib)) == 3  # bias, dark, flat O
    left = sorted(str(p) for p in calibration_input_dir(lib).rglob("*.fits"))
    assert left == sorted(sets["FLAT|SQA55@f5.3+ATR585M|H"])

    def reject(detail: dict) -> dict:
        return {"chosen_options": ["Reject"], "params_input": {"exclude_groups": []}}

    res = run_dag("astro_calibration_masters", conf={"library_dir": str(lib)}, approve=reject)
    assert res.state == "success"
    assert res.task_states["integrate_master"] == "skipped"
    assert res.task_states["delete_raw"] == "skipped"
    assert sorted(str(p) for p in calibration_input_dir(lib).rglob("*.fits")) == left


@pytest.mark.slow
def test_rerun_after_interrupted_cleanup(run_dag, app_db_url: str, tmp_path: Path) -> None:
    lib = tmp_path / "library"
    sets = make_calibration_sets(lib, n_frames=3, shape=(8, 8), rigs=RIGS[2:3])
    frame = Path(sets["DARK|DWARFIII@f4.3+DWARFIII|300.00"][1])
    saved = frame.read_bytes()
    res = run_dag("astro_calibration_masters", conf={"library_dir": str(lib)}, approve="all")
    assert res.state == "success", res.task_states
    library = {p: (lib / p).read_bytes() for p in _library(lib)}
    assert len(library) == 3  # bias, dark, UVIR flat
    # as if the cleanup had died before deleting this frame
    frame.parent.mkdir(parents=True, exist_ok=True)
    frame.write_bytes(saved)
    res = run_dag("astro_calibration_masters", conf={"library_dir": str(lib)}, approve="all")
    assert res.state == "success", res.task_states
    assert not frame.exists()
    assert {p: (lib / p).read_bytes() for p in _library(lib)} == library
    summaries = sorted((lib / "_Summary" / "astro_calibration_masters").glob("*.json"))
    last = json.loads(summaries[-1].read_text())
    assert [c["status"] for c in last["library"]] == ["already_present"]
    assert [c["deleted"] for c in last["cleanup"]] == [1]


@pytest.mark.slow
def test_links_follow_the_api_base_url(
    run_dag, app_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The approval links point at the installation's ``[api] base_url``."""
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.org/af")
    lib = tmp_path / "library"
    make_calibration_sets(lib, n_frames=3, shape=(8, 8), rigs=RIGS[2:3])
    seen: list[dict] = []

    def reject(detail: dict) -> dict:
        seen.append(detail)
        return {"chosen_options": ["Reject"], "params_input": {"exclude_groups": []}}

    res = run_dag("astro_calibration_masters", conf={"library_dir": str(lib)}, approve=reject)
    assert res.state == "success", res.task_states
    found = artefact_links.links(seen[0]["body"])
    run_dir = res.run_id.replace(":", "_")
    assert len(found) == 3  # bias, dark, flat of the DWARFIII rig
    for _, url in found:
        assert url.startswith(
            f"https://airflow.example.org/af/artefacts/astro_calibration_masters/{run_dir}/"
            "contact_sheets/"
        )
        rel = url.split("/artefacts/", 1)[1]
        assert (published_root() / rel).is_file()


@pytest.mark.slow
def test_sheets_still_shown_when_publishing_fails(run_dag, app_db_url: str, tmp_path: Path) -> None:
    """The published root is unusable (a file where the folder belongs): the approval still names
    every contact sheet on disk with the reason, and the run goes on."""
    from include.common.settings import get_settings

    data = tmp_path / "data"
    data.mkdir()
    (data / "published").write_text("not a folder")
    lib = tmp_path / "library"
    make_calibration_sets(lib, n_frames=3, shape=(8, 8), rigs=RIGS[2:3])
    seen: list[dict] = []

    def reject(detail: dict) -> dict:
        seen.append(detail)
        return {"chosen_options": ["Reject"], "params_input": {"exclude_groups": []}}

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMAGING_DATA_DIR", str(data))
        get_settings.cache_clear()
        try:
            res = run_dag(
                "astro_calibration_masters", conf={"library_dir": str(lib)}, approve=reject
            )
        finally:
            get_settings.cache_clear()
    assert res.state == "success", res.task_states
    assert res.task_states["summary"] == "success"
    body = seen[0]["body"]
    assert artefact_links.links(body) == []
    sheets = [ln for ln in body.splitlines() if "contact sheet" in ln]
    assert len(sheets) == 3 and all("not published:" in ln for ln in sheets)
    for ln in sheets:
        assert Path(ln.split("contact sheet `", 1)[1].split("`", 1)[0]).is_file()
    assert (data / "published").read_text() == "not a folder"
