"""Tuning report of the live-plant counter: per-condition errors on the **tune** set only.

The photos are :mod:`include.photos.synth` trays drawn with the narrower ``TUNE`` ranges (or,
with ``--wide``, the documented wide ``WIDE`` ranges the evaluation set also uses: seedlings
down to radius 11 px, blur up to sigma 1.6, stronger white balance, JPEG 80) from seeds in
``[TUNE_SEED0, TUNE_SEED_END)`` (``--wide`` starts at ``WIDE_TUNE_SEED0``); a seed of the evaluation set (or any seed outside the
tune range) is refused, so the evaluation set stays unseen (``bench_photo_detect`` reports on it).
Photos are cached as JPEG + truth under ``$PHOTO_TUNE_CACHE`` (default
``~/.cache/imaging/photo_tune``), keyed by seed, size and the generator's source, so a tuning
loop pays for the generator once.

Prints the overall MAPE / median APE / bias of ``count_plants`` (no calibration), then per
condition value (kind, container, floor, layout, touching, ...) the photos, MAPE and bias, worst
first, then the worst photos. ``--json`` prints one JSON line instead.

``python bench/tune_photo_detect.py [--wide] [--photos 48] [--seed0 1000] [--jobs 2] [--json]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _cache_dir(wide: bool = False) -> Path:
    from dataclasses import astuple

    from include.photos.synth import TUNE, WIDE

    base = os.environ.get("PHOTO_TUNE_CACHE") or str(Path.home() / ".cache/imaging/photo_tune")
    h = hashlib.sha256()
    src = (ROOT / "include/photos/synth.py").read_bytes()
    h.update(src.split(b"\nWIDE = Ranges()")[0])  # the drawing code, not the seed constants
    h.update(src.split(b"\nRETIRED_EVAL_SEED0S")[-1])
    h.update(repr(astuple(WIDE if wide else TUNE)).encode())
    return Path(base) / h.hexdigest()[:12]


def tune_photo(
    seed: int, width: int = 4000, height: int = 3000, wide: bool = False
) -> tuple[bytes, dict]:
    """The tune-set photo of ``seed`` (JPEG bytes, truth as a dict), cached; ``wide``: WIDE ranges."""
    from dataclasses import asdict

    from include.photos.synth import TUNE, WIDE, is_tune_seed, synth_jpeg

    if not is_tune_seed(seed):
        raise SystemExit(f"seed {seed} is not a tune seed: the evaluation set stays unseen")
    d = _cache_dir(wide)
    jpg, meta = d / f"{seed}_{width}x{height}.jpg", d / f"{seed}_{width}x{height}.json"
    if jpg.exists() and meta.exists():
        return jpg.read_bytes(), json.loads(meta.read_text())
    data, truth = synth_jpeg(seed, WIDE if wide else TUNE, width=width, height=height)
    d.mkdir(parents=True, exist_ok=True)
    tmp = jpg.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(jpg)
    meta.write_text(json.dumps(asdict(truth)))
    return data, asdict(truth)


def _one(seed: int, wide: bool = False) -> dict:
    from include.photos.plants import count_plants
    from include.photos.synth import SynthTruth

    data, t = tune_photo(seed, wide=wide)
    truth = SynthTruth(**t)
    t0, c0 = time.perf_counter(), time.process_time()
    res, _ = count_plants(data)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seed": seed,
        "truth": truth.plants,
        "count": res.count,
        "ape": abs(res.count - truth.plants) / truth.plants,
        "err": (res.count - truth.plants) / truth.plants,
        "s": dt,
        "cpu_s": cpu,
        "conditions": truth.conditions(),
    }


def main(argv: list[str] | None = None) -> None:
    from include.photos.synth import TUNE_SEED0, WIDE_TUNE_SEED0, is_tune_seed

    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=48)
    ap.add_argument("--seed0", type=int, default=None)
    ap.add_argument("--wide", action="store_true", help="the wide (evaluation) ranges, tune seeds")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.seed0 is None:
        args.seed0 = WIDE_TUNE_SEED0 if args.wide else TUNE_SEED0
    seeds = list(range(args.seed0, args.seed0 + args.photos))
    bad = [s for s in seeds if not is_tune_seed(s)]
    if bad:
        raise SystemExit(f"refused: seeds {bad[0]}..{bad[-1]} are not tune seeds")
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as ex:
            rows = list(ex.map(_one, seeds, [args.wide] * len(seeds)))
    else:
        rows = [_one(s, args.wide) for s in seeds]
    apes = [r["ape"] for r in rows]
    out = {
        "set": "TUNE-WIDE" if args.wide else "TUNE",
        "photos": len(rows),
        "mape": round(sum(apes) / len(apes), 4),
        "median_ape": round(statistics.median(apes), 4),
        "bias": round(sum(r["err"] for r in rows) / len(rows), 4),
        "s_median": round(statistics.median(r["s"] for r in rows), 3),
        "s_max": round(max(r["s"] for r in rows), 3),
        "cpu_s_median": round(statistics.median(r["cpu_s"] for r in rows), 3),
        "cpu_s_max": round(max(r["cpu_s"] for r in rows), 3),
        "within_10pct": sum(a <= 0.10 for a in apes),
    }
    groups: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        for k, v in r["conditions"].items():
            groups.setdefault(k, {}).setdefault(v, []).append(r)
    table = []
    for k, vals in groups.items():
        for v, rs in vals.items():
            table.append(
                {
                    "condition": f"{k}={v}",
                    "n": len(rs),
                    "mape": round(sum(r["ape"] for r in rs) / len(rs), 3),
                    "bias": round(sum(r["err"] for r in rs) / len(rs), 3),
                }
            )
    table.sort(key=lambda t: -t["mape"])
    worst = sorted(rows, key=lambda r: -r["ape"])[:10]
    if args.json:
        print(json.dumps({**out, "by_condition": table}))
        return
    print(json.dumps(out))
    print(f"{'condition':32s} {'n':>3s} {'mape':>7s} {'bias':>7s}")
    for t in table:
        print(f"{t['condition']:32s} {t['n']:3d} {t['mape']:7.3f} {t['bias']:+7.3f}")
    print("worst photos:")
    for r in worst:
        c = r["conditions"]
        print(
            f"  seed {r['seed']}: {r['count']} for {r['truth']} ({r['err']:+.0%}) "
            f"{r['cpu_s']:.2f}s cpu {c['kind']}/{c['container']}/{c['floor']}/{c['layout']}"
            f" touching={c['touching']} blur={c['blur']} wb={c['white_balance']} q={c['jpeg']}"
        )


if __name__ == "__main__":
    main()
