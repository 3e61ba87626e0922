"""Ours vs PlantCV on the **tune** photos: does PlantCV count plants better than ``count_plants``?

Issue 14 (Deliver 1) asks to decide by measurement whether PlantCV's tools should replace parts
of our live-plant counter. Only tune seeds are used (``[TUNE_SEED0, TUNE_SEED_END)``), so the
evaluation set of ``bench_photo_detect`` stays unseen:

* ``--photos`` photos from seed ``TUNE_SEED0`` with the narrow ``TUNE`` ranges (the cache of
  ``bench/tune_photo_detect.py``), and
* ``--wide`` photos from tune seeds ``WIDE_SEED0..`` drawn with the wider ``EVAL`` ranges (the
  tune script has no ``--wide``: these are tune seeds, not evaluation photos), cached alike.

Methods, each timed in CPU seconds per photo (decode included, OpenCV on one thread):

* ``ours``: :func:`include.photos.plants.count_plants` on the JPEG bytes (no calibration).
* ``exg``: the plain excess-green + Otsu + components baseline of ``bench_photo_detect``.
* PlantCV 4 (``$PLANTCV_PYTHON``, default ``/tmp/venv-plantcv/bin/python``, in a subprocess; the
  photos are passed as files), following its multi-plant tutorial: ``pcv.readimage``; a colour
  card search (``pcv.transform.detect_color_card``; our photos have none, so no
  ``pcv.transform`` correction is applied and the share of photos with a card is reported);
  half-size ``pcv.transform.resize_factor``; LAB ``a`` (green = dark) Otsu threshold AND LAB
  ``l`` Otsu (drops dark ground cover, moss, shadow); ``pcv.fill`` (specks) and
  ``pcv.fill_holes``; ``pcv.create_labels``; objects under 0.15 of the area-weighted median
  object are dropped (the tutorial's size filter, set from the photo). Then:

  - ``pcv_objects``: one plant per object (the tutorial's count);
  - ``pcv_size``: PlantCV's size route: each object counts ``round(area / median area)``;
  - ``pcv_watershed``: ``pcv.watershed_segmentation`` of the objects (touching plants split),
    ``distance`` = the equivalent radius of the median object;
  - ``pcv_green_otsu``: objects, with the ``a`` threshold from Otsu over the greenish pixels
    only (``a`` < 126) and a fixed ``l`` > 60 (a second mask recipe).

  ``pcv.roi.auto_grid`` / per-cell ROIs are not used: they need the tray's rows x columns as
  operator input, which neither the photos nor a location's configuration give, 40 % of the
  photos are open boxes, and a per-cell presence test cannot count two seedlings in one cell.

Prints one JSON line: per method MAPE, median APE, photos within 10 %, bias and CPU s/photo
(median, max), for all photos, the narrow and the wide ones, and MAPE per condition value.
``python bench/compare_plantcv.py [--photos 36] [--wide 12] [--jobs 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WIDE_SEED0 = 700_000  # tune seeds drawn with the wide (EVAL) ranges
PCV_METHODS = ("pcv_objects", "pcv_size", "pcv_watershed", "pcv_green_otsu")

# Runs in the PlantCV venv: one JSON line per photo path given on the command line.
PCV_WORKER = r"""
import json, sys, time
import cv2
import numpy as np
from plantcv import plantcv as pcv

cv2.setNumThreads(1)
pcv.params.debug = None


def objects(mask, fill_px):
    # object areas and the cleaned mask (specks and holes filled, small objects dropped)
    mask = pcv.fill(mask, size=fill_px)
    mask = pcv.fill_holes(mask)
    labels, n = pcv.create_labels(mask)
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    areas[0] = 0
    if not areas.any():
        return areas[1:0], mask
    srt = np.sort(areas[areas > 0])
    cw = np.cumsum(srt)
    keep = areas >= 0.15 * srt[np.searchsorted(cw, cw[-1] / 2)]
    keep[0] = False
    return areas[keep], np.where(keep[labels], 255, 0).astype(np.uint8)


