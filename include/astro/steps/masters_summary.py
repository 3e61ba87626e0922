"""Step ``summary`` of the masters pipeline: library files
(``_Summary/astro_calibration_masters/<run>.json|.md``) and the run's summary page (contact sheets
as pictures, groups, library copies, cleanup, the blink answer, errors)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from include.astro.steps.masters_plan import MastersInputs, load
from include.common.files import atomic_write_text, safe_name
from include.common.results import ItemError, Link, Picture, RunSummary, Section

PIPELINE = "astro_calibration_masters"


def run_summary(
    inp: MastersInputs,
    run_id: str,
    answer: Mapping[str, Any] | None,
    links: Sequence[tuple[str, str]] = (),
) -> RunSummary:
    """:func:`masters_summary` of the run's step files (a skipped step wrote none)."""
    return masters_summary(
        inp,
        run_id,
        load(inp, "plan"),
        answer,
        load(inp, "copies") or [],
        load(inp, "cleanup") or [],
        links=links,
        imported=load(inp, "import"),
    )


def masters_summary(
    inp: MastersInputs,
    run_id: str,
    plan: Mapping[str, Any] | None,
    answer: Mapping[str, Any] | None,
    copies: Sequence[Mapping[str, Any]],
    cleanup: Sequence[Mapping[str, Any]],
    links: Sequence[tuple[str, str]] = (),
    imported: Mapping[str, Any] | None = None,
) -> RunSummary:
    plan = plan or {"groups": [], "errors": []}
    groups = plan["groups"]
    report = {
        "run_id": run_id,
        "groups": [
            {k: g[k] for k in ("group_id", "imagetyp", "n_frames", "valid", "problems")}
            for g in groups
        ],
        "unreadable_frames": plan["errors"],
        "answer": dict(answer or {}),
        "library": list(copies),
        "cleanup": [
            {k: r[k] for k in ("group_id", "imagetyp", "error", "temp_removed")}
            | {"deleted": len(r["deleted"]), "kept": r["kept"]}
            for r in cleanup
        ],
    }
    out = inp.lib / "_Summary" / PIPELINE / safe_name(run_id, default="run")
    atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    md = [f"# {PIPELINE} {run_id}", ""]
    for g in report["groups"]:
        md.append(
            f"- {g['group_id']}: {g['n_frames']} frames, "
            + ("valid" if g["valid"] else "NOT INTEGRATED: " + "; ".join(g["problems"]))
        )
    for c in copies:
        md.append(
            f"- library {c['group_id']}: {c['status']}"
            + (f" ({c['error']})" if c.get("error") else "")
        )
    atomic_write_text(out.with_suffix(".md"), "\n".join(md) + "\n")

    ext = list((imported or {}).get("imported") or [])
    report["imported"] = ext
    report["wbpp_cleanup"] = (imported or {}).get("cleanup")
    atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    added = sum(1 for c in copies if c.get("status") == "copied")
    added += sum(1 for c in ext if c.get("status") == "copied")
    deleted = sum(r["deleted"] for r in report["cleanup"])
    errors = [ItemError(e["path"], e["reason"], "plan_groups") for e in plan["errors"]]
    errors += [
        ItemError(c["group_id"], str(c.get("error")), "copy_to_library")
        for c in copies
        if c.get("error")
    ]
    errors += [
        ItemError(r["group_id"], str(r["error"]), "delete_raw")
        for r in report["cleanup"]
        if r["error"]
    ]
    warnings = [
        f"{g['group_id']} not integrated: {'; '.join(g['problems'])}"
        for g in report["groups"]
        if not g["valid"]
    ]
    rs = RunSummary(
        dag_id=PIPELINE,
        run_id=run_id,
        title="Astro calibration masters",
        headline=f"{len(groups)} groups, {added} masters added to the library, "
        f"{deleted} raw frames deleted",
        counts={
            "groups": len(groups),
            "masters added": added,
            "raw frames deleted": deleted,
            "unreadable frames": len(plan["errors"]),
        },
        errors=errors,
        warnings=warnings,
        links=[Link(t, u) for t, u in links],
        total_items=sum(g["n_frames"] for g in groups) or None,
    )
    pics = [
        Picture(g["contact_sheet_url"], f"{g['group_id']} ({g['n_frames']} frames)")
        for g in groups
        if g.get("contact_sheet_url")
    ]
    if pics:
        rs.sections.append(Section("Contact sheets", pictures=pics))
    if answer:
        rs.sections.append(
            Section(
                "Blink answer",
                columns=["answer", "excluded groups", "by"],
                rows=[
                    {
                        "answer": answer.get("chosen"),
                        "excluded groups": ", ".join(
                            (answer.get("params") or {}).get("exclude_groups") or []
                        )
                        or "none",
                        "by": answer.get("by") or "nobody (default at the timeout)",
                    }
                ],
            )
        )
    if ext:
        rs.sections.append(
            Section(
                "Imported masters (WBPP, Siril)",
                columns=["source", "imagetyp", "status", "dest"],
                rows=ext,
            )
        )
    if copies:
        rs.sections.append(
            Section("Library", columns=["group_id", "status", "dest"], rows=list(copies))
        )
    return rs
