"""Step ``promote``: the promote rule. A light directory moves from ``10_Blink`` to ``20_Data``
when its rig's blink review said *Continue* and its calibration is complete; otherwise it is held
with the reason."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from include.astro.moves import Ledger, promote_dir
from include.astro.steps import runfiles
from include.astro.steps.lights_inputs import LightsInputs


def promote(
    inp: LightsInputs,
    dist: Sequence[Mapping[str, Any]],
    reviews: Sequence[Mapping[str, Any]],
    record: Ledger,
) -> dict[str, Any]:
    lib = inp.lib
    approved = {r["rig"]: r["approved"] for r in reviews or []}
    res: dict[str, Any] = {"promoted": [], "held": [], "errors": []}
    for d in dist or []:
        for dc in d["directories"]:
            if not approved.get(d["rig"], False):
                res["held"].append({"directory": dc["directory"], "reason": "blink review on hold"})
            elif not dc["complete"]:
                why = [f"MISSING {k}" for k in dc["missing"]] + list(dc["errors"])
                res["held"].append({"directory": dc["directory"], "reason": "; ".join(why)})
            else:
                outs = promote_dir(lib, lib / dc["directory"])
                errs = [o.to_dict() for o in outs if o.status == "error"]
                res["errors"] += errs
                if not errs:
                    res["promoted"].append(dc["directory"])
                    record("promote", dc["directory"], "done", {"files": len(outs)}, None)
    runfiles.write(lib, inp.run_key, "promote", res)
    return {
        "promoted": len(res["promoted"]),
        "held": len(res["held"]),
        "errors": len(res["errors"]),
        "library_dir": str(lib),
    }
