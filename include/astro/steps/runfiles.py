"""Per-run step files: ``<library>/_Summary/<pipeline>/<run key>/<name>.json``.

Steps write their per-item results here (deterministic name: a retry overwrites its own file) and
pass only the file name (and ids) through XCom; the summary step reads them all. ``pipeline`` is
``astro_prepare_lights`` unless named (``astro_calibration_masters``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from include.astro import layout
from include.common.files import atomic_write_text, safe_name

LIGHTS = "astro_prepare_lights"


def run_dir(library_dir: str | os.PathLike[str], run_key: str, pipeline: str = LIGHTS) -> Path:
    return layout.summary_dir(library_dir, pipeline) / safe_name(run_key, default="run")


def write(
    library_dir: str | os.PathLike[str],
    run_key: str,
    name: str,
    data: Any,
    pipeline: str = LIGHTS,
) -> str:
    path = run_dir(library_dir, run_key, pipeline) / f"{safe_name(name)}.json"
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    return str(path)


def read(
    library_dir: str | os.PathLike[str], run_key: str, name: str, pipeline: str = LIGHTS
) -> Any:
    """One step file of the run; None when it was not written (its step skipped or failed)."""
    path = run_dir(library_dir, run_key, pipeline) / f"{safe_name(name)}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def read_all(
    library_dir: str | os.PathLike[str], run_key: str, pipeline: str = LIGHTS
) -> dict[str, Any]:
    """``{name: data}`` of every step file of the run (sorted by name)."""
    d = run_dir(library_dir, run_key, pipeline)
    out: dict[str, Any] = {}
    if d.is_dir():
        for p in sorted(d.glob("*.json")):
            try:
                out[p.stem] = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
    return out
