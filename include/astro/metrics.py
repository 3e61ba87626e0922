"""Frame metrics from the pixels: star count, HFR, FWHM, eccentricity and background of a light.

Source extraction with `sep` (SExtractor's core as a library) on the frame minus its background
map (``BACK_MESH`` px meshes: sky gradients and nebulosity are not stars and do not raise the
noise), at ``THRESH`` sigma of the background RMS: the star count. Then, on a stamp around each
of the brightest :data:`MAX_STARS` unsaturated, unflagged stars with a peak of at least
``SHAPE_SNR`` sigma (fainter stamps are mostly noise: they inflate HFR and elongation), the flux-weighted mean radius (HFR, NINA's and
PixInsight's definition) and the second moments (FWHM = 2.3548 * sqrt((l1 + l2) / 2), eccentricity
= sqrt(1 - l2 / l1)); the frame value is the median over those stars. sep was
measured against photutils (``bench/bench_astro_metrics.py``; photutils' segmentation + catalog and
plain ``DAOStarFinder``) on the same frames and is used for its speed.

The pixels are read straight from the file (:mod:`include.astro.preview` layout; 16-bit NINA
frames with ``BZERO`` work). :func:`suggestions` turns a set's metrics into hints for the human
(clouds: star count drop; trails: elongated stars; focus drift: HFR rise) - it never rejects.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

THRESH = 5.0  # detection threshold in background sigmas
MIN_AREA = 5
MAX_STARS = 400
# bumped when the measurement changes: cached values of another version are measured again
# (1: one sky level for the frame; 2: sep background map, shapes from stars of peak >= SHAPE_SNR)
METRICS_VERSION = 2
SHAPE_SNR = 20.0  # HFR/FWHM/eccentricity from stars whose peak is at least this many sigmas
BACK_MESH = 64  # px: sep's background mesh (gradients and nebulosity larger than this are sky)
FWHM_PER_SIGMA = 2.3548


@dataclass(frozen=True)
class FrameMetrics:
    stars: int
    hfr: float | None  # pixels
    fwhm: float | None  # pixels
    eccentricity: float | None
    background: float  # ADU
    noise: float  # background RMS, ADU

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_frame_pixels(path: str | os.PathLike[str]) -> np.ndarray:
    """The frame as native float32 (C order), scaled by BZERO/BSCALE."""
    from include.astro.preview import pixel_layout

    lay = pixel_layout(path)
    mm = np.memmap(
        path, dtype=lay.dtype, mode="r", offset=lay.offset, shape=(lay.height, lay.width)
    )
    data = np.empty(mm.shape, dtype=np.float32)
    step = 512
    for r in range(0, lay.height, step):  # bounded temporaries
        data[r : r + step] = mm[r : r + step]
    del mm
    if lay.bscale != 1.0:
        data *= lay.bscale
    if lay.bzero:
        data += lay.bzero
    return data


def sky_level(data: np.ndarray, step: int = 7) -> tuple[float, float]:
    """Global background and noise: 3-sigma-clipped median / MAD of a strided pixel sample."""
    sample = data[::step, ::step].ravel()
    med = float(np.median(sample))
    mad = float(np.median(np.abs(sample - med))) * 1.4826
    for _ in range(3):
        keep = sample[np.abs(sample - med) < 3.0 * max(mad, 1e-6)]
        if keep.size < 100:
            break
        med = float(np.median(keep))
        mad = float(np.median(np.abs(keep - med))) * 1.4826
    return med, mad


def _stamp_shapes(
    data: np.ndarray, xs: np.ndarray, ys: np.ndarray, half: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HFR (flux-weighted mean radius, like NINA/PixInsight), FWHM and eccentricity from the
    background-subtracted second moments of a stamp around each star."""
    h, w = data.shape
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    hfr, fwhm, ecc = [], [], []
    for x, y in zip(xs, ys, strict=True):
        ix, iy = int(round(x)), int(round(y))
        if ix < half or iy < half or ix >= w - half or iy >= h - half:
            continue
        st = data[iy - half : iy + half + 1, ix - half : ix + half + 1].astype(np.float64)
        st = np.clip(st, 0.0, None)
        tot = st.sum()
        if tot <= 0:
            continue
        cx, cy = (st * xx).sum() / tot, (st * yy).sum() / tot
        dx, dy = xx - cx, yy - cy
        r = np.sqrt(dx**2 + dy**2)
        hfr.append((st * r).sum() / tot)
        sxx, syy, sxy = (
            (st * dx**2).sum() / tot,
            (st * dy**2).sum() / tot,
            (st * dx * dy).sum() / tot,
        )
        tr, det = sxx + syy, sxx * syy - sxy**2
        disc = np.sqrt(max(tr**2 / 4.0 - det, 0.0))
        l1, l2 = tr / 2.0 + disc, max(tr / 2.0 - disc, 1e-9)
        fwhm.append(FWHM_PER_SIGMA * np.sqrt((l1 + l2) / 2.0))
        ecc.append(np.sqrt(max(1.0 - l2 / l1, 0.0)))
    return np.asarray(hfr), np.asarray(fwhm), np.asarray(ecc)


