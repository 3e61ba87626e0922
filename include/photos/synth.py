"""Realistic synthetic nursery-tray photos with known live-plant counts (tuning and evaluation).

Independent of the detector: every scene is drawn from a seeded RNG and a :class:`Ranges` of the
conditions (two range sets: :data:`TUNE` for tuning, :data:`EVAL` — other seeds, wider ranges —
for reporting). A scene is a top view of one or two containers on a floor:

* containers: plug trays (a plastic grid of soil cells) or open boxes (soil, plants jittered),
  in black, grey, brown or **green** plastic, or wood;
* floor: concrete, gravel, black woven fabric or **dark-green** ground cover;
* plants (each counts 1): seedlings (two cotyledons ± true leaves), lettuce-like rosettes,
  bluish low-saturation succulents, herbs whose leaves hang on thin stalks; hues from yellow- to
  blue-green; irregular leaves with shading, veins and texture; neighbours touch or overlap; a
  cell may hold two seedlings;
* confounders (count 0): dead plants (brown, straw, grey), empty cells, plant labels (white,
  pink, yellow), moss film and perlite on the soil;
* photometry: white-balance gains, vignetting, soft shadows, Gaussian blur, sensor noise, JPEG.
"""

from __future__ import annotations

import colorsys
import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter


@dataclass(frozen=True)
class Ranges:
    """Condition ranges of one generated set."""

    count: tuple[int, int] = (20, 300)  # plant positions per photo (before empty/dead)
    wb_gain: float = 0.10  # per-channel white-balance gain in 1 ± wb_gain
    vignette: tuple[float, float] = (0.0, 0.35)  # corner darkening
    shadow: tuple[float, float] = (0.0, 0.35)  # soft-shadow darkening
    blur: tuple[float, float] = (0.0, 1.6)  # Gaussian sigma, full-resolution pixels
    jpeg_quality: tuple[int, int] = (80, 95)
    empty: tuple[float, float] = (0.0, 0.2)
    dead: tuple[float, float] = (0.0, 0.1)
    double: tuple[float, float] = (0.0, 0.12)  # seedling cells holding two seedlings
    scale: tuple[float, float] = (0.28, 0.55)  # plant radius / position pitch
    seedling_r: tuple[float, float] = (11.0, 34.0)  # seedling radius (px at 12 MP)


TUNE = Ranges(
    count=(25, 260),
    wb_gain=0.07,
    vignette=(0.0, 0.25),
    shadow=(0.0, 0.25),
    blur=(0.0, 1.2),
    jpeg_quality=(85, 95),
    empty=(0.0, 0.15),
    dead=(0.0, 0.08),
    double=(0.0, 0.1),
    scale=(0.3, 0.5),
    seedling_r=(13.0, 30.0),
)
WIDE = Ranges()  # wider: the full ranges (documented generator parameters)
EVAL = (
    WIDE  # the evaluation set uses the wide ranges; tuning may too (``tune --wide``), on tune seeds
)
# Seeds. Tuning draws only from [TUNE_SEED0, TUNE_SEED_END); the evaluation seeds start at a fresh
# random EVAL_SEED0 (drawn on 2026-12-07 with ``secrets.randbelow``, never looked at while
# tuning). Earlier evaluation seeds were looked at (9_000_000.. per photo during development,
# 64_578_844.., 75_472_684.., 89_225_946.., 94_270_384.., 125_810_074.., 941_230_599..,
# 387_780_385.., 251_784_877.., 57_326_453.., 45_363_558.. and 112_473_893.. in aggregate):
# retired, used by neither set.
TUNE_SEED0 = 1_000
TUNE_SEED_END = 1_000_000
WIDE_TUNE_SEED0 = 500_000  # default start of the wide tune batch (still tune seeds)
EVAL_SEED0 = 248_149_699
EVAL_SEED_SPAN = 1_000_000
RETIRED_EVAL_SEED0S = (
    9_000_000,
    64_578_844,
    75_472_684,
    89_225_946,
    94_270_384,
    125_810_074,
    941_230_599,
    387_780_385,
    251_784_877,
    57_326_453,
    45_363_558,
    112_473_893,
)


