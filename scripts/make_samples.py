"""Generate the demo's sample data for every pipeline (deterministic, small) and write the
trigger confs to ``<dest>/demo_confs.json``.

Each domain package exposes ``generate_demo(dest) -> dict`` in ``include/<domain>/samples*.py``
(e.g. ``include.astro.samples`` for the lights, ``include.astro.samples_masters`` for the masters and
catalog) returning ``{dag_id: conf}`` or a description of what it generated. Each module writes into
``<dest>/<domain>`` (``<dest>/<domain>_<suffix>`` for ``samples_<suffix>``).
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

DOMAINS = ("astro", "reef", "photos", "design", "roboflow")


def main(dest: Path) -> dict[str, object]:
    dest.mkdir(parents=True, exist_ok=True)
    confs: dict[str, object] = {}
    for domain in DOMAINS:
        modules = sorted((ROOT / "include" / domain).glob("samples*.py"))
        if not modules:
            print(f"samples: {domain}: no generator")
            continue
        for path in modules:
            mod = importlib.import_module(f"include.{domain}.{path.stem}")
            if not hasattr(mod, "generate_demo"):
                continue
            name = domain + path.stem.removeprefix("samples")
            t0 = time.monotonic()
            confs[name] = mod.generate_demo(dest / name)
            print(f"samples: {name}: {time.monotonic() - t0:.1f} s")
    _seed_app_db(confs)
    (dest / "demo_confs.json").write_text(json.dumps(confs, indent=2, default=str))
    variables = installation_variables(confs)
    (dest / "variables.json").write_text(json.dumps(variables, indent=2, sort_keys=True))
    return confs


def _pick(confs: dict[str, Any], *path: str) -> Any:
    node: Any = confs
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def installation_variables(confs: dict[str, Any]) -> dict[str, str]:
    """The installation settings (Airflow Variables ``imaging_*``) that point every scheduled and
    Asset-triggered run at the sample data, so a demo user's *Unpause* runs on it."""
    wanted = {
        "imaging_astro_raw_dir": _pick(confs, "astro", "raw_dir"),
        "imaging_astro_library_dir": _pick(confs, "astro", "library_dir"),
        "imaging_astro_calibration_dir": _pick(
            confs, "astro_masters", "astro_calibration_masters", "calibration_dir"
        ),
        "imaging_astro_scheduler_db": _pick(
            confs, "astro_masters", "astro_catalog_report", "scheduler_db"
        ),
        "imaging_reef_base_dir": _pick(confs, "reef", "reef_stitch_upload", "base_dir"),
        "imaging_reef_experiment_id": _pick(confs, "reef", "reef_stitch_upload", "experiment_id"),
        "imaging_reef_stitched_dir": _pick(confs, "reef", "reef_stitch_upload", "stitched_dir"),
        "imaging_photo_source_dir": _pick(confs, "photos", "photo_ingest", "source_dir"),
        "imaging_design_source_dir": _pick(confs, "design", "design_upload", "source_dir"),
        "imaging_design_shop": _pick(confs, "design", "design_upload", "shop"),
        "imaging_roboflow_dataset_dir": _pick(confs, "roboflow", "roboflow_upload", "dataset_dir"),
        "imaging_roboflow_project": _pick(confs, "roboflow", "roboflow_upload", "project"),
    }
    return {k: str(v) for k, v in wanted.items() if v not in (None, "")}


def _seed_app_db(confs: dict[str, object]) -> None:
    """Reference data the demo's samples need in the app database (e.g. the photo pipeline's
    warehouse and storage locations: without them every demo photo would need a location)."""
    import os

    url = os.environ.get("IMAGING_DEMO_APP_DB_URL")
    if not url or "photos" not in confs:
        return
    from include.common.db import make_engine
    from include.photos.samples import seed_demo_site

    ids = seed_demo_site(make_engine(url), confs["photos"])  # type: ignore[arg-type]
    print(f"samples: photos: {len(ids)} storage locations in the app DB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".data" / "samples")
