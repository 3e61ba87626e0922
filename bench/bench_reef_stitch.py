"""Benchmark: stitching 3 channels x 8x8 tiles of 2048x2048 (10% overlap, ~15k x 15k per channel)
into one sharded OME-Zarr multiscale image with ``include.reef.stitch`` (read tiles, place, 2x2-mean
pyramid, compress, write) versus ome-zarr's ``write_image`` **with 4096² shards** (512² chunks,
nearest-neighbour pyramid: its fastest setting) writing the same finished mosaic from memory (the
time to assemble that mosaic is not counted against the baseline). Each side runs in its own
subprocess so its peak RSS is its own. Our side runs twice: stage positions only
(``register=False``, compared with the baseline's level 0) and with registration of the 192 tiles
from their overlaps (``register=True``, the default).

Targets (issue 16): ratio >= 1.5, our peak RSS <= 600 MB, registration adds <= 50 %.
The tiles are generated once (deterministic) under ``$REEF_BENCH_DIR`` (default /tmp/reef_bench).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GRID = dict(rows=8, cols=8, tile=2048, overlap=0.1)
LEVELS_MIN = 512


def data_dir() -> Path:
    return Path(os.environ.get("REEF_BENCH_DIR", "/tmp/reef_bench"))


def ensure_tiles() -> Path:
    from datetime import datetime

    from include.reef.samples import GridSpec, folder_name, write_timelapse_folder

    base = data_dir() / "input"
    taken = datetime(2025, 4, 29, 15, 38, 36, 107800)
    folder = base / folder_name("bench", taken)
    marker = folder / ".complete-v2"  # v2: the sample mosaic's texture has no period
    if not marker.exists():
        if folder.exists():
            shutil.rmtree(folder)
        write_timelapse_folder(base, "bench", taken, 0, grid=GridSpec(**GRID))
        marker.write_text("ok")
    return folder


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_ours(folder: Path, out: Path, register: bool = False) -> dict:
    import ome_zarr.writer  # noqa: F401 - imported before timing, as on the baseline side

    from include.reef.stitch import StitchOptions, stitch_folder

    t = time.perf_counter()
    opts = StitchOptions(min_level_size=LEVELS_MIN, register=register)
    res = stitch_folder(folder, out, options=opts)
    dt = time.perf_counter() - t
    return {
        "seconds": dt,
        "peak_rss_mb": peak_rss_mb(),
        "levels": len(res.levels),
        "registration": {k: v for k, v in res.registration.items() if k != "positions"},
    }


def run_baseline(folder: Path, out: Path) -> dict:
    import numpy as np
    import zarr
    from ome_zarr.scale import Methods
    from ome_zarr.writer import write_image

    from include.reef.acquisition import plan_mosaic
    from include.reef.stitch import StitchOptions, level_shapes, read_tile

    plan = plan_mosaic(folder, tile_shape=(GRID["tile"], GRID["tile"]))
    chans = list(plan.channels)
    mosaic = np.zeros((len(chans), *plan.shape), dtype=np.uint8)
    for ci, ch in enumerate(chans):
        for p in sorted(plan.channels[ch], key=lambda p: (p.y, p.x)):
            img = read_tile(p.path)
            mosaic[ci, p.y : p.y + img.shape[0], p.x : p.x + img.shape[1]] = img
    n_levels = len(level_shapes(plan.shape, StitchOptions(min_level_size=LEVELS_MIN)))
    factors = [2**i for i in range(1, n_levels)]
    t = time.perf_counter()
    write_image(
        mosaic,
        zarr.open_group(str(out), mode="w"),
        axes="cyx",
        scale_factors=factors,
        method=Methods.NEAREST,
        storage_options={"chunks": (1, 512, 512), "shards": (1, 4096, 4096)},
    )
    dt = time.perf_counter() - t
    return {"seconds": dt, "peak_rss_mb": peak_rss_mb(), "levels": n_levels}


def check_equal(ours: Path, base: Path) -> bool:
    """Level 0 of every channel equal on a few sampled windows."""
    import numpy as np
    import zarr

    a0 = zarr.open_array(str(ours / "0"), mode="r")
    b0 = zarr.open_array(str(base / "s0"), mode="r")
    if a0.shape != b0.shape:
        return False
    h, w = a0.shape[1:]
    for ci in range(a0.shape[0]):
        for y, x in ((0, 0), (5000, 7000), (h - 300, w - 300)):
            if not np.array_equal(
                a0[ci, y : y + 300, x : x + 300], b0[ci, y : y + 300, x : x + 300]
            ):
                return False
    return True


def side(which: str, folder: Path, out: Path) -> dict:
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, __file__, "--side", which, "--folder", str(folder), "--out", str(out)]
    os.sync()  # flush the previous side's writes so they do not slow this one down
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    os.sync()
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    folder = ensure_tiles()
    work = data_dir() / "out"
    ours_out, base_out = work / "ours.zarr", work / "baseline.zarr"
    base = side("baseline", folder, base_out)
    ours = side("ours", folder, ours_out)
    equal = check_equal(ours_out, base_out)
    reg = side("ours_registered", folder, work / "registered.zarr")
    result = {
        "name": "reef_stitch",
        "baseline": "ome-zarr write_image, 4096² shards, nearest, from memory",
        "baseline_s": round(base["seconds"], 3),
        "ours_s": round(ours["seconds"], 3),
        "ratio": round(base["seconds"] / ours["seconds"], 3),
        "baseline_peak_rss_mb": round(base["peak_rss_mb"], 1),
        "ours_peak_rss_mb": round(ours["peak_rss_mb"], 1),
        "ours_registered_s": round(reg["seconds"], 3),
        "ours_registered_peak_rss_mb": round(reg["peak_rss_mb"], 1),
        "registration_overhead": round(reg["seconds"] / ours["seconds"] - 1, 3),
        # the registration step's own time over the stitch (less noisy on a shared machine)
        "registration_share": round(reg["registration"].get("seconds", 0) / ours["seconds"], 3),
        "registration": reg["registration"],
        "levels": ours["levels"],
        "level0_equal": equal,
        "target": "ratio >= 1.5, ours_peak_rss_mb <= 600, registration_overhead (and share) <= 0.5",
    }
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", choices=("ours", "ours_registered", "baseline"))
    ap.add_argument("--folder")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.side:
        if a.side == "baseline":
            out = run_baseline(Path(a.folder), Path(a.out))
        else:
            out = run_ours(Path(a.folder), Path(a.out), register=a.side == "ours_registered")
        print(json.dumps(out))
    else:
        main()
