"""Steps of the catalog pipeline: ``update_catalog`` (per rig) and ``update_scheduler``.

The scheduler update never lowers a plan whose lights are still held in ``10_Blink``
(:func:`include.astro.scheduler.held_light_keys`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.astro.catalog import scan_rig, upsert_rig
from include.astro.equipment import apply_equipment, equipment_from_db, load_equipment
from include.astro.scheduler import accepted_counts, held_light_keys, update_accepted

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogInputs:
    lib: Path
    report: Path
    scheduler: Path | None


def catalog_inputs(params: Mapping[str, Any]) -> CatalogInputs:
    """``params`` resolved (``library_dir``; ``report_dir``, ``scheduler_db`` may be None)."""
    lib = Path(params["library_dir"])
    report = Path(params.get("report_dir") or lib / "_Reports")
    sched = Path(params["scheduler_db"]) if params.get("scheduler_db") else None
    return CatalogInputs(lib, report, sched)


def equipment(session: Any) -> Any:
    eq = equipment_from_db(session)
    if eq.errors:  # no equipment in the catalog yet: load the bundled defaults first
        log.warning("%s: loading the bundled equipment", eq.errors[0])
        apply_equipment(session, load_equipment())
        eq = equipment_from_db(session)
    return eq


def update_catalog(inp: CatalogInputs, rig: str, session: Any) -> dict[str, Any]:
    """Scan one rig's 20_Data and upsert its light sets (in the caller's transaction)."""
    return upsert_rig(session, scan_rig(inp.lib, rig), equipment(session))


def update_scheduler(inp: CatalogInputs, session: Any) -> dict[str, Any]:
    """Accepted counts into the Target Scheduler DB (``{"skipped": True}`` without one)."""
    if inp.scheduler is None:
        return {"skipped": True, "changes": [], "held": []}
    counts = accepted_counts(session)
    return update_accepted(inp.scheduler, counts, held=held_light_keys(inp.lib))
