"""Steps of ``astro_setup``: load the equipment file into the catalog, and the run summary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from include.astro.equipment import apply_equipment, load_equipment
from include.common.results import ItemError, RunSummary


def load(session: Any, config: str | None) -> dict[str, Any]:
    """Validate and upsert the equipment file (raises ``EquipmentError`` when unusable)."""
    eq = load_equipment(config or None)
    out = apply_equipment(session, eq)
    out["source"] = str(eq.source)
    return out


def setup_summary(run_id: str, out: Mapping[str, Any] | None) -> RunSummary:
    out = out or {}
    n = {k: int(out.get(k) or 0) for k in ("profiles", "locations", "filters")}
    return RunSummary(
        dag_id="astro_setup",
        run_id=run_id,
        title="Astro catalog set-up",
        headline=f"{n['profiles']} profiles, {n['locations']} locations, {n['filters']} filters "
        f"loaded from {out.get('source', '?')}",
        counts=dict(n),
        errors=[ItemError(str(e), str(e), "load_equipment") for e in out.get("errors") or []],
    )
