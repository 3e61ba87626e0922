"""Count live plants in a top-view photo: the photo's own evidence sets the plant size.

1. **Live-plant mask** (:func:`live_mask`): white balance by the median of the gains voted by
   the photo's neutral references (near-white, tinted white, mid greys, dark neutrals), then a
   hue / saturation / brightness gate (yellow- to blue-green, low-saturation bluish succulents
   included; brown, straw, grey, white, pink and yellow excluded; dark moss film and dark ground
   cover fall under the brightness floor, taken relative to the photo's plants).
2. **Green confounders** (:func:`structure_colours`): green plastic and ground cover are long
   straight or large structures; their pixels (line openings longer than a plant) give a colour
   model that is compared with the colour of blob-like vegetation: where the two differ, pixels
   of the structure's colour are removed (only large parts: a herb's dark-green stalks stay), and
   so are the thin blended edges left along a removed rim or wall. When rows of touching plants
   make the two models alike, the frame's outer band alone decides (a dark-green floor). A tray's
   rim or grid is not counted whatever its colour (:func:`_frames`): a rim is straight runs in a
   component filling little of its box; a thick-walled plug grid (filling up to 60 %) is one
   enclosing many square cells (:func:`_grid_cells`; all of it outside the cells' rows and
   columns goes). The grid is found on the whole live mask (a
   green grid is whole there, before its colour is removed) and goes with its blended edges.
3. **Scale and count** (:func:`count_mask`): components after a small closing, joined through
   weak evidence near strong foliage (half the colour evidence; for loose plants also stalks too
   thin for the colour gate, :func:`stalk_ridges`), are measured; parts whose nearest
   neighbours cluster and then jump to the next plants' distance are one plant's parts
   (:func:`_sibling_links`: a herb's leaves whose stalks are not seen at all); loose fragments
   join the nearest plant. The single-plant area is the candidate (from the area/thickness² ratio and
   from the component areas) that best explains the components as whole numbers of plants, with
   an Occam penalty per plant per component; the fit weighs components by area when the large
   ones are loose plants (herbs: leaves on stalks fill little of their box) and by count when
   they are solid clumps of touching plants (then the singles set the size). A component counts
   ``round(area/typ)`` plants (at least one when it is at least ``min_fraction`` of a plant).
   Mats of touching solid plants (not loose herbs; :func:`_clump_peaks`): the distance transform
   peaks once per plant centre (peaks a plant's half-thickness apart); when at least five compact
   one-peak components as thick as the mat's peaks say a plant is under half the fitted size,
   every component counts one plant per peak. A mat with too few components to fit a size (the
   closing bridged the narrow gaps between plants) counts the peaks of the unclosed mask's
   distance transform, a plant's half-thickness (measured before the closing) apart. A
   location's calibration is only a prior, used when the photo has too few components to measure
   a size; it never removes plants.
4. **Resolution**: a first pass at ~1000 px measures the plant size; small plants (seedlings)
   are counted again from a finer JPEG DCT-scaled decode so a plant is at least ~7 px across,
   with the first pass's white balance and structure colour models.
5. **Lattice** (:mod:`include.photos.lattice`): when the plants sit on a grid (plug cells, rows
   in a box) that both the live mask and the grey texture show, and the count above differs from
   the grid's occupied cells by more than 5 %, the photo counts one plant per occupied cell
   (herbs split into leaves, rosettes merged into rows; when the two periods are near but not
   the same, the plants are measured again at the texture's). Scattered plants never take this
   path.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from PIL import Image

from include.photos.lattice import Lattice, lattice_count

MIN_RADIUS_WORK = 7.0
WEAK_REACH = 3.0  # weak pixels count within this many plant half-thicknesses
TIE = 0.02  # a larger plant area wins within this score
OCCAM = 0.15  # score penalty per plant per component
CLOSE_FACTOR = 0.3  # closing radius / plant half-thickness
SPARSE_FILL = 0.33  # large components filling less of their box than this are loose plants
EDGE_SHARE = 0.6  # a component this much within reach of removed green structure is its edge
FRAGMENT = 0.15  # a component under this share of the area-weighted median may be a loose leaf
STALK_KERNEL = 5  # top-hat size (work px) for thin green ridges (stalks)
STALK_RIDGE = 0.12  # a stalk ridge is this share of the plants' median excess green
PEAK_SEP = 0.8  # distance-transform peaks of one mat this many half-thicknesses apart
PEAK_MIN = 0.5  # a plant centre's peak is at least this share of the median half-thickness
SINGLE_FILL = 0.5  # a one-peak component filling this much of its box is a whole plant
SINGLE_SHARE = 0.5  # singles this much smaller than the fitted plant size replace it
SINGLE_THICK = 1.3  # a single plant's half-thickness is within this factor of the mat's peaks
SIBLING_K = 8  # neighbours looked at for a plant's own parts
SIBLING_MIN = 2  # parts of one plant at least (a herb's leaves, a seedling's split leaves)
SIBLING_JUMP = 1.8  # the next plant's parts are this much farther than the last own part
SIBLING_PARTS = 40  # parts in the photo at least
SIBLING_SHARE = 0.3  # share of parts showing the pattern for the photo to use it
HUE_HI = 104  # upper foliage hue, OpenCV units (208 deg; weak evidence stops at 200)
# structure reference pixels needed: STRUCT_MIN_PX, and STRUCT_SHARE of the live mask (or 0.2 %
# of the photo, whichever is less: a few tinted pebbles outnumber tiny seedlings' pixels)
FRAME_RUN = 0.25  # a rim's straight run, share of the photo's shorter side
FRAME_FILL = 0.3  # a rim or grid fills less of its box than this
GRID_FILL = 0.6  # a thick-walled grid (its cells enclosed) fills less of its box than this
GRID_CELLS = 6  # enclosed cells of a grid at least
GRID_SQUARE = 0.8  # share of its holes that fill their own box (square cells, not the
# star-shaped gaps between touching round plants)
HOLE_FILL = 0.75  # a square cell fills this much of its box at least
CELL_EDGE = 3  # px of a cell's border that are its wall's blended edge
STRUCT_MIN_PX = 40
STRUCT_DISTINCT = 0.5  # share of the floor sample in colours the plants lack
STRUCT_SHARE = 0.03


@dataclass
class PlantCount:
    count: int
    plant_area: float  # single-plant area, work px
    radius: float  # equivalent radius of one plant, work px
    scale: float  # full-resolution px per work px
    close_radius: int
    centers: list[tuple[float, float, int]] = field(default_factory=list)  # x, y, n (work px)
    boxes: list[tuple[int, int, int, int, int]] = field(default_factory=list)  # x0,y0,x1,y1,n
    mask: np.ndarray | None = field(default=None, repr=False)
    prior_used: bool = False
    structure: StructureColours | None = field(default=None, repr=False)
    lattice: bool = False  # counted as the occupied cells of the plants' grid


def decode_scaled(data: bytes, factor: int) -> tuple[np.ndarray, float]:
    """RGB at 1/``factor`` of full resolution (JPEG DCT scaling when possible)."""
    im = Image.open(io.BytesIO(data))
    w, h = im.size
    if factor > 1:
        im.draft("RGB", (max(1, w // factor), max(1, h // factor)))
    im = im.convert("RGB")
    if im.width > w // factor + 1:
        im = im.reduce(max(1, round(im.width / max(1, w // factor))))
    return np.asarray(im), w / im.width


# --------------------------------------------------------------------------- 1. colour
def white_balance(rgb: np.ndarray, gains: np.ndarray | None = None) -> np.ndarray:
    """``rgb`` with per-channel ``gains`` applied (default :func:`wb_gains` of ``rgb``)."""
    if gains is None:
        gains = wb_gains(rgb)
    if gains is None:
        return rgb
    lut = np.stack([np.clip(np.arange(256) * g, 0, 255).astype(np.uint8) for g in gains], axis=1)
    return cv2.LUT(np.ascontiguousarray(rgb), lut.reshape(1, 256, 3))


def wb_gains(rgb: np.ndarray) -> np.ndarray | None:
    """Per-channel gains that make the photo's neutral references grey. Each reference the
    photo has votes for gains: the brightest near-white pixels (perlite, white labels,
    highlights; under a strong cast white is tinted, so a second, looser set is taken too),
    near-neutral mid greys (concrete, grey plastic) and dark neutrals (black plastic, woven
    cover). One reference can be wrong (pale bluish succulents are the brightest near-neutral
    thing in some photos, a pink label the whitest, soil the darkest): the per-channel median of
    the votes is taken, so one wrong reference is outvoted."""
    small = rgb[::4, ::4].reshape(-1, 3).astype(np.float32)
    mx, mn = small.max(axis=1), small.min(axis=1)
    sat = (mx - mn) / np.maximum(mx, 1)
    n = len(small)
    refs: list[np.ndarray] = []
    cand = (sat < 0.12) & (mx < 252)
    top = float(np.percentile(mx[cand], 99.5)) if cand.sum() >= 20 else 255.0
    bright = cand & (mx > max(170.0, top - 30.0))
    if bright.sum() >= max(20, 0.0005 * n):
        refs.append(np.median(small[bright], axis=0))
    loose = (sat < 0.25) & (mx < 253) & (mn > 0)
    if loose.sum() >= 20:
        top2 = float(np.percentile(mn[loose], 99.9))
        white = loose & (mn >= max(150.0, top2 - 25.0))
        if white.sum() >= 10:
            refs.append(np.median(small[white], axis=0))
    mid = (sat < 0.1) & (mx > 50) & (mx < 250)
    if mid.sum() >= 0.02 * n:
        refs.append(np.median(small[mid], axis=0))
    dark = (sat < 0.3) & (mx >= 15) & (mx < 60)
    if dark.sum() >= 0.05 * n:
        refs.append(np.median(small[dark], axis=0))
    if not refs:
        return None
    votes = np.array([ref.mean() / np.maximum(ref, 1) for ref in refs])
    return np.clip(np.median(votes, axis=0), 0.8, 1.25)


def live_mask(rgb: np.ndarray, smooth: int = 0) -> np.ndarray:
    """Pixels of live foliage (bool). ``smooth``: median filter size applied first (sensor
    noise and leaf texture at fine resolutions)."""
    return live_masks(rgb, smooth)[0]


# saturation / needed saturation (capped) for every saturation value, green and bluish green
_S_PER_GREEN = np.minimum(np.arange(256) / 64.0, 1.6).astype(np.float32)
_S_PER_BLUE = np.minimum(np.arange(256) / 40.0, 1.6).astype(np.float32)


def _membership(
    hsv: np.ndarray, v_min: float | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """``(membership, core hue, v_min)`` of the white-balanced photo's HSV: membership is the
    smaller of saturation / needed saturation and brightness / ``v_min`` (capped at 1.6), per
    pixel through lookup tables."""
    h, s, v = cv2.split(hsv)
    # saturation needed: 64 for green (66-140 deg), 40 for bluish green (140-208 deg)
    green = h <= 70
    core = (h >= 33) & (h <= 100)  # 66-200 deg
    # blue-green up to 208 deg (bluish succulents under a colour cast) is strong evidence only:
    # as weak evidence it would take in a blue-grey tray and join the plants through it
    hue_ok = (h >= 33) & (h <= HUE_HI)
    if v_min is None:
        cand = core & (v >= 45) & ((s >= 64) | (~green & (s >= 40)))
        v_min = 45.0
        if cand.any():
            v_min = max(45.0, 0.4 * float(np.percentile(v[cand].astype(np.float32), 95)))
    s_part = np.where(green, cv2.LUT(s, _S_PER_GREEN), cv2.LUT(s, _S_PER_BLUE))
    v_part = cv2.LUT(v, np.minimum(np.arange(256, dtype=np.float32) / v_min, np.float32(1.6)))
    member = np.minimum(s_part, v_part)
    member[~hue_ok] = 0.0
    return member, core, v_min


def live_masks(rgb: np.ndarray, smooth: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(strong, weak)`` foliage masks. Strong: plant colour, smoothed so textured leaves are
    filled and isolated speckles (sensor noise on dark cover, moss grains) fall out. Weak: half
    the colour evidence, unsmoothed: thin stalks and leaf edges that join a plant's parts."""
    wb = white_balance(rgb)
    strong, weak, _ = _live_masks(wb, cv2.cvtColor(wb, cv2.COLOR_RGB2HSV), smooth)
    return strong, weak


