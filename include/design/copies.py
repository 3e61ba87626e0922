"""Facts about a copy that only show next to the other copies of the same design: is it **cropped**
(its picture is a part of another member's picture) and does it carry a **watermark** (a small
overlay — text, a logo — that another member does not have)?

Both are measured on the members of one near-duplicate group (:func:`relative_facts`), on grey
images of at most :data:`SIDE` px (transparency composited onto white):

* **crop** — ``a`` is a crop of ``b`` when ``a``, scaled so that its width is 70-99 % of ``b``'s,
  is found inside ``b`` (both at half that size) by normalised cross-correlation (OpenCV
  ``matchTemplate``) with a score of at least :data:`CROP_SCORE`, covers less than
  :data:`CROP_AREA` of ``b``'s area, and scores clearly better there than stretched over all of
  ``b``.
* **watermark** — after aligning the pair (the crop search above, full frame otherwise), a light
  blur and matching brightness (a tone curve: per grey level of one copy, the median level of the
  other, :func:`tone_match`, so clipped colours of a brightened copy match), the pixels that
  differ by more
  than :data:`DIFF` grey levels must be few (0.02-8 % of the picture) and form one compact patch of
  a 16×16 grid (the largest 8-connected patch of differing cells, gaps of :data:`ROW_GAP` cell
  along a row bridged, holds :data:`SHARE` of them and spans at most :data:`PATCH` rows).
  Resampling, re-encoding and brightness changes spread their differences over the picture; an
  overlay does not. Of the two copies the one with more edges in
  the patch (text adds edges) carries the overlay.

Used on the members of each near-duplicate group of one upload and, for a design already stored,
on the pair (upload, stored file fetched from the NAS). Limits: a watermark that covers a large part
of the picture is not "small" and is not detected; a copy counts as watermarked only when it has an
overlay against at least half of the other members. Measured figures (tune / held-out sets of
:mod:`include.design.evalset`): ``bench/bench_design_quality.py`` (``best_copy_facts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import numpy as np

SIDE = 384
CROP_SCORE = 0.9
CROP_AREA = 0.97
DIFF = 12.0  # grey levels (after the tone curve); 24 with a gain/offset fit missed faint marks
TONE_BINS = 32
GRID = 16
PATCH = 4  # at most this many grid rows (and PATCH * GRID cells) of differences
#: The patch's differing cells are joined across gaps of this many cells along a row (the words of
#: one line of text leave empty cells between them) and must hold :data:`SHARE` of the differing
#: pixels. Chosen on 74 further watermark draws of TUNE_WIDE's sources (opacity 60-230, heights
#: 1/40-1/13, long texts) plus the tune sets' 74 groups: unjoined at 80 %, 56/74 of those draws were
#: found; joined (1 cell) at 70 %, 63/74, still no other member flagged (2-cell joins flagged
#: brightened copies; a share of the hot cells only flagged crops).
ROW_GAP = 1
SHARE = 0.7


class Relative(TypedDict):
    cropped: bool
    watermark: bool


def load_grey(path: str, side: int = SIDE) -> np.ndarray:
    """Grey float32 picture of at most ``side`` px (transparency composited onto white)."""
    from PIL import Image, ImageOps

    from include.design import imaging

    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft("RGB", (side * 2, side * 2))
        im.load()
        im = ImageOps.exif_transpose(im)
        rgb = imaging.flatten(im)
    rgb.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(rgb.convert("L"), dtype=np.float32)


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    import cv2

    return cv2.resize(a, (max(1, w), max(1, h)), interpolation=cv2.INTER_AREA)


def _full_score(a: np.ndarray, b: np.ndarray) -> float:
    """NCC of ``a`` stretched over the whole of ``b``."""
    x = _resize(a, b.shape[1], b.shape[0]).ravel() - 0.0
    y = b.ravel()
    x, y = x - x.mean(), y - y.mean()
    d = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / d) if d > 0 else 0.0


SEARCH = 2  # the crop search runs on pictures reduced by this factor


def find_crop(a: np.ndarray, b: np.ndarray) -> tuple[float, tuple[int, int, int, int]] | None:
    """Where ``a`` lies inside ``b`` as a crop: ``(score, (x, y, w, h))`` in ``b``'s pixels, or
    ``None`` when ``a`` is not a crop of ``b``."""
    import cv2

    hb0, wb0 = b.shape
    small_b = _resize(b, wb0 // SEARCH, hb0 // SEARCH)
    hb, wb = small_b.shape
    ha, wa = a.shape
    best: tuple[float, tuple[int, int, int, int]] | None = None
    for f in np.arange(0.70, 0.995, 0.01):
        w = round(wb * f)
        h = round(ha * w / wa)
        if h > hb or w >= wb and h >= hb or h < 8 or w < 8:
            continue
        t = _resize(a, w, h)
        if float(t.std()) < 1e-3:
            continue
        res = cv2.matchTemplate(small_b, t, cv2.TM_CCOEFF_NORMED)
        _, score, _, (x, y) = cv2.minMaxLoc(res)
        if best is None or score > best[0]:
            best = (float(score), (int(x), int(y), int(w), int(h)))
    if best is None:
        return None
    score, (x, y, w, h) = best
    if score < CROP_SCORE or w * h > CROP_AREA * wb * hb:
        return None
    if score < _full_score(a, b) + 0.02:  # the whole picture fits as well: not a crop
        return None
    return score, (x * SEARCH, y * SEARCH, min(wb0 - x * SEARCH, w * SEARCH),
                   min(hb0 - y * SEARCH, h * SEARCH))  # fmt: skip


def tone_match(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``y`` mapped onto ``x``'s grey levels by a tone curve: ``y``'s range in :data:`TONE_BINS`
    bins, each bin's median level of ``y`` mapped to the median of ``x`` at those pixels
    (interpolated between bins). A brightness change that clips some colours to white is such
    a curve but not a gain and an offset; a small overlay moves few pixels of any bin, so the
    medians ignore it."""
    yv, xv = y.ravel(), x.ravel()
    lo, hi = float(yv.min()), float(yv.max())
    if hi - lo < 1e-3:
        return np.full_like(y, float(np.median(xv)))
    idx = np.minimum(((yv - lo) / (hi - lo) * TONE_BINS).astype(np.int64), TONE_BINS - 1)
    order = np.argsort(idx, kind="stable")
    bounds = np.searchsorted(idx[order], np.arange(TONE_BINS + 1))
    src, dst = [], []
    for k in range(TONE_BINS):
        sel = order[bounds[k] : bounds[k + 1]]
        if len(sel) >= 20:
            src.append(float(np.median(yv[sel])))
            dst.append(float(np.median(xv[sel])))
    if len(src) < 2:
        return y
    return np.interp(y, src, dst).astype(np.float32)


