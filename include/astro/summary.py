"""Run summary of the lights pipeline: one JSON and one markdown file per run in the library
(``_Summary/astro_prepare_lights/<run key>.json|.md``) plus the text for the task log.

Counts: frames moved (lights, calibration), errors (per item with reason), frames culled (per pass,
automatic or approved), kept by decision, rejected by blink review, masters copied, MISSING masters,
directories promoted to ``20_Data``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from include.astro import layout
from include.common.files import atomic_write_text, safe_name


def build_summary(
    *,
    run_key: str,
    prepare: Mapping[str, Any] | None,
    culls: Sequence[Mapping[str, Any]],
    blink: Sequence[Mapping[str, Any]],
    distribute: Sequence[Mapping[str, Any]],
    promote: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Combine the step results (plain dicts from XCom) into one deterministic summary."""
    prepare = prepare or {}
    items = list(prepare.get("items") or [])
    culled: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = [
        {"step": "prepare_raw", "item": i["src"], "reason": i.get("reason")}
        for i in items
        if i.get("status") == "error"
    ]
    for c in culls:
        for o in c.get("auto_rejected") or []:
            culled.append(
                {"rig": c["rig"], "pass": c.get("pass_name"), "file": o["src"], "how": "auto"}
            )
        for d in c.get("decided") or []:
            if d.get("decision") == "Keep all":
                kept.append(
                    {
                        "rig": d["rig"],
                        "pass": d["pass_name"],
                        "directory": d["directory"],
                        "frames": len(d.get("flagged") or []),
                    }
                )
            for o in d.get("rejected") or []:
                culled.append(
                    {"rig": d["rig"], "pass": d["pass_name"], "file": o["src"], "how": "approved"}
                )
            errors += [
                {"step": "cull", "item": e["src"], "reason": e.get("reason")}
                for e in d.get("errors") or []
            ]
        errors += [
            {"step": "cull", "item": e["src"], "reason": e.get("reason")}
            for e in c.get("errors") or []
        ]
    reviewed: list[dict[str, Any]] = []
    for b in blink:
        for o in b.get("rejected") or []:
            reviewed.append({"rig": b["rig"], "file": o["src"]})
        errors += [
            {
                "step": "blink",
                "item": e.get("entry") or e.get("src") or e.get("file"),
                "reason": e.get("reason"),
            }
            for e in b.get("errors") or []
        ]
    copied: list[str] = []
    missing: list[dict[str, Any]] = []
    for d in distribute:
        for dc in d.get("directories") or []:
            copied += dc.get("copied") or []
            for kind in dc.get("missing") or []:
                missing.append(
                    {"rig": d["rig"], "directory": dc["directory"], "master": kind.upper()}
                )
            errors += [
                {"step": "distribute", "item": dc["directory"], "reason": e}
                for e in dc.get("errors") or []
            ]
        errors += [
            {"step": "distribute", "item": e["src"], "reason": e["reason"]}
            for e in d.get("master_errors") or []
        ]
    promoted: list[str] = []
    held: list[dict[str, Any]] = []
    for p in promote:
        promoted += p.get("promoted") or []
        held += p.get("held") or []
        errors += [
            {"step": "promote", "item": e["src"], "reason": e.get("reason")}
            for e in p.get("errors") or []
        ]
    counts = prepare.get("counts") or {}
    return {
        "run": run_key,
        "frames_moved": {
            "lights": counts.get("light_moved", 0) + counts.get("light_already_present", 0),
            "calibration": counts.get("calibration_moved", 0)
            + counts.get("calibration_already_present", 0),
        },
        "culled": sorted(culled, key=lambda x: x["file"]),
        "kept_by_decision": sorted(kept, key=lambda x: (x["pass"], x["directory"])),
        "rejected_by_review": sorted(reviewed, key=lambda x: x["file"]),
        "masters_copied": sorted(copied),
        "missing_masters": sorted(missing, key=lambda x: (x["directory"], x["master"])),
        "promoted": sorted(promoted),
        "held": sorted(held, key=lambda x: x["directory"]),
        "errors": sorted(errors, key=lambda x: (x["step"], str(x["item"]))),
        "counts": {
            "lights_moved": counts.get("light_moved", 0) + counts.get("light_already_present", 0),
            "calibration_moved": counts.get("calibration_moved", 0)
            + counts.get("calibration_already_present", 0),
            "culled": len(culled),
            "rejected_by_review": len(reviewed),
            "masters_copied": len(copied),
            "missing_masters": len(missing),
            "promoted_directories": len(promoted),
            "errors": len(errors),
        },
    }


def to_markdown(summary: Mapping[str, Any]) -> str:
    c = summary["counts"]
    lines = [
        f"# astro_prepare_lights - {summary['run']}",
        "",
        f"- lights moved: {c['lights_moved']}, calibration frames moved: {c['calibration_moved']}",
        f"- culled: {c['culled']}, rejected by review: {c['rejected_by_review']}",
        f"- masters copied: {c['masters_copied']}, MISSING masters: {c['missing_masters']}",
        f"- directories promoted to 20_Data: {c['promoted_directories']}",
        f"- errors: {c['errors']}",
    ]
    if summary["missing_masters"]:
        lines += ["", "## MISSING masters", ""]
        lines += [
            f"- MISSING {m['master']}: `{m['directory']}`" for m in summary["missing_masters"]
        ]
    if summary["culled"]:
        lines += ["", "## Culled", ""]
        lines += [f"- `{x['file']}` ({x['pass']}, {x['how']})" for x in summary["culled"]]
    if summary["rejected_by_review"]:
        lines += ["", "## Rejected by blink review", ""]
        lines += [f"- `{x['file']}`" for x in summary["rejected_by_review"]]
    if summary["promoted"]:
        lines += ["", "## Promoted to 20_Data", ""]
        lines += [f"- `{p}`" for p in summary["promoted"]]
    if summary["held"]:
        lines += ["", "## Held in 10_Blink", ""]
        lines += [f"- `{h['directory']}`: {h['reason']}" for h in summary["held"]]
    if summary["errors"]:
        lines += ["", "## Errors", ""]
        lines += [f"- {e['step']}: `{e['item']}`: {e['reason']}" for e in summary["errors"]]
    return "\n".join(lines) + "\n"


def write_summary(
    library_dir: str | os.PathLike[str], summary: Mapping[str, Any]
) -> dict[str, str]:
    """Write ``<run key>.json`` and ``.md`` atomically; returns both paths."""
    d = layout.summary_dir(library_dir)
    key = safe_name(str(summary["run"]), default="run")
    jp, mp = Path(d) / f"{key}.json", Path(d) / f"{key}.md"
    atomic_write_text(jp, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    atomic_write_text(mp, to_markdown(summary))
    return {"json": str(jp), "markdown": str(mp)}
