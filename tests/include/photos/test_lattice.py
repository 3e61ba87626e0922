"""The plants' grid: found from the live mask, checked against the grey texture, and used only
when it disagrees with the counter on a photo whose plants really sit on it."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

from include.photos.lattice import AGREE, find_lattice, lattice_count, texture_vectors
from include.photos.plants import count_plants
from include.photos.synth import WIDE, _soil, draw_plant, synth_jpeg


def _grid(
    rng: np.random.Generator, pitch: float, angle_deg: float, empty: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """A plug tray (dark walls, soil cells) of rosettes on a slightly rotated grid: (rgb, the
    rosettes' mask, plants)."""
    h, w = 900, 1200
    canvas = _soil(rng, h, w)
    mask = np.zeros((h, w), bool)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = math.radians(angle_deg)
    u = ((xx - 80) * math.cos(t) + (yy - 60) * math.sin(t)) / pitch
    v = (-(xx - 80) * math.sin(t) + (yy - 60) * math.cos(t)) / pitch
    inside = (u >= 0) & (u < 16) & (v >= 0) & (v < 12)
    wall = inside & ((np.abs(u - np.round(u)) < 0.06) | (np.abs(v - np.round(v)) < 0.06))
    canvas[wall] = (40, 40, 42)
    plants = 0
    for i in range(16):
        for j in range(12):
            if rng.random() < empty:
                continue
            cu, cv = i + 0.5, j + 0.5
            cx = 80 + pitch * (cu * math.cos(t) - cv * math.sin(t))
            cy = 60 + pitch * (cu * math.sin(t) + cv * math.cos(t))
            if not (pitch < cx < w - pitch and pitch < cy < h - pitch):
                continue
            mask |= (xx - cx) ** 2 + (yy - cy) ** 2 <= (0.3 * pitch) ** 2
            plants += 1
    canvas[mask] = (60, 150, 55)
    return np.clip(canvas, 0, 255).astype(np.uint8), mask, plants


def test_plants_on_a_rotated_grid_give_its_pitch_and_their_cells() -> None:
    rgb, mask, plants = _grid(np.random.default_rng(1), 62.0, 4.0, empty=0.2)
    lat = find_lattice(mask)
    assert lat is not None
    assert abs(lat.pitch - 62.0) <= 2.0, lat
    assert abs(math.hypot(*lat.b) - 62.0) <= 2.0, lat
    assert lat.occupied == plants
    assert min(lat.repeat_a, lat.repeat_b) > 0.3  # plants on the nodes repeat strongly
    vecs = texture_vectors(rgb)
    assert vecs is not None and abs(math.hypot(*vecs[0]) - 62.0) <= 2.0


def test_the_lattice_replaces_only_a_count_that_disagrees_and_needs_the_texture() -> None:
    rgb, mask, plants = _grid(np.random.default_rng(2), 70.0, 0.0, empty=0.15)
    assert lattice_count(rgb, mask, plants) is None  # the counter agrees: it stays
    lat = lattice_count(rgb, mask, 3 * plants)  # a herb counted once per leaf
    assert lat is not None and lat.occupied == plants
    # the same mask with a photo whose grey texture shows no period: the mask alone is not enough
    flat = np.full_like(rgb, 90)
    assert texture_vectors(flat) is None
    assert lattice_count(flat, mask, 3 * plants) is None


def _scattered(seed: int, kind: str) -> tuple[bytes, int]:
    """Plants at random positions with a minimum spacing on soil: no grid at all."""
    rng = np.random.default_rng(seed)
    h, w = 1500, 2000
    canvas = _soil(rng, h, w)
    r = 26.0
    pts: list[tuple[float, float]] = []
    while len(pts) < 140:
        x, y = rng.uniform(r + 5, w - r - 5), rng.uniform(r + 5, h - r - 5)
        if all((x - px) ** 2 + (y - py) ** 2 >= (2.6 * r) ** 2 for px, py in pts):
            pts.append((x, y))
    for x, y in pts:
        draw_plant(canvas, rng, kind, x, y, r, np.array([70, 160, 60], np.float32))
    buf = io.BytesIO()
    Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue(), len(pts)


def test_scattered_plants_are_counted_by_the_counter_not_a_lattice() -> None:
    for seed, kind in ((5, "rosette"), (6, "seedling")):
        data, n = _scattered(seed, kind)
        res, rgb = count_plants(data)
        assert not res.lattice
        assert res.mask is not None and lattice_count(rgb, res.mask, 3 * n) is None
        assert abs(res.count - n) <= 0.1 * n, (kind, res.count, n)


def test_a_herb_tray_whose_leaves_part_counts_one_plant_per_cell() -> None:
    """A generated herb plug tray (wide ranges, tune seed) on woven cover: the leaves hang apart
    on stalks too thin to see, and the counter alone finds 553 plants for 96."""
    data, truth = synth_jpeg(900_023, WIDE)
    res, _ = count_plants(data)
    assert res.lattice
    assert abs(res.count - truth.plants) <= 0.05 * truth.plants, (res.count, truth.plants)
    assert len(res.boxes) == res.count


def test_rosettes_touching_across_the_cells_are_counted_by_the_walls_period() -> None:
    """A generated rosette plug tray (wide ranges, tune seed) whose rosettes touch across the
    walls: the mask is one mat (the counter alone finds 9 plants for 250) and its period comes
    out 10 % short (the touching plants pull the peak towards the centre), so it disagrees with
    the walls' grey texture; measured again at the texture's period, one plant per cell."""
    data, truth = synth_jpeg(200_038, WIDE)
    res, rgb = count_plants(data)
    assert res.lattice
    assert abs(res.count - truth.plants) <= 0.05 * truth.plants, (res.count, truth.plants)
    assert res.mask is not None
    lat = find_lattice(res.mask)
    vecs = texture_vectors(rgb)
    assert lat is not None and vecs is not None
    assert abs(lat.pitch / math.hypot(*vecs[0]) - 1) > AGREE  # not the same period at first
