"""The reef DAGs' run summaries (:class:`include.common.results.RunSummary`).

Folders that failed are item errors (the run stays green with ``⚠ N item errors`` when the pipeline
itself worked); tile problems found before zipping are warnings; a run with nothing new says so.
Pictures must already be published artefacts: ``publish(src, name) -> url`` is passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from include.common.results import ItemError, Link, Picture, RunSummary, Section

Publish = Callable[[str, str], str]


def dataset_url(hypha: tuple[str, str] | None, alias: str) -> str | None:
    """The dataset's page on the Hypha server (``<server>/<workspace>/artifacts/<alias>``)."""
    if not hypha:
        return None
    server, ws = hypha
    return f"{server.rstrip('/')}/{ws}/artifacts/{alias}" if ws else None


def _selection_notes(summary: RunSummary, selection: dict[str, Any]) -> None:
    if selection.get("note"):
        summary.warnings.append(selection["note"])


def _skipped_rows(selection: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{"folder": k, "why": v} for k, v in sorted(selection.get("skipped", {}).items())]
    rows += [{"folder": k, "why": v} for k, v in sorted(selection.get("rejected", {}).items())]
    return rows


def treatment_summary(
    *,
    dag_id: str,
    run_id: str,
    experiment_id: str | None,
    selection: dict[str, Any],
    results: list[dict[str, Any]],
    hypha: tuple[str, str] | None,
    dataset_alias: str | None,
) -> RunSummary:
    done = [r for r in results if r.get("status") == "done"]
    already = [r for r in results if r.get("status") == "already_done"]
    failed = [r for r in results if r.get("status") == "failed"]
    s = RunSummary(
        dag_id=dag_id,
        run_id=run_id,
        title=f"Reef treatment upload · {experiment_id or 'no experiment'}",
        headline=(
            f"{len(done)} folder(s) uploaded, {len(already)} already there"
            if results
            else "nothing new to upload"
        ),
        counts={
            "uploaded": len(done),
            "already done": len(already),
            "failed": len(failed),
            "not selected": len(selection.get("skipped", {})),
        },
        total_items=len(results) or None,
    )
    _selection_notes(s, selection)
    s.errors = [ItemError(r["folder"], r.get("reason", ""), "upload_folder") for r in failed]
    for r in results:
        for w in r.get("warnings") or []:
            s.warnings.append(f"{r['folder']}: {w}")
    url = dataset_url(hypha, dataset_alias) if dataset_alias else None
    if url:
        s.links.append(Link(f"Hypha dataset {dataset_alias}", url))
    rows = [
        {
            "folder": r["folder"],
            "status": r.get("status"),
            "file": r.get("file", ""),
            "size": r.get("size", ""),
            "tile warnings": "; ".join(r.get("warnings") or []),
        }
        for r in results
    ]
    s.sections.append(
        Section("Folders", columns=["folder", "status", "file", "size", "tile warnings"], rows=rows)
    )
    if skipped := _skipped_rows(selection):
        s.sections.append(Section("Not processed", columns=["folder", "why"], rows=skipped))
    return s


def stitch_summary(
    *,
    dag_id: str,
    run_id: str,
    experiment_id: str | None,
    selection: dict[str, Any],
    stitched: list[dict[str, Any]],
    committed: list[dict[str, Any]],
    timelapse: dict[str, Any] | None,
    hypha: tuple[str, str] | None,
    publish: Publish,
) -> RunSummary:
    by_folder = {r["folder"]: dict(r) for r in stitched if r}
    for r in committed:
        if r:
            by_folder.setdefault(r["folder"], {}).update(r)
    results = list(by_folder.values())
    done = [r for r in results if r.get("status") == "done"]
    already = [r for r in results if r.get("status") == "already_done"]
    failed = [r for r in results if r.get("status") == "failed"]
    uncommitted = [r for r in results if r.get("status") == "stitched"]
    s = RunSummary(
        dag_id=dag_id,
        run_id=run_id,
        title=f"Reef stitch upload · {experiment_id or 'no experiment'}",
        headline=(
            f"{len(done)} timepoint(s) stitched and uploaded, {len(already)} already there"
            if results
            else "nothing new to stitch"
        ),
        counts={
            "uploaded": len(done),
            "already done": len(already),
            "failed": len(failed),
            "not selected": len(selection.get("skipped", {})),
        },
        total_items=len(results) or None,
    )
    _selection_notes(s, selection)
    s.errors = [ItemError(r["folder"], r.get("reason", ""), "stitch") for r in failed]
    s.errors += [
        ItemError(r["folder"], "stitched but not committed (see commit_folder)", "commit")
        for r in uncommitted
    ]
    if timelapse and timelapse.get("path"):
        p = Path(timelapse["path"])
        url = publish(str(p), f"timelapse{p.suffix}")
        sec = Section(
            "Timelapse",
            text=f"Composite of {timelapse.get('frames', 0)} timepoint(s)",
            pictures=[Picture(url, "timelapse (all timepoints)")],
        )
        if (link := dataset_url(hypha, timelapse.get("dataset", ""))) and timelapse.get("dataset"):
            sec.links.append(Link(f"Hypha dataset {timelapse['dataset']}", link))
        s.sections.append(sec)
    rows = []
    for r in sorted(results, key=lambda r: r["folder"]):
        alias = r.get("dataset")
        url = dataset_url(hypha, alias) if alias and r.get("status") == "done" else None
        row: dict[str, Any] = {
            "folder": r["folder"],
            "status": r.get("status"),
            "dataset": Link(alias, url) if url else (alias or ""),
            "shape": "×".join(str(v) for v in r.get("shape") or []),
            "registration": _reg_text(r.get("registration") or {}),
        }
        rows.append(row)
        pics = []
        for label, path in (r.get("previews") or {}).items():
            if Path(path).is_file():
                pics.append(Picture(publish(path, f"{r['folder']}/{Path(path).name}"), label))
        if pics:
            s.sections.append(Section(f"Timepoint {r['folder']}", pictures=pics))
    s.sections.insert(
        0,
        Section(
            "Timepoints",
            columns=["folder", "status", "dataset", "shape", "registration"],
            rows=rows,
        ),
    )
    if skipped := _skipped_rows(selection):
        s.sections.append(Section("Not processed", columns=["folder", "why"], rows=skipped))
    return s


def _reg_text(reg: dict[str, Any]) -> str:
    if not reg or not reg.get("pairs"):
        return "stage positions"
    return (
        f"{reg.get('used_pairs', 0)}/{reg.get('pairs', 0)} overlaps used, "
        f"max correction {reg.get('max_correction_px', 0)} px"
    )
