"""Run summary of the lights pipeline: one JSON and one markdown file per run in the library
(``_Summary/astro_prepare_lights/<run key>.json|.md``) plus the text for the task log.

Counts: frames moved (lights, calibration), errors (per item with reason, each once even when
several steps met it), frames culled (per pass, automatic or approved), kept by decision, every
human answer (approval, option, who; a timed-out default is marked), rejected by blink review,
masters copied, MISSING masters, directories promoted to ``20_Data``, skipped ``_stash`` folders.

:func:`to_run_summary` turns it into the run's summary page (:class:`include.common.results.RunSummary`).
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
    answers: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Combine the step results (plain dicts) into one deterministic summary."""
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
    once: dict[tuple[str, str | None], dict[str, Any]] = {}
    for e in sorted(errors, key=lambda x: (x["step"], str(x["item"]))):
        once.setdefault((str(e["item"]), e.get("reason")), e)  # e.g. a corrupt frame in 2 passes
    errors = list(once.values())
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
        "answers": [dict(a) for a in answers],
        "skipped_dirs": sorted(prepare.get("skipped_dirs") or []),
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


def answer_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "approval": a.get("approval"),
            "about": a.get("about"),
            "answer": a.get("decision"),
            "frames": a.get("frames", ""),
            "by": a.get("by") or ("nobody (default at the timeout)" if a.get("timed_out") else ""),
        }
        for a in summary.get("answers") or []
    ]


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
    if summary.get("answers"):
        lines += ["", "## Answers", ""]
        lines += [
            f"- {r['approval']} `{r['about']}`: **{r['answer']}**"
            + (f" (frames: {r['frames']})" if r["frames"] else "")
            + (f" by {r['by']}" if r["by"] else "")
            for r in answer_rows(summary)
        ]
    if summary["kept_by_decision"]:
        lines += ["", "## Kept by decision", ""]
        lines += [
            f"- `{k['directory']}` ({k['pass']}): {k['frames']} flagged frame(s) kept"
            for k in summary["kept_by_decision"]
        ]
    if summary.get("skipped_dirs"):
        lines += ["", "## Skipped folders", ""]
        lines += [f"- `{d}`" for d in summary["skipped_dirs"]]
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


def to_run_summary(
    summary: Mapping[str, Any],
    *,
    dag_id: str,
    run_id: str,
    sheets: Sequence[Mapping[str, Any]] = (),
    links: Sequence[Any] = (),
) -> Any:
    """The run's summary page: counts, contact sheets as pictures, answers, kept directories,
    skipped folders, held/promoted directories, errors (once)."""
    from include.common.results import ItemError, Link, Picture, RunSummary, Section

    c = summary["counts"]
    headline = (
        f"{c['lights_moved']} lights moved, {c['culled']} culled, "
        f"{c['rejected_by_review']} rejected in review, {c['promoted_directories']} "
        f"director{'y' if c['promoted_directories'] == 1 else 'ies'} promoted"
    )
    warnings = [
        f"MISSING {m['master']} master: {m['directory']}" for m in summary["missing_masters"]
    ]
    rs = RunSummary(
        dag_id=dag_id,
        run_id=run_id,
        title="Astro lights",
        headline=headline,
        counts=dict(c),
        errors=[
            ItemError(str(e["item"]), str(e.get("reason")), e["step"]) for e in summary["errors"]
        ],
        warnings=warnings,
        links=[lk if isinstance(lk, Link) else Link(*lk) for lk in links],
        total_items=c["lights_moved"] + c["calibration_moved"] + c["errors"] or None,
    )
    pics = [
        Picture(url=s["url"], caption=f"{s['rig']} ({s['count']} frames)", href=s.get("page_url"))
        for s in sheets
        if s.get("url")
    ]
    if pics:
        rs.sections.append(Section("Blink contact sheets", pictures=pics))
    if summary.get("answers"):
        rs.sections.append(
            Section(
                "Human answers",
                columns=["approval", "about", "answer", "frames", "by"],
                rows=answer_rows(summary),
            )
        )
    if summary["kept_by_decision"]:
        rs.sections.append(
            Section(
                "Kept by decision (Keep all)",
                columns=["directory", "pass", "frames"],
                rows=list(summary["kept_by_decision"]),
            )
        )
    if summary.get("skipped_dirs"):
        rs.sections.append(
            Section(
                "Skipped folders",
                text="Left untouched in the raw folder (_stash and hidden folders).",
                columns=["folder"],
                rows=[{"folder": d} for d in summary["skipped_dirs"]],
            )
        )
    for title, key, cols in (
        ("Culled", "culled", ["file", "pass", "how"]),
        ("Rejected in blink review", "rejected_by_review", ["rig", "file"]),
        ("Promoted to 20_Data", "promoted", ["directory"]),
        ("Held in 10_Blink", "held", ["directory", "reason"]),
        ("MISSING masters", "missing_masters", ["directory", "master"]),
    ):
        rows = summary.get(key) or []
        if rows:
            rows = [r if isinstance(r, Mapping) else {"directory": r} for r in rows]
            rs.sections.append(Section(title, columns=cols, rows=list(rows)))
    return rs
