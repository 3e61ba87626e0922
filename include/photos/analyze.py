"""ML of one photo, without S3 or database: decode → segment → detect (tiled for large regions,
direct for small ones) → estimate → classify. :func:`analyze` returns a
:class:`PhotoAnalysis` in work pixels plus the scale to full resolution.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from include.photos.detect import (
    Detection,
    auto_threshold,
    excess_green,
    make_detector,
)
from include.photos.estimate import Estimate, calibrated_plant_area
from include.photos.exif import decode_rgb
from include.photos.segment import Region, empty_cells, segment_containers, segment_yolo

WORK_LONG_SIDE = 1000


@dataclass
class RegionResult:
    region: Region
    detections: list[Detection]  # absolute work coordinates
    estimate: Estimate
    containers: int
    empty: int
    tiled: bool


@dataclass
class PhotoAnalysis:
    image: Image.Image = field(repr=False)  # the decoded work image (for the annotated output)
    scale: float  # full-resolution pixels per work pixel
    width: int  # full resolution
    height: int
    backend: str
    threshold: float
    regions: list[RegionResult]
    plant_area_work: float | None  # calibrated plant area in work pixels
    measured_plant_area_work: float | None = None  # the plant area the photo itself shows

    @property
    def detections(self) -> list[Detection]:
        return [d for r in self.regions for d in r.detections]

    @property
    def total_detected(self) -> int:
        return sum(len(r.detections) for r in self.regions)

    @property
    def total_estimated(self) -> int:
        return sum(r.estimate.estimated for r in self.regions)

    @property
    def calibrated(self) -> bool:
        return self.plant_area_work is not None

    @property
    def total_containers(self) -> int:
        return sum(r.containers for r in self.regions)

    @property
    def total_empty(self) -> int:
        return sum(r.empty for r in self.regions)

    @property
    def avg_confidence(self) -> float | None:
        dets = self.detections
        return float(np.mean([d.score for d in dets])) if dets else None

    def size_classes(self) -> dict[str, int]:
        """Plants by size relative to the calibrated (else median) plant area."""
        dets = self.detections
        if not dets:
            return {"small": 0, "medium": 0, "large": 0}
        ref = (
            self.measured_plant_area_work
            or self.plant_area_work
            or float(np.median([d.area_px for d in dets]))
        )
        out = {"small": 0, "medium": 0, "large": 0}
        for d in dets:
            q = d.area_px / ref if ref else 1.0
            out["small" if q < 0.6 else "large" if q > 1.5 else "medium"] += 1
        return out


def analyze(
    data: bytes,
    *,
    config: dict[str, Any] | None = None,
    calibration: dict[str, Any] | None = None,
    work_long_side: int | None = None,
) -> PhotoAnalysis:
    """Run the whole ML of one photo. ``config``/``calibration`` are the storage location's
    (``None`` when unknown).

    The plant count comes from the photo alone (:mod:`include.photos.plants`); the location's
    calibration is only a prior for a photo with too few plants to measure their size, and its
    configuration adds what it knows about the containers (the cell grid of a tray gives the
    empty cells; ``container: pot`` makes pot-like regions count as containers). A ``yolo_sahi``
    detector configured for the location replaces the counter."""
    cfg = dict(config or {})
    full = Image.open(io.BytesIO(data))
    width, height = full.size
    img, scale = decode_rgb(data, int(cfg.get("work_long_side", work_long_side or WORK_LONG_SIDE)))
    rgb = np.asarray(img)
    area_full = calibrated_plant_area(calibration, width)
    plant_area_work = area_full / (scale * scale) if area_full else None
    if cfg.get("detector", "classical") != "classical":
        return _analyze_detector(img, rgb, scale, width, height, cfg, plant_area_work)
    from include.photos.plants import count_plants, live_mask

    res, _ = count_plants(data, prior_area_full=area_full)
    k = res.scale / scale  # counter pixels -> work pixels
    if cfg.get("segmenter") == "yolo" and cfg.get("segment_model_path"):
        regions = segment_yolo(rgb, str(cfg["segment_model_path"]), str(cfg.get("device", "cpu")))
    else:
        regions = segment_containers(rgb)
    veg_all = live_mask(rgb)
    per_region: list[list[Detection]] = [[] for _ in regions]
    loose: list[Detection] = []
    for x0, y0, x1, y1, n in res.boxes:
        bx0, by0, bx1, by1 = x0 * k, y0 * k, x1 * k, y1 * k
        cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
        area = res.plant_area * k * k
        dets = [
            Detection(bx0, by0, bx1, by1, 0.9 if n == 1 else 0.6, area, "plant") for _ in range(n)
        ]
        for i, reg in enumerate(regions):
            if reg.x0 <= cx < reg.x1 and reg.y0 <= cy < reg.y1:
                per_region[i].extend(dets)
                break
        else:
            loose.extend(dets)
    cells = cfg.get("cells")
    pots_configured = str(cfg.get("container", "")).lower() in ("pot", "pots")
    results: list[RegionResult] = []
    for reg, dets in zip(regions, per_region, strict=True):
        reg_veg = veg_all[reg.y0 : reg.y1, reg.x0 : reg.x1]
        if reg.kind == "pot" and not pots_configured:
            containers, empty = 0, 0  # a floor patch is not a container unless configured
        else:
            containers, empty = empty_cells(reg_veg, reg, tuple(cells) if cells else None)
        results.append(
            RegionResult(
                reg,
                dets,
                Estimate(0, 0.0, 0, plant_area_work is not None, []),
                containers,
                empty,
                False,
            )
        )
    if loose:
        h, w = rgb.shape[:2]
        frame = Region(0, 0, w, h, np.ones((h, w), bool), "frame")
        results.append(
            RegionResult(
                frame, loose, Estimate(0, 0.0, 0, plant_area_work is not None, []), 0, 0, False
            )
        )
    return PhotoAnalysis(
        image=img,
        scale=scale,
        width=width,
        height=height,
        backend="classical",
        threshold=0.0,
        regions=results,
        plant_area_work=plant_area_work,
        measured_plant_area_work=res.plant_area * k * k if res.count else None,
    )


def _analyze_detector(
    img: Image.Image,
    rgb: np.ndarray,
    scale: float,
    width: int,
    height: int,
    cfg: dict[str, Any],
    plant_area_work: float | None,
) -> PhotoAnalysis:
    """A configured detector backend (YOLO + SAHI): per container region, tiled when large."""
    exg = excess_green(rgb)
    threshold = float(cfg.get("exg_threshold") or auto_threshold(exg))
    veg_all = exg > threshold
    detector = make_detector(cfg, threshold=threshold, plant_area=None)
    if cfg.get("segmenter") == "yolo" and cfg.get("segment_model_path"):
        regions = segment_yolo(rgb, str(cfg["segment_model_path"]), str(cfg.get("device", "cpu")))
    else:
        regions = segment_containers(rgb)
    tile_min = int(cfg.get("tile_min_side", 600))
    cells = cfg.get("cells")
    results: list[RegionResult] = []
    claimed = np.zeros(rgb.shape[:2], bool)  # a plant belongs to the first (largest) region
    for reg in regions:
        pad = int(0.02 * max(rgb.shape[:2]))
        x0, y0 = max(0, reg.x0 - pad), max(0, reg.y0 - pad)
        x1, y1 = min(rgb.shape[1], reg.x1 + pad), min(rgb.shape[0], reg.y1 + pad)
        crop = rgb[y0:y1, x0:x1]
        tiled = max(crop.shape[:2]) > tile_min
        dets = detector.detect_region(crop, tiled=tiled, exg=exg[y0:y1, x0:x1])
        kept = [
            d
            for d in dets
            if not claimed[
                min(int((d.y0 + d.y1) / 2) + y0, claimed.shape[0] - 1),
                min(int((d.x0 + d.x1) / 2) + x0, claimed.shape[1] - 1),
            ]
        ]
        reg_veg = veg_all[reg.y0 : reg.y1, reg.x0 : reg.x1]
        containers, empty = empty_cells(reg_veg, reg, tuple(cells) if cells else None)
        claimed[y0:y1, x0:x1] = True
        results.append(
            RegionResult(
                region=reg,
                detections=[d.shifted(x0, y0) for d in kept],
                estimate=Estimate(0, 0.0, 0, plant_area_work is not None, []),
                containers=containers,
                empty=empty,
                tiled=tiled,
            )
        )
    return PhotoAnalysis(
        image=img,
        scale=scale,
        width=width,
        height=height,
        backend=getattr(detector, "name", "yolo_sahi"),
        threshold=threshold,
        regions=results,
        plant_area_work=plant_area_work,
    )


def count_error(predicted: int, truth: int) -> float:
    """Absolute percentage error of a count (0 when both are 0)."""
    if truth == 0:
        return 0.0 if predicted == 0 else 1.0
    return abs(predicted - truth) / truth


__all__ = ["PhotoAnalysis", "RegionResult", "analyze", "count_error"]
