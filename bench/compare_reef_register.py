"""Our registration against maintained stitching libraries (issue 16, deliver 3: evaluate).

Same generated tiles as ``bench/eval_reef_register.py`` (serpentine 4 x 5 grid of 256-px tiles,
5-20 % overlap, written stage positions off by up to ±15 px), held-out seeds 401-420 by default.
For every seed the corrected tile positions come from

* ``ours``: ``include/reef/register.py`` (``register_plan`` with the default ``StitchOptions``),
* ``m2stitch``: ``m2stitch.stitch_images`` (MIST) with the grid indices and the stage positions as
  initial guess,
* ``ashlar``: ``ashlar.reg.EdgeAligner`` on an in-memory reader (pixel size 1, ``max_shift`` 40 px
  as ours),
* ``multiview_stitcher``: ``registration.register`` (phase correlation, global optimisation) when
  it is installed,
* ``stage``: the written stage positions, uncorrected (the baseline).

All measure one channel: the one ``register_plan`` picks (most texture). Positions are compared
with the true ones after taking off the one global translation the tiles cannot observe (the mean
offset of the tiles that agree with the most common rounded offset). Per library: max and mean
error in px (Chebyshev, per tile), share of tiles within ±1 px, seconds (sum over seeds, without
the import), failures.

The libraries run in a separate venv (default ``/tmp/venv-stitch``) through a subprocess, so the
project's dependencies stay as they are; a library missing there is reported as not installed.
Prints one JSON line.

    python bench/compare_reef_register.py [--seeds 401,402] [--python /tmp/venv-stitch/bin/python]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LIBS = ("m2stitch", "ashlar", "multiview_stitcher")
MODULES = {
    "m2stitch": "m2stitch",
    "ashlar": "ashlar.reg",
    "multiview_stitcher": "multiview_stitcher.registration",
}
MAX_SHIFT_PX = 40  # ours: StitchOptions.max_shift_px; the libraries get the same search range


# --- worker: runs in the libraries' venv, no project imports -------------------------------------


def _m2stitch(tiles: np.ndarray, stage: np.ndarray, grid: np.ndarray) -> np.ndarray:
    import m2stitch

    # overlap_diff_threshold: % of the tile size the result may differ from the initial guess
    thr = min(100.0, 100.0 * MAX_SHIFT_PX / tiles.shape[1])
    df, _ = m2stitch.stitch_images(
        tiles,
        position_indices=grid,
        position_initial_guess=stage,
        overlap_diff_threshold=thr,
        row_col_transpose=False,
        ncc_threshold=0.1,
    )
    return df[["y_pos", "x_pos"]].to_numpy(float)


def _ashlar(tiles: np.ndarray, stage: np.ndarray, grid: np.ndarray) -> np.ndarray:
    from ashlar import reg

    class Meta(reg.Metadata):
        _num_images = len(tiles)
        num_channels = 1
        pixel_size = 1.0
        pixel_dtype = tiles.dtype

        def tile_position(self, i: int) -> np.ndarray:
            return stage[i].astype(float)

        def tile_size(self, i: int) -> np.ndarray:
            return np.array(tiles.shape[1:])

    class Mem(reg.Reader):
        metadata = Meta()

        def read(self, series: int, c: int) -> np.ndarray:
            return tiles[series]

    al = reg.EdgeAligner(Mem(), channel=0, max_shift=MAX_SHIFT_PX, do_make_thumbnail=False)
    al.run()
    # run() moves the origin to (0, 0): put it back so that untouched tiles read as stage
    return np.asarray(al.positions, float) + al.origin


def _multiview_stitcher(tiles: np.ndarray, stage: np.ndarray, grid: np.ndarray) -> np.ndarray:
    from multiview_stitcher import msi_utils, registration
    from multiview_stitcher import spatial_image_utils as si_utils

    msims = []
    for t, (y, x) in zip(tiles, stage, strict=True):
        sim = si_utils.get_sim_from_array(
            t,
            dims=["y", "x"],
            scale={"y": 1.0, "x": 1.0},
            translation={"y": float(y), "x": float(x)},
            transform_key="stage",
        )
        msims.append(msi_utils.get_msim_from_sim(sim, scale_factors=[]))
    params = registration.register(
        msims,
        reg_channel_index=0,
        transform_key="stage",
        new_transform_key="registered",
        registration_binning={"y": 1, "x": 1},  # full resolution, as the others
        overlap_tolerance=float(MAX_SHIFT_PX),  # a low overlap with a stage error may show a gap
        pre_registration_pruning_method="keep_axis_aligned",
        post_registration_do_quality_filter=True,  # drop pairs under the default 0.2 quality
        n_parallel_pairwise_regs=1,
    )
    out = []
    for p, (y, x) in zip(params, stage, strict=True):
        a = np.asarray(p).reshape(-1, 3, 3)[0]  # physical -> world, homogeneous (y, x, 1)
        out.append((a @ np.array([y, x, 1.0]))[:2])
    return np.asarray(out, float)


def worker(inputs: list[str]) -> dict[str, Any]:
    """``{lib: {"installed": bool, "runs": [{"positions"|"error", "seconds"}, ...]}}``."""
    import importlib
    import importlib.util
    import traceback
    import warnings

    warnings.filterwarnings("ignore")
    funcs = {"m2stitch": _m2stitch, "ashlar": _ashlar, "multiview_stitcher": _multiview_stitcher}
    out: dict[str, Any] = {}
    for lib in LIBS:
        if importlib.util.find_spec(lib) is None:
            out[lib] = {"installed": False}
            continue
        try:
            t0 = time.perf_counter()
            importlib.import_module(MODULES[lib])
            entry: dict[str, Any] = {
                "installed": True,
                "import_seconds": round(time.perf_counter() - t0, 2),
                "runs": [],
            }
        except Exception as e:  # installed but unusable (e.g. ashlar without a JVM)
            out[lib] = {"installed": True, "import_error": f"{type(e).__name__}: {e}"}
            continue
        for path in inputs:
            d = np.load(path)
            t0 = time.perf_counter()
            try:
                pos = funcs[lib](d["tiles"], d["stage"], d["grid"])
                run: dict[str, Any] = {"positions": pos.tolist()}
            except Exception as e:
                last = traceback.format_exc().strip().splitlines()[-1]
                run = {"error": f"{type(e).__name__}: {e}"[:300] or last}
            run["seconds"] = round(time.perf_counter() - t0, 3)
            entry["runs"].append(run)
        out[lib] = entry
    return out


# --- driver: project venv -------------------------------------------------------------------------


def position_errors(pos: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-tile Chebyshev error after the unobservable global translation is taken off."""
    d = np.asarray(pos, float) - truth
    mode = Counter(map(tuple, np.rint(d).astype(int))).most_common(1)[0][0]
    agree = np.all(np.abs(d - mode) <= 1.0, axis=1)
    return np.abs(d - d[agree].mean(axis=0)).max(axis=1)


