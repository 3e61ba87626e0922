"""Median master of 20 frames of 2000×2000 uint16: ``ccdproc.combine(method="median")`` (baseline)
vs :func:`include.astro.masters.integrate` (ours), same FITS files, same run, both reading the
files themselves and writing nothing but the result (ours also hashes every input for provenance
and writes the master FITS). Results are checked to be equal. Issue target: ratio >= 4.

Extra fields: peak RSS of a separate process that integrates 50 frames of 9576×6388 uint16 (the
61-megapixel IMX455 format) - issue target: < 4 GB. Writing 50 distinct 122 MB frames costs ~6 GB of
disk and ~50 s at this machine's ~120 MB/s, so by default 5 distinct frames are written and hard
linked under 50 names (``mem_distinct_files``); every one of the 50 inputs is still opened, read,
hashed and combined, so the work and the memory path are those of 50 frames. ``--distinct`` writes
50 distinct files instead.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import emit, timed  # noqa: E402

N, H, W = 20, 2000, 2000
MEM_N, MEM_H, MEM_W = 50, 6388, 9576


def write_frames(root: Path, n: int, h: int, w: int, distinct: int, seed: int = 0) -> list[str]:
    """uint16 FITS frames written strip by strip (small memory); ``distinct`` real files, the rest
    hard links to them."""
    import numpy as np
    from astropy.io import fits

    rng = np.random.default_rng(seed)
    header = fits.PrimaryHDU(np.zeros((1, 1), dtype=np.uint16)).header
    header["NAXIS1"], header["NAXIS2"] = w, h
    header["IMAGETYP"] = "BIAS"
    hbytes = header.tostring().encode("ascii")
    paths: list[str] = []
    for i in range(distinct):
        p = root / f"frame_{i:03d}.fits"
        with open(p, "wb") as fh:
            fh.write(hbytes)
            for r0 in range(0, h, 256):
                rows = min(256, h - r0)
                strip = rng.normal(1000, 30, (rows, w)).clip(0, 65535).astype(np.uint16)
                fh.write((strip ^ 0x8000).astype(">u2").tobytes())  # FITS int16 + BZERO 32768
            pad = (-(len(hbytes) + h * w * 2)) % 2880
            fh.write(b"\0" * pad)
        paths.append(str(p))
    for i in range(distinct, n):
        p = root / f"frame_{i:03d}.fits"
        os.link(paths[i % distinct], p)
        paths.append(str(p))
    return paths


def vm_hwm_mb() -> float:
    """Peak resident memory of this process image (``VmHWM``; unlike ``ru_maxrss`` it is not
    inherited from the parent across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(n: int, h: int, w: int, distinct: int) -> None:
    """Run inside the measured subprocess: write the frames, integrate them, print JSON."""
    from include.astro.masters import integrate

    with tempfile.TemporaryDirectory(prefix="bench_master_mem_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        paths = write_frames(root, n, h, w, distinct)
        gen_s = time.perf_counter() - t0
        rss_before = vm_hwm_mb()
        t0 = time.perf_counter()
        res = integrate(paths, root / "master.fits", imagetyp="BIAS")
        integ_s = time.perf_counter() - t0
        rss_after = vm_hwm_mb()
        print(
            json.dumps(
                {
                    "gen_s": round(gen_s, 1),
                    "integrate_s": round(integ_s, 1),
                    "rss_mb_before": round(rss_before),
                    "peak_rss_mb": round(rss_after),
                    "n": res.n_frames,
                    "shape": list(res.shape),
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory-child", nargs=4, type=int, metavar=("N", "H", "W", "DISTINCT"))
    parser.add_argument("--distinct", action="store_true", help="50 distinct frame files")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return

    import warnings

    import numpy as np
    from astropy.io import fits

    from include.astro.masters import integrate

    with tempfile.TemporaryDirectory(prefix="bench_master_") as tmp:
        root = Path(tmp)
        paths = write_frames(root, N, H, W, distinct=N, seed=1)

        def baseline() -> np.ndarray:
            import ccdproc

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ccd = ccdproc.combine(paths, method="median", unit="adu")
            return np.asarray(ccd.data)

        def ours() -> str:
            integrate(paths, root / "master.fits", imagetyp="BIAS")
            return str(root / "master.fits")

        ours()  # warm the page cache for both sides
        base_s, base = timed(baseline, repeat=1)
        baseline_peak_mb = vm_hwm_mb()  # ccdproc ran in this process; ours adds little
        ours_s, out = timed(ours, repeat=2)
        mine = fits.getdata(out)
        assert np.allclose(mine, base), "ccdproc and our median differ"

    extra: dict[str, object] = {
        "frames": N,
        "shape": [H, W],
        "process_peak_rss_mb_after_baseline": round(baseline_peak_mb),
    }
    if not args.skip_memory:
        distinct = MEM_N if args.distinct else 5
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]
        )
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-child",
                str(MEM_N),
                str(MEM_H),
                str(MEM_W),
                str(distinct),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        mem = json.loads(proc.stdout.strip().splitlines()[-1])
        extra.update(
            {
                "mem_frames": MEM_N,
                "mem_shape": [MEM_H, MEM_W],
                "mem_distinct_files": distinct,
                "mem_peak_rss_mb": mem["peak_rss_mb"],
                "mem_rss_before_integration_mb": mem["rss_mb_before"],
                "mem_integrate_s": mem["integrate_s"],
                "mem_generate_s": mem["gen_s"],
                "mem_target_mb": 4096,
            }
        )
    emit("astro_master", base_s, ours_s, **extra)


if __name__ == "__main__":
    main()
