"""End to end: ``astro_prepare_lights`` runs with dag.test() on a generated NINA tree for three rigs,
against the real PostgreSQL app database; the approvals (cull + blink review) are answered through
Airflow's HITL REST API by the test. The final tree, the reject folders, the distributed masters and
the run summary are asserted exactly; a rerun neither loses nor duplicates a frame."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from include.astro.samples import C8E, DWARF, SQA55, generate_demo
from include.common.db import make_engine, session_scope
from include.common.models import ItemRecord
from include.common.publish import published_root
from tests.e2e import artefact_links

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NGC = "NGC 7000/DATE_2026-11-20"
HA, O3 = f"{NGC}/FILTER_H_EXP_300.00", f"{NGC}/FILTER_O_EXP_300.00"
M42 = "M 42/DATE_2026-11-20/FILTER_L_EXP_120.00_PANEL_1"
M45 = "M 45/DATE_2026-11-20/FILTER_RGB_EXP_15.00"
C8_DARK = "masterDark_EXPOSURE_300.00_SETTEMP_-10.00_GAIN_100_OFFSET_50.xisf"
SQ_SUFFIX = "SETTEMP_-5.00_GAIN_100_OFFSET_20_READOUTM_Normal.xisf"

EXPECTED_LIBRARY_RIGS = sorted(
    [
        # C8E Ha: 7 lights - 2 culled (pass 1, auto) - 1 rejected in blink review
        f"{C8E}/20_Data/{HA}/2026-11-21T03-00-00_HFR_2.10_STARS_812_RMSAC_0.61_TEMP_-10.00.fits",
        f"{C8E}/20_Data/{HA}/2026-11-21T03-05-10_HFR_2.31_STARS_790_RMSAC_0.58_TEMP_-9.90.fits",
        f"{C8E}/20_Data/{HA}/2026-11-21T03-15-30_RMSAC_0.66_TEMP_-10.10.fits",
        f"{C8E}/20_Data/{HA}/2026-11-21T03-35-10_HFR_2.25_STARS_801_RMSAC_0.60_TEMP_-10.00.fits",
        f"{C8E}/20_Data/{HA}/{C8_DARK}",
        f"{C8E}/20_Data/{HA}/masterFlat_FILTER_H_SETTEMP_-10.00_GAIN_100_OFFSET_50.xisf",
        # C8E O3: pass 1 flagged 3 of 5 -> "Keep all"; pass 2 (HFR > 5.5) rejects the 6.0 frame
        f"{C8E}/20_Data/{O3}/2026-11-21T04-00-00_HFR_2.50_STARS_700_RMSAC_0.60_TEMP_-10.00.fits",
        f"{C8E}/20_Data/{O3}/2026-11-21T04-05-10_HFR_4.90_STARS_410_RMSAC_0.62_TEMP_-10.00.fits",
        f"{C8E}/20_Data/{O3}/2026-11-21T04-10-20_HFR_5.00_STARS_400_RMSAC_0.64_TEMP_-10.00.fits",
        f"{C8E}/20_Data/{O3}/2026-11-21T04-15-30_HFR_2.60_STARS_690_RMSAC_0.59_TEMP_-10.00.fits",
        f"{C8E}/20_Data/{O3}/{C8_DARK}",
        f"{C8E}/20_Data/{O3}/masterFlat_FILTER_O_SETTEMP_-10.00_GAIN_100_OFFSET_50.xisf",
        f"{C8E}/_Reject/10_Blink/{HA}/2026-11-21T03-10-20_HFR_4.80_STARS_301_RMSAC_0.70_TEMP_-10.00.fits",
        f"{C8E}/_Reject/10_Blink/{HA}/2026-11-21T03-20-40_HFR_2.20_STARS_805_RMSAC_2.50_TEMP_-10.00.fits",
        f"{C8E}/_Reject/10_Blink/{HA}/2026-11-21T03-30-00_HFR_2.40_STARS_770_RMSAC_0.63_TEMP_-10.00.fits",
        f"{C8E}/_Reject/10_Blink/{O3}/2026-11-21T04-20-40_HFR_6.00_STARS_150_RMSAC_0.65_TEMP_-10.00.fits",
        # SQA55: frame number 2 rejected in review; scaled dark -> bias distributed too
        f"{SQA55}/20_Data/{M42}/2026-11-21T05-00-00_HFR_1.90_STARS_1500_RMSAC_0.80_TEMP_-5.00.fits",
        f"{SQA55}/20_Data/{M42}/2026-11-21T05-04-20_HFR_1.95_STARS_1510_RMSAC_0.79_TEMP_-5.10.fits",
        f"{SQA55}/20_Data/{M42}/2026-11-21T05-06-30_HFR_2.05_STARS_1480_RMSAC_0.81_TEMP_-5.00.fits",
        f"{SQA55}/20_Data/{M42}/masterBias_{SQ_SUFFIX}",
        f"{SQA55}/20_Data/{M42}/masterDark_{SQ_SUFFIX}",
        f"{SQA55}/20_Data/{M42}/masterFlat_FILTER_L_{SQ_SUFFIX}",
        f"{SQA55}/_Reject/10_Blink/{M42}/2026-11-21T05-02-10_HFR_2.00_STARS_1490_RMSAC_0.82_TEMP_-5.00.fits",
        # DWARFIII: no master flat -> stays in 10_Blink with its dark
        f"{DWARF}/10_Blink/{M45}/2026-11-21T02-00-00_HFR_3.10_STARS_400_TEMP_21.00.fits",
        f"{DWARF}/10_Blink/{M45}/2026-11-21T02-00-20_HFR_3.20_STARS_390_TEMP_21.00.fits",
        f"{DWARF}/10_Blink/{M45}/2026-11-21T02-00-40_HFR_3.00_STARS_410_TEMP_21.00.fits",
        f"{DWARF}/10_Blink/{M45}/masterDark_EXPOSURE_15.00_GAIN_60.xisf",
    ]
)
EXPECTED_CALIBRATION = sorted(
    [
        "_Calibration/BIAS/C8E+ZWO ASI2600MM Pro/DATE_2026-11-20/EXP_0.00_SETTEMP_-10.00_GAIN_100_OFFSET_50/2026-11-21T11-30-00.fits",
        "_Calibration/BIAS/C8E+ZWO ASI2600MM Pro/DATE_2026-11-20/EXP_0.00_SETTEMP_-10.00_GAIN_100_OFFSET_50/2026-11-21T11-30-10.fits",
        "_Calibration/DARK/C8E+ZWO ASI2600MM Pro/DATE_2026-11-20/EXP_300.00_SETTEMP_-10.00_GAIN_100_OFFSET_50/2026-11-21T11-00-00.fits",
        "_Calibration/DARK/C8E+ZWO ASI2600MM Pro/DATE_2026-11-20/EXP_300.00_SETTEMP_-10.00_GAIN_100_OFFSET_50/2026-11-21T11-00-10.fits",
        "_Calibration/DARK/C8E+ZWO ASI2600MM Pro/DATE_2026-11-20/EXP_300.00_SETTEMP_-10.00_GAIN_100_OFFSET_50/2026-11-21T11-00-20.fits",
        "_Calibration/FLAT/SQA55+ATR585M/DATE_2026-11-20/FILTER_L_EXP_1.50_SETTEMP_-5.00_GAIN_100_OFFSET_20_READOUTM_Normal/2026-11-21T06-00-00.fits",
        "_Calibration/FLAT/SQA55+ATR585M/DATE_2026-11-20/FILTER_L_EXP_1.50_SETTEMP_-5.00_GAIN_100_OFFSET_20_READOUTM_Normal/2026-11-21T06-00-10.fits",
        "_Calibration/FLAT/SQA55+ATR585M/DATE_2026-11-20/FILTER_L_EXP_1.50_SETTEMP_-5.00_GAIN_100_OFFSET_20_READOUTM_Normal/2026-11-21T06-00-20.fits",
    ]
)


def tree(root: Path, skip: tuple[str, ...] = ()) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not str(p.relative_to(root)).startswith(skip)
    )


def answers(asked: list[dict[str, Any]]) -> Any:
    def answer(detail: dict[str, Any]) -> dict[str, Any]:
        task_id = detail["task_instance"]["task_id"]
        asked.append({"task_id": task_id, "subject": detail["subject"], "body": detail["body"]})
        if task_id.startswith("approve_cull"):
            return {"chosen_options": ["Keep all"], "params_input": {}}
        assert task_id == "blink_review", task_id
        if C8E in detail["subject"]:
            reject = "2026-11-21T03-30-00_HFR_2.40_STARS_770_RMSAC_0.63_TEMP_-10.00.fits"
        elif SQA55 in detail["subject"]:
            reject = "2"
        else:
            reject = ""
        return {"chosen_options": ["Continue"], "params_input": {"reject": reject}}

    return answer


def test_prepare_lights_end_to_end(run_dag, app_db_url: str, tmp_path: Path) -> None:
    conf = generate_demo(tmp_path)
    raw, lib = Path(conf["raw_dir"]), Path(conf["library_dir"])
    masters_before = tree(lib)
    asked: list[dict[str, Any]] = []

    result = run_dag("astro_prepare_lights", conf=conf, approve=answers(asked))
    assert result.state == "success", result.task_states

    # approvals: one cull approval (C8E O3, pass 1) and one blink review per rig
    cull_asks = [a for a in asked if a["task_id"] == "approve_cull_1"]
    assert {a["subject"] for a in cull_asks} == {
        f"Cull moderate: 3 of 5 frames flagged in {C8E}/10_Blink/{O3}"
    }
    assert (
        "| `2026-11-21T04-20-40_HFR_6.00_STARS_150_RMSAC_0.65_TEMP_-10.00.fits` | HFR 6.00 > 4.6 |"
        in (cull_asks[0]["body"])
    )
    assert sorted({a["subject"] for a in asked if a["task_id"] == "blink_review"}) == [
        f"Blink review: {C8E} (9 frames)",
        f"Blink review: {DWARF} (3 frames)",
        f"Blink review: {SQA55} (4 frames)",
    ]
    assert not any(a["task_id"] == "approve_cull_2" for a in asked)
    sheet_line = next(
        a["body"] for a in asked if C8E in a["subject"] and "Contact sheet" in a["body"]
    )
    sheet = Path(sheet_line.split("(`", 1)[1].split("`)", 1)[0])
    assert sheet.is_file() and sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # every blink review links its contact sheet published for the Airflow UI (no file:// links)
    run_dir = result.run_id.replace(":", "_")
    for a in asked:
        assert "file://" not in a["body"]
        if a["task_id"] != "blink_review":
            continue
        ((text, url),) = [lk for lk in artefact_links.links(a["body"]) if "/artefacts/" in lk[1]]
        assert url.startswith(f"{artefact_links.BASE}astro_prepare_lights/{run_dir}/blink_")
        assert text == url.rsplit("/", 1)[1] and url.endswith(".png")
        published = artefact_links.published_path(url)
        assert published.is_file() and published.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ((_, c8e_url),) = artefact_links.links(sheet_line)
    assert artefact_links.published_path(c8e_url).read_bytes() == sheet.read_bytes()
    assert artefact_links.fetch(c8e_url) == (200, "image/png", sheet.read_bytes())

    # the final tree, exactly
    summary_dir = "_Summary/"
    assert (
        tree(lib, skip=(summary_dir, "_Metrics/", "_Calibration/", "_Bias", "_Dark", "_Flat"))
        == EXPECTED_LIBRARY_RIGS
    )
    assert tree(lib, skip=(summary_dir, "_Metrics/")) == sorted(
        EXPECTED_LIBRARY_RIGS + EXPECTED_CALIBRATION + masters_before
    )
    assert (lib / C8E / "20_Data/NGC 7000/accept").is_dir()
    assert (lib / DWARF / "10_Blink/M 45/accept").is_dir()
    assert not (lib / C8E / "10_Blink/NGC 7000").exists()
    assert tree(raw) == sorted(
        [
            f"{C8E}/LIGHT/{NGC}/FILTER_Ha_EXP_300.00s_SETTEMP_-10.00_GAIN_100_OFFSET_50/2026-11-21_03-25-50_HFR_2.20_STARS_800_RMSAC_0.60_TEMP_-10.0_0099.fits",
            f"{C8E}/LIGHT/{NGC}/notes_0001.fits",
            "_stash/2026-11-19_22-00-00_LIGHT_0001.fits",
            "unsorted/capture_0001.fits",
        ]
    )

    # the run summary (JSON + markdown in the library)
    run_key = result.run_id.replace(":", "_")
    summary = json.loads(
        (lib / summary_dir / "astro_prepare_lights" / f"{run_key}.json").read_text()
    )
    # ... and the run's summary page for the browser: contact sheets, answers, skipped folders
    pub = published_root() / "astro_prepare_lights" / run_key
    page = (pub / "summary.html").read_text()
    assert page.count("<img") == 3 and "Human answers" in page and "_stash" in page
    assert json.loads((pub / "summary.json").read_text())["counts"] == summary["counts"]
    assert summary["counts"] == {
        "lights_moved": 19,
        "calibration_moved": 8,
        "culled": 3,
        "rejected_by_review": 2,
        "masters_copied": 8,
        "missing_masters": 1,
        "promoted_directories": 3,
        "errors": 3,
    }
    assert summary["missing_masters"] == [
        {"rig": DWARF, "directory": f"{DWARF}/10_Blink/{M45}", "master": "FLAT"}
    ]
    assert summary["kept_by_decision"] == [
        {"rig": C8E, "pass": "moderate", "directory": f"{C8E}/10_Blink/{O3}", "frames": 3}
    ]
    assert [(c["rig"], c["file"], c["pass"], c["how"]) for c in summary["culled"]] == [
        (
            C8E,
            f"{C8E}/10_Blink/{HA}/2026-11-21T03-10-20_HFR_4.80_STARS_301_RMSAC_0.70_TEMP_-10.00.fits",
            "moderate",
            "auto",
        ),
        (
            C8E,
            f"{C8E}/10_Blink/{HA}/2026-11-21T03-20-40_HFR_2.20_STARS_805_RMSAC_2.50_TEMP_-10.00.fits",
            "moderate",
            "auto",
        ),
        (
            C8E,
            f"{C8E}/10_Blink/{O3}/2026-11-21T04-20-40_HFR_6.00_STARS_150_RMSAC_0.65_TEMP_-10.00.fits",
            "strict",
            "auto",
        ),
    ]
    assert summary["rejected_by_review"] == [
        {
            "rig": C8E,
            "file": f"{C8E}/10_Blink/{HA}/2026-11-21T03-30-00_HFR_2.40_STARS_770_RMSAC_0.63_TEMP_-10.00.fits",
        },
        {
            "rig": SQA55,
            "file": f"{SQA55}/10_Blink/{M42}/2026-11-21T05-02-10_HFR_2.00_STARS_1490_RMSAC_0.82_TEMP_-5.00.fits",
        },
    ]
    assert summary["masters_copied"] == sorted(
        f.replace("/20_Data/", "/10_Blink/") for f in EXPECTED_LIBRARY_RIGS if "/master" in f
    )
    assert summary["promoted"] == [
        f"{C8E}/10_Blink/{HA}",
        f"{C8E}/10_Blink/{O3}",
        f"{SQA55}/10_Blink/{M42}",
    ]
    assert summary["frames_moved"] == {"lights": 19, "calibration": 8}
    assert {e["reason"] for e in summary["errors"]} == {
        "truncated FITS data (3880 of 9024 bytes)",
        "not a FITS file (no SIMPLE card)",
        "unknown frame type (no IMAGETYP in name or header)",
    }
    assert summary["held"] == [{"directory": f"{DWARF}/10_Blink/{M45}", "reason": "MISSING flat"}]
    md = (lib / summary_dir / "astro_prepare_lights" / f"{run_key}.md").read_text()
    assert f"- MISSING FLAT: `{DWARF}/10_Blink/{M45}`" in md

    # the ledger in the app database
    with session_scope(make_engine(app_db_url)) as s:
        counts = dict(
            s.execute(
                select(ItemRecord.kind, func.count())
                .where(
                    ItemRecord.pipeline == "astro_prepare_lights",
                    ItemRecord.run_id == result.run_id,
                )
                .group_by(ItemRecord.kind)
            ).all()
        )
    assert counts == {
        "raw_move": 30,  # 27 moved + 3 failed
        "cull_reject": 3,
        "cull_decision": 3,  # one remembered answer per frame
        "blink_reject": 2,
        "blink_decision": 3,  # every review answer is recorded
        "master_copy": 8,
        "promote": 3,
    }

    # rerun: nothing is asked again for the culls, no frame is lost or duplicated
    before = tree(lib, skip=(summary_dir, "_Metrics/"))
    asked.clear()
    again = run_dag("astro_prepare_lights", conf=conf, approve=answers(asked))
    assert again.state == "success", again.task_states
    assert [a["task_id"] for a in asked] == ["blink_review"]  # only the held DWARFIII data
    assert tree(lib, skip=(summary_dir, "_Metrics/")) == before
    assert again.task_states["promote"] == "skipped"
    assert again.task_states["summary"] == "success"


def test_sync_service_restarts_when_the_raw_step_fails(
    run_dag, app_db_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "sync.log"
    rigs = tmp_path / "rigs.yaml"
    default = (Path(__file__).resolve().parents[2] / "include/astro/rigs_default.yaml").read_text()
    rigs.write_text(
        default.replace(
            "  stop_command: null",
            f'  stop_command: ["sh", "-c", "echo stop >> \\"{marker}\\""]',
        ).replace(
            "  start_command: null",
            f'  start_command: ["sh", "-c", "echo start >> \\"{marker}\\""]',
        )
    )
    conf = {
        "raw_dir": str(tmp_path / "missing"),
        "library_dir": str(tmp_path / "lib"),
        "rigs": str(rigs),
    }
    result = run_dag("astro_prepare_lights", conf=conf)
    assert result.state == "failed"
    states = result.task_states
    assert (states["stop_sync"], states["prepare_raw"], states["restart_sync"]) == (
        "success",
        "failed",
        "success",
    )
    assert marker.read_text().split() == ["stop", "start"]
    # the summary is written even for a failed run, then fails itself so the run ends failed
    assert states["summary"] == "failed" and states["list_rigs"] == "upstream_failed"
    assert list((tmp_path / "lib" / "_Summary" / "astro_prepare_lights").glob("*.json"))


def test_nothing_to_do(run_dag, app_db_url: str, tmp_path: Path) -> None:
    """A morning without new frames: every per-rig step maps over nothing, the run succeeds."""
    (tmp_path / "raw").mkdir()
    conf = {"raw_dir": str(tmp_path / "raw"), "library_dir": str(tmp_path / "lib"), "rigs": ""}
    result = run_dag("astro_prepare_lights", conf=conf)
    assert result.state == "success", result.task_states
    assert result.task_states["summary"] == "success"
    [summary_file] = (tmp_path / "lib" / "_Summary" / "astro_prepare_lights").glob("*.json")
    assert json.loads(summary_file.read_text())["counts"]["lights_moved"] == 0


def test_blink_review_without_a_usable_published_root(
    run_dag, app_db_url: str, tmp_path: Path
) -> None:
    """Publishing fails (a file where the published root belongs): every blink review still names
    its contact sheet in the library with the reason, and the run goes on."""
    from include.common.settings import get_settings

    data = tmp_path / "data"
    data.mkdir()
    (data / "published").write_text("not a folder")
    conf = generate_demo(tmp_path / "demo")
    bodies: list[str] = []

    def hold(detail: dict[str, Any]) -> dict[str, Any]:
        bodies.append(detail["body"])
        if detail["task_instance"]["task_id"] == "blink_review":
            return {"chosen_options": ["Hold"], "params_input": {"reject": ""}}
        return {"chosen_options": ["Keep all"], "params_input": {}}

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMAGING_DATA_DIR", str(data))
        get_settings.cache_clear()
        try:
            result = run_dag("astro_prepare_lights", conf=conf, approve=hold)
        finally:
            get_settings.cache_clear()
    assert result.state == "success", result.task_states
    assert result.task_states["summary"] == "success"
    sheet_lines = [ln for b in bodies for ln in b.splitlines() if "**Contact sheet:**" in ln]
    assert len(sheet_lines) == 3
    for ln in sheet_lines:
        assert "not published:" in ln and not artefact_links.links(ln)
        assert Path(ln.split("(`", 1)[1].split("`)", 1)[0]).is_file()
    assert (data / "published").read_text() == "not a folder"
