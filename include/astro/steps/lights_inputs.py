"""Inputs of the lights pipeline from resolved params (see ``imaging.astro.inputs``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.astro.rigs import RigConfigError, RigsConfig, load_rigs
from include.common.files import safe_name


class InputError(ValueError):
    """The run cannot start (message says why)."""


@dataclass(frozen=True)
class LightsInputs:
    raw: Path
    lib: Path
    cfg: RigsConfig
    run_key: str


def lights_inputs(params: Mapping[str, Any], run_id: str) -> LightsInputs:
    """``params`` must hold ``raw_dir``, ``library_dir`` (resolved) and ``rigs`` (may be None)."""
    if not params.get("library_dir"):
        raise InputError(
            "no library folder (param library_dir / setting imaging_astro_library_dir)"
        )
    try:
        cfg = load_rigs(params.get("rigs") or None)
    except RigConfigError as exc:
        raise InputError(str(exc)) from exc
    return LightsInputs(
        raw=Path(params.get("raw_dir") or ""),
        lib=Path(params["library_dir"]),
        cfg=cfg,
        run_key=safe_name(run_id, default="run"),
    )