def prepare(seed: int, base: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tiles of one seed written to ``base``; our registration run on them."""
    from bench.eval_reef_register import TILE, make_folder, settings, true_positions
    from include.reef.acquisition import plan_mosaic
    from include.reef.register import register_plan
    from include.reef.stitch import StitchOptions, read_tile

    s = settings(seed)
    folder, grid, _ = make_folder(base / f"in{seed}", seed, s)
    plan = plan_mosaic(folder, tile_shape=(TILE, TILE))
    t0 = time.perf_counter()
    _, rep = register_plan(plan, StitchOptions(max_shift_px=MAX_SHIFT_PX))
    ours_s = time.perf_counter() - t0
    ref = rep["reference_channel"]
    placements = sorted(plan.channels[ref], key=lambda p: p.fov)
    keys = [f"{p.region}_{p.fov}" for p in placements]
    tp = true_positions(grid)
    truth = np.array([tp[k] for k in keys], float)
    stage = np.array([(p.y, p.x) for p in placements], float)
    # grid indices as a user knows them from the scan (stage / nominal step)
    idx = np.rint((stage - stage.min(axis=0)) / grid.step).astype(int)
    tiles = np.stack([read_tile(p.path) for p in placements])
    npz = base / f"tiles{seed}.npz"
    np.savez(npz, tiles=tiles, stage=stage, grid=idx)
    ours = np.array([rep["positions"][k] for k in keys], float)
    info = {"seed": seed, "overlap": s["overlap"], "npz": str(npz), "truth": truth}
    return info, {"stage": stage, "ours": (ours, ours_s)}


def summarise(errs: list[np.ndarray], seconds: float, failed: int, n_seeds: int) -> dict[str, Any]:
    if not errs:
        return {"failed_seeds": failed, "seeds": n_seeds}
    e = np.concatenate(errs)
    return {
        "max_err_px": round(float(e.max()), 2),
        "mean_err_px": round(float(e.mean()), 3),
        "within_1px": round(float((e <= 1.0).mean()), 4),
        "seeds_all_within_1px": int(sum(bool((x <= 1.0).all()) for x in errs)),
        "seconds": round(seconds, 2),
        "failed_seeds": failed,
        "seeds": n_seeds,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default=",".join(str(s) for s in range(401, 421)))
    ap.add_argument("--python", default="/tmp/venv-stitch/bin/python", help="the libraries' venv")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:  # inside the libraries' venv: inputs..., last argument the output file
        Path(a.worker[-1]).write_text(json.dumps(worker(a.worker[:-1])))
        return
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    seeds = [int(x) for x in a.seeds.split(",")]
    line: dict[str, Any] = {"name": "compare_reef_register", "seeds": seeds, "libraries": {}}
    with tempfile.TemporaryDirectory(prefix="cmpreg-") as tmp:
        base = Path(tmp)
        infos, ours = [], []
        for seed in seeds:
            info, res = prepare(seed, base)
            infos.append(info)
            ours.append(res)
        libs: dict[str, Any] = {}
        if not Path(a.python).exists():
            libs = {lib: {"installed": False, "note": f"no {a.python}"} for lib in LIBS}
        else:
            out = base / "libs.json"
            cmd = [a.python, str(Path(__file__).resolve()), "--worker"]
            proc = subprocess.run(
                [*cmd, *(i["npz"] for i in infos), str(out)], capture_output=True, text=True
            )
            if proc.returncode or not out.exists():
                err = proc.stderr.strip().splitlines()[-1:] or ["no output"]
                libs = {lib: {"installed": None, "worker_error": err[0]} for lib in LIBS}
            else:
                libs = json.loads(out.read_text())
    results = line["libraries"]
    for name in ("stage", "ours"):
        errs = [
            position_errors(r[name][0] if name == "ours" else r[name], i["truth"])
            for i, r in zip(infos, ours, strict=True)
        ]
        secs = sum(r["ours"][1] for r in ours) if name == "ours" else 0.0
        results[name] = summarise(errs, secs, 0, len(seeds))
    for lib in LIBS:
        entry = libs.get(lib, {})
        if not entry.get("installed"):
            results[lib] = {
                "installed": entry.get("installed", False),
                **{k: v for k, v in entry.items() if k != "installed"},
            }
            continue
        if "import_error" in entry:
            results[lib] = {"installed": True, "import_error": entry["import_error"]}
            continue
        errs, secs, failed, errors = [], 0.0, 0, {}
        for info, run in zip(infos, entry["runs"], strict=True):
            secs += run["seconds"]
            if "error" in run:
                failed += 1
                errors[info["seed"]] = run["error"]
                continue
            errs.append(position_errors(np.array(run["positions"]), info["truth"]))
        results[lib] = {"installed": True, **summarise(errs, secs, failed, len(seeds))}
        results[lib]["import_seconds"] = entry.get("import_seconds")
        if errors:
            results[lib]["errors"] = errors
    line["per_seed_max_err_px"] = {
        i["seed"]: {
            "overlap": i["overlap"],
            "ours": round(float(position_errors(r["ours"][0], i["truth"]).max()), 2),
            "stage": round(float(position_errors(r["stage"], i["truth"]).max()), 2),
        }
        for i, r in zip(infos, ours, strict=True)
    }
    for lib in LIBS:
        runs = libs.get(lib, {}).get("runs") or []
        for i, run in zip(infos, runs, strict=True):
            if "positions" in run:
                e = position_errors(np.array(run["positions"]), i["truth"])
                line["per_seed_max_err_px"][i["seed"]][lib] = round(float(e.max()), 2)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