def overlay(a: np.ndarray, b: np.ndarray) -> int:
    """``1`` when ``a`` carries a small overlay that ``b`` has not, ``-1`` the other way round,
    ``0`` when neither (``a`` and ``b`` show the same picture, already aligned, same shape)."""
    import cv2

    x = cv2.GaussianBlur(a, (3, 3), 0.8)
    y = cv2.GaussianBlur(b, (3, 3), 0.8)
    y = tone_match(y, x)
    strong = np.abs(x - y) > DIFF
    frac = float(strong.mean())
    if not (0.0002 <= frac <= 0.08):
        return 0
    h, w = strong.shape
    gh, gw = max(1, h // GRID), max(1, w // GRID)
    cells = strong[: gh * GRID, : gw * GRID].reshape(GRID, gh, GRID, gw).sum(axis=(1, 3))
    total = cells.sum()
    if total == 0:
        return 0
    # the differing cells must form one compact patch (text, a logo), not edges all over
    hot = (cells >= max(2, 0.02 * total)).astype(np.uint8)
    joined = cv2.dilate(hot, np.ones((1, 2 * ROW_GAP + 1), np.uint8)) if ROW_GAP else hot
    n, labels, _stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    if n < 2:
        return 0
    sums = np.bincount(labels.ravel(), weights=cells.ravel(), minlength=n)
    k = 1 + int(np.argmax(sums[1:]))
    patch = (labels == k) & (hot > 0)  # the differing cells of the joined patch
    rows = np.flatnonzero(patch.any(axis=1))
    if sums[k] < SHARE * total or rows[-1] - rows[0] + 1 > PATCH or patch.sum() > PATCH * GRID:
        return 0
    region = np.kron(labels == k, np.ones((gh, gw), dtype=bool))
    region = np.pad(region, ((0, h - region.shape[0]), (0, w - region.shape[1])))

    def edges(img: np.ndarray) -> float:
        gx = cv2.Sobel(img, cv2.CV_32F, 1, 0)
        gy = cv2.Sobel(img, cv2.CV_32F, 0, 1)
        return float(np.abs(gx[region]).sum() + np.abs(gy[region]).sum())

    ea, eb = edges(x), edges(y)
    if max(ea, eb) <= 0:
        return 0
    return 1 if ea > eb else -1


def relative_facts(paths: Sequence[str]) -> list[Relative]:
    """``cropped``/``watermark`` for each member of one near-duplicate group (files in order).

    A member is cropped when it is a crop of any other member; it carries a watermark when it
    has an overlay against at least half of the other members (a majority: one noisy pair does
    not decide)."""
    out = [Relative(cropped=False, watermark=False) for _ in paths]
    if len(paths) < 2:
        return out
    greys = [load_grey(p) for p in paths]
    n = len(greys)
    wins = [0] * n
    for i in range(n):
        for j in range(i + 1, n):
            a, b = greys[i], greys[j]
            a_in_b, b_in_a = find_crop(a, b), find_crop(b, a)
            # a crop relation goes one way: when both are found (wide pictures with plain
            # borders), the better fit decides, not the order of the files
            if a_in_b is not None and b_in_a is not None:
                a_in_b, b_in_a = (a_in_b, None) if a_in_b[0] > b_in_a[0] else (None, b_in_a)
            if a_in_b is not None:
                out[i]["cropped"] = True
                _, (x0, y0, w, h) = a_in_b
                x, y = _resize(a, w, h), b[y0 : y0 + h, x0 : x0 + w]
            elif b_in_a is not None:
                out[j]["cropped"] = True
                _, (x0, y0, w, h) = b_in_a
                x, y = a[y0 : y0 + h, x0 : x0 + w], _resize(b, w, h)
            else:
                h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
                x, y = _resize(a, w, h), _resize(b, w, h)
            who = overlay(x, y)
            if who == 1:
                wins[i] += 1
            elif who == -1:
                wins[j] += 1
    for i in range(n):
        out[i]["watermark"] = wins[i] > 0 and 2 * wins[i] >= n - 1
    return out
