"""Step ``distribute`` (per rig): copy the matching masters into each light directory."""

from __future__ import annotations

from typing import Any

from include.astro.distribute import distribute_rig
from include.astro.moves import Ledger
from include.astro.steps import runfiles
from include.astro.steps.lights_inputs import LightsInputs


def distribute(inp: LightsInputs, rig: str, record: Ledger) -> dict[str, Any]:
    """Returns per directory only what the promote rule needs (complete, missing, errors)."""
    res = distribute_rig(inp.lib, rig, inp.cfg)
    for d in res["directories"]:
        for c in d["copied"]:
            record("master_copy", c, "done", None, None)
    runfiles.write(inp.lib, inp.run_key, f"distribute-{rig}", res)
    return {
        "rig": rig,
        "directories": [
            {
                "directory": d["directory"],
                "complete": d["complete"],
                "missing": d["missing"],
                "errors": d["errors"],
            }
            for d in res["directories"]
        ],
    }
