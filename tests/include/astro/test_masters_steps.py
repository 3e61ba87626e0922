"""The masters pipeline's steps without Airflow: what they return is what XCom carries - the plan's
path, group ids, file paths and counts, never one dict per frame or group (CONVENTIONS: XCom carries
references); the plan, the selection and every result are run files under
``<library>/_Summary/astro_calibration_masters/<run_id>/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from include.astro.samples_masters import make_calibration_sets
from include.astro.steps.masters_integrate import integrate_master
from include.astro.steps.masters_library import copy_to_library, delete_raw
from include.astro.steps.masters_plan import masters_inputs, plan_groups, select_groups
from include.astro.steps.masters_summary import run_summary

RUN = "manual__2026-11-21T12:00:00+00:00"


def small(value: Any) -> bool:
    """A reference: scalars, ids and paths, no nested per-item dicts."""
    if isinstance(value, dict):
        return all(isinstance(v, str | int | float | bool | type(None)) for v in value.values())
    if isinstance(value, list):
        return all(isinstance(v, str) for v in value)
    return isinstance(value, str | int | float | bool | type(None))


def test_masters_steps_pass_references(tmp_path: Path) -> None:
    lib = tmp_path / "library"
    make_calibration_sets(lib, n_frames=3, shape=(24, 32))
    inp = masters_inputs({"library_dir": str(lib)}, RUN)
    run_dir = lib / "_Summary" / "astro_calibration_masters" / "manual__2026-11-21T12_00_00+00_00"
    rows: list[tuple] = []

    plan = plan_groups(inp, 3, lambda p, n: None)
    assert set(plan) == {"plan", "group_ids", "valid", "markdown"}
    assert Path(plan["plan"]).parent == run_dir
    assert len(plan["group_ids"]) == plan["valid"] > 3
    frames = json.loads(Path(plan["plan"]).read_text())["groups"][0]["frames"]
    assert len(frames) == 3  # the frames live in the plan file, not in XCom

    excluded = plan["group_ids"][0]
    ids = select_groups(inp, [excluded])
    assert small(ids) and excluded not in ids and len(ids) == plan["valid"] - 1
    masters = [integrate_master(inp, i, "median") for i in ids]
    assert all(small(m) and m["error"] is None for m in masters)
    assert all(Path(m["file"]).parent == run_dir for m in masters)
    copies = copy_to_library(inp, masters, lambda *a: rows.append(a))
    assert small(copies) and copies["copied"] == copies["verified"] == len(ids)
    assert len(rows) == len(ids)  # one ledger row per master
    cleaned = delete_raw(inp)
    assert small(cleaned) and cleaned["deleted"] == 3 * len(ids)

    rs = run_summary(inp, RUN, None)
    assert rs.counts["masters added"] == len(ids) and rs.counts["raw frames deleted"] == 3 * len(
        ids
    )
    assert sorted(p.name for p in run_dir.iterdir())[:3] == [
        "cleanup.json",
        "copies.json",
        "master-" + sorted(ids)[0] + ".json",
    ]
