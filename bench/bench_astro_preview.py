"""Blink preview of a 61 Mpx 16-bit light (9576x6388, NINA layout BITPIX 16 + BZERO 32768) at
1600 px: ``astropy.io.fits.getdata`` + ``ZScaleInterval`` + block-mean downsampling to the same
size (baseline) vs :func:`include.astro.preview.preview_image` (streaming: every k-th row read
from the file and binned by k along the row, zscale + asinh stretch on the small image).

Peak memory of each side is measured in its own child process (``VmHWM``).
Issue targets: ratio >= 3, ours <= 400 MB peak.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import emit  # noqa: E402

SHAPE = (6388, 9576)
SIZE = 1600

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
path, side = sys.argv[1], sys.argv[2]
import numpy as np
from astropy.io import fits
from astropy.visualization import ZScaleInterval
from include.astro.preview import preview_image
def baseline():
    data = fits.getdata(path).astype(np.float32)
    lo, hi = ZScaleInterval().get_limits(data)
    k = -(-max(data.shape) // %(size)d)
    h, w = (data.shape[0] // k) * k, (data.shape[1] // k) * k
    small = data[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3))
    return (np.clip((small - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
def ours():
    return np.asarray(preview_image(path, %(size)d))
fn = baseline if side == "baseline" else ours
fn()  # warm (imports, page cache)
best = 1e9
for _ in range(3):
    t = time.perf_counter(); out = fn(); best = min(best, time.perf_counter() - t)
# VmHWM: this process's own peak (ru_maxrss keeps the forking parent's peak across exec)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(json.dumps({"s": best, "shape": list(out.shape), "peak_mb": int(hwm) / 1024}))
""".replace("%(size)d", str(SIZE))


def main() -> None:
    import numpy as np

    from include.astro.samples import write_fits

    root = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory(prefix="bench_preview_") as tmp:
        path = Path(tmp) / "light61.fits"
        rng = np.random.default_rng(5)
        img = rng.normal(1200, 30, size=SHAPE).astype(np.float32)
        for y, x in rng.integers(20, min(SHAPE) - 20, size=(4000, 2)):
            img[y - 2 : y + 3, x - 2 : x + 3] += rng.uniform(500, 30000)
        write_fits(path, img, {"IMAGETYP": "LIGHT"})
        del img
        res = {}
        for side in ("baseline", "ours"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(path), side, root],
                capture_output=True,
                text=True,
                check=True,
            )
            res[side] = json.loads(out.stdout.strip().splitlines()[-1])
        emit(
            "astro_preview_61mpx",
            res["baseline"]["s"],
            res["ours"]["s"],
            baseline="astropy getdata + ZScaleInterval + block-mean downsample",
            ours="include.astro.preview.preview_image (streaming row-sampled binning)",
            size_px=SIZE,
            baseline_peak_mb=round(res["baseline"]["peak_mb"], 1),
            ours_peak_mb=round(res["ours"]["peak_mb"], 1),
            baseline_shape=res["baseline"]["shape"],
            ours_shape=res["ours"]["shape"],
            target_ratio=3,
            target_peak_mb=400,
        )


if __name__ == "__main__":
    main()