def is_tune_seed(seed: int) -> bool:
    return TUNE_SEED0 <= seed < TUNE_SEED_END


def is_eval_seed(seed: int) -> bool:
    return EVAL_SEED0 <= seed < EVAL_SEED0 + EVAL_SEED_SPAN


KINDS = ("seedling", "rosette", "succulent", "herb")
CONTAINER_COLOURS = {
    "black": (28, 28, 30),
    "grey": (105, 108, 110),
    "brown": (92, 62, 40),
    "green": (38, 118, 62),
    "wood": (160, 118, 72),
}
FLOORS = ("concrete", "gravel", "woven", "green_cover")


@dataclass
class SynthTruth:
    """The photo's live-plant count and every condition it was drawn with."""

    plants: int
    kind: str
    container: str
    floor: str
    plant_radius_px: float  # median radius of the live plants (full resolution)
    seed: int
    layout: str = "plug"  # plug tray (cells) or open box (plants jittered)
    boxes: int = 1
    fill: float = 0.0  # plant radius / position pitch (>= ~0.45: neighbours touch)
    empty: float = 0.0  # share of positions left empty
    dead: float = 0.0  # share of positions with a dead plant
    double: float = 0.0  # share of seedling cells with two seedlings
    labels: int = 0
    moss: float = 0.0  # moss film / perlite density
    wb_gain: float = 0.0  # largest white-balance deviation |gain - 1|
    vignette: float = 0.0
    shadow: float = 0.0
    blur: float = 0.0  # Gaussian sigma, full resolution
    jpeg_quality: int = 0

    def conditions(self) -> dict[str, str]:
        """Categorical conditions (continuous ones bucketed) for per-condition error tables."""
        return {
            "kind": self.kind,
            "container": self.container,
            "floor": self.floor,
            "layout": self.layout,
            "boxes": str(self.boxes),
            "touching": "yes" if self.fill >= 0.45 or self.double > 0.05 else "no",
            "plants": "<60" if self.plants < 60 else ("60-150" if self.plants < 150 else ">=150"),
            "dead": "yes" if self.dead >= 0.04 else "no",
            "blur": "<0.8" if self.blur < 0.8 else ("0.8-1.2" if self.blur < 1.2 else "1.2+"),
            "jpeg": "<85" if self.jpeg_quality < 85 else "85+",
            "shadow_vignette": "strong" if max(self.shadow, self.vignette) >= 0.2 else "weak",
            "white_balance": (
                "neutral"
                if self.wb_gain < 0.05
                else ("shifted" if self.wb_gain < 0.07 else "strong")
            ),
        }


# --------------------------------------------------------------------------- drawing helpers
def _window(shape: tuple[int, int], cx: float, cy: float, r: float):
    h, w = shape
    x0, x1 = max(0, int(cx - r - 2)), min(w, int(cx + r + 3))
    y0, y1 = max(0, int(cy - r - 2)), min(h, int(cy + r + 3))
    if x0 >= x1 or y0 >= y1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    return (slice(y0, y1), slice(x0, x1)), xx - cx, yy - cy


