"""Tuning report of the lattice step of the plant counter (``include/photos/lattice.py``).

The lattice replaces the counter's count only on some photos; its thresholds (``REPEAT_MIN``,
``KEEP``, ``AGREE``) were chosen on half of the tune batches (``CHOOSE``) and are checked here on
the other half (``CHECK``) and on **scattered** layouts the generator never draws (plants at
random positions with a minimum spacing, same plant drawing, floors, soil and photometry): there
the lattice must never take over. All photos are tune seeds (cached like
``bench/tune_photo_detect.py``); the evaluation set stays unseen.

Prints one JSON line: for each set, the MAPE of the counter without the lattice step and with it,
photos the step changed for better / worse, and the scattered photos' highest repeat. ``--grid``
also ranks threshold choices on ``CHOOSE`` with their ``CHECK`` and scattered figures.

``python bench/tune_photo_lattice.py [--photos 48] [--scattered 80] [--jobs 2] [--grid]``
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if TYPE_CHECKING:
    from include.photos.lattice import Lattice

# (name, first tune seed, wide ranges)
CHOOSE = (
    ("t_n", 1000, False),
    ("t_w", 1000, True),
    ("f_n", 2000, False),
    ("f_w", 500_000, True),
    ("g_n", 3000, False),
)
CHECK = (
    ("g_w", 600_000, True),
    ("h_w", 700_000, True),
    ("i_w", 800_000, True),
    ("k_n", 4000, False),
    ("k_w", 900_000, True),
)
SCATTER_SEED0 = 50_000


@dataclass
class Row:
    batch: str
    truth: int
    count: int  # the counter without the lattice step
    occupied: int = 0
    repeat: float = 0.0  # min(repeat_a, repeat_b)
    agree: bool = False
    lattice: Lattice | None = None


def scattered_jpeg(seed: int, width: int = 4000, height: int = 3000) -> tuple[bytes, int]:
    """A box of plants at random positions (minimum spacing), drawn like the generator's."""
    from include.photos import synth as s

    r_ = s.WIDE
    rng = np.random.default_rng(seed)
    kind = s.KINDS[int(rng.integers(0, len(s.KINDS)))]
    container = list(s.CONTAINER_COLOURS)[int(rng.integers(0, len(s.CONTAINER_COLOURS)))]
    floor = s.FLOORS[int(rng.integers(0, len(s.FLOORS)))]
    canvas = s._floor(rng, height, width, floor)
    n_target = int(rng.integers(r_.count[0], r_.count[1] + 1))
    frac = rng.uniform(0.65, 0.9)
    x0, y0 = int(width * (1 - frac) / 2), int(height * (1 - frac) / 2)
    x1, y1 = width - x0, height - y0
    colour = np.asarray(s.CONTAINER_COLOURS[container], np.float32)
    canvas[y0:y1, x0:x1] = s._texture(rng, (y1 - y0, x1 - x0), colour, 0.03, 20)
    rim = max(6, int(0.025 * min(x1 - x0, y1 - y0)))
    inner = (x0 + rim, y0 + rim, x1 - rim, y1 - rim)
    canvas[inner[1] : inner[3], inner[0] : inner[2]] = s._soil(
        rng, inner[3] - inner[1], inner[2] - inner[0]
    )
    s._confounders_on_soil(canvas, rng, inner, float(rng.uniform(0, 1.5)))
    pitch = math.sqrt((x1 - x0) * (y1 - y0) / n_target)
    if kind == "seedling":
        r0 = min(float(rng.uniform(*r_.seedling_r)), 0.55 * pitch)
    else:
        r0 = pitch * float(rng.uniform(*r_.scale))
    dmin = max(1.76 * r0, pitch * rng.uniform(0.5, 0.8))
    pts: list[tuple[float, float]] = []
    for _ in range(200 * n_target):
        if len(pts) >= n_target:
            break
        cx = rng.uniform(inner[0] + r0, inner[2] - r0)
        cy = rng.uniform(inner[1] + r0, inner[3] - r0)
        if all((cx - px) ** 2 + (cy - py) ** 2 >= dmin * dmin for px, py in pts):
            pts.append((cx, cy))
    base = s._plant_colour(rng, kind)
    for cx, cy in pts:
        col = np.clip(base * rng.uniform(0.9, 1.1, 3).astype(np.float32), 0, 255)
        s.draw_plant(canvas, rng, kind, cx, cy, r0 * rng.uniform(0.8, 1.2), col)
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    sigma = float(rng.uniform(0, 1.2))
    if sigma > 0.3:
        img = img.filter(ImageFilter.GaussianBlur(sigma))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue(), len(pts)


