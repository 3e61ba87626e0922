"""Step ``import_external`` of the masters pipeline: masters made elsewhere (WBPP, Siril) into the
libraries (:mod:`include.astro.master_import`), recorded; optional WBPP temp cleanup. The
per-master results are the run file ``import``; XCom carries its path and the count copied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from include.astro.master_import import cleanup_wbpp, import_masters
from include.astro.moves import Ledger
from include.astro.steps.masters_plan import MastersInputs, save


def import_external(
    inp: MastersInputs, folder: str | None, wbpp_cleanup: bool, record: Ledger
) -> dict[str, Any]:
    """``{"file", "copied"}``."""
    out = _import(inp, folder, wbpp_cleanup, record)
    copied = sum(1 for o in out["imported"] if o.get("status") == "copied")
    return {"file": save(inp, "import", out), "copied": copied}


def _import(
    inp: MastersInputs, folder: str | None, wbpp_cleanup: bool, record: Ledger
) -> dict[str, Any]:
    if not folder:
        return {"imported": [], "cleanup": None}
    if not Path(folder).is_dir():
        raise ValueError(f"import_dir {folder} does not exist or is not a folder")
    outs = import_masters(folder, inp.lib, inp.rigs)
    for o in outs:
        record(
            "library_master",
            o.dest or o.source,
            "done" if o.verified else "failed",
            {"source": o.source, "status": o.status, "checksum": o.checksum, "imported": True},
            o.error,
        )
    cleanup = cleanup_wbpp(folder, outs) if wbpp_cleanup else None
    return {"imported": [o.to_dict() for o in outs], "cleanup": cleanup}