def measure(data: np.ndarray, saturation: float | None = None) -> FrameMetrics:
    """Metrics of one frame's pixels (float32, C order; modified in place)."""
    import sep

    data = np.ascontiguousarray(data, dtype=np.float32)
    # a background map (64 px meshes, 3x3 median filter), not one level: sky gradients and
    # nebulosity would raise the noise estimate and the threshold, and hide faint stars
    bkg = sep.Background(data, bw=BACK_MESH, bh=BACK_MESH, fw=3, fh=3)
    back, rms = float(bkg.globalback), float(bkg.globalrms)
    bkg.subfrom(data)  # in place: no second full-size array
    del bkg
    sep.set_extract_pixstack(max(300000, data.size // 20))
    sep.set_sub_object_limit(4096)
    try:  # absolute threshold on the sky-subtracted frame (err=None)
        objs = sep.extract(
            data, THRESH * rms, minarea=MIN_AREA, deblend_cont=1.0, filter_kernel=None
        )
    except Exception:  # noqa: BLE001 - e.g. a cloud-covered frame with one giant blob
        objs = None
    n = 0 if objs is None else len(objs)
    if n == 0:
        return FrameMetrics(0, None, None, None, round(back, 2), round(rms, 2))
    if saturation is None:
        saturation = float(objs["peak"].max()) * 0.98
    good = objs[(objs["flag"] == 0) & (objs["peak"] < saturation)]
    bright = good[good["peak"] >= SHAPE_SNR * rms]
    good = bright if len(bright) >= 5 else good  # faint stamps: noise inflates HFR and elongation
    good = good[np.argsort(good["flux"])[::-1][:MAX_STARS]]
    hfr, fwhm, ecc = _stamp_shapes(data, good["x"], good["y"])
    if hfr.size == 0:
        return FrameMetrics(n, None, None, None, round(back, 2), round(rms, 2))
    return FrameMetrics(
        stars=n,
        hfr=round(float(np.median(hfr)), 3),
        fwhm=round(float(np.median(fwhm)), 3),
        eccentricity=round(float(np.median(ecc)), 3),
        background=round(back, 2),
        noise=round(rms, 2),
    )


def frame_metrics(path: str | os.PathLike[str]) -> FrameMetrics:
    return measure(read_frame_pixels(path))


def deviations(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Each row plus ``<key>_dev``: the relative deviation from the set's median (0.1 = +10 %)."""
    meds = {}
    for k in keys:
        vals = [float(r[k]) for r in rows if r.get(k) is not None]
        meds[k] = float(np.median(vals)) if vals else None
    out = []
    for r in rows:
        d = dict(r)
        for k in keys:
            m, v = meds[k], r.get(k)
            d[f"{k}_dev"] = round((float(v) - m) / m, 3) if v is not None and m else None
        out.append(d)
    return out


METRIC_KEYS = ("stars", "hfr", "fwhm", "eccentricity", "background")


def suggestions(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """``{file: [hint, ...]}`` for frames that look off against their set's median (hints only:
    the human decides). Rows: ``{"file", "stars", "hfr", "eccentricity", "background", ...}``."""
    out: dict[str, list[str]] = {}
    for r in deviations(rows, METRIC_KEYS):
        hints = []
        if r.get("stars_dev") is not None and r["stars_dev"] < -0.5:
            hints.append(f"clouds? {r['stars']} stars ({r['stars_dev']:+.0%} vs the set)")
        if r.get("eccentricity") is not None and r["eccentricity"] > 0.6:
            hints.append(f"trailing? eccentricity {r['eccentricity']:.2f}")
        if r.get("hfr_dev") is not None and r["hfr_dev"] > 0.25:
            hints.append(f"focus drift? HFR {r['hfr']:.2f} px ({r['hfr_dev']:+.0%})")
        if r.get("background_dev") is not None and r["background_dev"] > 0.5:
            hints.append(f"bright sky? background {r['background_dev']:+.0%}")
        if hints:
            out[str(r["file"])] = hints
    return out
