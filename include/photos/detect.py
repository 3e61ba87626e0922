"""Plant detection: two backends behind one interface, tiled detection with NMS across tiles.

* :class:`ClassicalDetector` (default, no weights): chromatic excess-green vegetation index,
  threshold, morphological opening, distance transform + peaks + watershed to split touching
  plants. Objects much larger than a typical plant (clumps it cannot split) are not counted as
  detections; their area is left to :mod:`include.photos.estimate`.
* :class:`YoloSahiDetector`: an ultralytics YOLO detection or segmentation model from a configured
  file, run directly on small regions and through SAHI slicing on large ones (CPU or GPU). It needs
  the optional extra ``pip install ultralytics sahi`` (pulls torch); without it
  :func:`make_detector` raises :class:`BackendUnavailable` with the install command.

Both work on RGB ``uint8`` numpy arrays in "work" pixels (the decoded, reduced photo) and return
:class:`Detection` boxes in the coordinates of the array they were given.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

DEFAULT_EXG_THRESHOLD = (0.05, 0.35)  # clip range of the automatic (Otsu) threshold


class BackendUnavailable(RuntimeError):
    """The configured detector backend cannot be used here (missing optional package/model)."""


@dataclass
class Detection:
    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    area_px: float  # object area (mask pixels, or box area when there is no mask)
    label: str = "plant"
    mask: np.ndarray | None = field(default=None, repr=False)  # bool, box-sized
    touches_cut: bool = False  # touches an interior tile edge (may be cut off)

    @property
    def box_area(self) -> float:
        return max(0.0, self.x1 - self.x0) * max(0.0, self.y1 - self.y0)

    def shifted(self, dx: float, dy: float) -> Detection:
        return Detection(
            self.x0 + dx,
            self.y0 + dy,
            self.x1 + dx,
            self.y1 + dy,
            self.score,
            self.area_px,
            self.label,
            self.mask,
            self.touches_cut,
        )

    def to_dict(self, scale: float = 1.0) -> dict[str, Any]:
        return {
            "box": [round(v * scale, 1) for v in (self.x0, self.y0, self.x1, self.y1)],
            "score": round(float(self.score), 4),
            "area_px": round(float(self.area_px) * scale * scale, 1),
            "label": self.label,
        }


class Detector(Protocol):
    """One backend. ``detect`` runs on one image (a region crop or a tile)."""

    name: str

    def detect(self, rgb: np.ndarray) -> list[Detection]: ...

    def detect_region(
        self, rgb: np.ndarray, *, tiled: bool, exg: np.ndarray | None = None
    ) -> list[Detection]: ...


# --------------------------------------------------------------------------- vegetation index
def excess_green(rgb: np.ndarray) -> np.ndarray:
    """Chromatic excess green ``2g - r - b`` on ``r+g+b``-normalised channels (float32, -1..2)."""
    f = rgb.astype(np.float32)
    s = f.sum(axis=2)
    s[s == 0] = 1.0
    return (2.0 * f[..., 1] - f[..., 0] - f[..., 2]) / s


def auto_threshold(exg: np.ndarray, clip: tuple[float, float] = DEFAULT_EXG_THRESHOLD) -> float:
    """Otsu threshold of the index, clipped to ``clip`` (so a photo without plants stays empty)."""
    from skimage.filters import threshold_otsu

    sample = exg[:: max(1, exg.shape[0] // 256), :: max(1, exg.shape[1] // 256)]
    try:
        t = float(threshold_otsu(sample))
    except ValueError:
        t = clip[0]
    return float(min(max(t, clip[0]), clip[1]))


def vegetation_mask(rgb: np.ndarray, threshold: float) -> np.ndarray:
    return excess_green(rgb) > threshold


# --------------------------------------------------------------------------- NMS and tiling
def _inter(a: Detection, b: Detection) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def nms(dets: Sequence[Detection], threshold: float = 0.5, metric: str = "ios") -> list[Detection]:
    """Greedy non-maximum suppression. ``metric="ios"`` (intersection over the smaller box, as
    SAHI's ``IOS``) removes a plant cut by a tile edge when the whole plant is found in the
    neighbouring tile; ``"iou"`` is the classic variant. Uncut, higher-score boxes win."""
    order = sorted(dets, key=lambda d: (d.touches_cut, -d.score, -d.box_area))
    kept: list[Detection] = []
    for d in order:
        ok = True
        for k in kept:
            inter = _inter(d, k)
            if inter <= 0:
                continue
            if metric == "ios":
                denom = min(d.box_area, k.box_area)
            else:
                denom = d.box_area + k.box_area - inter
            if denom > 0 and inter / denom > threshold:
                ok = False
                break
        if ok:
            kept.append(d)
    return kept


def tiles(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Tile windows ``(x0, y0, x1, y1)`` covering the image with at least ``overlap`` pixels of
    overlap; the last row/column is aligned to the image edge."""
    tile = max(1, tile)
    step = max(1, tile - overlap)

    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        s = list(range(0, n - tile, step))
        s.append(n - tile)
        return s

    return [
        (x, y, min(width, x + tile), min(height, y + tile))
        for y in starts(height)
        for x in starts(width)
    ]


def tiled_detect(
    detect: Callable[[np.ndarray], list[Detection]],
    rgb: np.ndarray,
    tile: int,
    overlap: int,
    nms_threshold: float = 0.5,
) -> list[Detection]:
    """Run ``detect`` on overlapping tiles, map boxes back and merge duplicates with NMS."""
    h, w = rgb.shape[:2]
    out: list[Detection] = []
    for x0, y0, x1, y1 in tiles(h, w, tile, overlap):
        for d in detect(rgb[y0:y1, x0:x1]):
            cut = (
                (d.x0 <= 0.5 and x0 > 0)
                or (d.y0 <= 0.5 and y0 > 0)
                or (d.x1 >= (x1 - x0) - 0.5 and x1 < w)
                or (d.y1 >= (y1 - y0) - 0.5 and y1 < h)
            )
            d = d.shifted(x0, y0)
            d.touches_cut = cut
            out.append(d)
    return nms(out, nms_threshold, "ios")


# --------------------------------------------------------------------------- classical backend
@dataclass
class ClassicalDetector:
    """Vegetation index + threshold + morphology + watershed. ``plant_area`` (work pixels) is the
    expected area of one plant; ``None`` derives it from the median object of each image."""

    threshold: float = 0.12
    plant_area: float | None = None
    # calibrated plant area (work pixels), used when the photo itself gives no reliable size
    plant_area_hint: float | None = None
    min_area_factor: float = 0.2  # smaller objects are noise / leaf fragments
    max_area_factor: float = 2.6  # larger objects are unsplit clumps (left to estimation)
    tile: int = 640
    overlap_ratio: float = 0.2
    name: str = "classical"

    def _typical_area(self, areas: np.ndarray) -> float:
        """The expected area of one plant: the configured one, else the median object of the
        image — unless that is unreliable (fewer than 5 objects, e.g. a mat of touching plants,
        or far from the calibrated size), then the calibrated hint."""
        if self.plant_area:
            return float(self.plant_area)
        big = areas[areas >= 16]
        typ = float(np.median(big)) if big.size else 0.0
        hint = self.plant_area_hint
        if hint and (big.size < 5 or not (0.4 * hint <= typ <= 2.5 * hint)):
            return float(hint)
        return typ

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return self.detect_exg(excess_green(rgb))

    def detect_exg(self, exg: np.ndarray) -> list[Detection]:
        """Detection on a precomputed vegetation index (tiles share one index computation)."""
        from scipy import ndimage as ndi
        from skimage.feature import peak_local_max
        from skimage.segmentation import watershed

        mask = exg > self.threshold
        mask = ndi.binary_opening(mask, structure=np.ones((3, 3), bool))
        labels0, n0 = ndi.label(mask)
        if n0 == 0:
            return []
        areas0 = np.bincount(labels0.ravel())[1:]
        typ = self._typical_area(areas0)
        if typ <= 0:
            return []
        r_eq = math.sqrt(typ / math.pi)
        # drop specks before the distance transform
        keep = np.ones(n0 + 1, bool)
        keep[0] = False
        keep[1:][areas0 < max(4.0, 0.05 * typ)] = False
        mask = keep[labels0]
        labels0 = np.where(mask, labels0, 0)
        dist = ndi.distance_transform_edt(mask)
        peaks = peak_local_max(
            dist,
            min_distance=max(2, int(0.55 * r_eq)),
            threshold_abs=max(1.0, 0.45 * r_eq),
            labels=labels0,
            exclude_border=False,
        )
        # one peak: the component is one plant; several: watershed splits it (only there — most
        # plants stand alone, so this is a fraction of a whole-image watershed); none: fragment,
        # left to estimation
        peak_comp = labels0[tuple(peaks.T)] if len(peaks) else np.zeros(0, np.int64)
        per_comp = np.bincount(peak_comp, minlength=n0 + 1)
        labels = np.where(per_comp[labels0] == 1, labels0, 0).astype(np.int64)
        slices = ndi.find_objects(labels0)
        for c in np.flatnonzero(per_comp >= 2):
            sl = slices[c - 1]
            sub = labels0[sl] == c
            sub_markers = np.zeros(sub.shape, np.int64)
            mine = peak_comp == c
            py, px = peaks[mine, 0] - sl[0].start, peaks[mine, 1] - sl[1].start
            sub_markers[py, px] = n0 + 1 + np.flatnonzero(mine)  # unique across components
            ws = watershed(-dist[sl], sub_markers, mask=sub)
            labels[sl][sub] = ws[sub]
        return self._objects(labels, exg, typ)

    def _objects(self, labels: np.ndarray, exg: np.ndarray, typ: float) -> list[Detection]:
        from scipy import ndimage as ndi

        flat = labels.ravel()
        counts = np.bincount(flat)
        counts[0] = 0
        if not counts.any():
            return []
        sums = np.bincount(flat, weights=exg.ravel())
        slices = ndi.find_objects(labels)
        dets: list[Detection] = []
        for i, sl in enumerate(slices):
            if sl is None or counts[i + 1] == 0:
                continue
            area = float(counts[i + 1])
            if area < self.min_area_factor * typ or area > self.max_area_factor * typ:
                continue
            m = labels[sl] == (i + 1)
            ys, xs = sl
            box_area = float((ys.stop - ys.start) * (xs.stop - xs.start))
            fill = area / box_area if box_area else 0.0  # rosettes fill ~0.55-0.75 of their box
            size_fit = math.exp(-abs(math.log(area / typ)))
            green = min(1.0, max(0.0, float(sums[i + 1] / area) / 0.5))
            score = 0.3 + 0.35 * size_fit + 0.2 * min(1.0, fill / 0.6) + 0.15 * green
            dets.append(
                Detection(
                    float(xs.start),
                    float(ys.start),
                    float(xs.stop),
                    float(ys.stop),
                    float(min(0.99, max(0.05, score))),
                    area,
                    "plant",
                    m,
                )
            )
        return dets

    def detect_region(
        self, rgb: np.ndarray, *, tiled: bool, exg: np.ndarray | None = None
    ) -> list[Detection]:
        exg = excess_green(rgb) if exg is None else exg
        if not tiled or max(exg.shape[:2]) <= self.tile:
            return self.detect_exg(exg)
        det = self
        if not self.plant_area:
            # one typical plant size for the whole region (a tile sees cut plants only at its
            # edges, and the overlap must exceed a plant's diameter)
            from dataclasses import replace

            from scipy import ndimage as ndi

            labels, n = ndi.label(exg > self.threshold)
            if n:
                typ = self._typical_area(np.bincount(labels.ravel())[1:])
                det = replace(self, plant_area=typ or None)
        overlap = int(self.overlap_ratio * self.tile)
        if det.plant_area:
            overlap = max(overlap, int(2.4 * math.sqrt(det.plant_area / math.pi)))
        return tiled_detect(det.detect_exg, exg, self.tile, min(overlap, self.tile // 2))


# --------------------------------------------------------------------------- YOLO + SAHI backend
@functools.lru_cache(maxsize=4)
def load_sahi_model(model_path: str, confidence: float, device: str, image_size: int) -> Any:
    """The SAHI-wrapped ultralytics model, loaded once per worker process (and per settings):
    every photo of every chunk the process handles reuses it."""
    try:
        from sahi import AutoDetectionModel
    except ImportError as exc:
        raise BackendUnavailable(
            "detector backend 'yolo_sahi' needs the optional extra: "
            "pip install ultralytics sahi (see docs in include/photos/detect.py)"
        ) from exc
    from pathlib import Path

    if not Path(model_path).exists():
        raise BackendUnavailable(f"YOLO model file not found: {model_path}")
    return AutoDetectionModel.from_pretrained(
        model_type="ultralytics",
        model_path=model_path,
        confidence_threshold=confidence,
        device=device,
        image_size=image_size,
    )


@functools.lru_cache(maxsize=4)
def load_yolo(model_path: str) -> Any:
    """An ultralytics ``YOLO`` model, loaded once per worker process."""
    from ultralytics import YOLO

    return YOLO(model_path)


@dataclass
class YoloSahiDetector:
    """ultralytics YOLO (detect or segment weights/YAML from ``model_path``) with SAHI slicing.

    Optional extra: ``pip install ultralytics sahi`` (not in requirements.txt: pulls torch).
    """

    model_path: str
    confidence: float = 0.25
    device: str = "cpu"
    slice_size: int = 640
    overlap_ratio: float = 0.2
    image_size: int = 640
    label: str = "plant"
    name: str = "yolo_sahi"
    _model: Any = field(default=None, init=False, repr=False)

    def _load(self) -> Any:
        if self._model is None:
            self._model = load_sahi_model(
                self.model_path, self.confidence, self.device, self.image_size
            )
        return self._model

    def _convert(
        self, object_predictions: Sequence[Any], shape: tuple[int, ...]
    ) -> list[Detection]:
        out: list[Detection] = []
        for p in object_predictions:
            x0, y0, x1, y1 = (float(v) for v in p.bbox.to_xyxy())
            mask = None
            area = max(0.0, x1 - x0) * max(0.0, y1 - y0)
            if getattr(p, "mask", None) is not None:
                full = np.asarray(p.mask.bool_mask, bool)
                crop = full[int(y0) : int(math.ceil(y1)), int(x0) : int(math.ceil(x1))]
                if crop.size:
                    mask = crop
                    area = float(crop.sum())
            out.append(Detection(x0, y0, x1, y1, float(p.score.value), area, self.label, mask))
        return out

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        from sahi.predict import get_prediction

        res = get_prediction(rgb, self._load())
        return self._convert(res.object_prediction_list, rgb.shape)

    def detect_region(
        self, rgb: np.ndarray, *, tiled: bool, exg: np.ndarray | None = None
    ) -> list[Detection]:
        if not tiled or max(rgb.shape[:2]) <= self.slice_size:
            return self.detect(rgb)
        from sahi.predict import get_sliced_prediction

        res = get_sliced_prediction(
            rgb,
            self._load(),
            slice_height=self.slice_size,
            slice_width=self.slice_size,
            overlap_height_ratio=self.overlap_ratio,
            overlap_width_ratio=self.overlap_ratio,
            postprocess_type="NMS",
            postprocess_match_metric="IOS",
            postprocess_match_threshold=0.5,
            verbose=0,
        )
        return self._convert(res.object_prediction_list, rgb.shape)


BACKENDS = ("classical", "yolo_sahi")


def make_detector(
    config: dict[str, Any] | None,
    *,
    threshold: float,
    plant_area: float | None,
    plant_area_hint: float | None = None,
):
    """The detector chosen by a storage location's ``config`` (``detector``: ``classical`` by
    default, or ``yolo_sahi`` with ``model_path``, ``device``, ``confidence``, ``slice_size``)."""
    cfg = dict(config or {})
    backend = cfg.get("detector", "classical")
    if backend == "classical":
        return ClassicalDetector(
            threshold=float(cfg.get("exg_threshold", threshold)),
            plant_area=plant_area,
            plant_area_hint=plant_area_hint,
            tile=int(cfg.get("tile_size", 640)),
        )
    if backend == "yolo_sahi":
        if not cfg.get("model_path"):
            raise BackendUnavailable("detector 'yolo_sahi' needs config.model_path")
        det = YoloSahiDetector(
            model_path=str(cfg["model_path"]),
            confidence=float(cfg.get("confidence", 0.25)),
            device=str(cfg.get("device", "cpu")),
            slice_size=int(cfg.get("slice_size", 640)),
            image_size=int(cfg.get("image_size", 640)),
        )
        det._load()  # fail early with a clear reason
        return det
    raise BackendUnavailable(f"unknown detector backend {backend!r} (one of {', '.join(BACKENDS)})")