def _leaf(
    canvas: np.ndarray,
    rng: np.random.Generator,
    cx: float,
    cy: float,
    length: float,
    width: float,
    angle: float,
    colour: np.ndarray,
    *,
    vein: bool = True,
    pointed: float = 0.0,
) -> None:
    """An irregular leaf: a rotated ellipse with a wavy edge (optionally pointed), shading from
    base to tip, a darker rim and midrib, and texture. ``(cx, cy)`` is the leaf centre."""
    a, b = length / 2.0, width / 2.0
    win = _window(canvas.shape[:2], cx, cy, max(a, b) * 1.15)
    if win is None or a < 0.6 or b < 0.4:
        return
    sl, dx, dy = win
    ca, sa = math.cos(angle), math.sin(angle)
    u = (dx * ca + dy * sa) / a
    v = (-dx * sa + dy * ca) / b
    theta = np.arctan2(v, u)
    k = int(rng.integers(3, 9))
    wobble = (
        1.0
        + 0.09 * np.sin(k * theta + rng.uniform(0, 6.3))
        + 0.05 * np.sin((k + 3) * theta + rng.uniform(0, 6.3))
    )
    if pointed:
        v = v * (1.0 + pointed * np.clip(u, 0, None))
    rr = np.sqrt(u * u + v * v) / wobble
    m = rr <= 1.0
    if not m.any():
        return
    shade = 0.82 + 0.22 * (u + 1) / 2  # brighter towards the tip
    shade = shade * (1.0 - 0.22 * np.clip(rr - 0.75, 0, None) / 0.25)  # rim
    if vein:
        shade = shade * np.where(np.abs(v) < 0.07 * (1.2 - u), 0.88, 1.0)
    tex = 1.0 + rng.normal(0.0, 0.035, size=rr.shape).astype(np.float32)
    px = colour[None, None, :] * (shade * tex)[..., None]
    region = canvas[sl]
    region[m] = px[m]


def _disc(canvas: np.ndarray, cx: float, cy: float, r: float, colour, noise: float = 0.0, rng=None):
    win = _window(canvas.shape[:2], cx, cy, r)
    if win is None:
        return
    sl, dx, dy = win
    m = dx * dx + dy * dy <= r * r
    px = np.broadcast_to(np.asarray(colour, np.float32), (*m.shape, 3)).copy()
    if noise and rng is not None:
        px *= 1.0 + rng.normal(0, noise, size=m.shape).astype(np.float32)[..., None]
    canvas[sl][m] = px[m]


def _stalk(canvas: np.ndarray, x0: float, y0: float, x1: float, y1: float, width: float, colour):
    n = int(max(2, math.hypot(x1 - x0, y1 - y0)))
    for t in np.linspace(0, 1, n):
        _disc(canvas, x0 + t * (x1 - x0), y0 + t * (y1 - y0), width / 2, colour)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h / 360.0, s, v), np.float32) * 255.0


def _plant_colour(rng: np.random.Generator, kind: str) -> np.ndarray:
    if kind == "succulent":
        return _hsv(rng.uniform(150, 195), rng.uniform(0.16, 0.34), rng.uniform(0.55, 0.8))
    return _hsv(rng.uniform(75, 145), rng.uniform(0.4, 0.8), rng.uniform(0.45, 0.85))


def _dead_colour(rng: np.random.Generator) -> np.ndarray:
    c = rng.integers(0, 3)
    if c == 0:  # brown
        return _hsv(rng.uniform(18, 35), rng.uniform(0.45, 0.7), rng.uniform(0.3, 0.55))
    if c == 1:  # straw
        return _hsv(rng.uniform(38, 52), rng.uniform(0.3, 0.55), rng.uniform(0.6, 0.85))
    return _hsv(rng.uniform(0, 360), rng.uniform(0.0, 0.08), rng.uniform(0.35, 0.65))  # grey


