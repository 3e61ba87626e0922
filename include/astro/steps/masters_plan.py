"""Steps ``plan_groups`` and ``select_groups`` of the masters pipeline: group the raw calibration
frames by the matching keys (:mod:`include.astro.matching`), contact sheets, the blink text; then
the groups the reviewer did not exclude, each flat paired with this run's bias of the same camera
settings.

The plan (every group with its frames) and the selection are run files
(``<library>/_Summary/astro_calibration_masters/<run>/plan.json``, ``selected.json``,
:mod:`include.astro.steps.runfiles`); XCom carries their paths and the group ids only."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.astro.calgroups import contact_sheet, group_frames
from include.astro.layout import calibration_input_dir
from include.astro.library import covers
from include.astro.matching import bias_key, library_dest
from include.astro.rigs import RigsConfig, load_rigs
from include.astro.steps import runfiles

INTEGRATION_DIR = "_Integration"
PIPELINE = "astro_calibration_masters"


@dataclass(frozen=True)
class MastersInputs:
    lib: Path
    cal: Path
    work: Path
    rigs: RigsConfig
    run_key: str = "run"  # the run id: names the run's step files


def masters_inputs(params: Mapping[str, Any], run_id: str = "run") -> MastersInputs:
    """``params`` resolved (``library_dir``, ``calibration_dir`` may be None, ``rigs``)."""
    lib = Path(params["library_dir"])
    cal = Path(params.get("calibration_dir") or calibration_input_dir(lib))
    rigs = load_rigs(params.get("rigs") or None)
    return MastersInputs(lib, cal, lib / INTEGRATION_DIR, rigs, run_key=run_id)


def save(inp: MastersInputs, name: str, data: Any) -> str:
    """Write one step file of the run; returns its path (what XCom carries)."""
    return runfiles.write(inp.lib, inp.run_key, name, data, pipeline=PIPELINE)


def load(inp: MastersInputs, name: str) -> Any:
    """One step file of the run (None: not written, e.g. its step was skipped)."""
    return runfiles.read(inp.lib, inp.run_key, name, pipeline=PIPELINE)


def dest_of(inp: MastersInputs, group: Mapping[str, Any]) -> Path:
    return library_dest(inp.lib, group["imagetyp"], group["props"], inp.rigs)


def plan_groups(
    inp: MastersInputs, min_frames: int, publish: Callable[[Any, str | None], str | None]
) -> dict[str, Any]:
    """Write the plan (run file ``plan``); returns ``{"plan": path, "group_ids", "valid",
    "markdown"}`` (the markdown is the blink approval's body)."""
    plan = _plan(inp, min_frames, publish)
    return {
        "plan": save(inp, "plan", plan),
        "group_ids": [g["group_id"] for g in plan["groups"]],
        "valid": sum(1 for g in plan["groups"] if g["valid"]),
        "markdown": plan["markdown"],
    }


def _plan(
    inp: MastersInputs, min_frames: int, publish: Callable[[Any, str | None], str | None]
) -> dict[str, Any]:
    if not inp.cal.is_dir():
        return {
            "groups": [],
            "errors": [],
            "markdown": f"No calibration folder at `{inp.cal}`.",
        }
    scan = group_frames(inp.cal, min_frames=min_frames)
    groups = [g.to_dict() for g in scan.groups]
    lines = [f"Calibration frames in `{inp.cal}`:", ""]
    for g in groups:
        if g["frames"] and not g["errors"] and covers(dest_of(inp, g), g["frames"]):
            # the rest of a group whose master is in the library (cleanup was interrupted)
            g.update(valid=True, problems=[], in_library=True)
        link = ""
        if g["frames"]:
            sheet = inp.work / "contact_sheets" / f"{g['group_id']}.png"
            g["contact_sheet"] = contact_sheet(g, sheet)
            url = publish(sheet, f"contact_sheets/{sheet.name}")
            if url:
                g["contact_sheet_url"] = url
                link = f" - [contact sheet]({url})"
            else:
                link = f" - contact sheet `{sheet}` (not published: see the task log)"
        state = "ok" if g["valid"] else "NOT INTEGRATED: " + "; ".join(g["problems"])
        if g.get("in_library"):
            state = "already in the library (leftover frames are cleaned up)"
        lines.append(
            f"- **{g['group_id']}** ({g['imagetyp']}, {g['n_frames']} frames) - {state}{link}"
        )
    for e in scan.errors:
        lines.append(f"- unreadable frame `{e.path}`: {e.reason}")
    return {
        "groups": groups,
        "errors": [{"path": e.path, "reason": e.reason} for e in scan.errors],
        "markdown": "\n".join(lines),
    }


def select_groups(inp: MastersInputs, excluded: Sequence[str] | None) -> list[str]:
    """Write the selection (run file ``selected``: the groups to integrate); returns their ids."""
    selected = selection(load(inp, "plan") or {"groups": []}, excluded)
    save(inp, "selected", selected)
    return [g["group_id"] for g in selected]


def selected_groups(inp: MastersInputs, group_ids: Sequence[str] | None = None) -> list[dict]:
    """The selected groups (all, or those of ``group_ids`` in that order) from the run file."""
    groups = {g["group_id"]: g for g in load(inp, "selected") or []}
    if group_ids is None:
        return list(groups.values())
    missing = [i for i in group_ids if i not in groups]
    if missing:
        raise KeyError(f"groups {missing} are not in this run's selection")
    return [groups[i] for i in group_ids]


def selection(plan: Mapping[str, Any], excluded: Sequence[str] | None) -> list[dict[str, Any]]:
    """Valid groups minus ``excluded``; a flat gets this run's bias of the same camera settings."""
    out = set(excluded or [])
    selected = [dict(g) for g in plan["groups"] if g["valid"] and g["group_id"] not in out]
    biases = {bias_key(g["props"]): g for g in selected if g["imagetyp"] == "BIAS"}
    for g in selected:
        if g["imagetyp"] == "FLAT" and bias_key(g["props"]) in biases:
            g["bias_group"] = biases[bias_key(g["props"])]
    return selected