def _row(job: tuple[str, int, bool]) -> Row:
    from bench.tune_photo_detect import tune_photo
    from include.photos.lattice import plant_lattice
    from include.photos.plants import count_plants

    batch, seed, wide = job
    if batch == "scattered":
        data, truth = scattered_jpeg(seed)
    else:
        data, t = tune_photo(seed, wide=wide)
        truth = t["plants"]
    res, rgb = count_plants(data, lattice=False)
    row = Row(batch, truth, res.count)
    lat, agree = (None, False)
    if res.mask is not None and res.mask.any():
        lat, agree = plant_lattice(rgb, res.mask)
    if lat is not None:
        row.occupied, row.repeat = lat.occupied, min(lat.repeat_a, lat.repeat_b)
        row.agree, row.lattice = agree, lat
    return row


def _final(row: Row, repeat_min: float, keep: tuple[float, float], agree: bool) -> int:
    from include.photos.lattice import may_replace

    if row.lattice is None or not may_replace(
        row.lattice, row.count, repeat_min=repeat_min, keep=keep
    ):
        return row.count
    return row.occupied if row.agree or not agree else row.count


def _mape(rows: list[Row], counts: list[int]) -> float:
    """Mean over batches of each batch's MAPE."""
    per: dict[str, list[float]] = {}
    for r, c in zip(rows, counts, strict=True):
        per.setdefault(r.batch, []).append(abs(c - r.truth) / max(r.truth, 1))
    return round(sum(sum(v) / len(v) for v in per.values()) / len(per), 4)


def _report(rows: list[Row], repeat_min: float, keep: tuple[float, float], agree: bool) -> dict:
    final = [_final(r, repeat_min, keep, agree) for r in rows]
    better = sum(
        abs(f - r.truth) < abs(r.count - r.truth) for r, f in zip(rows, final, strict=True)
    )
    worse = sum(abs(f - r.truth) > abs(r.count - r.truth) for r, f in zip(rows, final, strict=True))
    return {
        "photos": len(rows),
        "mape_counter": _mape(rows, [r.count for r in rows]),
        "mape_with_lattice": _mape(rows, final),
        "better": better,
        "worse": worse,
    }


def main(argv: list[str] | None = None) -> None:
    from include.photos.lattice import KEEP, REPEAT_MIN

    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=48)
    ap.add_argument("--scattered", type=int, default=80)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--grid", action="store_true")
    args = ap.parse_args(argv)
    jobs = [(b, s0 + i, w) for b, s0, w in CHOOSE + CHECK for i in range(args.photos)]
    jobs += [("scattered", SCATTER_SEED0 + i, True) for i in range(args.scattered)]
    with ProcessPoolExecutor(args.jobs) as ex:
        rows = list(ex.map(_row, jobs, chunksize=4))
    sets = {
        "choose": [r for r in rows if r.batch in {b for b, _, _ in CHOOSE}],
        "check": [r for r in rows if r.batch in {b for b, _, _ in CHECK}],
        "scattered": [r for r in rows if r.batch == "scattered"],
    }
    out = {k: _report(v, REPEAT_MIN, KEEP, True) for k, v in sets.items()}
    out["scattered"]["max_repeat"] = round(max((r.repeat for r in sets["scattered"]), default=0), 3)
    out["scattered"]["texture_agrees"] = sum(r.agree for r in sets["scattered"])
    out["thresholds"] = {"repeat_min": REPEAT_MIN, "keep": KEEP}
    print(json.dumps(out))
    if args.grid:
        grid = []
        for repeat_min in (0.08, 0.1, 0.12, 0.15, 0.2, 0.25):
            for keep in ((0.95, 1.05), (0.9, 1.1), (0.85, 1.15), (0.95, 1.15), (0.8, 1.25)):
                for agree in (False, True):
                    grid.append(
                        {
                            "repeat_min": repeat_min,
                            "keep": keep,
                            "texture": agree,
                            **{
                                k: _report(v, repeat_min, keep, agree)["mape_with_lattice"]
                                for k, v in sets.items()
                            },
                        }
                    )
        grid.sort(key=lambda g: g["choose"])
        for g in grid[:12]:
            print(json.dumps(g))


if __name__ == "__main__":
    main()
