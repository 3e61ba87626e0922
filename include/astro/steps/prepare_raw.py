"""Step ``prepare_raw``: parse, move and rename the raw frames (see :mod:`include.astro.moves`)."""

from __future__ import annotations

from typing import Any

from include.astro.moves import Ledger
from include.astro.moves import prepare_raw as move_raw
from include.astro.steps import runfiles
from include.astro.steps.lights_inputs import InputError, LightsInputs


def prepare_raw(inp: LightsInputs, record: Ledger) -> dict[str, Any]:
    """Move every raw frame; per-item outcomes go to the run file ``prepare_raw``; returns the
    counts, the rigs with lights, the skipped folders and the file."""
    if not inp.raw.is_dir():
        raise InputError(f"raw_dir {inp.raw} does not exist or is not a folder")
    inp.lib.mkdir(parents=True, exist_ok=True)
    res = move_raw(inp.raw, inp.lib, inp.cfg, ledger=record).to_dict()
    path = runfiles.write(inp.lib, inp.run_key, "prepare_raw", res)
    return {
        "counts": res["counts"],
        "rigs": res["rigs"],
        "skipped_dirs": res["skipped_dirs"],
        "errors": len([i for i in res["items"] if i["status"] == "error"]),
        "file": path,
    }
