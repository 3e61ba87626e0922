"""Live-plant counting on 12 MP nursery-tray photos: count error and seconds per photo.

Evaluation set: :mod:`include.photos.synth` photos drawn with the **evaluation** seeds
(``EVAL_SEED0``, a fresh random start never looked at while tuning) and the wider
:data:`include.photos.synth.EVAL` ranges (the detector is tuned with ``bench/tune_photo_detect.py``
on the tune seeds and the narrower ``TUNE`` ranges only; that script refuses evaluation seeds): plug trays and open boxes, black/grey/brown/green plastic and wood,
concrete/gravel/woven/dark-green floors, seedlings, rosettes, bluish succulents, stalked herbs,
dead plants, labels, moss, perlite, white balance, vignetting, shadows, blur, JPEG 80-95.
No per-photo calibration is given to either method.

* ours: :func:`include.photos.plants.count_plants` on the JPEG bytes (decode included), lattice
  step included (``photos_counted_by_lattice``: photos whose count is the grid's occupied cells).
* baseline: what a user would otherwise do — excess green ``2g-r-b`` (chromatic) with an Otsu
  threshold on a ~1000 px decode, a 3x3 opening, and one plant per connected component of at
  least 20 px (scikit-image + scipy), on the same photos, decode included.

Prints one JSON line: MAPE and median APE of both, seconds per photo (median and max) of both,
``ratio`` = baseline seconds / ours. No per-condition breakdown here: that is the tune script's job
(looking at the evaluation set's weak spots would make it a second tune set). ``python bench/bench_photo_detect.py [--photos N]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_S = 1.3
TARGET_MAPE = 0.10


def baseline_count(data: bytes) -> int:
    """Excess green + Otsu + connected components (the plain approach)."""
    import io

    import numpy as np
    from PIL import Image
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    im = Image.open(io.BytesIO(data))
    im.draft("RGB", (im.width // 4, im.height // 4))
    rgb = np.asarray(im.convert("RGB"), np.float32)
    s = rgb.sum(axis=2)
    s[s == 0] = 1
    exg = (2 * rgb[..., 1] - rgb[..., 0] - rgb[..., 2]) / s
    mask = exg > max(0.05, float(threshold_otsu(exg)))
    mask = ndi.binary_opening(mask, np.ones((3, 3), bool))
    labels, n = ndi.label(mask)
    if n == 0:
        return 0
    areas = np.bincount(labels.ravel())[1:]
    return int((areas >= 20).sum())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=48)
    args = ap.parse_args(argv)

    from include.photos.plants import count_plants
    from include.photos.synth import EVAL, EVAL_SEED0, TUNE_SEED0, synth_jpeg

    ours_err, base_err, ours_t, base_t, ours_cpu = [], [], [], [], []
    on_lattice = 0
    count_plants(synth_jpeg(TUNE_SEED0, EVAL, width=800, height=600)[0])  # warm-up
    for i in range(args.photos):
        data, truth = synth_jpeg(EVAL_SEED0 + i, EVAL)
        t0, c0 = time.perf_counter(), time.process_time()
        res, _ = count_plants(data)
        ours_t.append(time.perf_counter() - t0)
        ours_cpu.append(time.process_time() - c0)
        on_lattice += res.lattice
        t0 = time.perf_counter()
        base = baseline_count(data)
        base_t.append(time.perf_counter() - t0)
        e = abs(res.count - truth.plants) / truth.plants
        ours_err.append(e)
        base_err.append(abs(base - truth.plants) / truth.plants)
    ours_s, base_s = statistics.median(ours_t), statistics.median(base_t)
    mape = sum(ours_err) / len(ours_err)
    print(
        json.dumps(
            {
                "name": "photo_detect",
                "baseline_s": round(base_s, 3),
                "ours_s": round(ours_s, 3),
                "ratio": round(base_s / ours_s, 2),
                "ours_max_s": round(max(ours_t), 3),
                "ours_cpu_s": round(statistics.median(ours_cpu), 3),
                "ours_cpu_max_s": round(max(ours_cpu), 3),
                "target_s": TARGET_S,
                "mape": round(mape, 4),
                "median_ape": round(statistics.median(ours_err), 4),
                "baseline_mape": round(sum(base_err) / len(base_err), 4),
                "baseline_median_ape": round(statistics.median(base_err), 4),
                "baseline_max_s": round(max(base_t), 3),
                "photos_within_10pct": sum(e <= 0.10 for e in ours_err),
                "photos_counted_by_lattice": on_lattice,
                "target_mape": TARGET_MAPE,
                "photos": len(ours_err),
                "megapixels": 12.0,
                "eval_set": f"synth EVAL ranges, seeds {EVAL_SEED0}.. (never used for tuning)",
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "meets_target": max(ours_cpu) <= TARGET_S and mape <= TARGET_MAPE,
            }
        )
    )


if __name__ == "__main__":
    main()