def draw_plant(
    canvas: np.ndarray,
    rng: np.random.Generator,
    kind: str,
    cx: float,
    cy: float,
    r: float,
    colour: np.ndarray,
) -> None:
    """One plant of ``kind`` with outer radius ~``r`` centred at (cx, cy)."""

    def jitter(c: np.ndarray, amount: float = 0.08) -> np.ndarray:
        return np.clip(c * rng.uniform(1 - amount, 1 + amount, 3).astype(np.float32), 0, 255)

    if kind == "seedling":
        ang = rng.uniform(0, math.pi)
        for s in (0, 1):
            a = ang + s * math.pi + rng.normal(0, 0.15)
            ln = r * rng.uniform(0.85, 1.05)
            _leaf(
                canvas,
                rng,
                cx + math.cos(a) * ln * 0.5,
                cy + math.sin(a) * ln * 0.5,
                ln,
                ln * rng.uniform(0.4, 0.6),
                a,
                jitter(colour),
                vein=False,
            )
        if rng.random() < 0.5:  # true leaves
            for s in (0, 1):
                a = ang + math.pi / 2 + s * math.pi + rng.normal(0, 0.2)
                ln = r * rng.uniform(0.45, 0.7)
                _leaf(
                    canvas,
                    rng,
                    cx + math.cos(a) * ln * 0.5,
                    cy + math.sin(a) * ln * 0.5,
                    ln,
                    ln * 0.65,
                    a,
                    jitter(colour * 0.92),
                )
        return
    if kind == "herb":
        n = int(rng.integers(4, 8))
        start = rng.uniform(0, 2 * math.pi)
        stalk_w = rng.uniform(1.0, 3.0)
        stalk_c = jitter(colour * 0.9)
        for i in range(n):
            a = start + 2 * math.pi * i / n + rng.normal(0, 0.2)
            d = r * rng.uniform(0.55, 0.75)
            ln = r * rng.uniform(0.38, 0.5)
            lx, ly = cx + math.cos(a) * d, cy + math.sin(a) * d
            _stalk(canvas, cx, cy, lx, ly, stalk_w, stalk_c)
            _leaf(canvas, rng, lx, ly, ln, ln * rng.uniform(0.6, 0.85), a, jitter(colour))
        _disc(canvas, cx, cy, max(1.0, 0.12 * r), jitter(colour * 0.85))
        return
    if kind == "succulent":
        n = int(rng.integers(9, 17))
        for layer, (d0, l0) in enumerate(((0.5, 0.95), (0.28, 0.6), (0.1, 0.3))):
            m = max(3, n - 4 * layer)
            start = rng.uniform(0, 2 * math.pi)
            for i in range(m):
                a = start + 2 * math.pi * i / m
                ln = r * l0 * rng.uniform(0.85, 1.05)
                _leaf(
                    canvas,
                    rng,
                    cx + math.cos(a) * r * d0,
                    cy + math.sin(a) * r * d0,
                    ln,
                    ln * rng.uniform(0.38, 0.5),
                    a,
                    jitter(colour * (0.9 + 0.08 * layer), 0.05),
                    vein=False,
                    pointed=0.6,
                )
        return
    # rosette (lettuce-like): overlapping wide leaves, inner ones lighter
    n = int(rng.integers(6, 12))
    start = rng.uniform(0, 2 * math.pi)
    for layer, (d0, l0) in enumerate(((0.48, 0.95), (0.25, 0.6))):
        m = n if layer == 0 else max(3, n // 2)
        for i in range(m):
            a = start + 2 * math.pi * i / m + rng.normal(0, 0.25) + layer * 0.4
            ln = r * l0 * rng.uniform(0.8, 1.05)
            _leaf(
                canvas,
                rng,
                cx + math.cos(a) * r * d0 * rng.uniform(0.85, 1.1),
                cy + math.sin(a) * r * d0 * rng.uniform(0.85, 1.1),
                ln,
                ln * rng.uniform(0.55, 0.8),
                a,
                jitter(colour * (1.0 + 0.1 * layer)),
            )


def draw_dead(canvas, rng, kind: str, cx, cy, r) -> None:
    """A dead plant: the same shapes, shrivelled, in brown/straw/grey."""
    col = _dead_colour(rng)
    draw_plant(canvas, rng, kind, cx, cy, r * rng.uniform(0.6, 0.95), col)


def _texture(rng, shape, base, amount, grain: int) -> np.ndarray:
    h, w = shape
    small = rng.normal(0, 1, size=(max(2, h // grain), max(2, w // grain), 1)).astype(np.float32)
    big = np.asarray(Image.fromarray(small[..., 0]).resize((w, h), Image.BILINEAR), np.float32)[
        ..., None
    ]
    fine = rng.normal(0, 0.5, size=(h, w, 1)).astype(np.float32)
    return np.asarray(base, np.float32) * (1.0 + amount * (big + fine))


def _floor(rng, h, w, kind) -> np.ndarray:
    if kind == "concrete":
        g = rng.uniform(120, 175)
        return _texture(rng, (h, w), (g, g * 0.99, g * 0.96), 0.07, 12)
    if kind == "gravel":
        img = _texture(rng, (h, w), (125, 118, 105), 0.05, 30)
        n = int(h * w / 700)
        for _ in range(n):
            c = rng.uniform(70, 190)
            tint = rng.uniform(0.9, 1.05, 3)
            _disc(img, rng.uniform(0, w), rng.uniform(0, h), rng.uniform(6, 22), c * tint)
        return img
    if kind == "woven":
        img = _texture(rng, (h, w), (32, 33, 35), 0.08, 6)
        yy = np.arange(h)[:, None]
        xx = np.arange(w)[None, :]
        p = int(rng.integers(6, 12))
        img *= (1.0 + 0.18 * (((yy // p) + (xx // p)) % 2 - 0.5))[..., None]
        return img
    base = _hsv(rng.uniform(95, 150), rng.uniform(0.35, 0.6), rng.uniform(0.18, 0.3))
    return _texture(rng, (h, w), base, 0.12, 5)  # dark-green ground cover


def _soil(rng, h, w) -> np.ndarray:
    base = _hsv(rng.uniform(18, 35), rng.uniform(0.35, 0.6), rng.uniform(0.16, 0.32))
    return _texture(rng, (h, w), base, 0.12, 4)


def _confounders_on_soil(canvas, rng, box, density: float) -> None:
    """Moss film (mottled dark olive patches) and perlite (white specks) on the soil."""
    x0, y0, x1, y1 = box
    area = (x1 - x0) * (y1 - y0)
    for _ in range(int(density * area / 40_000)):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        c = _hsv(rng.uniform(60, 95), rng.uniform(0.3, 0.55), rng.uniform(0.18, 0.3))
        for _k in range(int(rng.integers(5, 20))):
            _disc(
                canvas,
                cx + rng.normal(0, 25),
                cy + rng.normal(0, 25),
                rng.uniform(1.5, 5),
                c * rng.uniform(0.85, 1.15),
            )
    for _ in range(int(density * area / 2_500)):
        _disc(
            canvas,
            rng.uniform(x0, x1),
            rng.uniform(y0, y1),
            rng.uniform(2, 6),
            np.array([235, 235, 228]) * rng.uniform(0.85, 1.05),
        )


def _label(canvas, rng, cx, cy, size) -> None:
    col = [(240, 240, 235), (240, 160, 190), (240, 220, 60)][int(rng.integers(0, 3))]
    w, h = size * rng.uniform(0.25, 0.4), size * rng.uniform(0.7, 1.1)
    a = rng.uniform(0, math.pi)
    win = _window(canvas.shape[:2], cx, cy, max(w, h))
    if win is None:
        return
    sl, dx, dy = win
    u = dx * math.cos(a) + dy * math.sin(a)
    v = -dx * math.sin(a) + dy * math.cos(a)
    m = (np.abs(u) <= h / 2) & (np.abs(v) <= w / 2)
    canvas[sl][m] = np.asarray(col, np.float32) * rng.uniform(0.85, 1.0)


# --------------------------------------------------------------------------- one scene
def synth_tray(
    seed: int, ranges: Ranges = TUNE, width: int = 4000, height: int = 3000
) -> tuple[Image.Image, SynthTruth, int]:
    """A photo, its truth and the JPEG quality it should be saved with."""
    rng = np.random.default_rng(seed)
    kind = KINDS[int(rng.integers(0, len(KINDS)))]
    container = list(CONTAINER_COLOURS)[int(rng.integers(0, len(CONTAINER_COLOURS)))]
    floor = FLOORS[int(rng.integers(0, len(FLOORS)))]
    plug = bool(rng.random() < 0.6)
    canvas = _floor(rng, height, width, floor)
    n_target = int(rng.integers(ranges.count[0], ranges.count[1] + 1))
    n_boxes = 1 if rng.random() < 0.7 else 2
    frac = rng.uniform(0.65, 0.9)
    # container boxes side by side, each with its grid
    boxes = []
    tw, th = width * frac, height * frac
    gap = 0.03 * width
    bw = (tw - gap * (n_boxes - 1)) / n_boxes
    ox = float(np.clip((width - tw) / 2 + rng.normal(0, 0.03 * width), 0, width - tw))
    oy = (height - th) / 2
    for b in range(n_boxes):
        boxes.append((ox + b * (bw + gap), oy, ox + b * (bw + gap) + bw, oy + th))
    per_box = max(4, n_target // n_boxes)
    aspect = bw / th
    rows = max(2, int(round(math.sqrt(per_box / aspect))))
    cols = max(2, int(round(per_box / rows)))
    pitch = min(bw / cols, th / rows)
    if kind == "seedling":
        r0 = float(rng.uniform(*ranges.seedling_r))
        r0 = min(r0, 0.55 * pitch)
    else:
        r0 = pitch * float(rng.uniform(*ranges.scale))
    cj = 0.05 if container in ("grey", "black") else 0.15
    ccol = np.asarray(CONTAINER_COLOURS[container], np.float32) * rng.uniform(1 - cj, 1 + cj, 3)
    p_empty = rng.uniform(*ranges.empty)
    p_dead = rng.uniform(*ranges.dead)
    p_double = rng.uniform(*ranges.double) if kind == "seedling" else 0.0
    base_col = _plant_colour(rng, kind)
    plants = 0
    labels = 0
    moss_max = 0.0
    radii: list[float] = []
    jobs: list[tuple[str, float, float, float]] = []
    for x0, y0, x1, y1 in boxes:
        xi0, yi0, xi1, yi1 = int(x0), int(y0), int(x1), int(y1)
        gx0 = x0 + (x1 - x0 - cols * pitch) / 2
        gy0 = y0 + (y1 - y0 - rows * pitch) / 2
        if container == "wood":
            wood = _texture(rng, (yi1 - yi0, xi1 - xi0), ccol, 0.06, 3)
            stripes = 1.0 + 0.08 * np.sin(np.arange(xi1 - xi0) / rng.uniform(4, 9))[None, :, None]
            canvas[yi0:yi1, xi0:xi1] = wood * stripes
        else:
            canvas[yi0:yi1, xi0:xi1] = _texture(rng, (yi1 - yi0, xi1 - xi0), ccol, 0.03, 20)
        rim = max(6, int(0.025 * min(x1 - x0, y1 - y0)))
        if plug:
            wall = max(3, int(pitch * rng.uniform(0.06, 0.14)))
            for r_ in range(rows):
                for c_ in range(cols):
                    cx0 = int(gx0 + c_ * pitch + wall)
                    cy0 = int(gy0 + r_ * pitch + wall)
                    cx1 = int(gx0 + (c_ + 1) * pitch - wall)
                    cy1 = int(gy0 + (r_ + 1) * pitch - wall)
                    canvas[cy0:cy1, cx0:cx1] = _soil(rng, cy1 - cy0, cx1 - cx0)
        else:
            canvas[yi0 + rim : yi1 - rim, xi0 + rim : xi1 - rim] = _soil(
                rng, yi1 - yi0 - 2 * rim, xi1 - xi0 - 2 * rim
            )
        moss = float(rng.uniform(0, 1.5))
        _confounders_on_soil(canvas, rng, (xi0 + rim, yi0 + rim, xi1 - rim, yi1 - rim), moss)
        moss_max = max(moss_max, moss)
        for r_ in range(rows):
            for c_ in range(cols):
                cx = gx0 + (c_ + 0.5) * pitch
                cy = gy0 + (r_ + 0.5) * pitch
                if not plug:
                    cx += rng.uniform(-0.22, 0.22) * pitch
                    cy += rng.uniform(-0.22, 0.22) * pitch
                u = rng.random()
                if u < p_empty:
                    continue
                r = r0 * rng.uniform(0.8, 1.2)
                if u < p_empty + p_dead:
                    jobs.append(("dead", cx, cy, r))
                    continue
                if rng.random() < p_double:
                    off = r * rng.uniform(0.7, 0.95)
                    a = rng.uniform(0, math.pi)
                    for s in (-1, 1):
                        jobs.append(
                            (
                                "live",
                                cx + s * off * math.cos(a),
                                cy + s * off * math.sin(a),
                                r * 0.8,
                            )
                        )
                        radii.append(r * 0.8)
                    plants += 2
                    continue
                jobs.append(("live", cx, cy, r))
                radii.append(r)
                plants += 1
        n_labels = int(rng.integers(0, 4))
        labels += n_labels
        for _ in range(n_labels):
            _label(canvas, rng, rng.uniform(x0, x1), rng.uniform(y0, y1), pitch * 0.6)
    rng.shuffle(jobs)
    for what, cx, cy, r in jobs:
        if what == "dead":
            draw_dead(canvas, rng, kind, cx, cy, r)
        else:
            j = 0.04 if kind == "succulent" else 0.1
            col = np.clip(base_col * rng.uniform(1 - j, 1 + j, 3).astype(np.float32), 0, 255)
            draw_plant(canvas, rng, kind, cx, cy, r, col)
    # photometry
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    light = np.ones((height, width), np.float32)
    vig = rng.uniform(*ranges.vignette)
    rr = ((xx - width / 2) / (width / 2)) ** 2 + ((yy - height / 2) / (height / 2)) ** 2
    light *= 1.0 - vig * rr / 2.0
    sh = rng.uniform(*ranges.shadow)
    if sh > 0:
        sx, sy = rng.uniform(0, width), rng.uniform(0, height)
        sr = rng.uniform(0.2, 0.5) * width
        d = np.sqrt((xx - sx) ** 2 + (yy - sy) ** 2) / sr
        light *= 1.0 - sh * np.clip(1.2 - d, 0, 1)
    del xx, yy, rr
    gains = 1.0 + rng.uniform(-ranges.wb_gain, ranges.wb_gain, 3).astype(np.float32)
    canvas *= light[..., None]
    canvas *= gains[None, None, :]
    canvas += rng.normal(0, 2.0, size=canvas.shape[:2]).astype(np.float32)[..., None]
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    sigma = float(rng.uniform(*ranges.blur))
    if sigma > 0.3:
        img = img.filter(ImageFilter.GaussianBlur(sigma))
    q = int(rng.integers(ranges.jpeg_quality[0], ranges.jpeg_quality[1] + 1))
    truth = SynthTruth(
        plants=plants,
        kind=kind,
        container=container,
        floor=floor,
        plant_radius_px=float(np.median(radii)) if radii else 0.0,
        seed=seed,
        layout="plug" if plug else "box",
        boxes=n_boxes,
        fill=r0 / pitch,
        empty=float(p_empty),
        dead=float(p_dead),
        double=float(p_double),
        labels=labels,
        moss=moss_max,
        wb_gain=float(np.abs(gains - 1.0).max()),
        vignette=float(vig),
        shadow=float(sh),
        blur=sigma if sigma > 0.3 else 0.0,
        jpeg_quality=q,
    )
    return img, truth, q


def synth_jpeg(seed: int, ranges: Ranges = TUNE, **kw) -> tuple[bytes, SynthTruth]:
    img, truth, q = synth_tray(seed, ranges, **kw)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=q)
    return buf.getvalue(), truth


def synth_set(n: int, ranges: Ranges, seed0: int, **kw) -> list[tuple[bytes, SynthTruth]]:
    return [synth_jpeg(seed0 + i, ranges, **kw) for i in range(n)]