def _live_masks(
    wb: np.ndarray, hsv: np.ndarray, smooth: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(strong, weak, stalks)`` of the white-balanced photo ``wb`` (``hsv``: its HSV);
    ``stalks``: thin green ridges (see :func:`stalk_ridges`)."""
    raw, core, v_min = _membership(hsv)
    weak = (raw >= 0.5) & core
    r, g, b = cv2.split(wb)
    exg = (2 * g.astype(np.int16) - r - b).astype(np.float32)  # excess green, exact integers
    if smooth >= 3:
        exg = cv2.GaussianBlur(exg, (0, 0), 0.8 * smooth / 3)
        smoothed = cv2.medianBlur(wb, smooth | 1)
        raw, _, _ = _membership(cv2.cvtColor(smoothed, cv2.COLOR_RGB2HSV), v_min)
    strong = cv2.GaussianBlur(raw, (0, 0), 1.2) >= 0.9
    return strong, weak | strong, stalk_ridges(exg, strong)


def stalk_ridges(exg: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """Thin stalks: under 1 px at the work size, blurred and blended with the soil, they fail the
    colour gate (their hue drifts to the soil's) but are still greener than either side: a white
    top-hat of excess green ``2g-r-b`` picks such ridges up. Kept: ridges above a share of the
    plants' own excess green and above the ground's texture (gravel, moss, noise: the 99th
    percentile of the ridge away from foliage)."""
    if strong.sum() <= 20:
        return np.zeros_like(strong)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (STALK_KERNEL, STALK_KERNEL))
    ridge = cv2.morphologyEx(exg, cv2.MORPH_TOPHAT, kernel)
    away = ~cv2.dilate(strong.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    texture = float(np.percentile(ridge[::2, ::2][away[::2, ::2]], 99)) if away.any() else 0.0
    return ridge > max(STALK_RIDGE * float(np.median(exg[strong])), texture)


# --------------------------------------------------------------------------- 2. confounders
def _hist(hsv: np.ndarray, m: np.ndarray) -> np.ndarray:
    hist = cv2.calcHist([hsv], [0, 1, 2], m.astype(np.uint8), [30, 8, 8], [0, 180, 0, 256, 0, 256])
    hist = cv2.GaussianBlur(hist.reshape(30, 64), (3, 3), 0).reshape(30, 8, 8)
    return hist / max(1.0, float(hist.sum()))


@dataclass(frozen=True)
class StructureColours:
    """Colour models (hue x saturation x value histograms) of green structure and of plants."""

    structure: np.ndarray
    plants: np.ndarray

    def plant_like(self, hsv: np.ndarray) -> np.ndarray:
        """Pixels (of the white-balanced photo's ``hsv``) whose colour is more likely plant than
        structure. A colour neither model has seen (a dark-green floor that is only weak
        evidence) is not plant-like: weak evidence of it would join the plants along the rim."""
        hb, hs = self.plants, self.structure
        plant_bin = ((hb >= hs) & (hb > 0)).ravel()
        # every pixel's histogram bin (hue / 6, saturation / 32, value / 32) through lookup tables
        hue, sat, val = cv2.split(hsv)
        k = np.arange(256, dtype=np.uint16)
        bins = cv2.LUT(hue, np.minimum(k // 6, 29) * 64) + cv2.LUT(sat, k // 32 * 8)
        return plant_bin[bins + cv2.LUT(val, k // 32)]


def _straight_runs(m8: np.ndarray, length: int) -> np.ndarray:
    """Pixels of ``m8`` (uint8) on a horizontal or vertical run at least ``length`` px long."""
    return cv2.morphologyEx(m8, cv2.MORPH_OPEN, np.ones((1, length), np.uint8)) | cv2.morphologyEx(
        m8, cv2.MORPH_OPEN, np.ones((length, 1), np.uint8)
    )


def structure_colours(hsv: np.ndarray, mask: np.ndarray, radius: float) -> StructureColours | None:
    """Colour models of green plastic or ground cover and of the plants (None: no such
    structure in the photo). Reference "structure" pixels: long straight runs
    (tray walls, box rims: line openings longer than several plants) and the vegetation-coloured
    pixels of the frame's outer band (the floor). Reference "plant" pixels: the rest of the
    central part of the photo. Where the two colour models differ, pixels whose colour is more
    likely structure than plant are removed; where they agree (a mat of plants filling the
    frame), nothing is. The structure model needs only a few per cent of the live mask's pixels
    (tinted gravel pebbles in the band next to tiny seedlings), not a share of the photo.
    ``hsv``: the white-balanced photo's HSV."""
    h, w = mask.shape
    length = int(np.clip(8 * radius, 0.05 * max(h, w), 0.3 * min(h, w)))
    m8 = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    struct = _straight_runs(m8, length)
    band = np.zeros_like(m8)
    bh, bw = max(2, int(0.04 * h)), max(2, int(0.04 * w))
    band[:bh], band[-bh:], band[:, :bw], band[:, -bw:] = 1, 1, 1, 1
    ref = (struct | band).astype(bool) & mask
    if ref.sum() < max(STRUCT_MIN_PX, min(0.002 * mask.size, STRUCT_SHARE * mask.sum())):
        return None
    near = cv2.dilate((struct | band), np.ones((9, 9), np.uint8)).astype(bool)
    centre = np.zeros_like(mask)
    centre[int(0.15 * h) : int(0.85 * h), int(0.15 * w) : int(0.85 * w)] = True
    plants = mask & ~near & centre
    if plants.sum() < 30:
        return None  # nothing to compare with: keep everything
    hs, hb = _hist(hsv, ref), _hist(hsv, plants)
    similarity = float(np.sqrt(hs * hb).sum())  # Bhattacharyya coefficient
    if similarity > 0.6:
        # the same colours: the long runs are vegetation (rows of touching plants as long as a
        # wall), unless the frame's outer band alone is a colour the plants lack (a dark-green
        # floor the rows were mixed with)
        floor = band.astype(bool) & mask
        if floor.sum() < STRUCT_MIN_PX:
            return None
        hs = _hist(hsv, floor)
        if float(np.maximum(hs - hb, 0).sum()) < STRUCT_DISTINCT:
            return None
    return StructureColours(structure=hs, plants=hb)


def _frames(mask: np.ndarray, *, grids_only: bool = False) -> np.ndarray:
    """A tray's rim or grid, whatever its colour: the straight runs a quarter of the photo long
    of components filling little of their box (a plant, or a mat or row of touching plants,
    fills much of its box) or enclosing many square cells (a thick-walled grid); plants touching
    the rim stay. ``grids_only``: only the latter."""
    h, w = mask.shape
    length = max(3, int(FRAME_RUN * min(h, w)))
    m8 = mask.astype(np.uint8)
    runs = _straight_runs(m8, length)
    if not runs.any():
        return np.zeros_like(mask)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m8, connectivity=8)
    has_run = np.zeros(n, bool)
    has_run[labels[runs > 0]] = True
    fill = stats[:, cv2.CC_STAT_AREA] / np.maximum(1, stats[:, 2] * stats[:, 3])
    frame = np.zeros(n, bool) if grids_only else has_run & (fill < FRAME_FILL)
    frame[0] = False
    grid = has_run & ~frame & (fill < GRID_FILL)
    grid[0] = False
    walls = np.zeros(mask.shape, bool)
    for i in np.flatnonzero(grid):
        inside = _grid_cells(labels, stats[i], i)
        if inside is not None:
            # everything of the mask on the grid's walls, outside its cells' rows and columns
            # (a wall broken by shade or a label is not a quarter of the photo long, and its
            # pieces may be loose), not the plants in the cells
            x, y, bw, bh = (int(v) for v in stats[i, :4])
            walls[y : y + bh, x : x + bw] |= mask[y : y + bh, x : x + bw] & ~inside
            frame[i] = True
    # the straight runs themselves (and their blended edges), not the plants touching them
    edge = cv2.dilate(runs, np.ones((5, 5), np.uint8)).astype(bool)
    return (frame[labels] & edge) | walls


def _weighted_median(areas: np.ndarray) -> float:
    """The area-weighted median of ``areas``: the area of the part holding the middle pixel."""
    order = np.sort(areas)
    cum = np.cumsum(order)
    return float(order[int(np.searchsorted(cum, cum[-1] / 2))])


def _bands(lo: np.ndarray, hi: np.ndarray, size: int) -> np.ndarray:
    """Union of the intervals ``[lo, hi)`` on ``range(size)``."""
    cover = np.zeros(size + 1, np.int32)
    np.add.at(cover, lo, 1)
    np.add.at(cover, hi, -1)
    return np.cumsum(cover[:size]) > 0


def _grid_cells(labels: np.ndarray, stat: np.ndarray, i: int) -> np.ndarray | None:
    """When component ``i`` encloses many square cells (a plug tray's thick-walled grid; a mat
    of touching plants encloses few holes, star-shaped between round plants): the cells' rows
    and columns (a mask over its box: the cells' spans, so a cell a plant fills is in it too);
    None when it is no grid."""
    x, y, bw, bh = (int(v) for v in stat[:4])
    outside = (labels[y : y + bh, x : x + bw] != i).astype(np.uint8)
    n, lab, st, _ = cv2.connectedComponentsWithStats(outside, connectivity=4)
    edge = np.zeros(n, bool)
    edge[lab[0]], edge[lab[-1]], edge[lab[:, 0]], edge[lab[:, -1]] = True, True, True, True
    area = st[:, cv2.CC_STAT_AREA]
    holes = ~edge & (area >= 20)
    holes[0] = False
    if holes.sum() < GRID_CELLS:
        return None
    # the cells are the holes holding most of the hole area (not specks of perlite or of a green
    # floor joined to the tray)
    holes &= area >= 0.25 * _weighted_median(area[holes])
    if holes.sum() < GRID_CELLS:
        return None
    cells = holes & (area / np.maximum(1, st[:, 2] * st[:, 3]) >= HOLE_FILL)
    if cells.sum() < GRID_SQUARE * holes.sum():
        return None
    # cells, or cells a plant touches the walls of (a ring of soil): one cell's size, not two
    # cells joined through a broken wall
    one = (
        holes
        & (st[:, 2] <= 1.4 * np.median(st[cells, 2]))
        & (st[:, 3] <= 1.4 * np.median(st[cells, 3]))
    )
    # less the cells' blended edges (soil and wall mixed: lines along each cell's border)
    x0, y0 = st[one, 0] + CELL_EDGE, st[one, 1] + CELL_EDGE
    x1 = np.maximum(x0, st[one, 0] + st[one, 2] - CELL_EDGE)
    y1 = np.maximum(y0, st[one, 1] + st[one, 3] - CELL_EDGE)
    cols, rows = _bands(x0, x1, bw), _bands(y0, y1, bh)
    seen = np.zeros((bh, bw), bool)
    for a, b, c, d in zip(x0.tolist(), x1.tolist(), y0.tolist(), y1.tolist(), strict=True):
        seen[c:d, a:b] = True
    # a place of the lattice (a row's and a column's span) holding a seen cell keeps that cell
    # (a wall piece beside it is wall); one holding none (a plant fills the cell) stays whole
    ri = np.cumsum(np.diff(rows.astype(np.int8), prepend=0) == 1) * rows
    ci = np.cumsum(np.diff(cols.astype(np.int8), prepend=0) == 1) * cols
    place = ri[:, None] * (int(ci.max()) + 1) + ci[None, :]
    inside = rows[:, None] & cols[None, :]
    held = np.zeros(int(place.max()) + 1, bool)
    held[place[seen]] = True
    return seen | (inside & ~held[place])


def _large_parts(mask: np.ndarray) -> np.ndarray:
    """Components of ``mask`` of at least 200 px and 0.05 % of the image (structures, not specks
    or the stalks of one plant)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    big = stats[:, cv2.CC_STAT_AREA] >= max(200, 0.0005 * mask.size)
    big[0] = False
    return big[labels]


def _structure_parts(strong: np.ndarray, plant_like: np.ndarray) -> np.ndarray:
    """Foliage pixels of the structure's colour that are structure: all but the small parts away
    from the large ones that join two or more plant-coloured parts (a herb's stalks between its
    leaves)."""
    odd = strong & ~plant_like
    big = _large_parts(odd)
    n_s, small = cv2.connectedComponents((odd & ~big).astype(np.uint8), connectivity=8)
    if n_s <= 1:
        return odd
    n_k, kept = cv2.connectedComponents((strong & plant_like).astype(np.uint8), connectivity=8)
    touching = cv2.dilate(small.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int64)
    at = (touching > 0) & (kept > 0)
    pairs = np.unique(touching[at] * n_k + kept[at])
    joins = np.bincount(pairs // n_k, minlength=n_s)
    joiner = joins >= 2
    # not within the structure (specks of a noisy green floor join its plant-coloured specks)
    by_structure = cv2.dilate(big.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    joiner[np.unique(small[by_structure])] = False
    joiner[0] = False
    return odd & ~joiner[small]


def _drop_structure_edges(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """Drop what is left of a removed structure: the blended edge pixels of a green rim or wall
    (soil or floor mixed in, so not the structure's colour) form thin lines along it. A component
    lying mostly within a few pixels of removed structure is such an edge; a plant that overlaps
    a rim keeps most of its pixels away from it. ``structure``: the removed structure's large
    parts (:func:`_large_parts`)."""
    if not structure.any():
        return mask
    near = cv2.dilate(structure.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask
    total = np.bincount(labels.ravel(), minlength=n)
    inside = np.bincount(labels[near], minlength=n)
    edge = inside >= EDGE_SHARE * np.maximum(total, 1)
    edge[0] = False
    return mask & ~edge[labels]


# --------------------------------------------------------------------------- 3. count
def _disk(r: int) -> np.ndarray:
    r = max(1, int(r))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _disk_peaks(dt: np.ndarray, r: int, floor: float) -> np.ndarray:
    """``(dt >= floor) & (dt >= cv2.dilate(dt, _disk(r)))``, exactly, fast for a large ``r``: a
    square inside the disk (a separable dilation) rules out most pixels, and the few left are
    checked against their own disk (the plain dilation when many are left)."""
    k = _disk(r).astype(bool)
    rr = k.shape[0] // 2
    half = next(s for s in range(rr, -1, -1) if k[rr - s : rr + s + 1, rr - s : rr + s + 1].all())
    cand = (dt >= floor) & (dt >= cv2.dilate(dt, np.ones((2 * half + 1, 2 * half + 1), np.uint8)))
    if half == rr:
        return cand
    ys, xs = np.nonzero(cand)
    if len(ys) > 2000:  # a plateau or a small disk: the plain dilation is cheaper
        return cand & (dt >= cv2.dilate(dt, _disk(r)))
    h, w = dt.shape
    for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
        y0, y1, x0, x1 = max(0, y - rr), min(h, y + rr + 1), max(0, x - rr), min(w, x + rr + 1)
        sub = k[y0 - y + rr : y1 - y + rr, x0 - x + rr : x1 - x + rr]
        if dt[y0:y1, x0:x1][sub].max() > dt[y, x]:
            cand[y, x] = False
    return cand


def _components(mask: np.ndarray, close_r: int):
    m8 = mask.astype(np.uint8)
    if close_r > 0:
        m8 = cv2.morphologyEx(m8, cv2.MORPH_CLOSE, _disk(close_r))
    n, labels, stats, cents = cv2.connectedComponentsWithStats(m8, connectivity=8)
    return n, labels, stats, cents, m8


def _comp_dt(labels: np.ndarray, n: int, m8: np.ndarray) -> np.ndarray:
    """Maximum distance-to-background of every component (its half-thickness)."""
    return _component_max(cv2.distanceTransform(m8, cv2.DIST_L2, 3), labels, n, m8 > 0)


def _component_max(dt: np.ndarray, labels: np.ndarray, n: int, on: np.ndarray) -> np.ndarray:
    """Largest ``dt`` of every component (labels 1..n-1) over its ``on`` pixels, where ``dt``
    is a distance transform of ``on`` (0 off it) and ``labels`` joins ``on``'s 8-neighbours.
    Only local maxima are visited: a component's largest value is one (each neighbour is in
    the component or off ``on``)."""
    top = on & (dt >= cv2.dilate(dt, np.ones((3, 3), np.uint8)))
    out = np.zeros(n, np.float64)
    np.maximum.at(out, labels[top], dt[top])
    return out[1:]


def plant_size(areas: np.ndarray, dmax: np.ndarray, *, sparse: bool = True) -> tuple[float, float]:
    """``(single-plant area, half-thickness)`` from components: the half-thickness of a plant is
    the median component half-thickness (a clump of touching plants is as thick as one plant);
    the area per squared thickness of a single plant is a low percentile of the
    components' ratio (clumps and fragments have larger ratios)."""
    ok = (areas >= 6) & (dmax >= 1.0)
    if not ok.any():
        return 0.0, 0.0
    wmed = _weighted_median(areas[ok])
    ok &= areas >= 0.05 * wmed  # specks
    d_med = float(np.median(dmax[ok]))
    ok &= dmax >= 0.4 * d_med
    d_typ = float(np.median(dmax[ok]))
    ratio = areas[ok] / dmax[ok] ** 2
    a = areas[ok]
    best: tuple[float, float] | None = None
    # candidate plant areas from the ratio's percentiles; keep the one that explains the
    # components best as whole numbers of plants (absolute residual: a too small plant area
    # explains everything badly, not well); ties go to the larger plant
    # candidates: from the area/thickness² ratio (a plant's shape) and from the component areas
    # themselves (the ratio's percentiles can all miss a star-shaped plant's area)
    candidates = [float(np.percentile(ratio, p)) * d_typ * d_typ for p in range(5, 95, 5)]
    candidates += [float(np.percentile(a, p)) for p in range(5, 95, 5)]
    for typ in sorted(candidates):
        k = a / typ
        fit = np.where(k >= 0.5, 1.0 - 2.0 * np.abs(k - np.round(k)), 0.0)
        # Occam: a plant size that splits each component into many plants needs a clearly
        # better fit (a herb's loose leaves are not plants of their own)
        plants_per_component = float(np.maximum(np.round(k), 0).sum()) / len(a)
        wt = a if sparse else np.ones_like(a)
        score = float((fit * wt).sum() / wt.sum()) - OCCAM * plants_per_component
        if best is None or score >= best[0] - TIE:
            best = (max(score, best[0]) if best else score, typ)
    assert best is not None
    return best[1], d_typ


def robust_radius(mask: np.ndarray) -> float:
    """Half-thickness of a typical plant in the mask (work px), 0 without vegetation."""
    n, labels, stats, _, m8 = _components(mask, 1)
    if n <= 1:
        return 0.0
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    return plant_size(areas, _comp_dt(labels, n, m8))[1]


def _attach_fragments(
    areas: np.ndarray, keep: np.ndarray, labels: np.ndarray, cents: np.ndarray
) -> None:
    """Loose fragments (a leaf whose stalk is too thin to see) join the nearest plant group
    within one plant radius: their area moves to it (in place); far fragments stay alone."""
    if keep.sum() < 6:
        return
    wmed = _weighted_median(areas[keep])
    frag = keep & (areas < FRAGMENT * wmed)
    if not frag.any() or frag.sum() == keep.sum():
        return
    big = np.zeros(len(areas) + 1, bool)  # by label
    big[1:] = keep & ~frag
    big_px = big[labels].view(np.uint8)
    # chessboard distance c to the large components: the nearest pixel is between c and
    # sqrt(2) c away (and its offsets are no larger than its distance)
    far = cv2.distanceTransform(1 - big_px, cv2.DIST_C, 3)
    reach = math.sqrt(wmed / math.pi)
    h, w = labels.shape
    for i in np.flatnonzero(frag):
        cx, cy = int(min(w - 1, max(0, cents[i][0]))), int(min(h - 1, max(0, cents[i][1])))
        if far[cy, cx] > reach:
            continue
        # the nearest large-component pixel lies in this window: exact squared distances
        r = min(int(reach), int(math.sqrt(2.0) * float(far[cy, cx])) + 1)
        y0, x0 = max(0, cy - r), max(0, cx - r)
        window = labels[y0 : cy + r + 1, x0 : cx + r + 1]
        ys, xs = np.nonzero(big[window])
        if not len(ys):
            continue
        d2 = (ys + (y0 - cy)) ** 2 + (xs + (x0 - cx)) ** 2
        if math.sqrt(float(d2.min())) > reach:
            continue
        # equally near pixels (of several components): the leftmost, then the topmost, as an
        # exact Euclidean feature transform (scipy's) picks
        ty, tx = ys[d2 == d2.min()], xs[d2 == d2.min()]
        k = np.lexsort((ty, tx))[0]
        j = int(window[ty[k], tx[k]])
        areas[j - 1] += areas[i]
        areas[i] = 0.0
        keep[i] = False


def _sparse_plants(areas: np.ndarray, keep: np.ndarray, stats: np.ndarray) -> bool:
    """Do the large components look like loose plants (herbs: leaves on stalks around a centre,
    little of the convex hull filled) rather than solid clumps of touching plants? Decides how
    the plant-size fit weighs components: by area when small components may be a plant's loose
    leaves, by count when they are whole plants next to clumps."""
    idx = np.flatnonzero(keep)
    if len(idx) < 6:
        return True
    big = idx[areas[idx] >= 2.0 * float(np.median(areas[idx]))]
    if len(big) < 3:
        return True
    big = big[np.argsort(-areas[big])][:40]
    fills = []
    for i in big:
        x, y, w, h = (int(v) for v in stats[i + 1, :4])
        fills.append(areas[i] / max(1.0, w * h))
    return float(np.median(fills)) < SPARSE_FILL


def _clump_peaks(
    labels: np.ndarray,
    n: int,
    dt: np.ndarray,
    areas0: np.ndarray,
    dmax: np.ndarray,
    stats: np.ndarray,
    typ: float,
) -> tuple[float, np.ndarray | None]:
    """Touching plants of a mat: the distance transform peaks once per plant centre. Peaks at
    least a plant's half-thickness apart are counted per component; compact components (before
    loose fragments join their neighbours) with one peak as high as the mat's peaks are single
    plants and give the single-plant area. Returns ``(typ, peaks per component)``; ``peaks``
    is None when the photo shows no such singles."""
    keep = areas0 >= 6
    d = float(np.median(dmax[keep]))
    if d < 2.0:
        return typ, None
    md = max(2, int(round(PEAK_SEP * d)))
    pk = _disk_peaks(dt, md, PEAK_MIN * d)
    npk, pl = cv2.connectedComponents(pk.astype(np.uint8), connectivity=8)
    if npk <= 1:
        return typ, None
    ys, xs = np.nonzero(pk)
    first = np.zeros(npk, np.int64)
    first[pl[ys, xs]] = np.arange(len(ys))
    comp = labels[ys[first[1:]], xs[first[1:]]]
    heights = dt[ys[first[1:]], xs[first[1:]]]
    h = float(np.median(heights))
    peaks = np.bincount(comp, minlength=n)[1:].astype(np.float64)
    fill = areas0 / np.maximum(1.0, stats[1:, 2] * stats[1:, 3]).astype(np.float64)
    single = (
        keep
        & (peaks == 1)
        & (fill >= SINGLE_FILL)
        & (dmax >= h / SINGLE_THICK)
        & (dmax <= h * SINGLE_THICK)
    )
    if single.sum() < 5:
        return typ, None
    a1 = float(np.median(areas0[single]))
    if a1 >= SINGLE_SHARE * typ:
        return typ, None
    return a1, peaks


def _mat_peaks(mask: np.ndarray, labels: np.ndarray, n: int, d: float) -> np.ndarray:
    """Plants per component of a mat: peaks of the unclosed mask's distance transform at least
    ``PEAK_SEP`` half-thicknesses ``d`` apart and ``PEAK_MIN`` of ``d`` high."""
    dt = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    md = max(2, int(round(PEAK_SEP * d)))
    pk = _disk_peaks(dt, md, PEAK_MIN * d)
    npk, pl = cv2.connectedComponents(pk.astype(np.uint8), connectivity=8)
    if npk <= 1:
        return np.zeros(n - 1)
    ys, xs = np.nonzero(pk)
    first = np.zeros(npk, np.int64)
    first[pl[ys, xs]] = np.arange(len(ys))
    comp = labels[ys[first[1:]], xs[first[1:]]]
    return np.bincount(comp, minlength=n)[1:].astype(np.float64)


def _sibling_links(cents: np.ndarray, keep: np.ndarray) -> np.ndarray | None:
    """Parts of one plant whose links are invisible (a herb's leaves on stalks too thin to see):
    around each part, its nearest neighbours at first lie close together and then, past the
    plant's own parts, jump to the next plants' distance. A part whose distance to its
    (k+1)-th neighbour is at least ``SIBLING_JUMP`` times the k-th (k >= ``SIBLING_MIN - 1``)
    has k siblings; siblings are joined (union-find). Plants on a grid or scattered have no such
    jump at k >= 2 (their neighbours come at about the same distance). Returns the root of
    every component (index into ``cents``), or None when too few parts show the pattern."""
    idx = np.flatnonzero(keep)
    if len(idx) < SIBLING_PARTS:
        return None  # a few large groups (chains of touching plants) are not a plant's parts
    from scipy.spatial import cKDTree

    pts = cents[idx]
    k_max = min(SIBLING_K + 1, len(idx) - 1)
    dist, nbr = cKDTree(pts).query(pts, k=k_max + 1)
    dist, nbr = dist[:, 1:], nbr[:, 1:]
    ratio = dist[:, 1:] / np.maximum(dist[:, :-1], 1e-6)  # ratio[:, k-1] = d(k+1) / d(k)
    ratio[:, : SIBLING_MIN - 2] = 0.0  # at least SIBLING_MIN parts together
    k = np.argmax(ratio, axis=1) + 1  # siblings per part
    jump = ratio[np.arange(len(idx)), k - 1] >= SIBLING_JUMP
    if jump.mean() < SIBLING_SHARE:
        return None
    parent = np.arange(len(cents))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a in np.flatnonzero(jump):
        for b in nbr[a, : k[a]]:
            ra, rb = find(int(idx[a])), find(int(idx[b]))
            if ra != rb:
                parent[ra] = rb
    return np.array([find(i) for i in range(len(cents))])


def _merge_components(
    labels: np.ndarray, n: int, stats: np.ndarray, cents: np.ndarray, root: np.ndarray
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Relabel components by ``root`` (0-based over components): merged labels, stats, cents."""
    uniq, new = np.unique(root, return_inverse=True)
    m = len(uniq)
    lut = np.concatenate([[0], new + 1]).astype(np.int32)
    x0 = np.full(m, np.iinfo(np.int32).max)
    y0 = np.full(m, np.iinfo(np.int32).max)
    x1 = np.zeros(m, np.int64)
    y1 = np.zeros(m, np.int64)
    s = stats[1:]
    np.minimum.at(x0, new, s[:, 0])
    np.minimum.at(y0, new, s[:, 1])
    np.maximum.at(x1, new, s[:, 0] + s[:, 2])
    np.maximum.at(y1, new, s[:, 1] + s[:, 3])
    area = np.bincount(new, s[:, 4], m)
    cx = np.bincount(new, cents[1:, 0] * s[:, 4], m) / np.maximum(area, 1)
    cy = np.bincount(new, cents[1:, 1] * s[:, 4], m) / np.maximum(area, 1)
    st = np.zeros((m + 1, 5), np.int64)
    st[1:] = np.stack([x0, y0, x1 - x0, y1 - y0, area], axis=1)
    ce = np.zeros((m + 1, 2))
    ce[1:] = np.stack([cx, cy], axis=1)
    return m + 1, lut[labels], st, ce


def count_mask(
    mask: np.ndarray,
    weak: np.ndarray | None = None,
    *,
    stalks: np.ndarray | None = None,
    prior_area: float | None = None,
    min_fraction: float = 0.3,
    scale: float = 1.0,
    radius: float | None = None,
) -> PlantCount:
    """Plants in a live-plant ``mask``; ``weak`` (a superset) only joins parts into groups (a
    herb's leaves through their stalks). ``radius``: ``robust_radius(mask)`` when already
    known. See the module doc."""
    if int(mask.sum()) < 12:
        return PlantCount(0, 0.0, 0.0, scale, 0, mask=mask)
    d1 = robust_radius(mask) if radius is None else radius
    cr = max(1, int(round(CLOSE_FACTOR * d1)))
    strong8 = mask.astype(np.uint8)
    if cr > 0:
        strong8 = cv2.morphologyEx(strong8, cv2.MORPH_CLOSE, _disk(cr))
    group8 = strong8
    if weak is not None and WEAK_REACH > 0:
        # weak evidence joins parts only close to strong foliage (a stalk between a leaf and
        # the plant's centre), not across the floor
        # (a dilation by a disk, through the distance transform: its cost does not grow with
        # the radius, which is large for big plants at the fine resolution)
        r_reach = max(1, int(round(WEAK_REACH * d1)))
        away = cv2.distanceTransform(1 - strong8, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        reach = (away <= r_reach).astype(np.uint8)
        group8 = strong8 | (weak.astype(np.uint8) & reach)
    n, labels, stats, cents = cv2.connectedComponentsWithStats(group8, connectivity=8)
    if n <= 1:
        return PlantCount(0, 0.0, 0.0, scale, cr, mask=mask)
    on = strong8 > 0
    if stalks is not None and weak is not None and WEAK_REACH > 0:
        # leaves also join through stalks too thin for the colour gate, when what they join
        # are loose plants (leaves around a centre, little of their box filled); when the
        # joined groups are solid clumps, the ridges were leaf tips and fringes joining
        # neighbours: ignored
        # stalks meet at a small crown (often darker than the colour gate): a closing as
        # wide as the crown joins the stalk ends there
        ridges = cv2.morphologyEx(stalks.astype(np.uint8) & reach, cv2.MORPH_CLOSE, _disk(2))
        n2, labels2, stats2, cents2 = cv2.connectedComponentsWithStats(
            group8 | (ridges & reach), connectivity=8
        )
        areas2 = np.bincount(labels2[on], minlength=n2)[1:].astype(np.float64)
        if _sparse_plants(areas2, areas2 >= 6, stats2):
            n, labels, stats, cents = n2, labels2, stats2, cents2
    areas = np.bincount(labels[on], minlength=n)[1:].astype(np.float64)
    # parts of one plant that nothing visible joins (leaves whose stalks are lost)
    root = _sibling_links(cents[1:], areas >= 6)
    if root is not None:
        n, labels, stats, cents = _merge_components(labels, n, stats, cents, root)
        areas = np.bincount(labels[on], minlength=n)[1:].astype(np.float64)
    dt = cv2.distanceTransform(strong8, cv2.DIST_L2, 3)
    dmax = _component_max(dt, labels, n, on)
    keep = areas >= 6
    areas0 = areas.copy()
    # loose plants or solid clumps, judged before loose fragments join (a single plant next to
    # a chain of touching ones is not a fragment of it)
    sparse = _sparse_plants(areas, keep, stats)
    _attach_fragments(areas, keep, labels, cents[1:])
    prior_used = False
    if keep.sum() >= 6:
        typ, _ = plant_size(areas[keep], dmax[keep], sparse=sparse)
    elif prior_area:
        typ, prior_used = float(prior_area), True  # too few components to measure: the prior
    elif keep.any():
        # a mat of touching plants: a plant is about as wide as the mat is thick
        typ = math.pi * float(np.median(dmax[keep])) ** 2
    else:
        typ = 0.0
    if typ <= 0:
        return PlantCount(0, 0.0, 0.0, scale, cr, mask=mask)
    peaks = None
    if keep.sum() < 6 and not prior_used and d1 >= 2.0:
        # a mat with too few components to measure a size: one plant per peak of the unclosed
        # mask, the half-thickness measured before the closing (which bridged the gaps)
        peaks = _mat_peaks(mask, labels, n, d1)
        typ = min(typ, math.pi * d1 * d1)
    elif not sparse:
        typ, peaks = _clump_peaks(labels, n, dt, areas0, dmax, stats, typ)
    count = 0
    centers: list[tuple[float, float, int]] = []
    boxes: list[tuple[int, int, int, int, int]] = []
    counted = keep & (areas >= min_fraction * typ)
    if peaks is not None:
        # one plant per distance-transform peak, loose fragments included (they were singles)
        counted = (areas0 >= 6) & (areas0 >= min_fraction * typ)
        areas = areas0
    for i in np.flatnonzero(counted):
        n_i = max(1, int(round(float(areas[i]) / typ)))
        if peaks is not None:
            n_i = max(1, int(peaks[i]))
        count += n_i
        x, y, bw, bh = (int(v) for v in stats[i + 1, :4])
        centers.append((float(cents[i + 1][0]), float(cents[i + 1][1]), n_i))
        boxes.append((x, y, x + bw, y + bh, n_i))
    return PlantCount(
        count=count,
        plant_area=typ,
        radius=math.sqrt(typ / math.pi),
        scale=scale,
        close_radius=cr,
        centers=centers,
        boxes=boxes,
        mask=strong8.astype(bool),
        prior_used=prior_used,
    )


def count_rgb(
    rgb: np.ndarray,
    *,
    prior_area: float | None = None,
    scale: float = 1.0,
    smooth: int = 0,
    gains: np.ndarray | None = None,
    structure: StructureColours | None = None,
) -> PlantCount:
    """Plants in a decoded photo; ``gains``: white balance, ``structure``: colour models of green
    structure (both measured on ``rgb`` when not given: a finer decode of the same photo
    reuses the first pass's, so its plants keep their colour and the floor stays floor)."""
    if gains is None:
        gains = wb_gains(rgb)
    wb = white_balance(rgb, gains)
    hsv = cv2.cvtColor(wb, cv2.COLOR_RGB2HSV)
    strong, weak, stalks = _live_masks(wb, hsv, smooth)
    # a tray's grid whatever its colour, found on the whole mask (once the structure colour is
    # removed, only the grid's blended edges are left, in pieces)
    grid = _frames(strong, grids_only=True)
    cleaned, radius = strong, None
    if structure is None:
        radius = robust_radius(strong)
        structure = structure_colours(hsv, strong, radius)
    if structure is not None:
        plant_like = structure.plant_like(hsv)
        # only large parts of the structure's colour go (a rim, a wall, the floor): small ones
        # are inside plants (a herb's stalks are as dark a green as a green tray); weak
        # evidence of the structure's colour (a green floor around the tray) would join every
        # plant along the rim into one group: it goes too
        removed = _structure_parts(strong, plant_like)
        structure_px = _large_parts(removed)  # the rims and floor, not specks inside plants
        gone = cv2.dilate(structure_px.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        weak = weak & ~_large_parts(weak & ~plant_like) & ~gone
        stalks = stalks & ~gone
        cleaned, radius = _drop_structure_edges(strong & ~removed, structure_px), None
    if grid.any():
        cleaned, radius = _drop_structure_edges(cleaned & ~grid, grid), None
        weak = weak & ~cv2.dilate(grid.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    frames = _frames(cleaned)
    if frames.any():
        cleaned, radius = cleaned & ~frames, None
        weak = weak & ~cv2.dilate(frames.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    res = count_mask(
        cleaned, weak, stalks=stalks, prior_area=prior_area, scale=scale, radius=radius
    )
    res.structure = structure
    return res


def count_plants(
    data: bytes,
    *,
    prior_area_full: float | None = None,
    work_long_side: int = 1000,
    lattice: bool = True,
) -> tuple[PlantCount, np.ndarray]:
    """Count the live plants of an encoded photo. ``prior_area_full``: the location's calibrated
    plant area in full-resolution pixels (a prior only); ``lattice``: False skips step 5 (the
    tuning report compares both). Returns the count and the work RGB."""
    im = Image.open(io.BytesIO(data))
    long_side = max(im.size)
    factor = 1
    while factor < 8 and long_side / (factor * 2) >= work_long_side * 0.95:
        factor *= 2
    rgb, scale = decode_scaled(data, factor)
    prior = prior_area_full / (scale * scale) if prior_area_full else None
    # white balance measured once, at the first pass: a finer decode shows the references
    # (perlite specks, label edges) differently, and the plants must not change colour with it
    gains = wb_gains(rgb)
    res = count_rgb(rgb, prior_area=prior, scale=scale, gains=gains)
    # finer resolution when the plants are small at this one
    while res.count and res.radius < MIN_RADIUS_WORK and factor > 1:
        need = res.radius * factor
        new = factor
        while new > 2 and need / new < MIN_RADIUS_WORK:
            new //= 2
        if new == factor:
            break
        factor = new
        rgb, scale = decode_scaled(data, factor)
        prior = prior_area_full / (scale * scale) if prior_area_full else None
        res = count_rgb(
            rgb,
            prior_area=prior,
            scale=scale,
            smooth=5 if factor == 1 else 3,
            gains=gains,
            structure=res.structure,
        )
    if lattice and res.mask is not None and res.mask.any():
        lat = lattice_count(rgb, res.mask, res.count)
        if lat is not None:
            res = on_lattice(res, lat)
    return res, rgb


def on_lattice(res: PlantCount, lat: Lattice) -> PlantCount:
    """``res`` recounted as one plant per occupied cell of ``lat`` (boxes: the cells)."""
    area = float(res.mask.sum()) / lat.occupied if res.mask is not None else res.plant_area
    return replace(
        res,
        count=lat.occupied,
        plant_area=area,
        radius=math.sqrt(area / math.pi),
        centers=[((x0 + x1) / 2, (y0 + y1) / 2, 1) for x0, y0, x1, y1 in lat.boxes],
        boxes=[(x0, y0, x1, y1, 1) for x0, y0, x1, y1 in lat.boxes],
        lattice=True,
    )
