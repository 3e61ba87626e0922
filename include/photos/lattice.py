"""Plants on a lattice: count the occupied cells of a tray's plug grid or of rows in a box.

Nursery plants sit on a grid (plug cells, rows in a box), as PlantCV's tray workflows assume
when they place one region of interest per cell. When a photo shows such a grid, its period
gives a count that does not depend on how a plant looks: a herb whose leaves hang apart on
invisible stalks, or a row of touching rosettes that merge into one blob, is still one plant
per occupied cell.

1. **Period** from the plants: the autocorrelation (via the FFT) of the live mask, less its
   median over each ring of lags (what repeats at some angles only: plants scattered with a
   minimum spacing repeat at every angle alike). Its central lobe is cut at the first minimum
   of the radial profile; a lattice vector also repeats at twice its length (a shoulder or a
   beat does not), and the shortest strong one is ``a``, the shortest strong one not parallel
   to it ``b``.
2. **Phase** from the plants: the live mask is demodulated along each reciprocal vector (a local,
   Gaussian-weighted Fourier coefficient), so every pixel knows its lattice coordinates
   ``(u, v)`` with the plant centres at integers; a slightly curved or rotated tray is followed
   because the phase is local.
3. **Cells**: pixels within 0.3 of a node in both coordinates form one cell each (cells cut by
   the frame's edge are not counted); a cell is occupied when it holds at least a share of the
   typical occupied cell's plant pixels, counted at the mask's own resolution.

:func:`lattice_count` decides whether the lattice may replace the counter's own count: only
when the plants repeat strongly at both vectors, when the photo's grey texture (cell walls,
soil, the plants' shading: independent of the colour mask) has the same period, and when the
two counts disagree. When the texture's period is near the plants' but not the same (plants
touching across the cells make one mat whose autocorrelation peak is pulled short), the plants are
measured again at the texture's vectors (:func:`plant_lattice`). Thresholds were chosen on half
of the tune batches and checked on the other half and on scattered (no-grid) layouts; see
``docs/ARCHITECTURE.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

MAX_SIDE = 1100  # work size of the period search, px (long side)
PHASE_PITCH = 16.0  # a pitch is at most this many px where the phase is measured
HIGHPASS_SIGMA = 30.0  # grey-level background removed before the texture's autocorrelation, px
PEAK_SHARE = 0.6  # lattice peaks are at least this share of the strongest off-centre peak
NOT_PARALLEL = 0.5  # |cos| between the two lattice vectors at most this
HALF_SHARE = 0.5  # a peak at half a lattice vector this share of its height halves the vector
SQUARE = 1.5  # the longer lattice vector is at most this many times the shorter (plug cells)
PHASE_SIGMA = 1.5  # local demodulation window, lattice pitches
NODE_HALF = 0.3  # a cell: within this share of a pitch of its node, in both coordinates
OCCUPIED = 0.3  # an occupied cell holds this share of the typical occupied cell's plant px
MIN_PX = 6  # ... and at least this many plant px (the counter's smallest part)
WHOLE_CELL = 0.5  # a cell smaller than this share of the median cell is cut by the edge
# when the lattice replaces the counter (chosen on tune batches, see the module doc)
REPEAT_MIN = 0.12  # the plants' anisotropic autocorrelation at both vectors at least this
AGREE = 0.08  # texture and plant vectors agree within this share of their length
RETRY = 0.2  # ... or are this near: the plants are measured again at the texture's vectors
KEEP = (0.95, 1.05)  # the counter's count stays within this ratio of the lattice's


@dataclass(frozen=True)
class Lattice:
    """A grid of plants found in a mask: two lattice vectors (px at the mask's size), how much
    the plants repeat at each (0-1), the whole cells seen and the occupied ones."""

    a: tuple[float, float]
    b: tuple[float, float]
    repeat_a: float
    repeat_b: float
    cells: int
    occupied: int
    boxes: tuple[tuple[int, int, int, int], ...]  # occupied cells: x0, y0, x1, y1 (mask px)

    @property
    def pitch(self) -> float:
        return math.hypot(*self.a)


def _resize(img: np.ndarray, f: float) -> np.ndarray:
    if f >= 1.0:
        return img
    h, w = img.shape[:2]
    return cv2.resize(
        img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA
    )


def _autocorrelation(g: np.ndarray, r: int) -> np.ndarray:
    """Normalised autocorrelation of ``g`` (zero mean) for lags up to ``r`` px, lag (0, 0) at
    the centre of the returned (2r+1)^2 window; each lag is divided by its overlap so long lags
    are not damped."""
    h, w = g.shape
    fh, fw = cv2.getOptimalDFTSize(h + r), cv2.getOptimalDFTSize(w + r)
    pad = np.zeros((fh, fw), np.float32)
    pad[:h, :w] = g
    f = cv2.dft(pad, flags=cv2.DFT_COMPLEX_OUTPUT)
    ac = cv2.idft(cv2.mulSpectrums(f, f, 0, conjB=True), flags=cv2.DFT_SCALE | cv2.DFT_REAL_OUTPUT)
    lags = np.arange(-r, r + 1)
    win = ac[np.ix_(lags % fh, lags % fw)]
    overlap = np.outer(h - np.abs(lags), w - np.abs(lags)).astype(np.float32)
    win = win / overlap
    return win / max(float(win[r, r]), 1e-9)


def _normalised(g: np.ndarray) -> np.ndarray | None:
    g = g - float(g.mean())
    sd = float(g.std())
    return g / sd if sd > 1e-6 else None


def _lags(r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dy, dx, length)`` of every lag of a (2r+1)^2 autocorrelation window."""
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return yy, xx, np.hypot(xx, yy)


def _anisotropic(win: np.ndarray) -> np.ndarray:
    """``win`` less its median over each ring of lags: what repeats at some angles only."""
    ri = np.rint(_lags(win.shape[0] // 2)[2]).astype(np.int32)
    order = np.argsort(ri.ravel(), kind="stable")
    rs, vs = ri.ravel()[order], win.ravel()[order]
    starts = np.searchsorted(rs, np.arange(ri.max() + 2))
    med = np.array(
        [np.median(vs[starts[k] : starts[k + 1]]) for k in range(ri.max() + 1)], np.float32
    )
    return win - med[ri]


def _peak(win: np.ndarray, v) -> float | None:
    """The highest value of ``win`` within one px of lag ``v``, None outside the window."""
    r = win.shape[0] // 2
    y, x = r + round(v[1]), r + round(v[0])
    if not (1 <= y < 2 * r and 1 <= x < 2 * r):
        return None
    return float(win[y - 1 : y + 2, x - 1 : x + 2].max())


def _lattice_vectors(win: np.ndarray, lobe_of: np.ndarray | None = None):
    """The two shortest strong, non-parallel peaks of the autocorrelation window ``win``
    (lags as (dx, dy)) and their heights, or None. ``lobe_of``: the window whose radial
    profile ends the central lobe (default ``win``)."""
    r = win.shape[0] // 2
    yy, xx, rr = _lags(r)
    # the central lobe ends at the first minimum of the radial mean
    ri = rr.astype(np.int32).ravel()
    src = win if lobe_of is None else lobe_of
    prof = np.bincount(ri, src.ravel()) / np.maximum(np.bincount(ri), 1)
    lobe = next((i for i in range(2, len(prof) - 1) if prof[i] <= prof[i + 1]), None)
    if lobe is None or lobe >= r // 2:
        return None
    local = win == cv2.dilate(win, np.ones((5, 5), np.uint8))
    cand = local & (rr > lobe) & (rr <= r) & (yy >= 0) & (win > 0)
    cand &= ~((yy == 0) & (xx < 0))  # one of each +/- pair
    ys, xs = np.nonzero(cand)
    if len(ys) < 2:
        return None
    vecs = np.stack([xx[ys, xs], yy[ys, xs]], axis=1).astype(np.float64)
    vals = win[ys, xs]
    # a lattice vector repeats: the autocorrelation also peaks at twice it (a shoulder or a
    # beat between the period and something else does not); beyond the window, it stands alone
    twice = [_peak(win, 2 * v) for v in vecs]
    vals = np.minimum(vals, [v if t is None else t for v, t in zip(vals, twice, strict=True)])
    strong = vals >= PEAK_SHARE * float(vals.max())
    vecs, vals = vecs[strong], vals[strong]
    order = np.argsort(np.hypot(vecs[:, 0], vecs[:, 1]))
    vecs, vals = vecs[order], vals[order]
    a, va = vecs[0], float(vals[0])
    na = math.hypot(*a)
    for v, val in zip(vecs[1:], vals[1:], strict=True):
        cos = abs(float(v @ a)) / (na * math.hypot(*v))
        if cos < NOT_PARALLEL:
            b, vb = v, float(val)
            # only an oblong cell is checked for a missed row (square plug cells stay as found)
            if math.hypot(*b) > SQUARE * na:
                b, vb = _halved(win, b, vb, lobe)
            return a, b, va, vb
    return None


def _halved(win: np.ndarray, v: np.ndarray, val: float, lobe: int) -> tuple[np.ndarray, float]:
    """``v`` halved when the autocorrelation also peaks near ``v / 2`` (every other row of a
    tray can look alike, e.g. under a side light, and then the doubled period is the stronger)."""
    r = win.shape[0] // 2
    hx, hy = round(v[0] / 2), round(v[1] / 2)
    if math.hypot(hx, hy) <= lobe:
        return v, val
    y0, x0 = r + hy - 1, r + hx - 1
    patch = win[max(0, y0) : y0 + 3, max(0, x0) : x0 + 3]
    if patch.size == 0 or float(patch.max()) < HALF_SHARE * val:
        return v, val
    dy, dx = np.unravel_index(int(np.argmax(patch)), patch.shape)
    return np.array([max(0, x0) + dx - r, max(0, y0) + dy - r], np.float64), float(patch.max())


def _square_enough(a: np.ndarray, b: np.ndarray) -> bool:
    la, lb = math.hypot(*a), math.hypot(*b)
    return max(la, lb) <= SQUARE * min(la, lb)


def texture_vectors(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The lattice vectors of the photo's grey texture (px at ``rgb``'s size), or None: cell
    walls, soil and the plants' shading, independent of the colour mask."""
    h, w = rgb.shape[:2]
    f = min(1.0, MAX_SIDE / max(h, w))
    g = _resize(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY), f).astype(np.float32)
    hp = _normalised(g - cv2.GaussianBlur(g, (0, 0), HIGHPASS_SIGMA * f * max(h, w) / MAX_SIDE))
    if hp is None:
        return None
    found = _lattice_vectors(_autocorrelation(hp, int(min(g.shape) / 3)))
    if found is None or not _square_enough(found[0], found[1]):
        return None
    return found[0] / f, found[1] / f


def find_lattice(
    mask: np.ndarray, vectors: tuple[np.ndarray, np.ndarray] | None = None
) -> Lattice | None:
    """The grid of the live plants ``mask`` (bool), or None when they show no two-dimensional
    period. ``vectors``: the grid's vectors (px at the mask's size) when already known (the
    texture's); the plants' repeat is then measured at them."""
    h, w = mask.shape
    f = min(1.0, MAX_SIDE / max(h, w))
    mf = mask.astype(np.float32)
    g = _normalised(_resize(mf, f))
    if g is None:
        return None
    win = _autocorrelation(g, int(min(g.shape) / 3))
    aniso = _anisotropic(win)
    if vectors is None:
        found = _lattice_vectors(aniso, lobe_of=win)
        if found is None or not _square_enough(found[0], found[1]):
            return None
        a, b = found[0], found[1]
    else:
        a, b = np.asarray(vectors[0], np.float64) * f, np.asarray(vectors[1], np.float64) * f
    repeat_a, repeat_b = _peak(aniso, a) or 0.0, _peak(aniso, b) or 0.0
    # the phase at a scale where a pitch is PHASE_PITCH px (the windows are then small)
    f2 = f * min(1.0, PHASE_PITCH / math.hypot(*a))
    basis = np.array([a, b]).T * (f2 / f)  # columns: lattice vectors (x, y)
    if abs(np.linalg.det(basis)) < 4:
        return None
    recip = np.linalg.inv(basis)  # rows: reciprocal vectors, (u, v) = recip @ (x, y)
    m = _resize(mf, f2)
    sigma = PHASE_SIGMA * math.hypot(*basis[:, 0])
    sig = m - cv2.GaussianBlur(m, (0, 0), 2 * sigma)
    yy, xx = np.mgrid[0 : m.shape[0], 0 : m.shape[1]].astype(np.float32)
    near = np.ones(m.shape, bool)
    for k in recip:
        ph = (2 * np.pi) * (k[0] * xx + k[1] * yy)
        c = cv2.GaussianBlur(sig * np.cos(ph), (0, 0), sigma)
        s = cv2.GaussianBlur(sig * np.sin(ph), (0, 0), sigma)
        u = (ph - np.arctan2(s, c)) / (2 * np.pi)
        near &= np.abs(u - np.round(u)) < NODE_HALF
    n, labels, stats, _ = cv2.connectedComponentsWithStats(near.astype(np.uint8), connectivity=4)
    if n <= 2:
        return None
    size = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    whole = size >= WHOLE_CELL * np.median(size)
    # plant pixels per cell counted at the mask's own resolution (a seedling is a few px there
    # and a fraction of one at the phase scale)
    ri = np.minimum((np.arange(h) * f2).astype(np.int64), labels.shape[0] - 1)
    ci = np.minimum((np.arange(w) * f2).astype(np.int64), labels.shape[1] - 1)
    px = np.bincount(labels[np.ix_(ri, ci)][mask], minlength=n)[1:].astype(np.float64)
    seen = whole & (px >= MIN_PX)
    if not seen.any():
        return None
    occupied = seen & (px >= OCCUPIED * float(np.median(px[seen])))
    boxes = tuple(
        (
            int(x / f2),
            int(y / f2),
            min(w, math.ceil((x + bw) / f2)),
            min(h, math.ceil((y + bh) / f2)),
        )
        for x, y, bw, bh in stats[1:][occupied, :4].tolist()
    )
    return Lattice(
        a=(float(a[0] / f), float(a[1] / f)),
        b=(float(b[0] / f), float(b[1] / f)),
        repeat_a=repeat_a,
        repeat_b=repeat_b,
        cells=int(whole.sum()),
        occupied=int(occupied.sum()),
        boxes=boxes,
    )


def agrees(lat: Lattice, vecs: tuple[np.ndarray, np.ndarray] | None, tol: float = AGREE) -> bool:
    """Both of the lattice's vectors are (up to sign) one of ``vecs``, within ``tol`` of their
    length."""
    if vecs is None:
        return False

    def close(u: tuple[float, float]) -> bool:
        return any(min(math.dist(u, v), math.dist(u, -v)) <= tol * math.hypot(*u) for v in vecs)

    return close(lat.a) and close(lat.b)


def may_replace(
    lat: Lattice,
    count: int,
    *,
    repeat_min: float = REPEAT_MIN,
    keep: tuple[float, float] = KEEP,
) -> bool:
    """The plants repeat strongly at both vectors and ``count`` is off the occupied cells by
    more than ``keep`` (the texture check, :func:`agrees`, comes on top)."""
    if lat.occupied <= 0 or min(lat.repeat_a, lat.repeat_b) < repeat_min:
        return False
    return not keep[0] * lat.occupied <= count <= keep[1] * lat.occupied


def plant_lattice(rgb: np.ndarray, mask: np.ndarray) -> tuple[Lattice | None, bool]:
    """The lattice of the live ``mask`` (the plants of ``rgb``, same size) and whether the grey
    texture has it too. When the two periods are near but not within AGREE (plants touching
    across the cells pull the mask's peak towards the centre), the texture's vectors, which the
    walls and soil set, are measured again on the plants."""
    lat = find_lattice(mask)
    if lat is None:
        return None, False
    tex = texture_vectors(rgb)
    if agrees(lat, tex):
        return lat, True
    if agrees(lat, tex, RETRY):
        again = find_lattice(mask, vectors=tex)
        if again is not None:
            return again, True
    return lat, False


def lattice_count(rgb: np.ndarray, mask: np.ndarray, count: int) -> Lattice | None:
    """The lattice of the live ``mask`` (the plants of ``rgb``, same size) when its occupied
    cells should replace the counter's ``count``, else None: the grey texture has the same
    lattice (:func:`plant_lattice`), the plants repeat strongly at both vectors and the counts
    differ by more than KEEP."""
    lat, confirmed = plant_lattice(rgb, mask)
    return lat if lat is not None and confirmed and may_replace(lat, count) else None
