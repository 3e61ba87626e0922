"""The lights pipeline's steps without Airflow (issue 15.10/15.11 and 13): answers recorded and
shown, skipped folders listed, errors once, a nullable blink field, the run summary page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from include.astro.samples import C8E, DWARF, SQA55, generate_raw_tree
from include.astro.steps import runfiles
from include.astro.steps.blink_review import apply_blink, blink_sheet
from include.astro.steps.cull import apply_answers, approval_requests, cull, list_rigs
from include.astro.steps.distribute import distribute
from include.astro.steps.lights_inputs import lights_inputs
from include.astro.steps.lights_summary import lights_summary
from include.astro.steps.prepare_raw import prepare_raw
from include.astro.steps.promote import promote
from include.common.results import render_html

RUN = "manual__2026-11-21T09:00:00+00:00"
USER = {"id": "alice", "name": "alice"}


@pytest.fixture
def run(tmp_path: Path) -> dict[str, Any]:
    generate_raw_tree(tmp_path / "raw")
    params = {"raw_dir": str(tmp_path / "raw"), "library_dir": str(tmp_path / "lib"), "rigs": None}
    inp = lights_inputs(params, RUN)
    rows: list[tuple] = []
    return {"inp": inp, "rows": rows, "record": lambda *a: rows.append(a)}


def test_lights_steps_record_answers_and_summarise(run: dict[str, Any]) -> None:
    inp, record = run["inp"], run["record"]
    ref = prepare_raw(inp, record)
    assert ref["skipped_dirs"] == ["_stash"] and "items" not in ref  # XCom: a reference
    rigs = list_rigs(inp)
    assert rigs == sorted([C8E, DWARF, SQA55])
    # a corrupt frame in 10_Blink is met by both cull passes: one error in the summary
    ha = inp.lib / C8E / "10_Blink/NGC 7000/DATE_2026-11-20/FILTER_H_EXP_300.00"
    (ha / "2026-11-21T05-00-00_HFR_9.0.fits").write_bytes(b"garbage")
    c1 = [cull(inp, r, 0, {}, record) for r in rigs]
    items = approval_requests(c1)
    assert len(items) == 1
    a1 = apply_answers(
        inp, 1, items, [{"chosen_options": ["Keep all"], "responded_by_user": USER}], record
    )
    assert a1["answers"][0]["decision"] == "Keep all" and a1["answers"][0]["by"] == "alice"
    kept_keys = [r[1] for r in run["rows"] if r[0] == "cull_decision"]
    assert len(kept_keys) == 3  # remembered per frame
    [cull(inp, r, 1, dict.fromkeys(kept_keys, "Keep all"), record) for r in rigs]
    sheets = [blink_sheet(inp, r, lambda p, n: f"/artefacts/x/{Path(p).name}") for r in rigs]
    assert all(s["url"].endswith(".png") for s in sheets)
    assert all("index" not in s and Path(s["file"]).is_file() for s in sheets)  # XCom: a reference
    # Continue with the field left empty (null) rejects nothing; Hold without typing
    outputs = [
        {
            "chosen_options": ["Continue"],
            "params_input": {"reject": None},
            "responded_by_user": USER,
        },
        {"chosen_options": ["Hold"], "params_input": {}, "responded_by_user": USER},
        {
            "chosen_options": ["Continue"],
            "params_input": {"reject": "2"},
            "responded_by_user": USER,
        },
    ]
    reviews = apply_blink(inp, sheets, outputs, record)
    assert [(r["approved"], r["rejected"]) for r in reviews] == [(True, 0), (False, 0), (True, 1)]
    assert [r[3]["decision"] for r in run["rows"] if r[0] == "blink_decision"] == [
        "Continue",
        "Hold",
        "Continue",
    ]
    dist = [distribute(inp, r, record) for r in rigs]
    promote(inp, dist, reviews, record)

    rs, s, paths, md = lights_summary(inp, "astro_prepare_lights", RUN, [("all", "/artefacts/")])
    assert Path(paths["json"]).is_file()
    assert s["skipped_dirs"] == ["_stash"] and "## Skipped folders" in md
    assert "## Kept by decision" in md and "Keep all" in md
    answers = {(a["approval"], a["about"]): a["decision"] for a in s["answers"]}
    assert answers[("blink review", DWARF)] == "Hold"
    assert answers[("blink review", SQA55)] == "Continue"
    corrupt = [e for e in s["errors"] if e["item"].endswith("T05-00-00_HFR_9.0.fits")]
    assert len(corrupt) == 1  # not once per pass
    page = render_html(rs)
    assert page.count("<img") == 3 and "Human answers" in page and "Skipped folders" in page
    assert rs.outcome().startswith("⚠")  # item errors: the run stays green with a warning line
    assert sorted(runfiles.read_all(inp.lib, inp.run_key))[:2] == [
        "answers-blink",
        "answers-cull-1",
    ]


def test_earlier_format_answer_is_stored_per_frame(run: dict[str, Any]) -> None:
    """Issue 15.1: a "Keep all" stored under the earlier per-approval key is converted when the cull
    reads it and recorded per frame, so the next run keeps those frames on the per-frame keys."""
    inp, record, rows = run["inp"], run["record"], run["rows"]
    prepare_raw(inp, record)
    [item] = approval_requests([cull(inp, C8E, 0, {}, lambda *a: None)])
    old_format = {item["verdict"]["key"]: "Keep all"}
    res = cull(inp, C8E, 0, old_format, record)
    assert res["pending"] == [] and res["remembered"] == 1 and res["auto_rejected"] == 0
    stored = [(r[1], r[3]) for r in rows if r[0] == "cull_decision"]
    assert len(stored) == 3 and all(r[1]["decision"] == "Keep all" for r in stored)
    assert all(r[1]["by"] == f"converted from {item['verdict']['key']}" for r in stored)
    s = lights_summary(inp, "astro_prepare_lights", RUN, [("all", "/artefacts/")])[1]
    assert [a["by"] for a in s["answers"]] == [
        "remembered answer (earlier format, now stored per frame)"
    ]
    per_frame = {k: d["decision"] for k, d in stored}
    assert cull(inp, C8E, 0, per_frame, lambda *a: None)["pending"] == []


def test_blink_deviations_per_light_directory() -> None:
    """Narrowband and broadband frames of one rig are not compared: a frame's deviations and hints
    come from its own set (light directory), so an O3 frame is no "clouds?" next to L frames."""
    from include.astro.steps.blink_review import per_set

    def row(n: int, s: str, stars: int, bkg: float) -> dict[str, Any]:
        m = {"stars": stars, "hfr": 2.0, "fwhm": 4.0, "eccentricity": 0.3, "background": bkg}
        return {"n": n, "file": f"/lib/{s}/{n}.fits", "set": s, **m}

    rows = [row(1, "L", 800, 2000), row(2, "O3", 150, 600), row(3, "L", 820, 2100)]
    rows += [row(4, "O3", 140, 610), row(5, "O3", 60, 600), row(6, "L", 790, 2050)]
    frames = per_set(rows)
    assert [f["n"] for f in frames] == [1, 2, 3, 4, 5, 6]
    assert [f["background_dev"] for f in frames] == [-0.024, 0.0, 0.024, 0.017, 0.0, 0.0]
    hints = {f["n"]: f["hints"] for f in frames if f["hints"]}
    assert list(hints) == [5] and hints[5][0].startswith("clouds? 60 stars")
