"""Refine tile positions from the tiles' overlaps (what ASHLAR, MIST and BigStitcher do).

1. Pairs: edge neighbours, i.e. tiles that share most of a side and whose stage rectangles overlap,
   or would once corrected by up to ``max_shift_px`` (a 5 % overlap with a 15-px stage error may
   show a gap on the stage); corner-only overlaps are left out.
2. Quick try: the overlap strip at the stage offset, Hann-windowed and phase-correlated; taken when
   the re-aligned strips correlate at least ``QUICK_ACCEPT`` (the usual case: as cheap as before).
   Otherwise the pair's bands that can overlap (the expected overlap widened by ``max_shift_px``, the long
   side cut to ``MAX_STRIP_PX``) are phase-correlated (float32 real FFTs, zero-padded so that no
   shift of the search window wraps around: the narrow side of a low overlap is only a few dozen
   px). The ``PEAKS`` strongest peaks within ``max_shift_px`` are checked by the normalised
   cross-correlation of the overlap they imply, the best is refined a pixel at a time. Whether it
   is a match at all is judged on the strips' edges (differences along both axes): smooth content correlates at any
   small misplacement and would pull butting tiles together. A pair is kept when both strips have
   texture and that correlation is at least ``min_correlation``.
3. Global solve: weighted least squares over all tile positions, every kept pair an equation
   ``p_b - p_a = stage offset + measured shift`` (weight = its correlation) plus a weak pull of every
   tile to its stage position (so tiles without a usable overlap keep it, and the mosaic keeps its
   place). Pairs that disagree with the solution by more than ``OUTLIER_PX`` are dropped and the
   system is solved again.

One channel is measured (the one with the most texture on a sample of tiles); the same positions
place every channel. The result is a new :class:`MosaicPlan` with integer positions (rounded
together: the whole-pixel links leave them one common fraction) and the canvas origin moved to keep
positions non-negative. ``bench/eval_reef_register.py`` checks it on generated mosaics it was not
tuned on.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import replace
from functools import lru_cache
from typing import Any

import numpy as np

from include.reef.acquisition import MosaicPlan, Placement

MIN_OVERLAP_PX = 8  # of a measured overlap (its short side); 5 % of a 256-px tile is 13 px
OUTLIER_PX = 3.0
PRIOR_WEIGHT = 1e-3
MIN_STD = 0.25  # grey levels: flatter strips have no texture (a match must also correlate)
MIN_EDGE_ENERGY = 16.0  # summed squared grey-level differences (16 one-level steps)
MAX_STRIP_PX = 1024  # of an overlap strip's long side used for the correlation
PEAKS = 6  # phase-correlation peaks checked by the re-aligned strips' correlation
QUICK_ACCEPT = 0.9  # a quick match (stage-offset strip) this well correlated needs no search


def _key(p: Placement) -> tuple[str, int]:
    return (p.region, p.fov)


def _pairs(pos: np.ndarray, th: int, tw: int, max_shift: int = 0) -> list[tuple[int, int]]:
    """Edge neighbours: tiles that share most of a side and whose stage rectangles overlap, or
    would once corrected by up to ``max_shift`` px (a low overlap with a stage error)."""
    out = []
    n = len(pos)
    reach = MIN_OVERLAP_PX - max_shift
    for a in range(n):
        for b in range(a + 1, n):
            dy, dx = pos[b] - pos[a]
            oy, ox = th - abs(dy), tw - abs(dx)
            # a strip along a whole side (corner-only overlaps add little)
            if (oy >= th // 2 and ox >= reach) or (ox >= tw // 2 and oy >= reach):
                out.append((a, b))
    return out


def _strips(
    ta: np.ndarray, tb: np.ndarray, dy: int, dx: int, min_px: int = MIN_OVERLAP_PX
) -> tuple[np.ndarray, np.ndarray] | None:
    """The overlap of tile a and tile b (b placed at (dy, dx) relative to a), from each tile."""
    th, tw = ta.shape
    y0, y1 = max(0, dy), min(th, dy + th)
    x0, x1 = max(0, dx), min(tw, dx + tw)
    if y1 - y0 < min_px or x1 - x0 < min_px:
        return None
    return ta[y0:y1, x0:x1], tb[y0 - dy : y1 - dy, x0 - dx : x1 - dx]


def _edges(a: np.ndarray) -> np.ndarray:
    """The strip's differences along both axes: what a match is judged on. Smooth content
    (illumination, wide gradients) correlates at any small misplacement; its edges do not."""
    return np.concatenate([np.diff(a, axis=0).ravel(), np.diff(a, axis=1).ravel()])


def _match(a: np.ndarray, b: np.ndarray) -> float:
    """How well two views of the same overlap agree: the NCC of their edges. Sparse content (a few
    cells on a clean background) has few edges: their energy, not their spread per pixel, must
    reach ``MIN_EDGE_ENERGY``."""
    return _ncc(_edges(a), _edges(b), min_energy=MIN_EDGE_ENERGY)


def _ncc(a: np.ndarray, b: np.ndarray, min_energy: float | None = None) -> float:
    """Normalised cross-correlation; 0 when either side is flat (under ``MIN_STD`` per element,
    or under ``min_energy`` in all)."""
    a = a - a.mean()
    b = b - b.mean()
    saa, sbb = float((a * a).sum()), float((b * b).sum())
    if min(saa, sbb) < (MIN_STD**2 * a.size if min_energy is None else min_energy):
        return 0.0
    return float((a * b).sum()) / float(np.sqrt(saa * sbb))


@lru_cache(maxsize=16)
def _window(h: int, w: int) -> np.ndarray:
    return np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)


def _quick_pair(
    ta: np.ndarray, tb: np.ndarray, dy: int, dx: int, max_shift: int
) -> tuple[float, float, float] | None:
    """The quick try: the overlap strip at the stage offset, Hann-windowed and phase-correlated,
    the re-aligned strips' correlation. Right whenever the correction is well inside the strip
    (the usual 10 % of a 2048-px tile); :func:`measure_pair` takes it only when that correlation
    is convincing (``QUICK_ACCEPT``)."""
    from scipy import fft

    st = _strips(ta, tb, dy, dx, 2 * max_shift + MIN_OVERLAP_PX)  # no shift can wrap around
    if st is None:
        return None
    a, b = (_crop_long(x).astype(np.float32) for x in st)
    if a.std() < MIN_STD or b.std() < MIN_STD:
        return None
    win = _window(*a.shape)
    h, w = fft.next_fast_len(a.shape[0], real=True), fft.next_fast_len(a.shape[1], real=True)
    fa = fft.rfft2((a - a.mean()) * win, s=(h, w), workers=1)
    fb = fft.rfft2((b - b.mean()) * win, s=(h, w), workers=1)
    cross = fa * np.conj(fb)
    cross /= np.abs(cross) + 1e-6
    corr = fft.irfft2(cross, s=(h, w), workers=1)
    y, x = np.unravel_index(int(np.argmax(corr)), corr.shape)
    sy, sx = (y - h if y > h // 2 else y), (x - w if x > w // 2 else x)
    if abs(sy) > max_shift or abs(sx) > max_shift:
        return None
    again = _strips(ta, tb, dy + sy, dx + sx)
    if again is None:
        return None
    c = _match(*(_crop_long(x).astype(np.float32) for x in again))
    return float(sy), float(sx), c


def _band(th: int, tw: int, dy: int, dx: int, m: int) -> tuple[int, int, int, int]:
    """Rows/columns of tile a that can overlap tile b (expected at (dy, dx), off by up to ``m``
    px), the long side cut to its middle ``MAX_STRIP_PX``."""
    y0, y1 = max(0, dy - m), min(th, dy + th + m)
    x0, x1 = max(0, dx - m), min(tw, dx + tw + m)
    if y1 - y0 >= x1 - x0 and y1 - y0 > MAX_STRIP_PX:
        y0 += (y1 - y0 - MAX_STRIP_PX) // 2
        y1 = y0 + MAX_STRIP_PX
    elif x1 - x0 > y1 - y0 and x1 - x0 > MAX_STRIP_PX:
        x0 += (x1 - x0 - MAX_STRIP_PX) // 2
        x1 = x0 + MAX_STRIP_PX
    return y0, y1, x0, x1


def _candidate_shifts(
    sa: np.ndarray, sb: np.ndarray, expect: tuple[int, int], m: int
) -> list[tuple[int, int]]:
    """The ``PEAKS`` strongest phase-correlation peaks ``s`` (``sa[i] ~ sb[i - s]``) within ``m``
    px of ``expect``. The bands are zero-padded just enough that no shift of that window wraps
    around onto another (the narrow side of a low overlap is only a few dozen px): along an axis,
    ``P >= max(len_a - (e - m), len_b + e + m)``."""
    from scipy import fft

    def size(i: int) -> int:
        e = expect[i]
        need = max(sa.shape[i] - (e - m), sb.shape[i] + e + m, sa.shape[i], sb.shape[i])
        return fft.next_fast_len(need, real=True)

    h, w = size(0), size(1)
    fa = fft.rfft2(sa - sa.mean(), s=(h, w), workers=1)
    fb = fft.rfft2(sb - sb.mean(), s=(h, w), workers=1)
    cross = fa * np.conj(fb)
    cross /= np.abs(cross) + 1e-6
    corr = fft.irfft2(cross, s=(h, w), workers=1)
    ys = np.arange(expect[0] - m, expect[0] + m + 1)
    xs = np.arange(expect[1] - m, expect[1] + m + 1)
    win = corr[np.ix_(ys % h, xs % w)]
    top = np.argsort(win, axis=None)[::-1][:PEAKS]
    return [(int(ys[i // len(xs)]), int(xs[i % len(xs)])) for i in top]


def measure_pair(
    ta: np.ndarray, tb: np.ndarray, dy: int, dx: int, max_shift: int
) -> tuple[float, float, float] | None:
    """(shift_y, shift_x, correlation) such that b truly sits at (dy + sy, dx + sx) from a, or None
    when the overlap has no texture or no convincing peak.

    The bands of both tiles that can overlap (the expected overlap widened by ``max_shift``) are
    phase-correlated; the strongest peaks within ``max_shift`` are checked by the correlation of
    the re-aligned overlap itself, the best one wins."""
    th, tw = ta.shape
    m = int(max_shift)
    quick = _quick_pair(ta, tb, dy, dx, m)
    if quick is not None and quick[2] >= QUICK_ACCEPT:
        return quick
    ay0, ay1, ax0, ax1 = _band(th, tw, dy, dx, m)
    by0, by1, bx0, bx1 = _band(th, tw, -dy, -dx, m)
    if min(ay1 - ay0, ax1 - ax0, by1 - by0, bx1 - bx0) < MIN_OVERLAP_PX:
        return None
    sa = ta[ay0:ay1, ax0:ax1].astype(np.float32)
    sb = tb[by0:by1, bx0:bx1].astype(np.float32)
    if sa.std() < MIN_STD or sb.std() < MIN_STD:
        return None
    # a[u] == b[u - d]  =>  sa[i] == sb[i - c] with c = d - (a0 - b0)
    off = (ay0 - by0, ax0 - bx0)
    scores: dict[tuple[int, int], float | None] = {}

    def score(cy: int, cx: int) -> float | None:
        """NCC of the overlap that band shift (cy, cx) implies (within the bands), or None."""
        if (cy, cx) not in scores:
            ya, yb = max(0, cy), min(sa.shape[0], sb.shape[0] + cy)
            xa, xb = max(0, cx), min(sa.shape[1], sb.shape[1] + cx)
            c = None
            if yb - ya >= MIN_OVERLAP_PX and xb - xa >= MIN_OVERLAP_PX:
                c = _ncc(sa[ya:yb, xa:xb], sb[ya - cy : yb - cy, xa - cx : xb - cx])
            scores[(cy, cx)] = c
        return scores[(cy, cx)]

    expect = (dy - off[0], dx - off[1])
    best: tuple[int, int] | None = None
    for cand in _candidate_shifts(sa, sb, expect, m):
        c = score(*cand)
        if c is not None and (best is None or c > (score(*best) or -1.0)):
            best = cand
    if best is None:
        return None
    # a broad peak (smooth content) can sit a pixel off: climb the overlap's correlation
    for _ in range(2 * m):
        here = score(*best) or -1.0
        nxt = best
        for ey, ex in ((-1, 0), (1, 0), (0, -1), (0, 1)):  # a diagonal step takes two
            cand = (best[0] + ey, best[1] + ex)
            if max(abs(cand[0] - expect[0]), abs(cand[1] - expect[1])) > m:
                continue
            c = score(*cand)
            if c is not None and c > here + 1e-9:
                nxt, here = cand, c
        if nxt == best:
            break
        best = nxt
    # the shift is chosen on the intensities (a smooth landscape to climb); whether it is a match
    # at all is judged on the edges (smooth content alone correlates at any small misplacement)
    cy, cx = best
    ya, yb = max(0, cy), min(sa.shape[0], sb.shape[0] + cy)
    xa, xb = max(0, cx), min(sa.shape[1], sb.shape[1] + cx)
    c = _match(sa[ya:yb, xa:xb], sb[ya - cy : yb - cy, xa - cx : xb - cx])
    sy, sx = cy + off[0] - dy, cx + off[1] - dx
    return float(sy), float(sx), c


def _crop_long(strip: np.ndarray, keep: int = MAX_STRIP_PX) -> np.ndarray:
    """The middle ``keep`` pixels of a strip along its long side (enough for the shift, and half
    the FFT work for 2048-px tiles)."""
    h, w = strip.shape
    if h >= w and h > keep:
        y0 = (h - keep) // 2
        return strip[y0 : y0 + keep]
    if w > h and w > keep:
        x0 = (w - keep) // 2
        return strip[:, x0 : x0 + keep]
    return strip


def solve_positions(
    stage: np.ndarray, links: list[tuple[int, int, float, float, float]]
) -> tuple[np.ndarray, list[tuple[int, int, float, float, float]]]:
    """Least-squares positions from ``links`` (a, b, dy, dx, weight) with a weak pull to ``stage``;
    links that disagree by more than ``OUTLIER_PX`` are dropped (twice at most)."""
    n = len(stage)
    kept = list(links)
    pos = stage.astype(float)
    for _ in range(3):
        A = np.zeros((len(kept) + n, n))
        by = np.zeros(len(kept) + n)
        bx = np.zeros(len(kept) + n)
        w = np.zeros(len(kept) + n)
        for r, (a, b, dy, dx, wt) in enumerate(kept):
            A[r, a], A[r, b] = -1.0, 1.0
            by[r], bx[r], w[r] = dy, dx, wt
        for i in range(n):
            r = len(kept) + i
            A[r, i] = 1.0
            by[r], bx[r], w[r] = stage[i, 0], stage[i, 1], PRIOR_WEIGHT
        sw = np.sqrt(w)[:, None]
        sol_y = np.linalg.lstsq(A * sw, by * sw[:, 0], rcond=None)[0]
        sol_x = np.linalg.lstsq(A * sw, bx * sw[:, 0], rcond=None)[0]
        pos = np.stack([sol_y, sol_x], axis=1)
        bad = [
            k
            for k in kept
            if max(abs(pos[k[1], 0] - pos[k[0], 0] - k[2]), abs(pos[k[1], 1] - pos[k[0], 1] - k[3]))
            > OUTLIER_PX
        ]
        if not bad:
            break
        worst = max(
            bad,
            key=lambda k: (
                abs(pos[k[1], 0] - pos[k[0], 0] - k[2]) + abs(pos[k[1], 1] - pos[k[0], 1] - k[3])
            ),
        )
        kept.remove(worst)
    return pos, kept


def _round_together(pos: np.ndarray) -> np.ndarray:
    """Integer positions. The links are whole pixels, so the solved positions share one fraction
    (the weak pull to the stage moves the whole mosaic by a fraction): that common fraction (the
    circular mean) is taken off before rounding, else tiles at x.5 round apart by one pixel."""
    ang = 2 * np.pi * pos
    frac = np.angle(np.exp(1j * ang).mean(axis=0)) / (2 * np.pi)
    return np.round(pos - frac).astype(int)


def _texture(img: np.ndarray) -> float:
    h, w = img.shape
    y0, x0 = max(0, h // 2 - 256), max(0, w // 2 - 256)
    f = img[y0 : y0 + 512, x0 : x0 + 512].astype(np.float32)  # a central crop is enough
    return float(np.abs(np.diff(f, axis=0)).mean() + np.abs(np.diff(f, axis=1)).mean())


def register_plan(plan: MosaicPlan, opts: Any) -> tuple[MosaicPlan, dict[str, Any]]:
    """A plan whose tile positions are refined from the overlaps, and a report of what was done."""
    from concurrent.futures import ThreadPoolExecutor

    from include.reef.stitch import read_tile, transform_tile

    t0 = time.perf_counter()
    th, tw = plan.tile_shape
    names = list(plan.channels)
    keys = sorted({_key(p) for pl in plan.channels.values() for p in pl})
    index = {k: i for i, k in enumerate(keys)}
    by_channel = {ch: {_key(p): p for p in pl} for ch, pl in plan.channels.items()}
    stage = np.zeros((len(keys), 2))
    for k, i in index.items():
        p = next(by_channel[ch][k] for ch in names if k in by_channel[ch])
        stage[i] = (p.y, p.x)
    pairs = _pairs(stage.astype(int), th, tw, int(opts.max_shift_px))
    report: dict[str, Any] = {"tiles": len(keys), "pairs": len(pairs), "used_pairs": 0}
    if not pairs:
        report["seconds"] = round(time.perf_counter() - t0, 3)
        return plan, report

    def load(ch: str, k: tuple[str, int]) -> np.ndarray | None:
        p = by_channel[ch].get(k)
        return None if p is None else transform_tile(read_tile(p.path), opts)

    # the channel with the most texture on a few tiles carries the measurement
    sample = keys[:: max(1, len(keys) // 4)][:4]
    ref = max(
        names,
        key=lambda ch: sum(_texture(t) for t in (load(ch, k) for k in sample) if t is not None),
    )
    # pairs in raster order of their later tile; a tile is decoded when first needed and dropped
    # after its last pair: memory holds about two rows of tiles, not the whole mosaic
    rank = {i: r for r, i in enumerate(sorted(range(len(keys)), key=lambda i: tuple(stage[i])))}
    pairs.sort(key=lambda ab: (max(rank[ab[0]], rank[ab[1]]), min(rank[ab[0]], rank[ab[1]])))
    remaining = Counter(i for ab in pairs for i in ab)
    cache: dict[int, Future[np.ndarray | None]] = {}
    links: list[tuple[int, int, float, float, float]] = []
    with ThreadPoolExecutor(max(1, int(getattr(opts, "workers", 2)))) as pool:

        def one(ab: tuple[int, int]) -> tuple[int, int, float, float, float] | None:
            a, b = ab
            ta, tb = cache[a].result(), cache[b].result()
            if ta is None or tb is None:
                return None
            dy, dx = (int(v) for v in stage[b] - stage[a])
            m = measure_pair(ta, tb, dy, dx, int(opts.max_shift_px))
            if m is None or m[2] < float(opts.min_correlation):
                return None
            return a, b, dy + m[0], dx + m[1], m[2]

        batch = 16
        for i in range(0, len(pairs), batch):
            chunk = pairs[i : i + batch]
            for ab in chunk:  # decodes are queued before the pairs that wait for them
                for t in ab:
                    if t not in cache:
                        cache[t] = pool.submit(load, ref, keys[t])
            links += [r for r in pool.map(one, chunk) if r is not None]
            for ab in chunk:
                for t in ab:
                    remaining[t] -= 1
                    if remaining[t] == 0:
                        del cache[t]
    pos, kept = solve_positions(stage, links)
    ipos = _round_together(pos)
    min_y, min_x = int(ipos[:, 0].min()), int(ipos[:, 1].min())
    ipos -= (min_y, min_x)
    px = plan.pixel_size_um
    origin = (plan.origin_mm[0] + min_x * px / 1000.0, plan.origin_mm[1] + min_y * px / 1000.0)
    channels = {
        ch: [replace(p, y=int(ipos[index[_key(p)], 0]), x=int(ipos[index[_key(p)], 1])) for p in pl]
        for ch, pl in plan.channels.items()
    }
    shape = (int(ipos[:, 0].max()) + th, int(ipos[:, 1].max()) + tw)
    moved = np.abs(pos - stage - (pos - stage).mean(axis=0))
    report.update(
        {
            "reference_channel": ref,
            "used_pairs": len(kept),
            "rejected_pairs": len(pairs) - len(kept),
            "max_correction_px": round(float(moved.max()), 2),
            "seconds": round(time.perf_counter() - t0, 3),
            "positions": {f"{k[0]}_{k[1]}": [int(v) for v in ipos[i]] for k, i in index.items()},
        }
    )
    return MosaicPlan(px, origin, plan.tile_shape, shape, channels), report