for path in sys.argv[1:]:
    c0 = time.process_time()
    img, _, _ = pcv.readimage(path)
    img = pcv.transform.resize_factor(img, (0.5, 0.5))
    try:
        pcv.transform.detect_color_card(img)
        card = True
    except Exception:
        card = False
    a = pcv.rgb2gray_lab(img, "a")
    l = pcv.rgb2gray_lab(img, "l")
    mask = pcv.logical_and(pcv.threshold.otsu(a, "dark"), pcv.threshold.otsu(l, "light"))
    areas, clean = objects(mask, 30)
    n_obj = int(areas.size)
    med = float(np.median(areas)) if areas.size else 1.0
    n_size = int(sum(max(1, round(float(x) / med)) for x in areas))
    cpu_main = time.process_time() - c0
    c2 = time.process_time()
    n_ws = 0
    if n_obj:
        pcv.outputs.clear()
        pcv.watershed_segmentation(img, clean, distance=max(3, int((med / np.pi) ** 0.5)))
        n_ws = int(pcv.outputs.observations["default"]["estimated_object_count"]["value"])
    cpu_ws = time.process_time() - c2
    c1 = time.process_time()
    green = a[a < 126]
    th = 118
    if green.size > 100:
        th = int(cv2.threshold(green.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[0])
    mask2 = pcv.logical_and(pcv.threshold.binary(a, th, "dark"), pcv.threshold.binary(l, 60, "light"))
    n_green = int(objects(mask2, 30)[0].size)
    cpu_green = time.process_time() - c1
    print(json.dumps({
        "path": path, "card": card,
        "pcv_objects": n_obj, "pcv_size": n_size, "pcv_green_otsu": n_green,
        "pcv_watershed": n_ws,
        "cpu_pcv_objects": cpu_main, "cpu_pcv_size": cpu_main,
        # the second recipe shares decode, resize, card search and colour conversion
        "cpu_pcv_green_otsu": cpu_main + cpu_green,
        "cpu_pcv_watershed": cpu_main + cpu_ws,
    }), flush=True)
"""


def _photo(seed: int, wide: bool) -> tuple[Path, dict]:
    """JPEG path and truth of a tune seed (narrow TUNE or wide EVAL ranges), cached."""
    from dataclasses import asdict

    from bench.tune_photo_detect import _cache_dir, tune_photo
    from include.photos.synth import EVAL, is_tune_seed, synth_jpeg

    if not is_tune_seed(seed):
        raise SystemExit(f"seed {seed} is not a tune seed: the evaluation set stays unseen")
    if not wide:
        _, truth = tune_photo(seed)
        return _cache_dir() / f"{seed}_4000x3000.jpg", truth
    d = _cache_dir()
    jpg, meta = d / f"{seed}_4000x3000_wide.jpg", d / f"{seed}_4000x3000_wide.json"
    if not (jpg.exists() and meta.exists()):
        data, truth = synth_jpeg(seed, EVAL, width=4000, height=3000)
        d.mkdir(parents=True, exist_ok=True)
        tmp = jpg.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(jpg)
        meta.write_text(json.dumps(asdict(truth)))
    return jpg, json.loads(meta.read_text())


def _ours(item: tuple[int, bool]) -> dict:
    import cv2

    from bench.bench_photo_detect import baseline_count
    from include.photos.plants import count_plants
    from include.photos.synth import SynthTruth

    cv2.setNumThreads(1)
    seed, wide = item
    path, t = _photo(seed, wide)
    c0 = time.process_time()
    data = path.read_bytes()
    res, _ = count_plants(data)
    cpu = time.process_time() - c0
    c1 = time.process_time()
    exg = baseline_count(path.read_bytes())
    return {
        "seed": seed,
        "wide": wide,
        "path": str(path),
        "truth": t["plants"],
        "conditions": SynthTruth(**t).conditions(),
        "ours": res.count,
        "cpu_ours": cpu,
        "exg": exg,
        "cpu_exg": time.process_time() - c1,
    }


def _plantcv(paths: list[str], python: str) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run(
        [python, "-c", PCV_WORKER, *paths], capture_output=True, text=True, env=env, check=False
    )
    if out.returncode:
        raise SystemExit(f"PlantCV worker failed: {out.stderr[-2000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def _stats(rows: list[dict], m: str) -> dict:
    apes = [abs(r[m] - r["truth"]) / r["truth"] for r in rows]
    cpus = [r[f"cpu_{m}"] for r in rows]
    return {
        "n": len(rows),
        "mape": round(sum(apes) / len(apes), 4),
        "median_ape": round(statistics.median(apes), 4),
        "within_10pct": sum(a <= 0.10 for a in apes),
        "bias": round(sum((r[m] - r["truth"]) / r["truth"] for r in rows) / len(rows), 4),
        "cpu_s_median": round(statistics.median(cpus), 3),
        "cpu_s_max": round(max(cpus), 3),
    }


def main(argv: list[str] | None = None) -> None:
    from include.photos.synth import TUNE_SEED0

    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=36)
    ap.add_argument("--wide", type=int, default=12)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument(
        "--plantcv-python", default=os.environ.get("PLANTCV_PYTHON", "/tmp/venv-plantcv/bin/python")
    )
    args = ap.parse_args(argv)
    items = [(TUNE_SEED0 + i, False) for i in range(args.photos)]
    items += [(WIDE_SEED0 + i, True) for i in range(args.wide)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as ex:
        rows = list(ex.map(_ours, items))  # also generates / caches the photos
        paths = [r["path"] for r in rows]
        chunks = [paths[i :: args.jobs] for i in range(args.jobs)]
        pcv = {
            p["path"]: p
            for ps in ex.map(_plantcv, chunks, [args.plantcv_python] * args.jobs)
            for p in ps
        }
    for r in rows:
        r.update({k: v for k, v in pcv[r["path"]].items() if k != "path"})
    methods = ("ours", "exg", *PCV_METHODS)
    narrow = [r for r in rows if not r["wide"]]
    wide = [r for r in rows if r["wide"]]
    by_cond: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        for k, v in r["conditions"].items():
            by_cond.setdefault(f"{k}={v}", {}).setdefault("rows", []).append(r)
    conditions = {
        c: {"n": len(g["rows"])}
        | {
            m: round(
                sum(abs(r[m] - r["truth"]) / r["truth"] for r in g["rows"]) / len(g["rows"]), 3
            )
            for m in methods
        }
        for c, g in sorted(by_cond.items())
    }
    print(
        json.dumps(
            {
                "name": "compare_plantcv",
                "set": f"TUNE seeds {TUNE_SEED0}.. (narrow) + {WIDE_SEED0}.. (wide EVAL ranges)",
                "photos": len(rows),
                "colour_card_found": sum(bool(r["card"]) for r in rows),
                "all": {m: _stats(rows, m) for m in methods},
                "narrow": {m: _stats(narrow, m) for m in methods} if narrow else None,
                "wide": {m: _stats(wide, m) for m in methods} if wide else None,
                "by_condition_mape": conditions,
                "wall_s": round(time.perf_counter() - t0, 1),
                "load_avg_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
