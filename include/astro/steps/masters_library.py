"""Steps ``copy_to_library`` (verified, no clobber, recorded) and ``delete_raw`` (BIAS → DARK →
FLAT: only frames whose checksum is recorded in a verified library master) of the masters
pipeline. Both read the run's selection and master files and write ``copies`` / ``cleanup``;
XCom carries the file path and counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from include.astro.library import copy_to_library as copy_one
from include.astro.library import delete_raw_frames
from include.astro.moves import Ledger
from include.astro.steps.masters_plan import MastersInputs, dest_of, load, save, selected_groups


def copy_to_library(
    inp: MastersInputs, masters: Sequence[Mapping[str, Any]], record: Ledger
) -> dict[str, Any]:
    """``masters``: the references ``integrate_master`` returned (``{"group_id", "file"}``).
    Returns ``{"file", "copied", "verified"}``."""
    results = []
    for ref in masters or []:
        m = load(inp, f"master-{ref['group_id']}")
        if m is None:
            raise FileNotFoundError(f"no master file for group {ref['group_id']} in this run")
        results.append(m)
    out = copy_masters(inp, selected_groups(inp), results, record)
    return {
        "file": save(inp, "copies", out),
        "copied": sum(1 for c in out if c.get("status") == "copied"),
        "verified": sum(1 for c in out if c.get("verified")),
    }


def copy_masters(
    inp: MastersInputs,
    groups: Sequence[Mapping[str, Any]],
    masters: Sequence[Mapping[str, Any]],
    record: Ledger,
) -> list[dict[str, Any]]:
    by_id = {g["group_id"]: g for g in groups}
    out: list[dict[str, Any]] = []
    for m in masters:
        g = by_id[m["group_id"]]
        if m.get("error"):
            out.append({"group_id": m["group_id"], "status": "not_integrated", "error": m["error"]})
            continue
        dest = dest_of(inp, g)
        out.append(copy_one(m["group_id"], g["imagetyp"], m["path"], dest, m["checksum"]).to_dict())
    for rec in out:
        record(
            "library_master",
            rec.get("dest") or rec["group_id"],
            "done" if rec.get("verified") else "failed",
            {"group_id": rec["group_id"], "status": rec["status"], "checksum": rec.get("checksum")},
            rec.get("error"),
        )
    return out


def delete_raw(inp: MastersInputs) -> dict[str, Any]:
    """Clean up the run's selected groups whose copies are verified; ``{"file", "deleted"}``."""
    out = delete_verified(inp, selected_groups(inp), load(inp, "copies") or [])
    return {"file": save(inp, "cleanup", out), "deleted": sum(len(r["deleted"]) for r in out)}


def delete_verified(
    inp: MastersInputs,
    groups: Sequence[Mapping[str, Any]],
    copies: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    verified = {c["group_id"]: c for c in copies if c.get("verified")}
    plan = []
    for g in groups:
        c = verified.get(g["group_id"])
        plan.append(
            {
                **g,
                "library_path": c["dest"] if c else None,
                "library_checksum": c["checksum"] if c else None,
                "work_dir": str(inp.work / g["group_id"]),
            }
        )
    results = [r.to_dict() for r in delete_raw_frames(plan, calibration_dir=inp.cal)]
    for r in results:
        if r["temp_removed"]:
            (inp.work / "contact_sheets" / f"{r['group_id']}.png").unlink(missing_ok=True)
    return results
