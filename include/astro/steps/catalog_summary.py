"""Step ``summary`` of the catalog pipeline: the run's summary page (report link, counts,
scheduler changes, unreadable frames)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from include.common.results import ItemError, Link, RunSummary, Section


def catalog_summary(
    run_id: str,
    catalog: Sequence[Mapping[str, Any]],
    scheduler: Mapping[str, Any] | None,
    report: Mapping[str, Any] | None,
) -> RunSummary:
    frames = sum(c.get("frames", 0) for c in catalog)
    sets = sum(c.get("sets", 0) for c in catalog)
    errors = [
        ItemError(str(e["path"]), str(e["reason"]), "update_catalog")
        for c in catalog
        for e in c.get("errors") or []
    ]
    changes = list((scheduler or {}).get("changes") or [])
    warnings = []
    if scheduler is None or scheduler.get("skipped"):
        warnings.append(
            "no scheduler_db (setting imaging_astro_scheduler_db): scheduler not updated"
        )
    rs = RunSummary(
        dag_id="astro_catalog_report",
        run_id=run_id,
        title="Astro catalog and report",
        headline=f"{frames} frames in {sets} light sets, {len(changes)} scheduler plans updated",
        counts={
            "rigs": len(catalog),
            "frames": frames,
            "light sets": sets,
            "scheduler changes": len(changes),
            "plans kept (lights held)": len((scheduler or {}).get("held") or []),
        },
        errors=errors,
        warnings=warnings,
        total_items=frames + len(errors) or None,
    )
    if report and report.get("index"):
        rs.links.append(Link("Report (AstroBin CSVs, totals, plots)", report["index"]))
    if changes:
        rs.sections.append(
            Section(
                "Scheduler changes",
                columns=["target", "panel", "filter", "exposure", "old_accepted", "new_accepted"],
                rows=changes,
            )
        )
    return rs
