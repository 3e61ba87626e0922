"""Step ``integrate_master`` (per group id): integrate into the temp folder; a bad group is
reported, not raised. A group whose frames are all inputs of the master already in the library (a
cleanup interrupted after the copy) is not integrated again. The group comes from the run's
selection file, the result goes to the run file ``master-<group id>``; XCom carries its path."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from include.astro.library import covers
from include.astro.masters import IntegrationError, integrate_group
from include.astro.matching import bias_props
from include.astro.steps.masters_plan import MastersInputs, dest_of, save, selected_groups
from include.common.files import sha256_file

log = logging.getLogger(__name__)


def flat_bias(inp: MastersInputs, group: Mapping[str, Any], method: str) -> str | None:
    """The master bias for a flat: this run's (integrated here if its own task has not yet - same
    bytes, reused), else the library's, else None."""
    if group.get("bias_group"):
        return integrate_group(group["bias_group"], inp.work, method=method)["path"]
    lib_bias = dest_of(inp, {"imagetyp": "BIAS", "props": bias_props(group["props"])})
    return str(lib_bias) if lib_bias.is_file() else None


def integrate_master(inp: MastersInputs, group_id: str, method: str) -> dict[str, Any]:
    """``{"group_id", "file", "error"}``: the master's run file (path, checksum, inputs)."""
    [group] = selected_groups(inp, [group_id])
    res = _integrate(inp, group, method)
    return {
        "group_id": group_id,
        "file": save(inp, f"master-{group_id}", res),
        "error": res.get("error"),
    }


def _integrate(inp: MastersInputs, group: Mapping[str, Any], method: str) -> dict[str, Any]:
    dest = dest_of(inp, group)
    if covers(dest, group["frames"]):
        return {
            "group_id": group["group_id"],
            "imagetyp": group["imagetyp"],
            "path": str(dest),
            "checksum": sha256_file(dest),
            "n_frames": len(group["frames"]),
            "reused": True,
            "in_library": True,
        }
    try:
        subtract = None
        if group["imagetyp"] == "FLAT":
            subtract = flat_bias(inp, group, method)
            if subtract is None:
                log.warning("%s: no master bias: flat not bias-subtracted", group["group_id"])
        return integrate_group(dict(group), inp.work, method=method, subtract=subtract)
    except IntegrationError as exc:
        log.error("group %s: %s", group["group_id"], exc)
        return {"group_id": group["group_id"], "imagetyp": group["imagetyp"], "error": str(exc)}
